"""Decoding controls for sampling one token from a vector of logits.

Given logits ``z`` (shape ``(..., V)``) and a boolean mask ``seen`` of tokens
already present in the sample, the logits are processed in this order:

1. repetition penalty ``r >= 1`` (CTRL, Keskar et al. 2019), seen tokens only:
   ``z_w -> z_w / r`` if ``z_w > 0`` else ``z_w * r``;
2. temperature ``T > 0``: ``z -> z / T``;
3. top-k: keep exactly the ``k`` largest logits (ties broken toward the lower
   index), set the rest to ``-inf``;
4. top-p (nucleus, Holtzman et al. 2020): with ``q = softmax(z)`` sorted in
   decreasing order, keep the smallest prefix whose cumulative mass is
   ``>= p`` (at least one token; ties toward the lower index), set the rest to
   ``-inf``;
5. draw ``w ~ softmax(z)`` (:func:`jax.random.categorical`).

``T == 0`` is greedy decoding: ``w = argmax`` of the penalised logits (lowest
index on ties), with no randomness; steps 2-5 are skipped and the processed
logits keep only the argmax (all other entries ``-inf``), so the distribution
is the one-hot of the argmax.

Entries of ``z`` equal to ``-inf`` are impossible tokens and are never drawn.
At least one entry per row must be finite; NaN logits are not supported.

The :class:`Decoding` values are static (hashable, known at trace time), so
the functions below branch on them in Python to skip work; every array
operation has static shapes and no Python branch depends on a traced value,
so all functions work under ``jax.jit`` (``Decoding`` as a static argument)
and ``jax.vmap``.
"""
from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
from jax import lax

__all__ = ["Decoding", "process_logits", "sample_token", "token_probs", "sample_segments"]

#: Top-p rounding tolerance, in machine epsilons of the logits' dtype: the
#: cumulative mass counts as having reached ``p`` once it is ``>= p - tol``
#: with ``tol = _TOP_P_TOL_EPS * eps``.  Without it, float rounding of the
#: softmax and cumsum (e.g. 0.5 + 0.3 -> 0.79999995) would keep one token too
#: many when a prefix's mass equals ``p`` exactly.
_TOP_P_TOL_EPS = 8


@dataclass(frozen=True)
class Decoding:
    """Static decoding controls (hashable, so usable as a ``jit`` static arg).

    Attributes:
      temperature: ``T >= 0``; logits are divided by ``T``; ``0`` = greedy.
      top_k: ``0`` = off, else keep the ``k`` largest logits (``k >= V`` is
        a no-op).
      top_p: nucleus mass ``p`` in ``(0, 1]``; ``1`` = off.
      repetition_penalty: ``r >= 1``; ``1`` = off.
    """

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    repetition_penalty: float = 1.0

    def __post_init__(self) -> None:
        if not self.temperature >= 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if int(self.top_k) != self.top_k or self.top_k < 0:
            raise ValueError(f"top_k must be a non-negative integer, got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if not self.repetition_penalty >= 1:
            raise ValueError(f"repetition_penalty must be >= 1, got {self.repetition_penalty}")

    @property
    def is_plain(self) -> bool:
        """True when every control is off: ``T = 1``, no top-k, ``p = 1``, ``r = 1``."""
        return (self.temperature == 1.0 and self.top_k == 0 and self.top_p == 1.0
                and self.repetition_penalty == 1.0)

    @property
    def is_greedy(self) -> bool:
        """True for ``temperature == 0`` (argmax decoding)."""
        return self.temperature == 0


def _as_float(logits: jax.Array) -> jax.Array:
    x = jnp.asarray(logits)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.float32)
    return x


def _penalise(x: jax.Array, seen: jax.Array | None, r: float) -> jax.Array:
    """CTRL repetition penalty: seen ``z -> z / r`` if ``z > 0`` else ``z * r``."""
    if r == 1.0:
        return x
    if seen is None:
        raise ValueError("repetition_penalty != 1 needs the `seen` mask")
    seen = jnp.asarray(seen, bool)
    return jnp.where(seen, jnp.where(x > 0, x / r, x * r), x)


def _keep_top_n(x: jax.Array, nth: jax.Array, n: jax.Array | int) -> jax.Array:
    """Mask of the ``n`` largest entries of ``x`` along the last axis, ties toward lower index.

    ``nth`` (shape ``(..., 1)``) is the ``n``-th largest value.  Keeps every
    ``x > nth`` and, among ``x == nth``, the first ``n - #{x > nth}`` by index.
    """
    greater = x > nth
    equal = x == nth
    n_greater = jnp.sum(greater, axis=-1, keepdims=True)
    rank_in_tie = jnp.cumsum(equal, axis=-1)
    return greater | (equal & (rank_in_tie <= n - n_greater))


def _top_k(x: jax.Array, k: int) -> jax.Array:
    """Keep exactly the ``k`` largest logits (ties toward lower index); others ``-inf``."""
    if k == 0 or k >= x.shape[-1]:
        return x
    nth = lax.top_k(x, k)[0][..., k - 1:k]
    return jnp.where(_keep_top_n(x, nth, k), x, -jnp.inf)


def _top_p(x: jax.Array, p: float) -> jax.Array:
    """Nucleus filter: keep the smallest prob-sorted prefix with mass ``>= p`` (>= 1 token)."""
    if p >= 1.0:
        return x
    V = x.shape[-1]
    q = jax.nn.softmax(x, axis=-1)
    q_desc = jnp.flip(jnp.sort(q, axis=-1), axis=-1)
    mass_before = jnp.cumsum(q_desc, axis=-1) - q_desc  # mass of the tokens ranked above
    tol = _TOP_P_TOL_EPS * jnp.finfo(q.dtype).eps
    n = jnp.clip(jnp.sum(mass_before < p - tol, axis=-1, keepdims=True), 1, V)
    nth = jnp.take_along_axis(q_desc, n - 1, axis=-1)
    return jnp.where(_keep_top_n(q, nth, n), x, -jnp.inf)


def _greedy_mask(x: jax.Array) -> jax.Array:
    """One-hot (bool) of the argmax along the last axis, lowest index on ties."""
    return jax.nn.one_hot(jnp.argmax(x, axis=-1), x.shape[-1], dtype=bool)


def process_logits(logits: jax.Array, seen: jax.Array | None, d: Decoding) -> jax.Array:
    """Processed logits ``(..., V)``: penalty, then temperature, then top-k, then top-p.

    ``softmax`` of the result is the distribution :func:`sample_token` draws
    from.  Greedy (``T = 0``): the penalised logits with every entry but the
    argmax set to ``-inf``.  ``seen`` (``(..., V)`` bool, broadcastable) may be
    ``None`` when the repetition penalty is off.
    """
    x = _penalise(_as_float(logits), seen, d.repetition_penalty)
    if d.is_greedy:
        return jnp.where(_greedy_mask(x), x, -jnp.inf)
    if d.temperature != 1.0:
        x = x / d.temperature
    x = _top_k(x, int(d.top_k))
    return _top_p(x, d.top_p)


def sample_token(key: jax.Array, logits: jax.Array, seen: jax.Array | None,
                 d: Decoding) -> jax.Array:
    """One int32 token per leading index, shape ``logits.shape[:-1]``.

    ``w ~ softmax(process_logits(logits, seen, d))`` via Gumbel-max
    (:func:`jax.random.categorical`); greedy (``T = 0``) returns the argmax of
    the penalised logits and ignores ``key``.
    """
    if d.is_greedy:
        x = _penalise(_as_float(logits), seen, d.repetition_penalty)
        return jnp.argmax(x, axis=-1).astype(jnp.int32)
    x = process_logits(logits, seen, d)
    return jax.random.categorical(key, x, axis=-1).astype(jnp.int32)


def token_probs(logits: jax.Array, seen: jax.Array | None, d: Decoding) -> jax.Array:
    """Exact distribution of :func:`sample_token`: ``softmax(process_logits(...))``, ``(..., V)``.

    For ``T = 0`` this is the one-hot of the (penalised) argmax.
    """
    return jax.nn.softmax(process_logits(logits, seen, d), axis=-1)


def sample_segments(key, step, cache, m: int, length: int, vocab: int, start_token: int, prompts,
                    decoding: Decoding):
    """``m`` segments of ``length`` tokens, one position at a time: ``step(prev_tokens (m,), pos, cache) ->
    (logits (m, vocab), cache)`` is the model with its key-value cache; position 0 reads ``start_token``.
    With ``prompts`` (m, P), positions < P are the prompt (fed, not sampled). The repetition penalty's ``seen``
    mask covers the tokens of each segment so far. Returns (m, length) int32."""
    forced = prompts if prompts is not None else jnp.zeros((m, 0), jnp.int32)
    P = forced.shape[1]
    forced = jnp.concatenate([forced.astype(jnp.int32), jnp.zeros((m, length - P), jnp.int32)], 1)

    def body(carry, xs):
        prev_tok, seen, cache = carry
        pos, k = xs
        logits, cache = step(prev_tok, pos, cache)
        drawn = jax.vmap(lambda kk, lg, s: sample_token(kk, lg, s, decoding))(
            jax.random.split(k, m), logits, seen).astype(jnp.int32)
        tok = jnp.where(pos < P, forced[:, pos], drawn)
        seen = seen.at[jnp.arange(m), tok].set(True)
        return (tok, seen, cache), tok

    carry0 = (jnp.full((m,), start_token, jnp.int32), jnp.zeros((m, vocab), bool), cache)
    _, toks = jax.lax.scan(body, carry0, (jnp.arange(length), jax.random.split(key, length)))
    return toks.T
