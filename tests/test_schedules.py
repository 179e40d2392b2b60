"""Contamination schedules: loop.real_fraction and sampling.scale over generations, in one compiled program."""
from __future__ import annotations


import numpy as np
import pytest

from collapse import schedules, theory as th
from collapse.errors import ConfigError
from conftest import assert_matches_theory, assert_refused, by_generation, sim



def test_schedule_values_follow_their_formulas():
    g = np.arange(11.0)
    np.testing.assert_allclose(schedules.values("k", {"schedule": "linear", "start": 0.5, "end": 0.0}, 11),
                               0.5 - 0.05 * g)
    np.testing.assert_allclose(schedules.values("k", {"schedule": "exponential", "start": 0.4, "rate": 0.2}, 11),
                               0.4 * np.exp(-0.2 * g))
    logistic = schedules.values("k", {"schedule": "logistic", "start": 0.5, "end": 0.1, "midpoint": 5, "width": 2}, 11)
    assert logistic[5] == pytest.approx(0.3) and logistic[0] > 0.45 and logistic[10] < 0.15
    np.testing.assert_allclose(schedules.values("k", [0.1, 0.2, 0.3], 3), [0.1, 0.2, 0.3])
    with pytest.raises(ConfigError, match="one value per generation"):
        schedules.values("k", [0.1, 0.2], 3)


@pytest.mark.parametrize("path", ["stats", "samples"])
def test_a_constant_schedule_equals_the_plain_key(path):
    base = ("generations=10", "replicates=30", "loop.samples=40", f"engine.path={path}")
    plain = sim(*base, "loop.real_fraction=0.25", "sampling.scale=0.9").metrics
    scheduled = sim(*base, "loop.real_fraction={schedule:constant,value:0.25}",
                    "sampling.scale=[" + ",".join(["0.9"] * 10) + "]").metrics
    assert plain.equals(scheduled)


@pytest.mark.parametrize("schedule", [
    "{schedule:linear,start:0.5,end:0}",
    "{schedule:logistic,start:0.6,end:0,midpoint:12,width:3}",
])
def test_the_gaussian_chain_under_a_schedule_follows_the_exact_recursion(schedule):
    res = sim("generations=30", "replicates=3000", "seed=7", "loop.samples=40", f"loop.real_fraction={schedule}")
    for metric in ("var_ratio", "mean_err"):
        assert_matches_theory(res, metric, generations=(1, 8, 16, 24, 29))


def test_the_point_path_follows_a_schedule_too():
    res = sim("generations=20", "replicates=1500", "seed=3", "loop.samples=30", "engine.path=samples",
              "loop.real_fraction={schedule:exponential,start:0.5,rate:0.15}")
    assert res.summary["engine_path"] == "samples"
    for metric in ("var_ratio", "mean_err"):
        assert_matches_theory(res, metric, generations=(1, 10, 19))


def test_categorical_gini_simpson_under_a_schedule():
    res = sim("source=zipf", "model=categorical", "source.categories=50", "generations=25", "replicates=2000",
              "seed=2", "loop.samples=60", "loop.real_fraction={schedule:linear,start:0.5,end:0}")
    assert_matches_theory(res, "gini_simpson", generations=(1, 12, 24))


def test_a_scale_schedule_multiplies_the_fully_synthetic_variance():
    """Fully synthetic MLE chain drawn at scale c_g: E[var_ratio_g] = ((M - 1)/M)^(g + 1) prod_{k=1..g} c_k."""
    M, G = 20, 12
    scales = [1.0] + [0.9 + 0.02 * k for k in range(1, G)]
    res = sim(f"generations={G}", "replicates=4000", "seed=9", f"loop.samples={M}",
              "sampling.scale=[" + ",".join(f"{c:g}" for c in scales) + "]")
    m = by_generation(res.metrics, "var_ratio")
    expected = ((M - 1) / M) ** (np.arange(G) + 1) * np.cumprod(scales)
    se = m.std(1, ddof=1) / np.sqrt(m.shape[1])
    assert np.all(np.abs(m.mean(1) - expected) <= 4 * se), (m.mean(1), expected)


def test_schedule_theory_reduces_to_the_constant_forms():
    g = np.arange(20)
    x, y = th.gaussian_fresh_moments(g, 40, [10] * 20)
    x0, y0 = th.gaussian_fresh_moments(g, 40, 10)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(y, y0)


@pytest.mark.parametrize("args, message", [
    (["loop.real_fraction={schedule:linear,start:0.5,end:-0.2}"], "its values must lie in [0, 1]; generation 3 gets -0.025"),
    (["loop.real_fraction=[0.5,0.4]"], "a list schedule needs one value per generation: 5 values"),
    (["sampling.scale=[1,1,1,1]"], "a list schedule needs one value per generation: 5 values"),
    (["sampling.scale=[1,1,0,1,1]"], "sampling.scale=[1, 1, 0, 1, 1]: its values must be > 0; generation 2"),
    (["loop.real_fraction={schedule:cubic}"], "loop.real_fraction.schedule='cubic': must be one of constant"),
    (["loop.real_fraction={schedule:linear,start:0.5}"], "takes exactly the keys start, end (missing end)"),
    (["loop.real_fraction={schedule:linear,start:0.5,end:0}", "loop.real=fixed"], "loop.real='fixed': must be fresh"),
])
def test_bad_schedules_are_one_line_exit_2(tmp_path, args, message):
    assert_refused(tmp_path, args, message, generations=5)
