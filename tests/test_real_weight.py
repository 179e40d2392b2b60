"""loop.real_weight (He, Xu & Cheng 2025): the fit weighs its real part w and its synthetic part 1 - w."""
from __future__ import annotations


import jax
import jax.numpy as jnp
import numpy as np
import pytest

from collapse import theory as th
from collapse.engine import fit_weights
from collapse.families.categorical import categorical
from collapse.families.gaussian import gaussian
from collapse.families.linear_regression import linear_regression
from collapse.families.training import draw_weighted_rows
from conftest import assert_matches_theory, assert_refused, sim



def test_weights_give_the_real_part_share_w_and_sum_to_the_batch():
    w = fit_weights(30, 100, 0.618, jnp.float64 if jax.config.x64_enabled else jnp.float32)
    assert float(jnp.sum(w)) == pytest.approx(100, rel=1e-6)
    assert float(jnp.sum(w[:30])) / 100 == pytest.approx(0.618, rel=1e-6)
    assert np.allclose(np.asarray(fit_weights(0, 10, 0.3, jnp.float32)), 1.0)  # one part only: plain fit
    assert np.allclose(np.asarray(fit_weights(10, 10, 0.3, jnp.float32)), 1.0)


def test_weighted_fits_are_the_weighted_estimators():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 2)).astype(np.float32)
    wts = rng.uniform(0.1, 3.0, size=40).astype(np.float32)
    p = gaussian(2).fit(None, jnp.asarray(x), jnp.asarray(wts), None)
    mu = (wts[:, None] * x).sum(0) / wts.sum()
    cov = ((x - mu).T * wts) @ (x - mu) / wts.sum()
    np.testing.assert_allclose(np.asarray(p["mean"]), mu, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(p["cov"]), cov, rtol=1e-4)
    cats = rng.integers(0, 5, size=40)
    probs = categorical(5).fit(None, jnp.asarray(cats), jnp.asarray(wts), None)["probs"]
    np.testing.assert_allclose(np.asarray(probs), np.bincount(cats, wts, 5) / wts.sum(), rtol=1e-5)
    y = x @ np.array([1.0, -2.0], np.float32) + rng.normal(size=40).astype(np.float32)
    coef = linear_regression(2).fit(None, {"x": jnp.asarray(x), "y": jnp.asarray(y)}, jnp.asarray(wts), None)["w"]
    wls = np.linalg.solve((x.T * wts) @ x, (x.T * wts) @ y)
    np.testing.assert_allclose(np.asarray(coef), wls, rtol=1e-4)


def test_neural_minibatches_draw_rows_in_proportion_to_their_weights():
    wts = jnp.asarray([3.0, 1.0, 0.0, 4.0])
    rows = np.asarray(draw_weighted_rows(jax.random.key(0), jnp.cumsum(wts), 200_000))
    freq = np.bincount(rows, minlength=4) / rows.size
    p = np.asarray(wts) / 8.0
    se = np.sqrt(p * (1 - p) / rows.size)
    assert np.all(np.abs(freq - p) <= 4 * se + 1e-12), (freq, p)


@pytest.mark.parametrize("path", ["stats", "samples"])
def test_unit_weights_equal_the_pooled_fit(path):
    """w = n_real / samples puts weight 1 on every row: the weighted code gives the pooled numbers, exactly on the
    statistic path; on the point path to float32 rounding (the unweighted fit's all-ones mask is a constant XLA
    folds away, the weights are runtime values)."""
    base = ("generations=8", "replicates=40", "loop.samples=40", "loop.real_fraction=0.25", f"engine.path={path}")
    plain = sim(*base).metrics
    weighted = sim(*base, "loop.real_weight=0.25").metrics
    if path == "stats":
        assert plain.equals(weighted)
    else:
        for col in plain.columns:
            scale = float(np.abs(plain[col]).max())  # (frechet is a difference of traces: rounding of its terms)
            np.testing.assert_allclose(weighted[col], plain[col], rtol=2e-5, atol=1e-5 * scale, err_msg=col)


@pytest.mark.parametrize("overrides", [
    ("loop.samples=100", "loop.real_fraction=0.5", "loop.real_weight=0.618"),  # n_real = n_syn: the golden ratio
    ("loop.samples=40", "loop.real_fraction=0.25", "loop.real_weight=0.3", "model.estimator=unbiased",
     "source.dim=2"),
])
def test_weighted_gaussian_chain_follows_its_exact_recursion(overrides):
    res = sim("generations=30", "replicates=3000", "seed=11", *overrides)
    for metric in ("var_ratio", "mean_err"):
        assert_matches_theory(res, metric, generations=(1, 5, 15, 29))


def test_the_point_path_weighs_rows_like_the_statistic_path():
    res = sim("generations=20", "replicates=2000", "seed=5", "engine.path=samples", "loop.samples=60",
              "loop.real_fraction=0.5", "loop.real_weight=0.8")
    assert res.summary["engine_path"] == "samples"
    for metric in ("var_ratio", "mean_err"):
        assert_matches_theory(res, metric, generations=(1, 10, 19))


def test_golden_ratio_is_the_optimal_weight_and_the_stationary_error_is_lowest_there():
    assert th.optimal_real_weight(50, 50) == pytest.approx((5 ** 0.5 - 1) / 2, abs=1e-12)
    w = np.linspace(0.05, 1.0, 400)
    err = [th.weighted_mean_err_known_var(50, 50, v) for v in w]
    assert w[int(np.argmin(err))] == pytest.approx(0.618, abs=0.005)
    fitted = th.optimal_real_weight(50, 50, "fitted")
    assert 0.6 < fitted < 0.618  # refitting the variance moves the optimum a little below 0.618
    grid = [th.gaussian_weighted_stationary(100, 50, v)[1] for v in w]
    assert w[int(np.argmin(grid))] == pytest.approx(fitted, abs=0.005)
    r = 20 / 80  # n_real != n_syn: w^2 + r w - r = 0
    w_star = th.optimal_real_weight(20, 80)
    assert w_star ** 2 + r * w_star - r == pytest.approx(0.0, abs=1e-12)


def test_a_vectorised_sweep_over_the_weight_equals_its_single_runs():
    base = ("generations=6", "replicates=20", "loop.samples=30", "loop.real_fraction=0.5")
    swept = sim(*base, "sweep.loop.real_weight=[0.2,0.618,1.0]").metrics
    for w in (0.2, 0.618, 1.0):
        single = sim(*base, f"loop.real_weight={w}").metrics
        part = swept[swept["loop.real_weight"] == w].drop(columns="loop.real_weight").reset_index(drop=True)
        assert part[single.columns].equals(single), w


def test_a_neural_family_trains_with_weights():
    res = sim("source=ring", "model=vae", "generations=2", "replicates=2", "loop.samples=64", "model.steps=20",
              "loop.real_fraction=0.5", "loop.real_weight=0.9")
    assert np.isfinite(res.metrics["train_loss"]).all()


@pytest.mark.parametrize("args, message", [
    (["loop.real_weight=1.5"], "loop.real_weight=1.5: must be null (pooled fit) or a number in [0, 1]"),
    (["loop.real_weight=-0.1"], "loop.real_weight=-0.1: must be null (pooled fit) or a number in [0, 1]"),
    (["loop.real_weight=0.5"], "loop.real_weight=0.5: needs real and synthetic points in each batch"),
    (["loop.real_weight=0.5", "loop.real_fraction=0.5", "loop.synthetic=accumulate"],
     "loop.synthetic='accumulate': must be replace with loop.real_weight"),
    (["loop.real_weight=0.5", "loop.real_fraction=0.5", "model=gmm"], "model=gmm cannot weigh its rows"),
])
def test_bad_weight_input_is_one_line_exit_2(tmp_path, args, message):
    assert_refused(tmp_path, args, message)
