"""n-gram language model over V token types, counted on device.

Notation: order n, a context h is the n-1 previous tokens (oldest first) with index
sum_i h_i V^(n-1-i) (most recent token least significant); c_j(h, w) counts the j-grams of the training
segments (every window of j consecutive tokens inside one segment), c_j(h) = sum_w c_j(h, w).

Smoothing (``model.smoothing``)
- ``none``: p(w | h) = c_n(h, w) / c_n(h); a context never followed by a token in training falls back to the
  unigram p(w) = c_1(w) / N. A type that leaves the training data can never come back.
- ``add_k``: p(w | h) = (c_n(h, w) + k) / (c_n(h) + k V).
- ``interpolated`` (Jelinek-Mercer): p_j(w | h) = lam ML_j(w | h) + (1 - lam) p_{j-1}(w | h'), h' = h without its
  oldest token, ML_j = c_j(h, w) / c_j(h), with weight 0 on ML_j where c_j(h) = 0; p_0 = 1 / V.

Sampling: a segment of L tokens starts with a context drawn from p(h) = c_n(h) / sum c_n (the contexts
the model has seen followed by a token; its n-1 tokens are the segment's first tokens) or, with a prompt of
P tokens, continues the prompt (the segment holds the prompt then L - P generated tokens); each next token
comes from p(. | h) through the decoding controls. log_prob scores positions t >= n - 1 (NaN before).
Parameters: ``logp`` (V^(n-1), V) log p(w | h) and ``logstart`` (V^(n-1),) log p(h).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from collapse import checks
from collapse.components import FamilySpec, SourceSpec
from collapse.errors import ConfigError
from collapse.run_settings import decoding_of, dtype_of, prompt_length
from collapse.families.base import Family
from collapse.text.decoding import Decoding, sample_token

MAX_TABLE = 2**26  # V^n entries per table (256 MiB in float32 per replicate)


def window_codes(tokens, j: int, vocab: int):
    """(m, L - j + 1) int32 codes sum_i x_{t+i} V^(j-1-i) of every j-gram window of each row."""
    L = tokens.shape[-1]
    code = jnp.zeros(tokens.shape[:-1] + (L - j + 1,), jnp.int32)
    for i in range(j):
        code = code * vocab + tokens[..., i:L - j + 1 + i]
    return code


def count_ngrams(tokens, mask, j: int, vocab: int, dtype):
    """c_j flattened to (V^j,): j-gram counts of the rows of ``tokens`` with ``mask`` True."""
    codes = window_codes(tokens, j, vocab)
    w = jnp.broadcast_to(mask[:, None], codes.shape).astype(dtype)
    return jnp.zeros(vocab**j, dtype).at[codes.reshape(-1)].add(w.reshape(-1))


def conditional_table(counts: dict, order: int, vocab: int, smoothing: str, k: float, lam: float):
    """p(w | h) as a (V^(n-1), V) table from the counts {"c1": ..., "c<n>": ...}."""
    V = vocab
    rows = counts[f"c{order}"].reshape(-1, V)
    rs = rows.sum(1, keepdims=True)
    if smoothing == "add_k":
        return (rows + k) / (rs + k * V)
    if smoothing == "none":
        uni = counts["c1"] / jnp.maximum(counts["c1"].sum(), 1.0)
        return jnp.where(rs > 0, rows / jnp.maximum(rs, 1e-30), uni[None, :])
    p = jnp.full((1, V), 1.0 / V, rows.dtype)
    for j in range(1, order + 1):
        rj = counts[f"c{j}"].reshape(-1, V)
        sj = rj.sum(1, keepdims=True)
        ml = rj / jnp.maximum(sj, 1e-30)
        weight = jnp.where(sj > 0, lam, 0.0)
        shorter = p[jnp.arange(rj.shape[0]) % p.shape[0]]
        p = weight * ml + (1.0 - weight) * shorter
    return p


def ngram(vocab: int, order: int, smoothing: str = "add_k", k: float = 0.01, lam: float = 0.9,
          decoding: Decoding = Decoding(), segment: int = 64, prompt: int = 0, dtype=jnp.float32) -> Family:
    """The ``ngram`` family (see the module docstring). ``prompt``: prompt tokens per sampled segment."""
    V, n, L = vocab, order, segment
    n_ctx = V ** (n - 1)
    orders = tuple(range(1, n + 1)) if smoothing == "interpolated" else tuple(sorted({1, n}))

    def stats(batch, mask):
        return {f"c{j}": count_ngrams(batch, mask, j, V, dtype) for j in orders}

    def merge_stats(a, b):
        return jax.tree_util.tree_map(jnp.add, a, b)

    def fit_stats(key, counts, prev):
        table = conditional_table(counts, n, V, smoothing, k, lam)
        rs = counts[f"c{n}"].reshape(n_ctx, V).sum(1)
        logp = jnp.log(table)  # log 0 = -inf: never sampled
        logstart = jnp.log(rs / jnp.maximum(rs.sum(), 1e-30))
        return {"logp": logp.astype(dtype), "logstart": logstart.astype(dtype)}

    def fit(key, batch, mask, prev):
        return fit_stats(key, stats(batch, mask), prev)

    def init(truth=None):
        return {"logp": jnp.zeros((n_ctx, V), dtype), "logstart": jnp.zeros((n_ctx,), dtype)}

    def _one(key, params, prefix, controls):
        """One segment: ``prefix`` (P,) tokens (P >= n - 1 or a drawn start context), then generation."""
        k0, k1 = jax.random.split(key)
        if prefix is None:
            h = jax.random.categorical(k0, params["logstart"]) if n > 1 else jnp.int32(0)
            digits = [(h // V ** (n - 2 - i)) % V for i in range(n - 1)]
            prefix = jnp.asarray(digits, jnp.int32).reshape(n - 1)
        P = prefix.shape[0]
        ctx = jnp.int32(0)
        for i in range(max(0, P - (n - 1)), P):
            ctx = ctx * V + prefix[i]
        ctx = ctx % n_ctx if n > 1 else jnp.int32(0)
        seen = jnp.zeros(V, bool).at[prefix].set(True)

        def step(carry, kk):
            c, s = carry
            tok = sample_token(kk, params["logp"][c], s, controls).astype(jnp.int32)
            c = (c * V + tok) % n_ctx if n > 1 else c
            return (c, s.at[tok].set(True)), tok

        _, toks = jax.lax.scan(step, (ctx, seen), jax.random.split(k1, L - P))
        return jnp.concatenate([prefix.astype(jnp.int32), toks])

    def decode(key, params, m, prompts, controls: Decoding):
        keys = jax.random.split(key, m)
        if prompts is None:
            return jax.vmap(lambda kk: _one(kk, params, None, controls))(keys)
        return jax.vmap(lambda kk, pr: _one(kk, params, pr, controls))(keys, prompts)

    def sample(key, params, m, scale, prompts):
        return decode(key, params, m, prompts, decoding)

    def log_prob(params, tokens):
        codes = window_codes(tokens, n, V)  # (m, L - n + 1)
        scores = params["logp"].reshape(-1)[codes]
        pad = jnp.full(tokens.shape[:-1] + (n - 1,), jnp.nan, scores.dtype)
        return jnp.concatenate([pad, scores], -1)

    return Family("ngram", ("text",), init, fit, sample, log_prob, stats=stats, merge_stats=merge_stats,
                  fit_stats=fit_stats, transitions=lambda params: jnp.exp(params["logp"]), decode=decode,
                  weights=True, weigh_stats=lambda s, c: jax.tree_util.tree_map(lambda v: v * c, s))


def check(cfg, source: SourceSpec) -> None:
    """model.order < source.segment, smoothing and its k / lam; a prompt covers the context (>= order - 1)."""
    order = checks.integer(cfg, "model.order")
    if checks.choice(cfg, "model.smoothing", ("none", "add_k", "interpolated")) == "add_k":
        checks.number(cfg, "model.k", 0.0, lo_open=True, allowed="must be a number > 0 (smoothing=none is k = 0)")
    checks.number(cfg, "model.lam", 0.0, 1.0, lo_open=True)
    p = prompt_length(cfg)
    if 0 < p < order - 1:
        raise ConfigError("sampling.prompt_length", p, f"must be >= model.order - 1 = {order - 1} for an n-gram")
    if order >= cfg.source.segment:
        raise ConfigError("model.order", order, f"must be < source.segment={cfg.source.segment}")


def build(cfg, source) -> Family:
    m = cfg.model
    if source.dim ** m.order > MAX_TABLE:
        raise ConfigError("model.order", m.order, f"a table of V^order = {source.dim}^{m.order} entries is too "
                          f"large (max {MAX_TABLE}); lower model.order or the vocabulary")
    return ngram(source.dim, m.order, m.smoothing, float(m.k), float(m.lam), decoding_of(cfg), source.segment,
                 prompt_length(cfg), dtype_of(cfg))


FAMILY = FamilySpec("ngram", fits=("text",), check=check, build=build, context=lambda cfg: cfg.model.order - 1)
