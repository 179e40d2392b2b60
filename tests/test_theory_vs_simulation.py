"""Every closed form of collapse.theory, reproduced by simulation within 4 Monte-Carlo standard errors,
on both engine paths (points, and exactly drawn sufficient statistics). Seeds are fixed (0) up front."""
import numpy as np
import pytest

from conftest import assert_matches_theory, sim

PATHS = ["samples", "stats"]


@pytest.mark.parametrize("path", PATHS)
def test_gaussian_mle_variance_mean_and_w2(path):
    res = sim("generations=12", "replicates=4000", "loop.samples=20", f"engine.path={path}")
    assert res.summary["engine_path"] == path
    for metric in ("var_ratio", "mean_err", "frechet"):
        assert_matches_theory(res, metric)


@pytest.mark.parametrize("path", PATHS)
def test_gaussian_unbiased_is_a_martingale_with_growing_mean_error(path):
    res = sim("generations=10", "replicates=4000", "loop.samples=20", "model.estimator=unbiased",
              f"engine.path={path}")
    assert_matches_theory(res, "var_ratio")
    assert_matches_theory(res, "mean_err")
    assert_matches_theory(res, "frechet")


@pytest.mark.parametrize("path", PATHS)
def test_gaussian_logdet_drift_in_ten_dimensions(path):
    res = sim("generations=5", "replicates=600", "source.dim=10", "loop.samples=100", f"engine.path={path}")
    assert_matches_theory(res, "logdet_ratio")
    assert_matches_theory(res, "var_ratio")


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("mode", ["replace", "accumulate"])
def test_linear_regression_test_error(path, mode):
    res = sim("source=linear", "model=linear_regression", "model.label_noise=source", "generations=8",
              "replicates=3000", "source.dim=10", "loop.samples=40", f"loop.synthetic={mode}", f"engine.path={path}")
    assert res.summary["engine_path"] == path
    assert_matches_theory(res, "test_error")


@pytest.mark.parametrize("path", PATHS)
def test_categorical_support_after_one_fit_and_gini_simpson(path):
    res = sim("source=zipf", "model=categorical", "generations=6", "replicates=300", "loop.samples=10000",
              f"engine.path={path}")
    assert_matches_theory(res, "support", generations=[0])
    assert_matches_theory(res, "gini_simpson")
    g0 = res.metrics[res.metrics.generation == 0]["support"]
    assert abs(g0.mean() - 837.7) < 4 * g0.std(ddof=1) / np.sqrt(len(g0)) + 0.05


def test_float64_matches_theory_too():
    res = sim("precision=float64", "generations=10", "replicates=3000", "loop.samples=20")
    assert res.metrics["var_ratio"].dtype == np.float64
    assert_matches_theory(res, "var_ratio")
    assert_matches_theory(res, "mean_err")
