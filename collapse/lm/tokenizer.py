"""The checkpoint's own tokenizer: ``<model folder>/tokenizer.json`` through the ``tokenizers`` library.

``encode(text)`` -> token ids (no special tokens added); ``decode(ids)`` -> text; ``vocab_size`` counts every id the
tokenizer can emit (added tokens included). ``fingerprint`` is a SHA-256 of the file, the key of on-disk token
caches. A model whose embedding has fewer rows than the tokenizer has ids is refused by
:func:`check_vocab`.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from collapse.lm.hf_config import CheckpointError, LMConfig


@dataclass(frozen=True)
class LMTokenizer:
    path: Path
    fingerprint: str
    vocab_size: int
    _tok: object

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text, add_special_tokens=False).ids

    def decode(self, ids) -> str:
        return self._tok.decode([int(i) for i in ids], skip_special_tokens=False)

    def token_id(self, token: str) -> int | None:
        """The id of a vocabulary entry (e.g. ``<|endoftext|>``), None if absent."""
        return self._tok.token_to_id(token)

    def token_strings(self) -> list[str]:
        """The string of every id (its vocabulary entry), id order."""
        inv = {i: s for s, i in self._tok.get_vocab(with_added_tokens=True).items()}
        return [inv.get(i, f"<id{i}>") for i in range(self.vocab_size)]


def load_tokenizer(folder: str | Path) -> LMTokenizer:
    """The tokenizer of a model folder; :class:`CheckpointError` if ``tokenizer.json`` is missing or unreadable."""
    path = Path(folder) / "tokenizer.json"
    if not path.is_file():
        raise CheckpointError(path, "not found (collapse reads the fast-tokenizer file tokenizer.json; convert a "
                              "sentencepiece or vocab/merges tokenizer with transformers' save_pretrained)")
    return read_tokenizer_file(path)


def read_tokenizer_file(path: str | Path) -> LMTokenizer:
    """A ``tokenizer.json`` file at any path."""
    from tokenizers import Tokenizer

    path = Path(path)
    body = path.read_bytes()
    try:
        tok = Tokenizer.from_str(body.decode("utf-8"))
    except Exception as exc:  # the library raises a bare Exception for malformed files
        raise CheckpointError(path, f"is not a tokenizers file ({str(exc).splitlines()[0]})") from None
    return LMTokenizer(path, hashlib.sha256(body).hexdigest(), tok.get_vocab_size(with_added_tokens=True), tok)


def check_vocab(tok: LMTokenizer, config: LMConfig, config_path: str | Path) -> None:
    """The model must have an embedding row for every id the tokenizer emits."""
    if tok.vocab_size > config.vocab_size:
        raise CheckpointError(tok.path, f"has {tok.vocab_size} token ids but the model's vocab_size is "
                              f"{config.vocab_size} ({config_path}): the tokenizer belongs to another model")


def train_bpe(texts, vocab_size: int, path: str | Path, end_token: str = "<|endoftext|>") -> LMTokenizer:
    """Train a byte-level BPE tokenizer (GPT-2's scheme: bytes mapped to printable characters, merges learned by
    frequency) of ``vocab_size`` ids (>= 257: the 256 bytes and ``end_token``, id ``vocab_size - 1`` at most) on
    an iterable of strings, and write it to ``path`` (a ``tokenizer.json``)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    if vocab_size < 257:
        raise ValueError(f"vocab_size={vocab_size}: a byte-level BPE needs >= 257 ids (256 bytes + {end_token})")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[end_token], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tok.save(str(path))
    return read_tokenizer_file(path)
