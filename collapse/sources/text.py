"""Text sources: a real corpus (``text``) and a synthetic language with a known entropy (``markov``).

A batch of text is an ``(m, L)`` int32 array: m segments of L = ``source.segment`` tokens; ``loop.samples``
counts tokens, so a batch holds floor(samples / L) segments. Both sources share their data across
replicates (``Source.data``): the corpus split, or the Markov chain drawn once from ``seed``.

Truth / shared data keys
- text:   ``train0`` (generation 0's real segments), ``fresh`` (the fresh pool, read in order), ``heldout``
          (segments for metrics), ``real_types`` (V,) bool, ``tail_mask`` (V,) bool, ``real_tail_share`` ().
- markov: ``T`` (V^k, V) transitions, ``pi`` (V^k,) stationary context law, ``real_types``/``tail_mask``/
          ``real_tail_share`` from the stationary unigram law, and ``T_m``/``pi_m`` for an exact KL rate when
          the model's context length m >= k.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from collapse.components import SourceSpec
from collapse.sources.base import Source, ordered_real_batch
from collapse.text import markov as mk
from collapse.text.corpus import Corpus
from collapse.text.metrics import tail_set


def vocab_data(real_counts: np.ndarray, exclude: int = -1) -> dict:
    real_types = real_counts > 0
    if exclude >= 0:
        real_types[exclude] = False
    tail_mask, share = tail_set(real_counts)
    return {"real_types": real_types, "tail_mask": tail_mask, "real_tail_share": np.float32(share)}


def text(corpus: Corpus, heldout: int, prompt: int, dtype=jnp.float32) -> Source:
    """Real text. ``heldout``: held-out segments used by metrics (the first ones of the held-out split);
    ``prompt``: prompt tokens per synthetic segment (taken from generation 0's training segments)."""
    L = corpus.train0.shape[1]
    data = {"train0": corpus.train0, "fresh": corpus.fresh, "heldout": corpus.heldout[:heldout],
            **vocab_data(corpus.real_counts, corpus.unk)}

    def init(key):
        return {}

    def sample(key, truth, n):
        raise TypeError("the text source is finite: real batches come from real_batch")

    def covariates(key, truth, n):
        rows = jax.random.randint(key, (n,), 0, truth["train0"].shape[0])
        return truth["train0"][rows, :prompt]

    return Source("text", "text", corpus.vocab_size, init, sample, log_prob=None,
                  covariates=covariates if prompt > 0 else None, data=data, real_batch=ordered_real_batch, segment=L,
                  info={"prompt": prompt, "vocab": corpus.vocab, "level": corpus.level, "tokenizer": corpus.tokenizer,
                        "corpus_tokens": corpus.tokens_total, "segments_heldout": len(corpus.heldout),
                        "segments_train0": len(corpus.train0), "segments_fresh": len(corpus.fresh)})


def markov(vocab: int, order: int, exponent: float, segment: int, seed: int, model_context: int, prompt: int,
           dtype=jnp.float32) -> Source:
    """Order-k Markov language over ``vocab`` tokens with Zipf(``exponent``) transitions, drawn once from ``seed``.
    ``model_context``: context length of the model (n - 1 for an n-gram; -1 = none), for the exact KL rate."""
    T = mk.make_transitions(seed, vocab, order, exponent)
    pi = mk.stationary(T, order)
    unigram = _unigram_of(pi, T, vocab, order)
    data = {"T": T.astype(np.float32), "pi": pi.astype(np.float32), **vocab_data(unigram)}
    if model_context >= order:
        T_m, pi_m = mk.extend(T, pi, order, model_context)
        data.update({"T_m": T_m.astype(np.float32), "pi_m": pi_m.astype(np.float32)})
    entropy = mk.entropy_rate(T, pi)

    def init(key):
        return {}

    def sample(key, truth, n):
        return mk.sample_sequences(key, truth["T"], truth["pi"], order, n, segment)

    def log_prob(truth, tokens):
        return mk.log_prob_tokens(truth["T"], order, tokens)

    def covariates(key, truth, n):
        return sample(key, truth, n)[:, :prompt]

    return Source("markov", "text", vocab, init, sample, log_prob, covariates=covariates if prompt > 0 else None,
                  data=data, segment=segment, info={"entropy_rate": entropy, "prompt": prompt,
                        "vocab": [f"t{i}" for i in range(vocab)], "level": "word"})


def _unigram_of(pi: np.ndarray, T: np.ndarray, vocab: int, order: int) -> np.ndarray:
    """Stationary probability of each token: sum_h pi(h) T(h, w)."""
    return (pi[:, None] * T).sum(0)


def check(cfg) -> None:
    """source.corpus, level, vocab_size, heldout_share (the corpus itself is read when the source is built)."""
    from collapse import checks
    from collapse.errors import ConfigError

    corpus = checks.get(cfg, "source.corpus")
    if not isinstance(corpus, str) or not corpus:
        raise ConfigError("source.corpus", corpus, "must be kjv, stdlib or the path of a UTF-8 text file")
    checks.choice(cfg, "source.level", ("char", "word"))
    checks.integer(cfg, "source.vocab_size", lo=2)
    checks.number(cfg, "source.heldout_share", 0.0, 1.0, lo_open=True, hi_open=True)


def build(cfg) -> Source:
    """The corpus split once from ``seed``; refuses a fresh pool too small for the run, or top_k above the vocabulary."""
    from collapse.errors import ConfigError
    from collapse.run_settings import dtype_of, prompt_length, text_units
    from collapse.text.corpus import CorpusError, build_corpus

    from collapse import components

    s = cfg.source
    units, n_real = text_units(cfg)
    family = components.find("model", cfg.model)
    tokenizer = family.tokenizer(cfg) if family.tokenizer is not None else None  # a pretrained model's own
    try:
        corpus = build_corpus(s.corpus, s.level, s.vocab_size, s.segment, float(s.heldout_share), units, cfg.seed,
                              tokenizer=tokenizer)
    except CorpusError as exc:
        raise ConfigError(exc.key, exc.value, exc.allowed) from None
    need = (cfg.generations - 1) * n_real if cfg.loop.real == "fresh" else 0
    if need > len(corpus.fresh):
        raise ConfigError("loop.real_fraction", cfg.loop.real_fraction,
                          f"fresh real text is exhausted: generations - 1 = {cfg.generations - 1} batches x {n_real} "
                          f"real segments = {need} segments, but the fresh pool of source.corpus={s.corpus} holds "
                          f"{len(corpus.fresh)} ({len(corpus.fresh) * s.segment} tokens); lower generations, "
                          "loop.real_fraction or loop.samples, or use loop.real=fixed")
    top_k = cfg.sampling.top_k
    if top_k > corpus.vocab_size:
        raise ConfigError("sampling.top_k", top_k, f"must be <= the vocabulary size {corpus.vocab_size} (0 = off)")
    return text(corpus, int(cfg.metrics.heldout), prompt_length(cfg), dtype_of(cfg))


SOURCE = SourceSpec("text", "text", check, build, traits=("corpus",))  # real text: model=pretrained fits it
