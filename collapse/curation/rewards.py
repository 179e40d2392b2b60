"""The documented family of simple rewards r(x) that ``curation.score=reward`` scores candidates with, and that
``reward_mean`` averages over model draws. Each builder returns ``reward(x, truth) -> (n,)`` for a batch ``x``.

- ``point`` (continuous):     r(x) = -||x - t||^2 / 2, t = ``curation.reward.target`` (a number: every coordinate;
                              or a list of source.dim numbers). exp(r) is a unit Gaussian bump at t.
- ``direction`` (continuous): r(x) = <x, u>, u = t / ||t||: pushes mass along u.
- ``tokens`` (discrete, text): the share of the unit's tokens in the set ``curation.reward.tokens`` (token or
                              category ids; text ids are ordered by corpus frequency, 0 = most frequent); for a
                              categorical draw it is 1 inside the set, 0 outside.
- ``length`` (text):          r(x) = -|l(x) - ``curation.reward.length``|, l(x) = tokens before the first token of
                              the set (the segment length when none occurs): a wanted sentence/word length.
- ``class`` (labelled images): r(x) = log p(class | x) of the source's feature classifier, class =
                              ``curation.reward.class``.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

KINDS = {"continuous": ("point", "direction"), "discrete": ("tokens",), "text": ("tokens", "length"),
         "image": ("class",)}
DEFAULT = {"continuous": "point", "discrete": "tokens", "text": "tokens", "image": "class"}


def target_vector(target, dim: int) -> np.ndarray:
    """``curation.reward.target`` as a (dim,) vector (a number repeats on every coordinate)."""
    t = np.asarray(target, dtype=np.float64).reshape(-1)
    return np.full(dim, float(t[0])) if t.size == 1 else t


def point(target: np.ndarray, dtype) -> Callable:
    t = jnp.asarray(target, dtype)

    def reward(x, truth):
        return -0.5 * jnp.sum((x - t) ** 2, axis=-1)
    return reward


def direction(target: np.ndarray, dtype) -> Callable:
    u = jnp.asarray(target / np.linalg.norm(target), dtype)

    def reward(x, truth):
        return x @ u
    return reward


def tokens(ids, dtype) -> Callable:
    ids = jnp.asarray(np.asarray(ids, dtype=np.int32))

    def reward(x, truth):
        hit = jnp.any(x[..., None] == ids, axis=-1).astype(dtype)
        return hit if hit.ndim == 1 else jnp.mean(hit, axis=-1)
    return reward


def length(ids, wanted: int, dtype) -> Callable:
    ids = jnp.asarray(np.asarray(ids, dtype=np.int32))

    def reward(x, truth):
        hit = jnp.any(x[..., None] == ids, axis=-1)
        L = x.shape[-1]
        first = jnp.where(jnp.any(hit, -1), jnp.argmax(hit, -1), L)
        return -jnp.abs(first - wanted).astype(dtype)
    return reward


def image_class(cls: int, dtype) -> Callable:
    from collapse.metrics.features import logits

    def reward(x, truth):
        return jax.nn.log_softmax(logits(truth["classifier"], x), axis=-1)[:, cls].astype(dtype)
    return reward
