"""Closed forms for batches of 2 x 2 symmetric matrices, element-wise (no loops, no matmuls).

A batch is given by its entries as arrays of one shape: ``a00``, ``a10`` (the lower off-diagonal entry, the
one :func:`collapse.linalg.cholesky` reads) and ``a11``. Every function is a few element-wise operations, so
it fuses into its callers under ``jit`` / ``vmap`` (XLA CPU runs tiny batched matmuls and loops over d = 2
far slower than the same arithmetic written out).
"""
from __future__ import annotations

import jax.numpy as jnp


def cholesky2(a00, a10, a11):
    """Lower Cholesky factor L = [[l00, 0], [l10, l11]] of [[a00, a10], [a10, a11]]:
    l00 = sqrt(a00), l10 = a10 / l00, l11 = sqrt(a11 - l10^2) (the formulas of collapse.linalg.cholesky
    for d = 2; NaN or inf entries where the matrix is not positive definite)."""
    l00 = jnp.sqrt(a00)
    l10 = a10 / l00
    l11 = jnp.sqrt(a11 - l10 * l10)
    return l00, l10, l11


def inv_lower2(l00, l10, l11):
    """L^-1 = [[1 / l00, 0], [-l10 / (l00 l11), 1 / l11]] of a lower-triangular L; returns (i00, i10, i11)."""
    i00 = 1.0 / l00
    i11 = 1.0 / l11
    return i00, -l10 * i00 * i11, i11


def chol_ok2(l00, l10, l11):
    """Whether a Cholesky factor from :func:`cholesky2` is finite (the positive-definiteness test of the
    general path: every entry of L finite)."""
    return jnp.isfinite(l00) & jnp.isfinite(l10) & jnp.isfinite(l11)
