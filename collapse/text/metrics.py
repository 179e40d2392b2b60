"""Text-collapse metrics on generated token arrays.

Inputs: ``tokens`` (E, L) integer array (E samples of L tokens, ids in [0, V)); ``valid`` (E, L) bool, the
positions that count (prompt positions are False; in practice a contiguous suffix of each row, but nothing
here relies on that). ``V`` (vocabulary size) and every ``n`` are static Python ints. Tokens at invalid
positions are never read for their value, so a prompt can hold anything.

All JAX functions are pure, static-shape and free of Python branching on traced values: wrap them in
``jax.jit`` (with ``V``, ``n``, ``qs``, ``repetition_n`` static) and ``jax.vmap`` (over a leading batch axis).
They return scalars of JAX's default float dtype (float32, or float64 under ``jax.enable_x64``).
``tail_set`` is host NumPy, run once on the real corpus.

Formulas (c = ``counts``, N = sum_v c_v, f = c / N):

- ``unigram_counts``: c_v = #{valid positions holding token v}.
- ``token_entropy`` = -sum_v f_v log f_v (nats; 0 log 0 = 0; NaN if N = 0).
- n-gram: n consecutive positions of one row, all valid. G_n = number of n-grams pooled over rows.
- ``distinct_n`` = #{distinct n-grams} / G_n (NaN if G_n = 0). An n-gram (t_1..t_n) is encoded as the uint32
  code sum_k t_k V^(n-k) mod 2^32 (Horner with wrap-around). The code is exact (injective) whenever
  V^n <= 2^32; otherwise it is a hash, and a rare collision merges two n-grams, which can only *lower* the
  distinct count. Distinct codes are counted by sorting: invalid windows are set to the sentinel 2^32 - 1
  and only the first G_n sorted entries are examined, so a genuine code equal to the sentinel is still
  counted correctly.
- ``vocab_coverage`` = #{v real : c_v > 0} / #{v real}   (real = ``real_types``; NaN if no real type).
- ``extinct_types`` = #{v real : c_v = 0}.
- ``tail_set`` (NumPy): sort types by real count r_v descending (stable: ties keep the lower index first);
  the head H is the shortest prefix with sum_{v in H} r_v / sum_v r_v >= head_mass; the tail T is every
  other type (zero-count types always land in T). Returns (T as a mask, real_tail_share = r(T) / r_total).
- ``rare_mass`` = (c(T) / N) / real_tail_share: 1 = tail kept its real share, 0 = tail erased
  (NaN if real_tail_share = 0 or N = 0).
- ``zipf_slope`` = s from the ordinary least-squares fit log c_(r) = a - s log r over the ranks r = 1..R of
  the R types with c > 0 (c_(1) >= c_(2) >= ... the sorted counts):
  s = -sum (x - xbar)(y - ybar) / sum (x - xbar)^2 with x = log r, y = log c_(r). NaN if R < 2.
- ``repetition(n)``: for each row with m >= 1 n-grams, rho = #{n-grams equal (token by token, no hashing)
  to an earlier n-gram of the same row} / m; the result is the mean of rho over those rows (NaN if none).
  Pairwise comparison: O(E L^2) memory.
- ``ppl_quantiles``: per row with >= 1 valid position, ppl = exp(-mean of logp over its valid positions);
  rows without one are NaN and skipped; returns the linear-interpolation quantiles of ppl at ``qs`` under
  keys ``ppl_gen0_q{100 q}`` (e.g. ``ppl_gen0_q50``).
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np

__all__ = [
    "TEXT_METRICS",
    "unigram_counts",
    "token_entropy",
    "distinct_n",
    "vocab_coverage",
    "extinct_types",
    "tail_set",
    "rare_mass",
    "zipf_slope",
    "repetition",
    "ppl_quantiles",
    "text_sample_metrics",
]

TEXT_METRICS = (
    "token_entropy",
    "distinct_1",
    "distinct_2",
    "distinct_3",
    "distinct_4",
    "vocab_coverage",
    "extinct_types",
    "rare_mass",
    "zipf_slope",
    "repetition",
)

_SENTINEL = np.uint32(0xFFFFFFFF)


def _float():
    """JAX's current default float dtype (float32, or float64 under x64)."""
    return jnp.result_type(float)


def _check_n(n: int) -> int:
    if int(n) != n or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    return int(n)


def _ngram_valid(valid: jnp.ndarray, n: int) -> jnp.ndarray:
    """(E, L - n + 1) bool: window starting at i lies entirely on valid positions (requires n <= L)."""
    valid = jnp.asarray(valid, dtype=bool)
    w = valid.shape[-1] - n + 1
    ok = valid[:, :w]
    for k in range(1, n):
        ok = ok & valid[:, k:k + w]
    return ok


def _ngram_codes(tokens: jnp.ndarray, n: int, V: int) -> jnp.ndarray:
    """(E, L - n + 1) uint32: sum_k t_{i+k} V^(n-1-k) mod 2^32 (Horner; uint32 arithmetic wraps)."""
    tok = jnp.asarray(tokens).astype(jnp.uint32)
    w = tok.shape[-1] - n + 1
    base = jnp.uint32(int(V) % 2**32)
    code = tok[:, :w]
    for k in range(1, n):
        code = code * base + tok[:, k:k + w]
    return code


def unigram_counts(tokens: jnp.ndarray, valid: jnp.ndarray, V: int) -> jnp.ndarray:
    """(V,) counts of the tokens at valid positions (ids outside [0, V) are ignored)."""
    dt = _float()
    tok = jnp.asarray(tokens).reshape(-1)
    ok = jnp.asarray(valid, dtype=bool).reshape(-1) & (tok >= 0) & (tok < V)
    idx = jnp.where(ok, tok, 0)
    return jnp.zeros((int(V),), dt).at[idx].add(ok.astype(dt))


def token_entropy(counts: jnp.ndarray) -> jnp.ndarray:
    """-sum f log f (nats) with f = counts / sum(counts); 0 log 0 = 0; NaN for all-zero counts."""
    c = jnp.asarray(counts, dtype=_float())
    total = jnp.sum(c)
    f = c / jnp.where(total > 0, total, 1.0)
    alive = f > 0
    h = -jnp.sum(jnp.where(alive, f * jnp.log(jnp.where(alive, f, 1.0)), 0.0))
    return jnp.where(total > 0, h, jnp.nan)


def distinct_n(tokens: jnp.ndarray, valid: jnp.ndarray, n: int, V: int) -> jnp.ndarray:
    """#distinct n-grams / #n-grams, pooled over rows (n-grams never cross rows or invalid positions).

    Exact when V**n <= 2**32; beyond that n-grams are hashed mod 2^32 and collisions can only lower the
    result. NaN if there are no n-grams.
    """
    n = _check_n(n)
    dt = _float()
    if n > jnp.shape(tokens)[-1]:
        return jnp.asarray(jnp.nan, dt)
    ok = _ngram_valid(valid, n).reshape(-1)
    code = jnp.where(ok, _ngram_codes(tokens, n, V).reshape(-1), _SENTINEL)
    m = jnp.sum(ok)
    s = jnp.sort(code)
    # The first m sorted entries are exactly the valid codes (the sentinel is the largest uint32).
    new = jnp.concatenate([jnp.ones((1,), bool), s[1:] != s[:-1]])
    distinct = jnp.sum(new & (jnp.arange(s.shape[0]) < m))
    return jnp.where(m > 0, distinct.astype(dt) / jnp.maximum(m, 1).astype(dt), jnp.nan)


def vocab_coverage(counts: jnp.ndarray, real_types: jnp.ndarray) -> jnp.ndarray:
    """Share of the real types with counts > 0 (NaN if there is no real type)."""
    dt = _float()
    real = jnp.asarray(real_types, dtype=bool)
    hit = jnp.sum(real & (jnp.asarray(counts) > 0)).astype(dt)
    return hit / jnp.sum(real).astype(dt)


def extinct_types(counts: jnp.ndarray, real_types: jnp.ndarray) -> jnp.ndarray:
    """Number of real types with counts == 0 (as a float)."""
    real = jnp.asarray(real_types, dtype=bool)
    return jnp.sum(real & (jnp.asarray(counts) == 0)).astype(_float())


def tail_set(real_counts: np.ndarray, head_mass: float = 0.9) -> tuple[np.ndarray, float]:
    """Host NumPy: (tail mask (V,), real share of the tail). See the module docstring for the rule."""
    r = np.asarray(real_counts, dtype=np.float64)
    if r.ndim != 1:
        raise ValueError(f"real_counts must be 1-D, got shape {r.shape}")
    if not (0.0 < head_mass <= 1.0):
        raise ValueError(f"head_mass must be in (0, 1], got {head_mass}")
    if np.any(r < 0) or not np.all(np.isfinite(r)):
        raise ValueError("real_counts must be finite and >= 0")
    total = r.sum()
    if total <= 0:
        raise ValueError("real_counts sum to 0: no tail can be defined")
    order = np.argsort(-r, kind="stable")
    share = np.cumsum(r[order]) / total
    reached = np.nonzero(share >= head_mass)[0]
    # Float round-off can leave the full cumulative share a hair under 1: then the head is every
    # positive-count type.
    head_len = int(reached[0]) + 1 if reached.size else int(np.count_nonzero(r))
    tail = np.ones(r.shape, dtype=bool)
    tail[order[:head_len]] = False
    return tail, float(r[tail].sum() / total)


def rare_mass(counts: jnp.ndarray, tail_mask: jnp.ndarray, real_tail_share) -> jnp.ndarray:
    """(counts(T) / sum counts) / real_tail_share; 1 = tail intact, 0 = erased; NaN if the share is 0."""
    dt = _float()
    c = jnp.asarray(counts, dtype=dt)
    share = jnp.asarray(real_tail_share, dtype=dt)
    gen = jnp.sum(jnp.where(jnp.asarray(tail_mask, dtype=bool), c, 0.0)) / jnp.sum(c)
    return jnp.where(share > 0, gen / jnp.where(share > 0, share, 1.0), jnp.nan)


def zipf_slope(counts: jnp.ndarray) -> jnp.ndarray:
    """s of the OLS fit log count_r = a - s log r over the ranks of the positive counts (NaN if < 2)."""
    dt = _float()
    c = jnp.sort(jnp.asarray(counts, dtype=dt))[::-1]
    mask = c > 0
    w = mask.astype(dt)
    k = jnp.sum(w)
    x = jnp.log(jnp.arange(1, c.shape[0] + 1, dtype=dt))
    y = jnp.log(jnp.where(mask, c, 1.0))
    kk = jnp.maximum(k, 1.0)
    xc = x - jnp.sum(w * x) / kk
    yc = y - jnp.sum(w * y) / kk
    sxx = jnp.sum(w * xc * xc)
    sxy = jnp.sum(w * xc * yc)
    return jnp.where(k >= 2, -sxy / jnp.where(k >= 2, sxx, 1.0), jnp.nan)


def repetition(tokens: jnp.ndarray, valid: jnp.ndarray, n: int) -> jnp.ndarray:
    """Mean over rows (with >= 1 n-gram) of the share of n-grams that repeat an earlier one in the row."""
    n = _check_n(n)
    dt = _float()
    tok = jnp.asarray(tokens)
    if n > tok.shape[-1]:
        return jnp.asarray(jnp.nan, dt)
    ok = _ngram_valid(valid, n)  # (E, W)
    w = ok.shape[-1]
    same = jnp.ones((tok.shape[0], w, w), bool)  # same[e, i, j]: n-gram i == n-gram j (token by token)
    for k in range(n):
        t = tok[:, k:k + w]
        same = same & (t[:, :, None] == t[:, None, :])
    earlier = jnp.arange(w)[:, None] < jnp.arange(w)[None, :]  # i < j
    repeated = jnp.any(same & earlier[None] & ok[:, :, None], axis=1) & ok  # (E, W) over j
    m = jnp.sum(ok, axis=1).astype(dt)
    has = m > 0
    rho = jnp.sum(repeated, axis=1).astype(dt) / jnp.maximum(m, 1.0)
    rows = jnp.sum(has).astype(dt)
    return jnp.where(rows > 0, jnp.sum(jnp.where(has, rho, 0.0)) / jnp.maximum(rows, 1.0), jnp.nan)


def _quantile_key(q: float) -> str:
    return f"ppl_gen0_q{100.0 * float(q):g}"


def ppl_quantiles(logp: jnp.ndarray, valid: jnp.ndarray, qs: tuple[float, ...] = (0.5, 0.95, 0.99)) -> dict:
    """Quantiles (linear) over rows of exp(-mean valid logp); rows without valid positions are skipped."""
    dt = _float()
    ok = jnp.asarray(valid, dtype=bool)
    lp = jnp.where(ok, jnp.asarray(logp, dtype=dt), 0.0)
    m = jnp.sum(ok, axis=-1).astype(dt)
    ppl = jnp.where(m > 0, jnp.exp(-jnp.sum(lp, axis=-1) / jnp.maximum(m, 1.0)), jnp.nan)
    qv = jnp.nanquantile(ppl, jnp.asarray(qs, dtype=dt))
    return {_quantile_key(q): qv[i] for i, q in enumerate(qs)}


def text_sample_metrics(
    tokens: jnp.ndarray,
    valid: jnp.ndarray,
    V: int,
    real_types: jnp.ndarray,
    tail_mask: jnp.ndarray,
    real_tail_share,
    repetition_n: int = 4,
) -> dict:
    """All text metrics of one set of generated samples, keyed as in ``TEXT_METRICS``."""
    counts = unigram_counts(tokens, valid, V)
    out = {"token_entropy": token_entropy(counts)}
    for n in (1, 2, 3, 4):
        out[f"distinct_{n}"] = distinct_n(tokens, valid, n, V)
    out["vocab_coverage"] = vocab_coverage(counts, real_types)
    out["extinct_types"] = extinct_types(counts, real_types)
    out["rare_mass"] = rare_mass(counts, tail_mask, real_tail_share)
    out["zipf_slope"] = zipf_slope(counts)
    out["repetition"] = repetition(tokens, valid, repetition_n)
    return out
