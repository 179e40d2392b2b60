"""Closed forms of collapse.theory: the numbers quoted in the literature, indexing, the dispatcher, and
Monte-Carlo checks of the fresh-real-data recursions (seeds fixed before looking; tolerance 4 Monte-Carlo standard errors)."""
from __future__ import annotations

import copy
import math

import numpy as np
import pytest
from scipy.special import gammaln

from collapse import theory as th


def _round_to(x, quoted: str) -> bool:
    """x agrees with a number quoted from the literature to the quoted number of decimals."""
    decimals = len(quoted.split(".")[1]) if "." in quoted else 0
    return abs(float(x) - float(quoted)) <= 0.5 * 10.0**-decimals + 1e-12


# ------------------------------------------------------------------------------------ numbers quoted in the literature
@pytest.mark.parametrize("n, quoted", [(10, "0.9044"), (100, "0.3660")])
def test_mle_var_ratio_reference(n, quoted):
    assert _round_to(th.gaussian_var_ratio(n - 1, 100, "mle"), quoted)


@pytest.mark.parametrize("n, quoted", [(10, "0.1454"), (100, "1.060"), (1000, "1.999")])
def test_mle_w2_reference(n, quoted):
    assert _round_to(th.gaussian_w2_1d(n - 1, 100, "mle"), quoted)


def test_w2_bounded_by_two():
    w = th.gaussian_w2_1d(np.arange(100_000), 100, "mle")
    assert np.all(np.diff(w) >= 0) and np.all(w <= 2.0) and w[-1] > 2.0 - 1e-12


def test_logdet_reference():
    per_fit = th.gaussian_logdet_ratio(0, 100, dim=10, estimator="mle")
    assert _round_to(per_fit, "-0.677")
    np.testing.assert_allclose(th.gaussian_logdet_ratio(np.arange(5), 100, 10), per_fit * np.arange(1, 6))


def test_unbiased_w2_reference():
    assert _round_to(th.gaussian_w2_1d(99, 100, "unbiased"), "1.446")


def test_linreg_reference():
    assert _round_to(th.linreg_test_error(19, 10, 100, 1.0, "replace"), "2.247")
    assert _round_to(th.linreg_test_error(19, 10, 100, 1.0, "accumulate"), "0.1793")
    bound = th.linreg_accumulate_bound(10, 100, 1.0)
    assert _round_to(bound, "0.1848")
    acc = th.linreg_test_error(np.arange(10_000), 10, 100, 1.0, "accumulate")
    assert np.all(acc < bound) and np.all(np.diff(acc) > 0)
    # the harmonic sum via polygamma equals the explicit sum
    explicit = 1.0 / 89.0 * 10 * np.cumsum(1.0 / np.arange(1, 21) ** 2)
    np.testing.assert_allclose(th.linreg_test_error(np.arange(20), 10, 100, 1.0, "accumulate"), explicit, rtol=1e-12)


def test_support_reference():
    p0 = th.zipf_probs(1000, 1.1)
    assert p0.shape == (1000,) and math.isclose(p0.sum(), 1.0) and np.all(np.diff(p0) < 0)
    assert _round_to(th.categorical_support_one_fit(p0, 10_000), "837.7")


# ------------------------------------------------------------------------------------------------ indexing
def test_generation_zero_is_one_fit():
    M = 100
    assert math.isclose(th.gaussian_var_ratio(0, M, "mle"), (M - 1) / M)
    assert math.isclose(th.gaussian_mean_err(0, M, 3, "mle"), 3 / M)
    assert math.isclose(th.gaussian_mean_err(0, M, 3, "unbiased"), 3 / M)
    assert math.isclose(th.gaussian_var_ratio(0, M, "unbiased"), 1.0)
    # one fit: E[W2^2] = E[mu^2] + E[S] + 1 - 2 E[sqrt S]
    assert math.isclose(th.gaussian_w2_1d(0, M, "mle"),
                        1 / M + (M - 1) / M + 1 - 2 * th.c4(M - 1) * math.sqrt((M - 1) / M), rel_tol=1e-12)
    p0 = th.zipf_probs(50, 1.0)
    assert math.isclose(th.categorical_gini_simpson(0, p0, 20), (1 - 1 / 20) * (1 - np.sum(p0**2)))
    assert math.isclose(th.linreg_test_error(0, 10, 100, 1.0, "replace"), 10 / 89)
    assert math.isclose(th.linreg_test_error(0, 10, 100, 1.0, "accumulate"), 10 / 89)
    with pytest.raises(ValueError):
        th.gaussian_var_ratio(-1, M)


def test_c4_large_k_and_known_values():
    assert math.isclose(th.c4(1), math.sqrt(2 / math.pi), rel_tol=1e-12)  # textbook c4(2)
    # continuity where the implementation switches from gammaln to the asymptotic series (k = 40)
    lo, hi = th.log_c4(np.array([40.0 - 1e-9, 40.0]))
    assert abs(hi - lo) < 1e-12
    # the series agrees with gammaln where both are accurate
    k = np.array([40.0, 60.0, 100.0])
    exact = 0.5 * np.log(2 / k) + gammaln((k + 1) / 2) - gammaln(k / 2)
    np.testing.assert_allclose(th.log_c4(k), exact, rtol=0, atol=1e-13)  # gammaln: ~1e-14 abs
    # large k: log c4(k) = -1/(4k) + 1/(24k^3) + O(k^-5)
    for k in (1e6, 1e8):
        assert math.isclose(th.log_c4(k), -1 / (4 * k), rel_tol=1e-11)


def test_fresh_reduces_to_fully_synthetic_and_all_real():
    g = np.arange(30)
    for est in ("mle", "unbiased"):
        x, y = th.gaussian_fresh_moments(g, 20, 0, est)
        np.testing.assert_allclose(x, th.gaussian_var_ratio(g, 20, est), rtol=1e-12)
        np.testing.assert_allclose(2 * y, th.gaussian_mean_err(g, 20, 2, est), rtol=1e-12)
        x, y = th.gaussian_fresh_moments(g, 20, 20, est)
        np.testing.assert_allclose(x, th.gaussian_var_ratio(0, 20, est))
        np.testing.assert_allclose(y, 1 / 20)
    p0 = th.zipf_probs(40, 1.1)
    np.testing.assert_allclose(th.categorical_fresh_gini_simpson(g, p0, 20, 0),
                               th.categorical_gini_simpson(g, p0, 20), rtol=1e-12)
    np.testing.assert_allclose(th.categorical_fresh_gini_simpson(g, p0, 20, 20),
                               th.categorical_gini_simpson(0, p0, 20), rtol=1e-12)


def test_fresh_stationary_point():
    M, a = 20, 5
    x, y = th.gaussian_fresh_moments(np.arange(200), M, a, "mle")
    np.testing.assert_allclose(x + y, 1.0, rtol=1e-12)  # MLE invariant
    xs, ys = th.gaussian_fresh_stationary(M, a, "mle")
    b = M - a
    assert math.isclose(xs, a * (M - 1 + b) / (M**2 - b * (M - 1 - a)), rel_tol=1e-12)
    assert math.isclose(xs, 17 / 19, rel_tol=1e-12) and math.isclose(ys, 2 / 19, rel_tol=1e-12)
    assert math.isclose(x[-1], xs, rel_tol=1e-10) and math.isclose(y[-1], ys, rel_tol=1e-10)
    # below 1, and more real data shrinks it less
    stat = np.array([th.gaussian_fresh_stationary(M, k)[0] for k in range(1, M + 1)])
    assert np.all(np.diff(stat[:-1]) > 0) and stat[-1] < 1.0  # a = M - 1 and a = M give (M-1)/M
    np.testing.assert_allclose(stat[-2:], (M - 1) / M, rtol=1e-12)


# ---------------------------------------------------------------------------------------------- dispatcher
def _gauss_cfg(**loop):
    cfg = {"source": {"name": "gaussian", "dim": 1, "mean": 0.0, "scale": 1.0},
           "model": {"name": "gaussian", "estimator": "mle"},
           "loop": {"synthetic": "replace", "real": "fresh", "real_fraction": 0.0, "samples": 100},
           "sampling": {"scale": 1.0}}
    cfg["loop"].update(loop)
    return cfg


def _with(cfg, section, **kw):
    cfg = copy.deepcopy(cfg)
    cfg[section].update(kw)
    return cfg


def test_dispatch_gaussian_fully_synthetic():
    out = th.theory_curves(_gauss_cfg(), 100)
    assert set(out) == {"var_ratio", "mean_err", "logdet_ratio", "frechet"}
    assert all(v.shape == (100,) for v in out.values())
    assert _round_to(out["var_ratio"][9], "0.9044") and _round_to(out["frechet"][99], "1.060")
    out10 = th.theory_curves(_with(_gauss_cfg(), "source", dim=10), 5)
    assert set(out10) == {"var_ratio", "mean_err", "logdet_ratio"}  # frechet only in 1-D
    assert _round_to(out10["logdet_ratio"][0], "-0.677")
    np.testing.assert_allclose(out10["mean_err"], 10 * (1 - 0.99 ** np.arange(1, 6)))
    # source mean/scale: mean_err and frechet scale by scale^2, the ratios do not change
    shifted = th.theory_curves(_with(_gauss_cfg(), "source", mean=3.0, scale=2.0), 100)
    np.testing.assert_allclose(shifted["mean_err"], 4 * out["mean_err"])
    np.testing.assert_allclose(shifted["frechet"], 4 * out["frechet"])
    np.testing.assert_allclose(shifted["var_ratio"], out["var_ratio"])
    unb = th.theory_curves(_with(_gauss_cfg(), "model", estimator="unbiased"), 100)
    assert _round_to(unb["frechet"][99], "1.446")


def test_dispatch_gaussian_fresh_and_all_real():
    out = th.theory_curves(_gauss_cfg(samples=20, real_fraction=0.25), 10)
    assert set(out) == {"var_ratio", "mean_err"}
    np.testing.assert_allclose(out["var_ratio"], th.gaussian_fresh_var_ratio(np.arange(10), 20, 5))
    for real in ("fresh", "fixed"):
        out = th.theory_curves(_gauss_cfg(samples=20, real_fraction=1.0, real=real), 6)
        assert set(out) == {"var_ratio", "mean_err", "logdet_ratio", "frechet"}
        np.testing.assert_allclose(out["var_ratio"], 19 / 20)


def test_dispatch_linreg_and_categorical():
    lin = {"source": {"name": "linear", "dim": 10, "design_size": None, "noise_var": 1.0, "design": "fixed"},
           "model": {"name": "linear_regression", "ridge": 0.0, "label_noise": "source"},
           "loop": {"synthetic": "replace", "real": "fresh", "real_fraction": 0.0, "samples": 100},
           "sampling": {"scale": 1.0}}
    out = th.theory_curves(lin, 20)
    assert set(out) == {"test_error"} and _round_to(out["test_error"][19], "2.247")
    acc = th.theory_curves(_with(lin, "loop", synthetic="accumulate"), 20)
    assert _round_to(acc["test_error"][19], "0.1793")
    cat = {"source": {"name": "zipf", "categories": 1000, "exponent": 1.1},
           "model": {"name": "categorical", "smoothing": 0.0},
           "loop": {"synthetic": "replace", "real": "fresh", "real_fraction": 0.0, "samples": 10_000},
           "sampling": {"scale": 1.0}}
    out = th.theory_curves(cat, 5)
    assert set(out) == {"support", "gini_simpson"}
    assert _round_to(out["support"][0], "837.7") and np.all(np.isnan(out["support"][1:]))
    # support after one fit holds whatever the loop does later; gini needs the fully synthetic loop
    out = th.theory_curves(_with(cat, "loop", synthetic="accumulate"), 5)
    assert set(out) == {"support"}
    assert th.theory_curves(_with(cat, "model", smoothing=0.5), 5) == {}
    # nothing outside the assumptions
    for bad in (_with(lin, "model", ridge=0.1), _with(lin, "model", label_noise="fitted"),
                _with(lin, "sampling", scale=0.9), _with(lin, "source", design_size=50),
                _with(lin, "loop", real_fraction=0.5), _with(lin, "loop", synthetic="accumulate_subsample"),
                _with(_with(lin, "loop", synthetic="accumulate"), "source", design="fresh")):
        assert th.theory_curves(bad, 5) == {}


@pytest.mark.parametrize("change", [
    {"loop": {"real_fraction": 0.5, "synthetic": "accumulate"}},
    {"loop": {"synthetic": "accumulate"}},
    {"loop": {"synthetic": "accumulate_subsample"}},
    {"loop": {"real_fraction": 0.5, "real": "fixed"}},
    {"loop": {"real_fraction": 0.001}},          # rounds n_real to 0: a configuration error
    {"sampling": {"scale": 0.8}},
    {"loop": {"samples": 5}, "source": {"dim": 10}},   # samples < dim + 1
    {"model": {"estimator": "robust"}},
    {"model": {"name": "gmm"}},
    {"source": {"name": "student_t"}},
])
def test_dispatch_nothing_outside_assumptions(change):
    cfg = _gauss_cfg()
    for section, kw in change.items():
        cfg[section].update(kw)
    assert th.theory_curves(cfg, 10) == {}


# --------------------------------------------------------------------------------------------- Monte Carlo
def _assert_within_4se(samples: np.ndarray, expected: np.ndarray):
    """samples: (chains, G). Mean per generation within 4 standard errors of the closed form."""
    mean = samples.mean(0)
    se = samples.std(0, ddof=1) / math.sqrt(samples.shape[0])
    z = (mean - expected) / se
    assert np.all(np.abs(z) < 4.0), f"z-scores {np.round(z, 2)}"


def test_fresh_recursion_monte_carlo_1d():
    """M = 20, n_real = 5, 10 generations, 20000 chains, 1-D MLE, source N(0, 1); points drawn explicitly."""
    C, M, a, G = 20_000, 20, 5, 10
    rng = np.random.default_rng(20240917)
    x = rng.standard_normal((C, M))
    mu, var = x.mean(1), x.var(1)
    S, E = [var], [mu**2]
    for _ in range(1, G):
        real = rng.standard_normal((C, a))
        syn = mu[:, None] + np.sqrt(var)[:, None] * rng.standard_normal((C, M - a))
        x = np.concatenate([real, syn], axis=1)
        mu, var = x.mean(1), x.var(1)
        S.append(var)
        E.append(mu**2)
    g = np.arange(G)
    _assert_within_4se(np.stack(S, 1), th.gaussian_fresh_var_ratio(g, M, a))
    _assert_within_4se(np.stack(E, 1), th.gaussian_fresh_mean_err(g, M, a))


def test_fresh_recursion_monte_carlo_3d_unbiased_via_dispatcher():
    """d = 3, unbiased, source N(1, 4 I): checks the d-dimensional/unbiased generalisation and the config
    plumbing (n_real = floor(0.25 * 20 + 0.5) = 5, mean_err scaled by scale^2)."""
    C, M, a, G, d, loc, s = 20_000, 20, 5, 8, 3, 1.0, 2.0
    cfg = {"source": {"name": "gaussian", "dim": d, "mean": loc, "scale": s},
           "model": {"name": "gaussian", "estimator": "unbiased"},
           "loop": {"synthetic": "replace", "real": "fresh", "real_fraction": 0.25, "samples": M},
           "sampling": {"scale": 1.0}}
    curves = th.theory_curves(cfg, G)
    assert set(curves) == {"var_ratio", "mean_err"}
    rng = np.random.default_rng(314159)

    def fit(x):
        mu = x.mean(1)
        xc = x - mu[:, None, :]
        return mu, np.einsum("cni,cnj->cij", xc, xc) / (M - 1)

    mu, cov = fit(loc + s * rng.standard_normal((C, M, d)))
    V, E = [], []
    for gen in range(G):
        if gen:
            real = loc + s * rng.standard_normal((C, a, d))
            L = np.linalg.cholesky(cov)
            syn = mu[:, None, :] + np.einsum("cij,cnj->cni", L, rng.standard_normal((C, M - a, d)))
            mu, cov = fit(np.concatenate([real, syn], axis=1))
        V.append(np.trace(cov, axis1=1, axis2=2) / (d * s * s))
        E.append(np.sum((mu - loc) ** 2, axis=1))
    _assert_within_4se(np.stack(V, 1), curves["var_ratio"])
    _assert_within_4se(np.stack(E, 1), curves["mean_err"])


def test_fresh_categorical_gini_monte_carlo():
    """K = 30 Zipf(1.1), M = 20, n_real = 5, 10 generations, 20000 chains of empirical frequencies."""
    C, K, M, a, G = 20_000, 30, 20, 5, 10
    p0 = th.zipf_probs(K, 1.1)
    rng = np.random.default_rng(271828)
    p = rng.multinomial(M, p0, size=C) / M
    out = [1 - np.sum(p**2, 1)]
    for _ in range(1, G):
        counts = rng.multinomial(a, p0, size=C) + rng.multinomial(M - a, p)
        p = counts / M
        out.append(1 - np.sum(p**2, 1))
    _assert_within_4se(np.stack(out, 1), th.categorical_fresh_gini_simpson(np.arange(G), p0, M, a))
