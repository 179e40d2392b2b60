"""Selection rules of curation: which of ``c`` scored candidates fill the ``n`` synthetic slots of a batch.

Every rule is a pure function ``(key, scores, n) -> (index, accepted)`` on one replicate: ``scores`` is the
``(c,)`` score of each candidate (NaN counts as the lowest score), ``index`` the ``(n,)`` int32 candidates
that enter the batch, ``accepted`` the number of distinct candidates the rule accepts, so that
``accept_rate = accepted / c``. Shapes are static (``c`` and ``n`` are known at trace time), so a curated run
compiles once; candidates are i.i.d. model draws, so their order is random and "the first n" is an unbiased
choice.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp



def _clean(scores):
    """NaN -> -inf (an unscorable candidate is the least wanted)."""
    return jnp.where(jnp.isnan(scores), -jnp.inf, scores)


def threshold_candidates(n: int, oversample: float) -> int:
    """c = ceil(oversample * n) candidates."""
    return int(math.ceil(oversample * n - 1e-9))


def _sortable(x):
    """Unsigned integer keys ordered like the floats ``x`` (IEEE bits; negatives flipped): exact comparisons
    without a sort. Returns (keys, bit width, unsigned dtype)."""
    bits = 8 * x.dtype.itemsize
    ut = jnp.uint32 if bits == 32 else jnp.uint64
    u = jax.lax.bitcast_convert_type(x, ut)
    sign = ut(1 << (bits - 1))
    return jnp.where((u & sign) > 0, ~u, u | sign), bits, ut


def order_statistic_key(keys, j: int, bits: int, ut):
    """The key of the j-th smallest entry (0-based) by a bitwise binary search: the largest v with
    #{keys < v} <= j. ``bits`` passes of one comparison each, O(bits x c), no sort (XLA's CPU sort under vmap
    is about 10x slower here)."""
    def bit(b, v):
        trial = v | (ut(1) << (bits - 1 - b).astype(ut))
        return jnp.where(jnp.sum(keys < trial) <= j, trial, v)
    return jax.lax.fori_loop(0, bits, bit, ut(0))


def _first(ok, n: int):
    """Indices of the first n True entries of ``ok`` in order (int32; the caller guarantees at least n)."""
    pos = jnp.cumsum(ok) - 1
    slot = jnp.where(ok & (pos < n), pos, n)
    return jnp.zeros(n + 1, jnp.int32).at[slot].set(jnp.arange(ok.shape[0], dtype=jnp.int32))[:n]


def threshold(key, scores, n: int, quantile: float):
    """Keep candidates whose score is at least the q-quantile t = s_(floor(q c)) (the lower order statistic of
    the sorted scores, 0-based), then the first ``n`` of them in candidate order. ``accepted`` = #{s >= t}
    >= c - floor(q c); the config check ``oversample >= 1 / (1 - q)`` makes that >= n."""
    del key
    s = _clean(scores)
    c = s.shape[0]
    keys, bits, ut = _sortable(s)
    ok = keys >= order_statistic_key(keys, min(int(math.floor(quantile * c)), c - 1), bits, ut)
    return _first(ok, n), jnp.sum(ok)


def best_of(key, scores, n: int, k: int):
    """Candidates in n groups of k (candidate i is in group i // k); keep each group's best (first on ties).
    accepted = n, so accept_rate = 1 / k."""
    del key
    s = _clean(scores).reshape(n, k)
    best = jnp.argmax(s, axis=1)
    return (jnp.arange(n) * k + best).astype(jnp.int32), jnp.asarray(n)


def pairwise(key, scores, n: int, temperature: float):
    """Candidates in n pairs (2i, 2i + 1); keep the first with the Bradley-Terry probability
    P = sigmoid((s_2i - s_2i+1) / temperature) (Ferbach et al. 2024), else the second. accepted = n (1/2)."""
    s = _clean(scores).reshape(n, 2)
    a, b = s[:, 0], s[:, 1]
    diff = jnp.where(a == b, 0.0, a - b)  # equal (also both -inf): a fair coin
    first = jax.random.uniform(key, (n,), s.dtype) < jax.nn.sigmoid(diff / temperature)
    return (2 * jnp.arange(n) + jnp.where(first, 0, 1)).astype(jnp.int32), jnp.asarray(n)


def take_pairs(cand, idx):
    """The rows ``idx`` of a pairwise selection (idx_i in {2i, 2i + 1}) as a select between the pair's two rows:
    the same result as a gather, about 3x faster on CPU under vmap (XLA fuses the candidates' draws into a
    gather, not into a select)."""
    second = idx % 2 == 1

    def one(leaf):
        pairs = leaf.reshape((idx.shape[0], 2) + leaf.shape[1:])
        return jnp.where(second.reshape((-1,) + (1,) * (leaf.ndim - 1)), pairs[:, 1], pairs[:, 0])
    return jax.tree_util.tree_map(one, cand)


def _weights(scores, temperature: float):
    """w_i = exp(s_i / T - max_j s_j / T) and their CDF, flattened at zero weights (every score -inf: uniform)."""
    s = _clean(scores) / temperature
    top = jnp.max(s)
    w = jnp.exp(s - jnp.where(jnp.isfinite(top), top, 0.0))
    w = jnp.where(jnp.sum(w) > 0, w, jnp.ones_like(w))
    return w, jax.lax.cummax(jnp.where(w > 0, jnp.cumsum(w), 0.0))


def importance(key, scores, n: int, temperature: float, resampling: str = "multinomial"):
    """Importance resampling with weights exp(s / T): ``multinomial`` (:func:`importance_multinomial`, i.i.d.
    draws) or ``systematic`` (:func:`importance_systematic`, lower variance, faster)."""
    if resampling == "systematic":
        return importance_systematic(key, scores, n, temperature)
    return importance_multinomial(key, scores, n, temperature)


def importance_systematic(key, scores, n: int, temperature: float):
    """Systematic resampling (one U ~ U[0, 1); slot j takes the candidate whose CDF interval holds (j + U) / n):
    candidate i is kept N_i = ceil(n F_i - U) - ceil(n F_(i-1) - U) times, F the normalised CDF, so E N_i = n w_i
    exactly and |N_i - n w_i| < 1. Slots come in candidate order (candidates are i.i.d., so that order is random).
    accepted = #{N_i > 0}."""
    w, cdf = _weights(scores, temperature)
    c = w.shape[0]
    u = jax.random.uniform(key, (), cdf.dtype)
    upto = jnp.clip(jnp.ceil(cdf / cdf[-1] * n - u), 0, n).astype(jnp.int32)  # slots taken by candidates <= i
    count = upto - jnp.concatenate([jnp.zeros(1, jnp.int32), upto[:-1]])
    first = jnp.where(count > 0, upto - count, n)
    idx = jax.lax.cummax(jnp.zeros(n + 1, jnp.int32).at[first].max(jnp.arange(c, dtype=jnp.int32))[:n])
    return idx, jnp.sum(count > 0)


def importance_multinomial(key, scores, n: int, temperature: float):
    """Resample n candidates with replacement, P(i) = exp(s_i / T) / sum_j exp(s_j / T) (sampling-importance-
    resampling: with s = log p_true - log p_model and T = 1 the kept points approach p_true as c grows).
    Inverse CDF: index = #{cdf <= U * total}, the CDF flattened at zero weights (never drawn). accepted = the
    number of distinct candidates drawn."""
    w, cdf = _weights(scores, temperature)
    c = w.shape[0]
    u = jax.random.uniform(key, (n,), cdf.dtype) * cdf[-1]
    last = c - 1 - jnp.argmax((w > 0)[::-1])  # u * total rounding up to total must not pick a zero weight
    idx = jnp.minimum(jnp.searchsorted(cdf, u, side="right", method="scan_unrolled"), last).astype(jnp.int32)
    distinct = jnp.sum(jnp.zeros(c, bool).at[idx].set(True))
    return idx, distinct
