"""Tests for collapse.metrics.samples (precision/recall, density/coverage, Vendi, Hill, sample_metrics).

Seeds are fixed once (0, 1, 2, ...) and never tuned. Statistical tolerances are stated next to each check.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.spatial.distance import pdist

from collapse.metrics import samples as S

# Tests call jitted wrappers: one XLA compile per shape is ~5x cheaper than eager op-by-op dispatch here,
# and it exercises the jit-friendliness of the module. Integer k arguments are static.
density_coverage = jax.jit(S.density_coverage, static_argnums=2)
hill_tail_index = jax.jit(S.hill_tail_index)
knn_radii = jax.jit(S.knn_radii, static_argnums=1)
median_pairwise_distance = jax.jit(S.median_pairwise_distance)
pairwise_distances = jax.jit(S.pairwise_distances)
precision_recall = jax.jit(S.precision_recall, static_argnums=2)
sample_metrics = jax.jit(S.sample_metrics, static_argnums=(2, 3))
vendi = jax.jit(S.vendi)
vendi_from_kernel = jax.jit(S.vendi_from_kernel)

KEYS = ("precision", "recall", "density", "coverage", "vendi", "tail_index")


def _normal(seed, n, d, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal((n, d)).astype(dtype)


@pytest.fixture(scope="module")
def same_dist():
    """Two independent samples of N(0, I_16), 2000 points each."""
    return _normal(0, 2000, 16), _normal(1, 2000, 16)


@pytest.fixture(scope="module")
def same_dist_pr(same_dist):
    real, fake = same_dist
    p, r = precision_recall(real, fake, 3)
    return float(p), float(r)


# --------------------------------------------------------------------------------------- building blocks


def test_knn_radii_excludes_self():
    x = jnp.array([0.0, 1.0, 3.0, 7.0])
    np.testing.assert_allclose(knn_radii(x, 1), [1.0, 1.0, 2.0, 4.0])
    np.testing.assert_allclose(knn_radii(x, 2), [3.0, 2.0, 3.0, 6.0])
    np.testing.assert_allclose(knn_radii(x, 3), [7.0, 6.0, 4.0, 7.0])


def test_knn_radii_matches_bruteforce():
    x = _normal(2, 60, 5, np.float64)
    d = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
    np.fill_diagonal(d, np.inf)
    ref = np.sort(d, axis=1)[:, 3]  # 4th nearest other point
    # float32 distances via the norm expansion: relative error ~1e-6 for O(1) distances.
    np.testing.assert_allclose(knn_radii(x.astype(np.float32), 4), ref, rtol=1e-5)


def test_knn_radii_rejects_bad_k():
    with pytest.raises(ValueError):
        S.knn_radii(jnp.zeros((4, 2)), 4)
    with pytest.raises(TypeError):  # k must be static
        jax.jit(S.knn_radii)(jnp.zeros((4, 2)), 2)


def test_pairwise_and_median_match_scipy():
    x = _normal(3, 101, 7, np.float64)
    ref = pdist(x)
    with jax.enable_x64(True):
        got = median_pairwise_distance(jnp.asarray(x))
        assert got.dtype == jnp.float64
        np.testing.assert_allclose(float(got), np.median(ref), rtol=1e-12)
        D = pairwise_distances(jnp.asarray(x), jnp.asarray(x))
        iu = np.triu_indices(101, 1)
        np.testing.assert_allclose(np.asarray(D)[iu], ref, rtol=1e-10)
    # float32: same up to single-precision round-off.
    np.testing.assert_allclose(float(median_pairwise_distance(x.astype(np.float32))), np.median(ref), rtol=1e-5)


# ---------------------------------------------------------------------------------------------- Vendi


def test_vendi_reference_value():
    # Three well separated pairs of duplicates: K is (up to e^-10 ~ 5e-5 off-block terms) block-diagonal
    # with three all-ones 2x2 blocks, so K/6 has eigenvalues (1/3, 1/3, 1/3, 0, 0, 0) and VS = 3.
    p = jnp.array([0.0, 0.0, 10.0, 10.0, 20.0, 20.0])
    K = jnp.exp(-jnp.abs(p[:, None] - p[None, :]))
    assert abs(float(vendi_from_kernel(K)) - 3.0) < 1e-3
    with jax.enable_x64(True):
        p64 = jnp.asarray(np.array([0.0, 0.0, 10.0, 10.0, 20.0, 20.0]))
        K64 = jnp.exp(-jnp.abs(p64[:, None] - p64[None, :]))
        v64 = vendi_from_kernel(K64)
        assert v64.dtype == jnp.float64
        assert abs(float(v64) - 3.0) < 1e-3


def test_vendi_extremes():
    n = 7
    # All samples identical: one eigenvalue 1, VS = 1. Orthogonal samples: K = I, VS = n.
    assert abs(float(vendi_from_kernel(jnp.ones((n, n)))) - 1.0) < 1e-5
    assert abs(float(vendi_from_kernel(jnp.eye(n))) - n) < 1e-4
    x = jnp.zeros((n, 3))
    assert abs(float(vendi(x, 1.0)) - 1.0) < 1e-5
    x = jnp.arange(n, dtype=jnp.float32)[:, None] * 100.0
    assert abs(float(vendi(x, 1.0)) - n) < 1e-4


# --------------------------------------------------------------------------------- precision / recall


def test_precision_recall_same_distribution(same_dist_pr):
    # Reference: ~0.79 for 2000 vs 2000 points of N(0, I_16) with k = 3. Each value is the mean of 2000
    # indicators that are positively correlated (they share the same k-NN balls), so the run-to-run spread
    # is a few times the iid binomial sd sqrt(0.79 * 0.21 / 2000) ~ 0.009; +-0.04 is ~4 iid sds.
    p, r = same_dist_pr
    assert abs(p - 0.79) < 0.04, p
    assert abs(r - 0.79) < 0.04, r


def test_identical_sets_are_perfect():
    x = _normal(4, 500, 16)
    p, r = precision_recall(x, x, 3)
    d, c = density_coverage(x, x, 5)
    # Every point lies at distance ~0 from itself, inside its own (strictly positive) k-NN ball.
    assert float(p) == 1.0 and float(r) == 1.0 and float(c) == 1.0
    assert float(d) >= 1.0 / 5  # each point counts at least its own ball


def test_disjoint_sets_are_zero():
    real = _normal(5, 500, 16)
    fake = _normal(6, 500, 16) + 100.0
    p, r = precision_recall(real, fake, 3)
    d, c = density_coverage(real, fake, 5)
    assert float(p) == 0.0 and float(r) == 0.0
    assert float(d) == 0.0 and float(c) == 0.0


def test_shrunk_copy_keeps_precision_loses_recall(same_dist, same_dist_pr):
    real = same_dist[0]
    fake = 0.3 * _normal(7, 2000, 16)
    p, r = precision_recall(real, fake, 3)
    # Mode collapse signature: model samples sit in the dense core of the real support (high precision)
    # but cover a small part of it (recall far below the ~0.79 of an honest sample).
    assert float(p) > 0.9, float(p)
    assert float(r) < 0.5 * same_dist_pr[1], float(r)


# --------------------------------------------------------------------------------- density / coverage


def test_density_coverage_same_distribution(same_dist):
    real, fake = same_dist
    k = 5
    d, c = density_coverage(real, fake, k)
    # E[coverage] -> 1 - 2^-k = 0.969 for E = H (Naeem et al. 2020; finite-sample value 0.9689 for
    # E = H = 2000). The sd of a mean of 2000 iid indicators would be sqrt(0.03 * 0.97 / 2000) ~ 0.004;
    # allowing for correlation, +-0.03.
    assert abs(float(c) - (1 - 2.0**-k)) < 0.03, float(c)
    # E[density] = 1. Its per-point counts are heavy-tailed in 16-D (hubness), so its sd over 2000 points
    # is a few hundredths; +-0.15.
    assert abs(float(d) - 1.0) < 0.15, float(d)


# --------------------------------------------------------------------------------------------- Hill


def test_hill_pareto_alpha_2():
    E = 10_000
    u = np.random.default_rng(8).uniform(size=(E, 1))
    x = (u ** -0.5).astype(np.float32)  # P(X > t) = t^-2: Pareto(alpha = 2), x_min = 1
    k = math.isqrt(E)  # 100 order statistics
    se = 2.0 / math.sqrt(k)  # asymptotic sd of the Hill estimator, alpha / sqrt(k) = 0.2
    a = float(hill_tail_index(x))
    assert abs(a - 2.0) < 4 * se, a
    # Same value from a 1-D input, and from a direct numpy evaluation of the formula.
    assert abs(float(hill_tail_index(x[:, 0])) - a) < 1e-6 * a
    s = np.sort(x[:, 0].astype(np.float64))[::-1]
    ref = 1.0 / np.mean(np.log(s[:k] / s[k]))
    np.testing.assert_allclose(a, ref, rtol=1e-5)


# --------------------------------------------------------------------------------- sample_metrics, jit, vmap, dtypes


def test_sample_metrics_matches_individual_functions():
    real = _normal(9, 300, 6)
    fake = 0.8 * _normal(10, 250, 6) + 0.1
    m = sample_metrics(real, fake, 3, 5)
    assert set(m) == set(KEYS)
    p, r = precision_recall(real, fake, 3)
    d, c = density_coverage(real, fake, 5)
    bw = median_pairwise_distance(real)
    ref = {
        "precision": p,
        "recall": r,
        "density": d,
        "coverage": c,
        "vendi": vendi(fake, bw),
        "tail_index": hill_tail_index(fake),
    }
    for key in KEYS:
        assert m[key].dtype == jnp.float32
        # Indicator metrics only change if a float32 round-off flips a boundary comparison; 1e-5 absolute.
        np.testing.assert_allclose(float(m[key]), float(ref[key]), rtol=1e-4, atol=1e-5, err_msg=key)


def test_vmap_equals_separate_calls():
    rng = np.random.default_rng(11)
    reals = rng.standard_normal((3, 200, 4)).astype(np.float32)
    fakes = (rng.standard_normal((3, 150, 4)) * np.array([1.0, 0.5, 2.0])[:, None, None]).astype(np.float32)
    f = jax.jit(jax.vmap(lambda r, fk: S.sample_metrics(r, fk, 3, 5)))
    batched = f(reals, fakes)
    for i in range(3):
        single = sample_metrics(reals[i], fakes[i], 3, 5)
        for key in KEYS:
            assert batched[key].shape == (3,)
            np.testing.assert_allclose(float(batched[key][i]), float(single[key]), rtol=1e-5, atol=1e-6,
                                       err_msg=f"{key}[{i}]")


def test_float64():
    real = _normal(12, 300, 6, np.float64)
    fake = 0.8 * _normal(13, 250, 6, np.float64)
    m32 = sample_metrics(real.astype(np.float32), fake.astype(np.float32), 3, 5)
    with jax.enable_x64(True):
        m64 = sample_metrics(jnp.asarray(real), jnp.asarray(fake), 3, 5)
        p, r = precision_recall(jnp.asarray(real), jnp.asarray(fake), 3)
        for key in KEYS:
            assert m64[key].dtype == jnp.float64, key
            # float32 and float64 agree up to single-precision round-off (indicators: exact barring ties).
            np.testing.assert_allclose(float(m64[key]), float(m32[key]), rtol=1e-4, atol=1e-5, err_msg=key)
        assert p.dtype == jnp.float64 and r.dtype == jnp.float64
        assert knn_radii(jnp.asarray(real), 2).dtype == jnp.float64


@pytest.mark.parametrize("n", [2, 3, 4, 5, 64, 255, 256])
@pytest.mark.parametrize("data", ["normal", "1d", "ties", "constant"])
def test_selection_is_exact_order_statistics(n, data):
    """The sort-free k-NN radii and median equal NumPy's sorted order statistics bit for bit, including
    ties (rounded points), all-equal points, odd/even pair counts (n (n-1)/2 is odd for n = 2, 3, 255) and
    1-D points, whose expanded distance matrix is not exactly symmetric (the median reads the upper triangle)."""
    x = _normal(n, n, 1 if data == "1d" else 2)
    if data == "ties":
        x = np.round(x)
    elif data == "constant":
        x = np.zeros_like(x)
    d = jax.jit(lambda a: jnp.sqrt(S._self_sq_dists(a)))(x)
    dn = np.asarray(d)
    assert float(jax.jit(S._median_upper)(d)) == float(np.median(dn[np.triu_indices(n, 1)]))
    off = np.sort(np.where(np.eye(n, dtype=bool), np.inf, dn), axis=1)
    ks = tuple(k for k in (1, 3, 5) if k <= n - 1)
    radii = jax.jit(lambda a: S._smallest_offdiag(a, ks))(d)
    for k in ks:
        np.testing.assert_array_equal(np.asarray(radii[k]), off[:, k - 1])


def test_selection_nan_rows():
    """A row holding a NaN distance gets a NaN radius; a NaN anywhere makes the median NaN."""
    d = np.abs(_normal(3, 6, 6))
    d = (d + d.T) / 2
    d[2, 4] = d[4, 2] = np.nan
    r = np.asarray(S._knn_from_self_dists(jnp.asarray(d), 2))
    assert np.isnan(r[[2, 4]]).all() and np.isfinite(np.delete(r, [2, 4])).all()
    assert np.isnan(float(S._median_upper(jnp.asarray(d))))
