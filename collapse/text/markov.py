"""A synthetic language: an order-k Markov chain over V tokens with Zipf transitions.

Contexts.  A context ``h = (h_1, ..., h_k)`` (oldest token first) has index
``idx(h) = sum_i h_i V^(k-i)`` (most recent token least significant), so after
emitting ``w`` the next context is ``(idx V + w) mod V^k``; here it is
computed as ``(idx mod V^(k-1)) V + w``, which never exceeds ``V^k - 1`` (no
int32 overflow).  ``order = 0`` (i.i.d. tokens) is allowed: one context,
index 0.

Truth.  ``T[h, w] = P(next = w | context h)``, a ``(V^k, V)`` table; for each
context, ``T[h, perm_h[r]] = (r + 1)^(-s) / sum_j j^(-s)`` for a random
permutation ``perm_h`` of the tokens (Zipf law with exponent ``s``).  All
entries are positive, so the chain on contexts is irreducible and aperiodic,
with a unique stationary law ``pi`` and entropy rate
``H = sum_h pi(h) H(T[h, .])`` nats per token.

Host-side (NumPy, float64): :func:`make_transitions`, :func:`stationary`,
:func:`entropy_rate`, :func:`extend`.  Traced (JAX, jit/vmap friendly):
:func:`kl_rate`, :func:`sample_sequences`, :func:`log_prob_tokens`.
"""
from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "make_transitions",
    "stationary",
    "entropy_rate",
    "extend",
    "kl_rate",
    "sample_sequences",
    "log_prob_tokens",
]


def _check_table(T: np.ndarray, order: int) -> tuple[int, int]:
    """(V, number of contexts); checks ``T`` is ``(V^order, V)``."""
    if order < 0:
        raise ValueError(f"order must be >= 0, got {order}")
    V = T.shape[-1]
    if T.shape != (V ** order, V):
        raise ValueError(f"T must have shape (V**order, V) = ({V ** order}, {V}), got {T.shape}")
    return V, V ** order


def make_transitions(seed: int, vocab: int, order: int, exponent: float) -> np.ndarray:
    """Zipf transition table ``(V^k, V)`` float64: ``T[h, perm_h[r]] ∝ (r + 1)^(-exponent)``.

    One uniform random permutation per context, drawn row by row from
    ``numpy.random.default_rng(seed)`` (``Generator.permuted`` along axis 1).
    """
    if vocab < 2:
        raise ValueError(f"vocab must be >= 2, got {vocab}")
    if order < 0:
        raise ValueError(f"order must be >= 0, got {order}")
    if exponent < 0:
        raise ValueError(f"exponent must be >= 0, got {exponent}")
    C = vocab ** order
    w = np.arange(1, vocab + 1, dtype=np.float64) ** (-float(exponent))
    w /= w.sum()
    rng = np.random.default_rng(seed)
    perm = rng.permuted(np.tile(np.arange(vocab), (C, 1)), axis=1)
    T = np.empty((C, vocab), np.float64)
    np.put_along_axis(T, perm, np.broadcast_to(w, (C, vocab)), axis=1)
    return T


def _context_step(mu: np.ndarray, T: np.ndarray, order: int) -> np.ndarray:
    """One step of the context chain: ``mu'[(h mod V^(k-1)) V + w] = sum mu[h] T[h, w]``."""
    V = T.shape[-1]
    joint = mu[:, None] * T  # (V^k, V): mass of (context, next token)
    # idx = h_1 V^(k-1) + suffix; summing out the oldest token h_1 leaves (suffix, w)
    return joint.reshape(V, V ** (order - 1), V).sum(axis=0).reshape(-1)


def stationary(T: np.ndarray, order: int, tol: float = 1e-12,
               max_iter: int = 1_000_000) -> np.ndarray:
    """Stationary law ``pi`` ``(V^k,)`` of the context chain, by power iteration in float64.

    Iterates ``pi <- pi P`` from the uniform law, ``P`` the context transition
    matrix (applied matrix-free, O(V^(k+1)) per step), until
    ``||pi_{t+1} - pi_t||_1 <= tol``; raises ``RuntimeError`` after
    ``max_iter`` steps.  The result is renormalised to sum to 1.
    """
    T = np.asarray(T, np.float64)
    V, C = _check_table(T, order)
    if order == 0:
        return np.ones(1)
    pi = np.full(C, 1.0 / C)
    for _ in range(max_iter):
        new = _context_step(pi, T, order)
        new /= new.sum()
        if np.abs(new - pi).sum() <= tol:
            return new
        pi = new
    raise RuntimeError(f"power iteration did not reach tol={tol} in {max_iter} steps")


def entropy_rate(T: np.ndarray, pi: np.ndarray) -> float:
    """Entropy rate ``H = -sum_h pi(h) sum_w T(h, w) log T(h, w)`` in nats/token (0 log 0 = 0)."""
    T = np.asarray(T, np.float64)
    pi = np.asarray(pi, np.float64)
    plogp = np.where(T > 0, T * np.log(np.where(T > 0, T, 1.0)), 0.0)
    return float(-(pi * plogp.sum(axis=-1)).sum())


def extend(T: np.ndarray, pi: np.ndarray, order: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Truth given length-``m`` contexts, ``m >= order``: ``(T_m (V^m, V), pi_m (V^m,))``.

    ``T_m[h] = T[h mod V^k]`` (only the last ``k`` tokens matter) and
    ``pi_m(h_1..h_m) = pi(h_1..h_k) prod_{j>k} T(h_j | h_{j-k}..h_{j-1})``,
    built by ``pi_{j+1}[h V + w] = pi_j[h] T_j[h, w]``.  ``m == order`` returns
    ``(T, pi)`` unchanged.
    """
    T = np.asarray(T, np.float64)
    pi = np.asarray(pi, np.float64)
    V, C = _check_table(T, order)
    if m < order:
        raise ValueError(f"m must be >= order ({order}), got {m}")
    if m == order:
        return T, pi
    pi_m = pi
    for j in range(order, m):
        T_j = np.tile(T, (V ** (j - order), 1))  # row h -> T[h mod V^k]
        pi_m = (pi_m[:, None] * T_j).reshape(-1)
    return np.tile(T, (V ** (m - order), 1)), pi_m


def kl_rate(T_m: jax.Array, pi_m: jax.Array, Q: jax.Array) -> jax.Array:
    """KL rate ``sum_h pi_m(h) sum_w T_m(h,w) (log T_m(h,w) - log Q(h,w))`` in nats/token.

    ``0 log 0 = 0`` (terms with ``T_m = 0``, and contexts with ``pi_m = 0``,
    contribute 0); ``+inf`` if ``Q(h, w) = 0 < T_m(h, w)`` on a context with
    ``pi_m(h) > 0``.  Traced; jit/vmap friendly.
    """
    T_m = jnp.asarray(T_m)
    pi_m = jnp.asarray(pi_m)
    Q = jnp.asarray(Q)
    pos = T_m > 0
    log_t = jnp.log(jnp.where(pos, T_m, 1.0))
    terms = jnp.where(pos, T_m * (log_t - jnp.log(Q)), 0.0)
    per_ctx = jnp.sum(terms, axis=-1)
    return jnp.sum(jnp.where(pi_m > 0, pi_m * per_ctx, 0.0), axis=-1)


def _next_context(ctx: jax.Array, w: jax.Array, V: int, order: int) -> jax.Array:
    """``(ctx V + w) mod V^k``, computed as ``(ctx mod V^(k-1)) V + w`` (0 for order 0)."""
    if order == 0:
        return jnp.zeros_like(ctx)
    return (ctx % V ** (order - 1)) * V + w


@partial(jax.jit, static_argnums=(3, 4, 5))
def sample_sequences(key: jax.Array, T: jax.Array, pi: jax.Array, order: int, n: int,
                     L: int) -> jax.Array:
    """``n`` sequences of length ``L`` from the chain, int32 ``(n, L)``; needs ``L > order``.

    Each sequence starts with a context ``h ~ pi`` written out as its first
    ``k`` tokens (oldest first: ``x_i = (idx // V^(k-1-i)) mod V``), then
    ``L - k`` tokens ``x_t ~ T[context_t]`` (``lax.scan``, Gumbel-max via
    :func:`jax.random.categorical` on ``log T``).  ``order``, ``n`` and ``L``
    are static.
    """
    if L <= order:
        raise ValueError(f"need L > order, got L={L}, order={order}")
    T = jnp.asarray(T)
    V = T.shape[-1]
    log_t = jnp.log(T)
    k_ctx, k_steps = jax.random.split(key)
    ctx0 = jax.random.categorical(k_ctx, jnp.log(jnp.asarray(pi)), shape=(n,)).astype(jnp.int32)
    powers = V ** jnp.arange(order - 1, -1, -1, dtype=jnp.int32)  # V^(k-1), ..., V^0
    head = (ctx0[:, None] // powers) % V  # (n, k)

    def step(ctx, k):
        w = jax.random.categorical(k, log_t[ctx], axis=-1).astype(jnp.int32)
        return _next_context(ctx, w, V, order), w

    _, tail = jax.lax.scan(step, ctx0, jax.random.split(k_steps, L - order))
    return jnp.concatenate([head, tail.T], axis=1)


def _contexts(seqs: jax.Array, V: int, order: int) -> jax.Array:
    """Context index of positions ``t = k..L-1``: ``sum_j x_{t-k+j} V^(k-1-j)``, ``(n, L-k)``."""
    n, L = seqs.shape
    ctx = jnp.zeros((n, L - order), jnp.int32)
    for j in range(order):
        ctx = ctx + seqs[:, j:L - order + j].astype(jnp.int32) * V ** (order - 1 - j)
    return ctx


def log_prob_tokens(T: jax.Array, order: int, seqs: jax.Array) -> jax.Array:
    """``log T(x_t | x_{t-k}..x_{t-1})`` for ``t >= k``, NaN for ``t < k``; ``(n, L)`` float.

    ``order`` is static; jit/vmap friendly in ``T`` and ``seqs``.
    """
    T = jnp.asarray(T)
    seqs = jnp.asarray(seqs)
    V = T.shape[-1]
    ctx = _contexts(seqs, V, order)
    lp = jnp.log(T[ctx, seqs[:, order:]])
    nan = jnp.full((seqs.shape[0], order), jnp.nan, lp.dtype)
    return jnp.concatenate([nan, lp], axis=1)
