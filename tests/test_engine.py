"""Engine properties: determinism, replicate independence, path equivalence in distribution, thinning."""
import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from conftest import by_generation, sim


def test_same_seed_same_numbers_bitwise_and_other_seed_differs():
    a = sim("generations=5", "replicates=50", "metrics.sample_based=true", "metrics.sample_replicates=3",
            "metrics.eval_samples=100", "metrics.sample_every=2")
    b = sim("generations=5", "replicates=50", "metrics.sample_based=true", "metrics.sample_replicates=3",
            "metrics.eval_samples=100", "metrics.sample_every=2")
    pd.testing.assert_frame_equal(a.metrics, b.metrics)
    c = sim("generations=5", "replicates=50", "seed=1")
    assert not np.allclose(a.metrics["var_ratio"], c.metrics["var_ratio"])


def test_replicate_numbers_do_not_depend_on_replicate_count_or_every():
    small = sim("generations=9", "replicates=3", "source.dim=2", "loop.synthetic=accumulate")
    big = sim("generations=9", "replicates=8", "source.dim=2", "loop.synthetic=accumulate", "metrics.every=4",
              "engine.chunks=3")
    assert sorted(big.metrics.generation.unique()) == [0, 4, 8]
    joined = small.metrics.merge(big.metrics, on=["replicate", "generation"], suffixes=("", "_big"))
    assert len(joined) == 3 * 3
    np.testing.assert_allclose(joined["var_ratio"], joined["var_ratio_big"], rtol=1e-6)


def test_replicates_run_block_after_block_give_the_numbers_of_one_vmap():
    """engine.rows_at_once=k runs k rows at a time (the largest divisor of the rows <= k) in the same program: the
    same numbers as all rows together, to float rounding (a reduction may fuse differently: 1-2 ulp; tail_mass, a
    difference of probabilities near 1, amplifies that to ~6e-5 relative)."""
    from collapse.engine import at_once

    assert [at_once(6, k) for k in (None, 1, 2, 4, 6, 9)] == [6, 1, 2, 3, 6, 6]
    args = ("generations=5", "replicates=6", "source.dim=2", "metrics.sample_based=true", "metrics.sample_replicates=6",
            "metrics.eval_samples=100")
    together = sim(*args).metrics
    for k in (1, 4):
        blocks = sim(*args, f"engine.rows_at_once={k}").metrics
        assert list(blocks.columns) == list(together.columns) and len(blocks) == len(together)
        for c in together.columns:
            rtol = 2e-4 if c == "tail_mass" else 2e-6
            np.testing.assert_allclose(blocks[c], together[c], rtol=rtol, atol=1e-7, err_msg=f"{c} at rows_at_once={k}")


def test_sample_metrics_are_thinned_by_generation_and_replicate():
    res = sim("generations=7", "replicates=6", "metrics.sample_based=true", "metrics.sample_replicates=2",
              "metrics.eval_samples=64", "metrics.sample_every=3")
    rec = by_generation(res.metrics, "recall")
    assert np.isfinite(rec[[0, 3, 6]][:, :2]).all()
    assert np.isnan(rec[[1, 2, 4, 5]]).all()
    assert np.isnan(rec[:, 2:]).all()
    assert np.isfinite(res.metrics["var_ratio"]).all()


def _ks(a, b):
    return sps.ks_2samp(a, b).pvalue


@pytest.mark.parametrize("overrides,metric", [
    (("source.dim=3", "loop.samples=10"), "logdet_ratio"),
    (("source.dim=1", "loop.samples=10", "loop.real_fraction=0.3", "loop.real=fixed"), "var_ratio"),
    (("source.dim=1", "loop.samples=10", "loop.synthetic=accumulate", "model.estimator=unbiased"), "mean_err"),
    (("source=zipf", "model=categorical", "source.categories=50", "loop.samples=200"), "support"),
    (("source=linear", "model=linear_regression", "source.dim=3", "loop.samples=12"), "test_error"),
    (("source=linear", "model=linear_regression", "source.dim=3", "loop.samples=12", "source.design=fresh",
      "loop.synthetic=accumulate", "loop.real_fraction=0.5"), "noise_var"),
])
def test_statistic_path_agrees_with_sample_path_in_distribution(overrides, metric):
    """Two-sample KS test on the metric at the last generation (independent seeds, 2000 chains each)."""
    common = ("generations=4", "replicates=2000", *overrides)
    a = sim(*common, "engine.path=samples", "seed=1")
    b = sim(*common, "engine.path=stats", "seed=2")
    assert a.summary["engine_path"] == "samples" and b.summary["engine_path"] == "stats"
    x = by_generation(a.metrics, metric)[-1]
    y = by_generation(b.metrics, metric)[-1]
    assert _ks(x, y) > 1e-3, (metric, x.mean(), y.mean())


def test_continuous_metrics_at_generation_zero_are_sane():
    res = sim("generations=1", "replicates=2000", "loop.samples=1000", "metrics.sample_based=true",
              "metrics.sample_replicates=20", "metrics.eval_samples=500")
    m = res.metrics
    # a fit on 1000 real points is close to the truth: tail_mass ~ 1, kl ~ d/(2n) small
    assert abs(m["tail_mass"].mean() - 1.0) < 0.05
    assert m["kl_true"].mean() < 0.01
    assert abs(m["nll_real"].mean() - 0.5 * np.log(2 * np.pi * np.e)) < 0.02
    r = m["recall"].dropna()
    assert len(r) == 20 and 0.5 < r.mean() <= 1.0


@pytest.mark.parametrize("overrides", [
    ("source=gmm", "model=gmm", "loop.samples=200", "model.em_steps=5"),
    ("source=gmm", "model=kde", "loop.samples=100", "loop.synthetic=accumulate"),
    ("source=student_t", "model=gaussian", "loop.samples=100", "loop.synthetic=accumulate_subsample"),
    ("source=gaussian", "model=kde", "source.dim=2", "loop.samples=50", "loop.real=fixed", "loop.real_fraction=0.2"),
    ("source=student_t", "model=gmm", "source.dim=2", "model.components=2", "loop.samples=100"),
])
def test_every_continuous_pair_runs_with_finite_metrics(overrides):
    res = sim("generations=4", "replicates=4", "metrics.sample_based=true", "metrics.eval_samples=64",
              "metrics.sample_every=1", *overrides)
    assert res.summary["engine_path"] == "samples"
    cols = [c for c in res.metrics.columns if c not in ("replicate", "generation")]
    assert {"var_ratio", "tail_mass", "precision", "vendi"} <= set(cols)
    assert np.isfinite(res.metrics[cols].to_numpy()).all(), res.metrics[cols].describe()


def test_kde_keeps_a_student_t_tail_that_a_gaussian_fit_loses():
    common = ("source=student_t", "source.df=3", "generations=1", "replicates=200", "loop.samples=2000")
    gauss = sim(*common, "model=gaussian").metrics["tail_mass"]
    kde = sim(*common, "model=kde").metrics["tail_mass"]
    # a Gaussian with the t's variance puts less mass beyond the t's 1% region than the t itself
    assert gauss.mean() + 4 * gauss.std(ddof=1) / np.sqrt(200) < 1.0
    assert abs(kde.mean() - 1.0) < abs(gauss.mean() - 1.0)


def test_replicate_groups_draw_only_in_the_first_group():
    """Sample metrics go to the first sample_replicates replicates; the kept model draws (samples.npz) are drawn
    by the first group only, which without sample metrics is a 2-replicate group once a run has >= 64."""
    from collapse.engine import ARTIFACT_REPLICATES, DRAWS_SPLIT_MIN, replicate_groups

    def shape(groups):
        return [(int(ids[0]), int(ids[-1]), s, d) for ids, s, d in groups]

    assert shape(replicate_groups(1000, 20, True)) == [(0, 19, True, True), (20, 999, False, False)]
    assert shape(replicate_groups(1000, 0, True)) == [(0, ARTIFACT_REPLICATES - 1, False, True),
                                                      (ARTIFACT_REPLICATES, 999, False, False)]
    assert shape(replicate_groups(DRAWS_SPLIT_MIN - 1, 0, True)) == [(0, DRAWS_SPLIT_MIN - 2, False, True)]
    assert shape(replicate_groups(1000, 0, False)) == [(0, 999, False, False)]
    assert shape(replicate_groups(10, 20, True)) == [(0, 9, True, True)]


def test_samples_npz_without_sample_metrics_comes_from_replicate_0(tmp_path):
    """A run of 64 replicates without sample metrics draws its kept model draws in a group of its own: samples.npz
    holds replicate 0's draws at the sampled generations, and the metrics of every replicate are there."""
    import collapse

    res = collapse.simulate("generations=3", "replicates=64", "metrics.sample_based=false", "metrics.sample_every=2",
                            "metrics.draws=50", "quiet=true", run_dir=tmp_path / "r")
    with np.load(tmp_path / "r" / "samples.npz") as z:
        assert int(z["replicate"]) == 0
        assert list(z["generation"]) == [0, 2] and z["draws"].shape[:2] == (2, 50)
    assert [g["replicates"] for g in res.summary["phases"]["groups"]] == ["0-1", "2-63"]
    assert res.metrics.groupby("generation")["var_ratio"].count().tolist() == [64, 64, 64]
