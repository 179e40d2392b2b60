"""Pure-JAX small linear algebra against NumPy (random SPD matrices, fixed seeds)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from collapse import linalg


def spd(rng, d):
    a = rng.standard_normal((d, d))
    return a @ a.T + 0.1 * np.eye(d)


@pytest.mark.parametrize("d", [1, 2, 5, 12])
def test_cholesky_solves_logdet_eig_match_numpy(d):
    rng = np.random.default_rng(d)
    with jax.enable_x64(True):
        a = spd(rng, d)
        b = rng.standard_normal((d, 3))
        low = np.asarray(linalg.cholesky(jnp.asarray(a)))
        np.testing.assert_allclose(low, np.linalg.cholesky(a), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(np.asarray(linalg.solve_lower(jnp.asarray(low), jnp.asarray(b))),
                                   np.linalg.solve(low, b), rtol=1e-9, atol=1e-10)
        np.testing.assert_allclose(np.asarray(linalg.cho_solve(jnp.asarray(low), jnp.asarray(b[:, 0]))),
                                   np.linalg.solve(a, b[:, 0]), rtol=1e-8, atol=1e-10)
        assert abs(float(linalg.spd_logdet(jnp.asarray(a))) - np.linalg.slogdet(a)[1]) < 1e-9
        ev = np.sort(np.asarray(linalg.eigvalsh(jnp.asarray(a))))
        np.testing.assert_allclose(ev, np.linalg.eigvalsh(a), rtol=1e-9, atol=1e-10)


def test_batched_under_vmap_and_float32():
    rng = np.random.default_rng(7)
    a = np.stack([spd(rng, 4) for _ in range(6)]).astype(np.float32)
    ev = np.sort(np.asarray(jax.jit(jax.vmap(linalg.eigvalsh))(jnp.asarray(a))), axis=1)
    np.testing.assert_allclose(ev, np.linalg.eigvalsh(a.astype(np.float64)), rtol=1e-4, atol=1e-5)
    low = np.asarray(jax.jit(jax.vmap(linalg.cholesky))(jnp.asarray(a)))
    np.testing.assert_allclose(low @ np.swapaxes(low, 1, 2), a, rtol=1e-4, atol=1e-5)
