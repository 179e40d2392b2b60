"""Discrete ground truth: Zipf over K categories, p0_k proportional to k^-exponent, k = 1..K."""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from collapse import rand
from collapse.sources.base import Source


def zipf_probs(categories: int, exponent: float) -> np.ndarray:
    """p0_k = k^-s / sum_j j^-s for k = 1..K (index 0 is the most likely category)."""
    w = np.arange(1, categories + 1, dtype=np.float64) ** (-exponent)
    return w / w.sum()


def tail_set(p0: np.ndarray, share: float = 0.1) -> np.ndarray:
    """Mask of T: the smallest set of least likely categories (ties broken toward higher index) with
    p0(T) >= share."""
    order = np.lexsort((-np.arange(len(p0)), p0))  # ascending p0, then descending index
    cum = np.cumsum(p0[order])
    size = int(np.searchsorted(cum, share - 1e-12) + 1)
    mask = np.zeros(len(p0), bool)
    mask[order[:size]] = True
    return mask


def zipf(categories: int = 1000, exponent: float = 1.1, dtype=jnp.float32) -> Source:
    """Zipf source; a batch is an (n,) int32 array of category indices. Truth: ``probs`` and
    ``tail_set`` (the mask of :func:`tail_set`, used by the ``tail_mass`` metric)."""
    p0 = zipf_probs(categories, exponent)
    tail = tail_set(p0)

    def init(key):
        return {"probs": jnp.asarray(p0, dtype), "tail_set": jnp.asarray(tail)}

    def sample(key, truth, n):
        return rand.categorical(key, truth["probs"], n)

    def log_prob(truth, x):
        return jnp.log(truth["probs"])[x]

    def sample_stats(key, truth, n):
        """Exact counts of n draws: Multinomial(n, p0)."""
        return rand.multinomial(key, n, truth["probs"]).astype(jnp.int32)

    return Source("zipf", "discrete", categories, init, sample, log_prob, sample_stats=sample_stats)
