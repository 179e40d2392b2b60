"""Tests for the GMM (EM) and KDE families.

Seeds are fixed once, up front. Statistical tolerances are Z standard errors with Z = 4.5 (a two-sided
normal tail of ~7e-6 per check, so the whole file, with fewer than 100 such checks, fails by chance
with probability < 1e-3). Deterministic identities (masking, scipy agreement, warm start) use float
tolerances instead.
"""
from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats as st

from collapse.families.gmm import em, gmm, kmeanspp_init, log_likelihood
from collapse.families.kde import bandwidth_factor, kde

Z = 4.5

# A well-separated 2-D, 3-component mixture: nearest means 8 apart, largest std 1, so the Mahalanobis
# gap is >= 8 and essentially no point is ambiguous (EM's MLE = per-component sample moments).
W = np.array([0.5, 0.3, 0.2])
MU = np.array([[0.0, 0.0], [8.0, 0.0], [0.0, 8.0]])
COV = np.array([[[1.0, 0.3], [0.3, 0.5]], [[0.4, 0.0], [0.0, 0.9]], [[0.6, -0.2], [-0.2, 0.3]]])


def draw_mixture(rng, n, w=W, mu=MU, cov=COV):
    comp = rng.choice(len(w), size=n, p=w)
    z = rng.standard_normal((n, mu.shape[1]))
    chol = np.linalg.cholesky(cov)
    return mu[comp] + np.einsum("nij,nj->ni", chol[comp], z), comp


def mixture_moments(w, mu, cov, scale=1.0):
    m = w @ mu
    second = np.einsum("k,kij->ij", w, scale * cov + np.einsum("ki,kj->kij", mu, mu))
    return m, second - np.outer(m, m)


def check_moments(x, mean, cov):
    """Sample mean / covariance of x against the exact ones, each within Z empirical standard errors."""
    n = x.shape[0]
    xc = x - x.mean(0)
    se_mean = x.std(0) / np.sqrt(n)
    assert np.all(np.abs(x.mean(0) - mean) < Z * se_mean), (x.mean(0), mean, se_mean)
    prods = xc[:, :, None] * xc[:, None, :]
    se_cov = prods.std(0) / np.sqrt(n)
    assert np.all(np.abs(prods.mean(0) - cov) < Z * se_cov), (prods.mean(0), cov, se_cov)


def as_params(w, mu, cov, dt=jnp.float32):
    return {"logits": jnp.log(jnp.asarray(w, dt)), "means": jnp.asarray(mu, dt),
            "covs": jnp.asarray(cov, dt), "fitted": jnp.ones((), dt)}


TRUTH = {"mean": jnp.zeros(2), "cov": jnp.eye(2)}

# Shared jitted functions: each distinct (function, shape) costs a ~1.5 s XLA compile, so the tests
# reuse a few of them with common pool sizes (3000 and 400 rows).
GMM3 = gmm(2, components=3, em_steps=30)
FIT3 = jax.jit(GMM3.fit)
GMM64 = gmm(2, components=3, em_steps=7, reg=0.0)  # used with float64 data of 600 rows
FIT64 = jax.jit(GMM64.fit)


def interleave(rng, x, junk):
    """Insert junk rows at random positions, keeping the real rows in order; returns (rows, mask)."""
    n = len(x) + len(junk)
    mask = np.zeros(n, bool)
    mask[rng.choice(n, len(x), replace=False)] = True
    out = np.empty((n, x.shape[1]), x.dtype)
    out[mask], out[~mask] = x, junk
    return out, mask


@pytest.fixture(scope="module")
def separated():
    rng = np.random.default_rng(1)
    x, comp = draw_mixture(rng, 3000)
    return x.astype(np.float32), comp


@pytest.fixture(scope="module")
def fitted(separated):
    x, _ = separated
    p = FIT3(jax.random.key(0), jnp.asarray(x), jnp.ones(len(x), bool), None)
    return GMM3, p


def match(means_hat, means):
    """Permutation of fitted components closest to the true ones."""
    best = min(itertools.permutations(range(len(means))),
               key=lambda p: np.sum((means_hat[list(p)] - means) ** 2))
    return list(best)


# --------------------------------------------------------------------------------------------- GMM


def test_gmm_init_shapes_and_placeholder():
    fam = gmm(3, components=4)
    p = fam.init({"mean": jnp.array([1.0, 2.0, 3.0]), "cov": jnp.full((3, 3), jnp.nan)})
    assert p["logits"].shape == (4,) and p["means"].shape == (4, 3) and p["covs"].shape == (4, 3, 3)
    assert float(p["fitted"]) == 0.0
    assert all(bool(jnp.all(jnp.isfinite(v))) for v in p.values())
    w, m, c = fam.components(p)
    np.testing.assert_allclose(w, 0.25, rtol=1e-6)


def test_gmm_recovers_separated_mixture(separated, fitted):
    x, comp = separated
    _, p = fitted
    n = len(x)
    w_hat, mu_hat, cov_hat = (np.asarray(a, np.float64) for a in fitted[0].components(p))
    perm = match(mu_hat, MU)
    w_hat, mu_hat, cov_hat = w_hat[perm], mu_hat[perm], cov_hat[perm]
    assert float(p["fitted"]) == 1.0
    np.testing.assert_allclose(w_hat.sum(), 1.0, rtol=1e-5)
    # Weight: multinomial SE sqrt(w (1 - w) / n).
    assert np.all(np.abs(w_hat - W) < Z * np.sqrt(W * (1 - W) / n))
    for k in range(3):
        nk = W[k] * n
        # Mean: SE sqrt(Sigma_jj / n_k); covariance entries: Gaussian SE sqrt((S_ii S_jj + S_ij^2) / n_k).
        assert np.all(np.abs(mu_hat[k] - MU[k]) < Z * np.sqrt(np.diag(COV[k]) / nk)), (k, mu_hat[k])
        d = np.diag(COV[k])
        se_cov = np.sqrt((d[:, None] * d[None, :] + COV[k] ** 2) / nk)
        assert np.all(np.abs(cov_hat[k] - COV[k]) < Z * se_cov), (k, cov_hat[k])
        # The fit is the per-component sample moments (no ambiguous points): tight check.
        xs = x[comp == k].astype(np.float64)
        np.testing.assert_allclose(mu_hat[k], xs.mean(0), atol=1e-3)
        np.testing.assert_allclose(cov_hat[k], np.cov(xs.T, bias=True), atol=1e-3)


def test_gmm_em_loglik_never_decreases():
    # Overlapping components so EM takes many steps; float64 and reg = 0 (pure EM, whose monotonicity
    # is a theorem), so the only slack needed is rounding of a mean of ~600 log-densities (~1e-15).
    with jax.enable_x64(True):
        rng = np.random.default_rng(2)
        mu = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0]])
        x, _ = draw_mixture(rng, 600, mu=mu)
        x = jnp.asarray(x)
        mask = jnp.ones(len(x), bool)
        key = jax.random.key(3)
        run_k = jax.jit(lambda k: log_likelihood(em(x, mask, kmeanspp_init(key, x, mask, 3, 0.0), k, 0.0),
                                                 x, mask))
        ll = np.array([float(run_k(k)) for k in range(25)])
        assert np.all(np.diff(ll) >= -1e-12), np.diff(ll)
        assert ll[-1] > ll[0] + 1e-3  # EM did something, so the check is not vacuous
        # The factory's fit is exactly the same EM from the same seeding.
        p = FIT64(key, x, mask, None)
        np.testing.assert_allclose(float(log_likelihood(p, x, mask)), ll[7], rtol=1e-12)


def test_gmm_em_loglik_float32_default_reg():
    # Same check in float32 with the default reg = 1e-6: slack of a few float32 ulps of the mean
    # log-likelihood (|ll| ~ 3, ulp ~ 2e-7) plus the O(reg) effect of the regulariser.
    rng = np.random.default_rng(4)
    mu = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0]])
    x = jnp.asarray(draw_mixture(rng, 400, mu=mu)[0], jnp.float32)
    mask = jnp.ones(len(x), bool)
    key = jax.random.key(5)
    run_k = jax.jit(lambda k: log_likelihood(em(x, mask, kmeanspp_init(key, x, mask, 3), k), x, mask))
    ll = np.array([float(run_k(k)) for k in range(20)])
    assert np.all(np.diff(ll) >= -1e-5), np.diff(ll)
    assert ll[-1] > ll[0] + 1e-3


def test_gmm_masked_rows_do_not_change_fit(separated):
    x, _ = separated
    x = x[:400]
    rng = np.random.default_rng(5)
    junk = rng.normal(0, 1e4, (2600, 2)).astype(np.float32)  # 400 + 2600 = 3000 rows: no new compile
    junk[:5] = np.nan
    junk[5:10] = np.inf
    big, mask = interleave(rng, x, junk)
    fit = FIT3
    key = jax.random.key(6)
    a = fit(key, jnp.asarray(x), jnp.ones(len(x), bool), None)
    b = fit(key, jnp.asarray(big), jnp.asarray(mask), None)
    # Identical arithmetic up to the order of float32 sums over rows (relative ~1e-7, data scale ~8).
    for name in ("logits", "means", "covs"):
        np.testing.assert_allclose(a[name], b[name], atol=1e-4, err_msg=name)
    # Warm-start path too.
    c = fit(key, jnp.asarray(big), jnp.asarray(mask), a)
    d = fit(key, jnp.asarray(x), jnp.ones(len(x), bool), a)
    for name in ("logits", "means", "covs"):
        np.testing.assert_allclose(c[name], d[name], atol=1e-4, err_msg=name)


def test_gmm_sample_moments_and_scale():
    fam = gmm(2, components=3)
    p = as_params(W, MU, COV)
    n = 100_000
    sample = jax.jit(fam.sample, static_argnums=2)
    key = jax.random.key(7)
    x1 = np.asarray(sample(key, p, n, 1.0, None), np.float64)
    x4 = np.asarray(sample(key, p, n, 4.0, None), np.float64)
    check_moments(x1, *mixture_moments(W, MU, COV, 1.0))
    check_moments(x4, *mixture_moments(W, MU, COV, 4.0))
    # Same key => same component draws and same standard normals, so x4 - mu_c = 2 (x1 - mu_c):
    # 2 x1 - x4 recovers each row's component mean (float32 rounding at data scale ~10).
    mu_rows = 2 * x1 - x4
    comp = np.argmin(((mu_rows[:, None, :] - MU[None]) ** 2).sum(-1), 1)
    np.testing.assert_allclose(mu_rows, MU[comp], atol=1e-4)
    frac = np.bincount(comp, minlength=3) / n
    assert np.all(np.abs(frac - W) < Z * np.sqrt(W * (1 - W) / n))
    for k in range(3):
        r1, r4 = x1[comp == k] - MU[k], x4[comp == k] - MU[k]
        sd = np.sqrt(np.diag(COV[k]))
        se = sd / np.sqrt(2 * len(r1))  # SE of a Gaussian sample std
        assert np.all(np.abs(r1.std(0) - sd) < Z * se)
        assert np.all(np.abs(r4.std(0) - 2 * sd) < Z * 2 * se)  # scale = 4 doubles the std


def test_gmm_warm_start_is_a_fixed_point(separated, fitted):
    x, _ = separated
    fam, p = fitted
    q = FIT3(jax.random.key(8), jnp.asarray(x), jnp.ones(len(x), bool), p)
    # Same component order (no relabelling) and ~no movement: far below the SEs (~0.03) above.
    for name in ("logits", "means", "covs"):
        np.testing.assert_allclose(q[name], p[name], atol=1e-4, err_msg=name)


def test_gmm_empty_component_no_nan(separated):
    x, _ = separated
    x = jnp.asarray(x[:400])
    mask = jnp.ones(len(x), bool)
    fam = GMM3
    mu = np.array([[0.0, 0.0], [8.0, 4.0], [1e3, 1e3]])  # component 2 is far from every point
    prev = as_params([0.4, 0.3, 0.3], mu, np.broadcast_to(np.eye(2), (3, 2, 2)))
    p = FIT3(jax.random.key(9), x, mask, prev)
    for v in p.values():
        assert bool(jnp.all(jnp.isfinite(v)))
    np.testing.assert_allclose(p["means"][2], mu[2])  # empty: keeps its previous parameters
    np.testing.assert_allclose(p["covs"][2], np.eye(2))
    w = fam.components(p)[0]
    assert float(w[2]) < 1e-20 and abs(float(w.sum()) - 1) < 1e-6
    assert bool(jnp.all(jnp.isfinite(fam.log_prob(p, x))))
    assert bool(jnp.all(jnp.isfinite(fam.sample(jax.random.key(10), p, 100, 1.0, None))))
    # More components than distinct points, and an all-masked pool, from the placeholder.
    dup = jnp.repeat(x[:2], 200, axis=0)  # 2 distinct points for 3 components
    for xs, ms in ((dup, jnp.ones(400, bool)), (x, jnp.zeros(len(x), bool))):
        q = FIT3(jax.random.key(11), xs, ms, None)
        for v in q.values():
            assert bool(jnp.all(jnp.isfinite(v)))
        assert bool(jnp.all(jnp.isfinite(fam.log_prob(q, x[:10]))))


def test_gmm_jit_vmap_scan(separated):
    # The engine's pattern: jit(vmap over replicates(scan over generations(fit -> sample))).
    x, _ = separated
    R, n, G = 3, 400, 3
    xs = jnp.asarray(x[: R * n].reshape(R, n, 2))
    masks = jnp.arange(n)[None, :] < jnp.array([400, 300, 250])[:, None]
    keys = jax.random.split(jax.random.key(12), R)
    fam = GMM3
    truths = {"mean": jnp.zeros((R, 2)), "cov": jnp.broadcast_to(jnp.eye(2), (R, 2, 2))}

    def replicate(key, data, mask, truth):
        def gen(carry, k):
            data, mask, params = carry
            k1, k2 = jax.random.split(k)
            params = fam.fit(k1, data, mask, params)
            new = fam.sample(k2, params, n, 2.0, None)
            return (new, jnp.ones(n, bool), params), (params, fam.log_prob(params, new[:5]))

        _, out = jax.lax.scan(gen, (data, mask, fam.init(truth)), jax.random.split(key, G))
        return out

    params, lps = jax.jit(jax.vmap(replicate))(keys, xs, masks, truths)
    assert params["means"].shape == (R, G, 3, 2) and lps.shape == (R, G, 5)
    assert bool(jnp.all(jnp.isfinite(lps)))
    for v in params.values():
        assert bool(jnp.all(jnp.isfinite(v)))
    for r in range(R):  # generation 0 of each replicate == the unbatched fit
        k1 = jax.random.split(jax.random.split(keys[r], G)[0])[0]
        single = FIT3(k1, xs[r], masks[r], fam.init({"mean": jnp.zeros(2), "cov": jnp.eye(2)}))
        for name in ("logits", "means", "covs"):
            np.testing.assert_allclose(params[name][r, 0], single[name], atol=1e-4, err_msg=name)


def mixture_logpdf_scipy(x, w, mu, cov):
    dens = sum(w[k] * st.multivariate_normal(mu[k], cov[k]).pdf(x) for k in range(len(w)))
    return np.log(dens)


def test_gmm_float64_and_log_prob():
    pts = np.random.default_rng(14).normal(2.0, 4.0, (50, 2))
    with jax.enable_x64(True):
        rng = np.random.default_rng(15)
        x, _ = draw_mixture(rng, 600)
        fam = GMM64
        truth = {"mean": jnp.zeros(2, jnp.float64), "cov": jnp.eye(2, dtype=jnp.float64)}
        p = FIT64(jax.random.key(16), jnp.asarray(x), jnp.ones(len(x), bool), fam.init(truth))
        assert all(v.dtype == jnp.float64 for v in p.values())
        s = fam.sample(jax.random.key(17), p, 10, 1.0, None)
        assert s.dtype == jnp.float64
        lp = fam.log_prob(p, jnp.asarray(pts))
        assert lp.dtype == jnp.float64
        w, mu, cov = (np.asarray(a) for a in fam.components(p))
        np.testing.assert_allclose(lp, mixture_logpdf_scipy(pts, w, mu, cov), rtol=1e-10)
    # float32 params give float32 outputs, matching scipy to float32 accuracy.
    p32 = as_params(W, MU, COV)
    lp32 = gmm(2, components=3).log_prob(p32, jnp.asarray(pts, jnp.float32))
    assert lp32.dtype == jnp.float32
    np.testing.assert_allclose(lp32, mixture_logpdf_scipy(pts, W, MU, COV), rtol=1e-5, atol=1e-4)


# --------------------------------------------------------------------------------------------- KDE


@pytest.fixture(scope="module")
def kde_data():
    rng = np.random.default_rng(20)
    x = rng.multivariate_normal([1.0, -2.0, 0.5], [[2.0, 0.6, 0.0], [0.6, 1.0, -0.3], [0.0, -0.3, 0.5]], 300)
    return x


@pytest.mark.parametrize("rule", ["scott", "silverman"])
def test_kde_bandwidth_matches_scipy(kde_data, rule):
    x = kde_data
    n, d = x.shape
    g = st.gaussian_kde(x.T, bw_method=rule)
    np.testing.assert_allclose(bandwidth_factor(rule, n, d), g.factor, rtol=1e-13)
    with jax.enable_x64(True):
        fam = kde(d, n, bandwidth=rule)
        p = fam.fit(jax.random.key(0), jnp.asarray(x), jnp.ones(n, bool), None)
        np.testing.assert_allclose(p["cov"], g.covariance, rtol=1e-10)


def test_kde_numeric_bandwidth(kde_data):
    x = jnp.asarray(kde_data, jnp.float32)
    fam = kde(3, len(x), bandwidth=0.7)
    p = fam.fit(jax.random.key(0), x, jnp.ones(len(x), bool), None)
    np.testing.assert_allclose(p["cov"], 0.49 * np.eye(3), rtol=1e-6)
    assert p["cov"].dtype == jnp.float32 and p["points"].dtype == jnp.float32


@pytest.mark.parametrize("rule", ["scott", "silverman"])
def test_kde_log_prob_matches_scipy(kde_data, rule):
    x = kde_data
    n, d = x.shape
    rng = np.random.default_rng(21)
    pts = np.concatenate([rng.normal(0.0, 2.0, (40, d)), rng.normal(0.0, 8.0, (10, d))])  # incl. tails
    keep = rng.random(n) < 0.7  # masked rows must be ignored: compare with scipy on the kept rows
    g = st.gaussian_kde(x[keep].T, bw_method=rule)
    with jax.enable_x64(True):
        fam = kde(d, n, bandwidth=rule)
        p = jax.jit(fam.fit)(jax.random.key(0), jnp.asarray(x), jnp.asarray(keep), None)
        lp = jax.jit(fam.log_prob)(p, jnp.asarray(pts))
        assert lp.dtype == jnp.float64
        np.testing.assert_allclose(lp, g.logpdf(pts.T), rtol=1e-10)
    # float32: same up to float32 rounding of whitened squared distances (|a|^2 <~ 1e3 in the tails).
    fam = kde(d, n, bandwidth=rule)
    p32 = fam.fit(jax.random.key(0), jnp.asarray(x, jnp.float32), jnp.asarray(keep), None)
    np.testing.assert_allclose(fam.log_prob(p32, jnp.asarray(pts, jnp.float32)), g.logpdf(pts.T),
                               rtol=1e-4, atol=1e-3)


def test_kde_masked_rows_ignored(kde_data):
    x = kde_data
    rng = np.random.default_rng(22)
    junk = rng.normal(0, 1e5, (100, 3))
    junk[:5] = np.nan
    big, mask = interleave(rng, x, junk)
    pts = rng.normal(0, 2, (20, 3))
    with jax.enable_x64(True):
        fa, fb = kde(3, len(x)), kde(3, len(big))
        a = fa.fit(jax.random.key(0), jnp.asarray(x), jnp.ones(len(x), bool), None)
        b = fb.fit(jax.random.key(0), jnp.asarray(big), jnp.asarray(mask), None)
        np.testing.assert_allclose(a["cov"], b["cov"], rtol=1e-12)
        np.testing.assert_allclose(fa.log_prob(a, jnp.asarray(pts)), fb.log_prob(b, jnp.asarray(pts)),
                                   rtol=1e-12)
        assert b["points"].shape == (len(big), 3) and float(b["weights"].sum()) == pytest.approx(1.0)
        # Same key: inverse-CDF picks land on the same real rows, so the draws are identical.
        sa = fa.sample(jax.random.key(1), a, 500, 1.0, None)
        sb = fb.sample(jax.random.key(1), b, 500, 1.0, None)
        np.testing.assert_allclose(sa, sb, rtol=1e-12)
        w, means, covs = fb.components(b)
        assert covs.shape == (len(big), 3, 3) and bool(jnp.all(jnp.isfinite(means)))


@pytest.mark.parametrize("scale", [1.0, 4.0])
def test_kde_sample_moments(kde_data, scale):
    x = kde_data.astype(np.float32)
    n = len(x)
    fam = kde(3, n)
    p = fam.fit(jax.random.key(0), jnp.asarray(x), jnp.ones(n, bool), fam.init({"mean": jnp.zeros(3)}))
    s = np.asarray(jax.jit(fam.sample, static_argnums=2)(jax.random.key(30 + int(scale)), p, 100_000,
                                                         scale, None), np.float64)
    xd = x.astype(np.float64)
    # Resampling a point draws from the empirical distribution: its covariance is the 1/n one.
    check_moments(s, xd.mean(0), np.cov(xd.T, bias=True) + scale * np.asarray(p["cov"], np.float64))


def test_kde_init_jit_vmap(kde_data):
    fam = kde(3, 300)
    p0 = fam.init({"mean": jnp.ones(3), "cov": jnp.eye(3)})
    assert p0["points"].shape == (300, 3) and p0["weights"].shape == (300,) and p0["cov"].shape == (3, 3)
    xs = jnp.asarray(np.stack([kde_data, kde_data[::-1] * 2.0]), jnp.float32)
    masks = jnp.arange(300)[None, :] < jnp.array([300, 200])[:, None]
    keys = jax.random.split(jax.random.key(40), 2)
    ps = jax.jit(jax.vmap(fam.fit))(keys, xs, masks, jax.vmap(lambda _: p0)(jnp.arange(2)))
    for r in range(2):
        single = fam.fit(keys[r], xs[r], masks[r], p0)
        np.testing.assert_allclose(ps["cov"][r], single["cov"], rtol=1e-5)
    draws = jax.jit(jax.vmap(lambda k, p: fam.sample(k, p, 64, 1.0, None)))(keys, ps)
    lps = jax.vmap(fam.log_prob)(ps, draws)
    assert draws.shape == (2, 64, 3) and bool(jnp.all(jnp.isfinite(lps)))


# --------------------------------------------------------------------------------------------- GMM d = 2 fast path


def test_linalg_small_matches_general_cholesky():
    from collapse import linalg, linalg_small as ls
    rng = np.random.default_rng(30)
    a = rng.normal(size=(50, 2, 2)).astype(np.float32)
    spd = np.einsum("kij,klj->kil", a, a) + 0.1 * np.eye(2, dtype=np.float32)
    low = jax.vmap(linalg.cholesky)(jnp.asarray(spd))
    l00, l10, l11 = ls.cholesky2(spd[:, 0, 0], spd[:, 1, 0], spd[:, 1, 1])
    np.testing.assert_allclose(np.stack([l00, l10, l11], 1), np.stack([low[:, 0, 0], low[:, 1, 0], low[:, 1, 1]], 1),
                               rtol=1e-6)
    inv = jax.vmap(linalg.inv_lower)(low)
    i00, i10, i11 = ls.inv_lower2(l00, l10, l11)
    np.testing.assert_allclose(np.stack([i00, i10, i11], 1), np.stack([inv[:, 0, 0], inv[:, 1, 0], inv[:, 1, 1]], 1),
                               rtol=1e-5)
    assert bool(jnp.all(ls.chol_ok2(l00, l10, l11)))
    assert not bool(ls.chol_ok2(*ls.cholesky2(jnp.float32(1.0), jnp.float32(2.0), jnp.float32(1.0))))  # indefinite


def test_gmm_2d_em_step_matches_general_path():
    # float64 so that the only difference is rounding (~1e-15); includes an empty component and masked rows.
    from collapse.families import gmm as G
    with jax.enable_x64(True):
        rng = np.random.default_rng(31)
        x, _ = draw_mixture(rng, 500)
        mask = jnp.asarray(rng.random(500) < 0.9)
        mu = np.array([[0.5, 0.0], [7.0, 0.5], [1e3, 1e3]])
        cov = np.array([[[1.2, 0.2], [0.2, 0.8]], [[0.5, -0.1], [-0.1, 1.0]], [[1.0, 0.0], [0.0, 1.0]]])
        p = as_params([0.4, 0.3, 0.3], mu, cov, jnp.float64)
        for _ in range(3):
            a = G._em_step_general(jnp.asarray(x), mask, p, 1e-6)
            b = G.em_step(jnp.asarray(x), mask, p, 1e-6)
            for name in ("logits", "means", "covs"):
                np.testing.assert_allclose(b[name], a[name], rtol=1e-10, atol=1e-12, err_msg=name)
            p = a
        np.testing.assert_allclose(p["means"][2], mu[2])  # the empty component kept its mean
