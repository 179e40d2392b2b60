"""Small dense linear algebra in pure JAX (no LAPACK custom calls), for d x d matrices with small d.

Why: jaxlib's CPU LAPACK kernels split a batched call over XLA's intra-op thread pool and block on it;
two such calls running at once on a 2-thread pool deadlock (seen with jaxlib 0.10.2 on 2 cores), and
under ``vmap`` over replicates every call is batched. These loops over d use only element-wise ops,
matmuls and dynamic slices, so they batch under ``vmap`` without custom calls. Cost O(d^3) per matrix
with O(d) (Cholesky, solves) or O(sweeps * d^2) (Jacobi) sequential steps: meant for d up to ~64.
"""
from __future__ import annotations

import numpy as np

import jax
import jax.numpy as jnp
from jax import lax


def cholesky(a):
    """Lower-triangular L with L L^T = a (a symmetric positive definite; NaN where it is not).

    Column-by-column Cholesky-Banachiewicz: L_jj = sqrt(a_jj - sum_k<j L_jk^2),
    L_ij = (a_ij - sum_k<j L_ik L_jk) / L_jj for i > j.
    """
    d = a.shape[-1]
    if d == 1:
        return jnp.sqrt(a)
    idx = jnp.arange(d)

    def column(j, low):
        row_j = jnp.where(idx < j, low[j], 0.0)
        diag = jnp.sqrt(a[j, j] - row_j @ row_j)
        col = (a[:, j] - low @ row_j) / diag
        col = jnp.where(idx > j, col, jnp.where(idx == j, diag, 0.0))
        return low.at[:, j].set(col)

    return lax.fori_loop(0, d, column, jnp.zeros_like(a))


def solve_lower(low, b):
    """x with L x = b by forward substitution; b is (d,) or (d, m)."""
    d = low.shape[-1]
    if d == 1:
        return b / low[0, 0]
    vec = b.ndim == 1
    bb = b[:, None] if vec else b

    def row(i, x):
        xi = (bb[i] - low[i] @ x) / low[i, i]  # x rows >= i are still 0
        return x.at[i].set(xi)

    x = lax.fori_loop(0, d, row, jnp.zeros_like(bb))
    return x[:, 0] if vec else x


def inv_lower(low):
    """L^-1 of a lower-triangular L."""
    return solve_lower(low, jnp.eye(low.shape[-1], dtype=low.dtype))


def cho_solve(low, b):
    """x with (L L^T) x = b."""
    y = solve_lower(low, b)
    return inv_lower(low).T @ y


def spd_logdet(a):
    """log det a for symmetric positive definite a, via Cholesky: 2 sum log L_ii."""
    return 2.0 * jnp.sum(jnp.log(jnp.diagonal(cholesky(a))))


def eigvalsh(a, sweeps: int = 10):
    """Eigenvalues (unsorted) of a small symmetric matrix by cyclic Jacobi rotations.

    Each rotation zeroes a_pq with t = sign(th) / (|th| + sqrt(th^2 + 1)), th = (a_qq - a_pp) / (2 a_pq);
    ``sweeps`` cycles over all pairs (convergence is quadratic: 10 sweeps reach float64 precision for
    d <= 64 in practice).
    """
    d = a.shape[-1]
    if d == 1:
        return a[0]
    p_idx, q_idx = np.triu_indices(d, k=1)
    pairs = jnp.asarray(np.stack([p_idx, q_idx], 1), jnp.int32)
    tiny = jnp.finfo(a.dtype).tiny

    def rotate(k, m):
        p, q = pairs[k % pairs.shape[0], 0], pairs[k % pairs.shape[0], 1]
        apq, app, aqq = m[p, q], m[p, p], m[q, q]
        skip = jnp.abs(apq) <= tiny
        th = (aqq - app) / (2.0 * jnp.where(skip, 1.0, apq))
        t = jnp.sign(th) / (jnp.abs(th) + jnp.sqrt(th * th + 1.0))
        t = jnp.where(th == 0, 1.0, t)
        c = 1.0 / jnp.sqrt(t * t + 1.0)
        s = t * c
        c, s = jnp.where(skip, 1.0, c), jnp.where(skip, 0.0, s)
        rp, rq = m[p], m[q]
        m = m.at[p].set(c * rp - s * rq).at[q].set(s * rp + c * rq)
        cp, cq = m[:, p], m[:, q]
        return m.at[:, p].set(c * cp - s * cq).at[:, q].set(s * cp + c * cq)

    m = lax.fori_loop(0, sweeps * pairs.shape[0], rotate, 0.5 * (a + a.T))
    return jnp.diagonal(m)


def _one_matrix_per_call() -> bool:
    """True when several CPU devices of this process run at once: their batched LAPACK calls can deadlock on
    the shared intra-op pool (module docstring), so each call then gets one matrix."""
    return jax.default_backend() == "cpu" and jax.local_device_count() > 1


def _eigvalsh(a):
    return jnp.linalg.eigvalsh(a)


def lapack_eigvalsh(a):
    """``jnp.linalg.eigvalsh(a)`` (LAPACK syevd on CPU) for large matrices. Under ``vmap`` with several CPU devices
    the batch runs one matrix after another (``jax.custom_batching.sequential_vmap``): the same LAPACK routine on
    the same matrices, so the same numbers, without the batched call's blocking wait on the thread pool. On one
    device, or on GPU/TPU, it is the batched call."""
    if _one_matrix_per_call():
        return jax.custom_batching.sequential_vmap(_eigvalsh)(a)
    return jnp.linalg.eigvalsh(a)
