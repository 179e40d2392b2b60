"""The regimes behave as the literature says (fixed seeds, tolerances from standard errors)."""
import numpy as np

from conftest import by_generation, sim


def test_fully_synthetic_collapses_accumulate_stays_bounded_fresh_is_stationary():
    common = ("generations=150", "replicates=400", "loop.samples=20")
    replace = by_generation(sim(*common).metrics, "var_ratio")
    accumulate = by_generation(sim(*common, "loop.synthetic=accumulate").metrics, "var_ratio")
    fresh = sim(*common, "loop.real_fraction=0.2")
    fresh_v = by_generation(fresh.metrics, "var_ratio")
    # replace: median variance follows exp(n E[log chi2_{M-1}/M]) -> tiny after 150 fits of M=20
    assert np.median(replace[-1]) < 0.01
    # accumulate: the pooled data set grows, so the variance stops moving: bounded away from 0
    assert np.median(accumulate[-1]) > 0.5
    assert np.quantile(accumulate[-1], 0.05) > 0.2
    # fresh real data: stationary below 1 (compare the last 50 generations with the 50 before)
    late, earlier = fresh_v[-50:].mean(), fresh_v[-100:-50].mean()
    se = fresh_v[-50:].mean(axis=0).std(ddof=1) / np.sqrt(fresh_v.shape[1])
    assert 0.3 < late < 1.0 - 4 * se
    assert abs(late - earlier) < 6 * se


def test_fresh_data_stationary_variance_matches_recursion():
    from collapse.theory import gaussian_fresh_var_ratio
    res = sim("generations=40", "replicates=3000", "loop.samples=20", "loop.real_fraction=0.25")
    m = by_generation(res.metrics, "var_ratio")
    expected = gaussian_fresh_var_ratio(np.arange(40), 20, 5)
    se = m.std(axis=1, ddof=1) / np.sqrt(m.shape[1])
    assert np.all(np.abs(m.mean(axis=1) - expected) < 4 * se + 1e-9)


def test_categorical_support_never_increases_and_tails_go_first():
    res = sim("source=zipf", "model=categorical", "source.categories=200", "generations=60", "replicates=200",
              "loop.samples=500")
    support = by_generation(res.metrics, "support")
    assert np.all(np.diff(support, axis=0) <= 0)
    assert np.all(support[-1] < support[0])
    tail = by_generation(res.metrics, "tail_mass")
    # each p_k is a martingale under multinomial resampling, so E[tail_mass] stays 1 while the typical
    # chain loses its tail: the median falls, the mean does not move beyond Monte-Carlo error
    assert np.median(tail[-1]) < 0.9 * np.median(tail[0])
    assert abs(tail[-1].mean() - 1.0) < 4 * tail[-1].std(ddof=1) / np.sqrt(tail.shape[1])
    assert np.all(np.isinf(by_generation(res.metrics, "kl_true")[-1]))


def test_linear_regression_replace_grows_linearly_accumulate_is_bounded():
    common = ("source=linear", "model=linear_regression", "model.label_noise=source", "source.dim=10",
              "loop.samples=100", "generations=30", "replicates=1000")
    rep = by_generation(sim(*common).metrics, "test_error").mean(axis=1)
    acc = by_generation(sim(*common, "loop.synthetic=accumulate").metrics, "test_error")
    per_fit = 10 / (100 - 10 - 1)
    slope = np.polyfit(np.arange(30) + 1, rep, 1)[0]
    assert abs(slope - per_fit) < 0.15 * per_fit
    bound = np.pi**2 / 6 * per_fit
    se = acc.std(axis=1, ddof=1) / np.sqrt(acc.shape[1])
    assert np.all(acc.mean(axis=1) < bound + 4 * se)
    assert acc.mean(axis=1)[-1] > acc.mean(axis=1)[0]


def test_sampling_scale_below_one_speeds_up_collapse():
    base = by_generation(sim("generations=20", "replicates=500").metrics, "var_ratio")[-1]
    shrunk = by_generation(sim("generations=20", "replicates=500", "sampling.scale=0.9").metrics, "var_ratio")[-1]
    # E[var] multiplies by scale each generation (scale enters before each fit): 0.9^19 ~ 0.135 relative
    assert shrunk.mean() < 0.25 * base.mean()


def test_accumulate_subsample_and_fixed_real_run_and_differ_from_replace():
    common = ("generations=30", "replicates=300", "loop.samples=20")
    sub = by_generation(sim(*common, "loop.synthetic=accumulate_subsample").metrics, "var_ratio")[-1]
    rep = by_generation(sim(*common).metrics, "var_ratio")[-1]
    assert np.median(sub) > np.median(rep)
    fixed = sim(*common, "loop.real=fixed", "loop.real_fraction=0.5")
    assert np.isfinite(fixed.metrics["var_ratio"]).all()
