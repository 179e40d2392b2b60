"""Model ecosystems (loop.models = M): M lineages per replicate sharing a pool of synthetic data."""
from __future__ import annotations


import numpy as np
import pandas as pd
import pytest

from collapse import theory as th
from collapse.ecosystem import mixing_matrix
from conftest import assert_matches_theory, assert_refused, assert_resume_matches, sim

GAUSS = ("source=gaussian", "model=gaussian", "metrics.sample_based=false", "loop.samples=20")


def test_mixing_forms():
    np.testing.assert_allclose(mixing_matrix(3, None), np.full((3, 3), 1 / 3))
    np.testing.assert_allclose(mixing_matrix(3, 0.7), [[0.7, 0.15, 0.15], [0.15, 0.7, 0.15], [0.15, 0.15, 0.7]])
    np.testing.assert_allclose(mixing_matrix(2, [0.2, 0.8]), [[0.2, 0.8], [0.2, 0.8]])
    np.testing.assert_allclose(mixing_matrix(2, [[1, 0], [0.5, 0.5]]), [[1, 0], [0.5, 0.5]])


def test_theory_reduces_to_one_chain_and_to_isolated_chains():
    g = np.arange(40)
    x, y = th.gaussian_fresh_moments(g, 20, 5, "unbiased")
    one = th.gaussian_ecosystem_moments(g, 20, 5, np.ones((1, 1)), "unbiased")
    np.testing.assert_allclose(one["var_ratio"], x, rtol=1e-12)
    np.testing.assert_allclose(one["mean_err"], y, rtol=1e-12)
    assert np.all(one["spread"] == 0)
    iso = th.gaussian_ecosystem_moments(g, 20, 0, np.eye(3))  # isolated lineages: M independent plain chains
    np.testing.assert_allclose(iso["var_ratio"], th.gaussian_var_ratio(g, 20), rtol=1e-12)
    # independent means: spread = (1 - 1/M) E||mu||^2, and the MLE invariant E tr S + E||mu||^2 = d s^2
    np.testing.assert_allclose(iso["spread"], (2 / 3) * iso["mean_err"], rtol=1e-12)
    np.testing.assert_allclose(iso["var_ratio"] + iso["mean_err"], 1.0, rtol=1e-12)


@pytest.mark.parametrize("overrides", [
    ("loop.models=3", "loop.mixing=0.5", "loop.real_fraction=0.2", "source.dim=2"),
    ("loop.models=2", "loop.mixing=[[0.9,0.1],[0.3,0.7]]", "loop.real_fraction=0.1", "model.estimator=unbiased"),
])
def test_gaussian_ecosystem_matches_the_coupled_recursion(overrides):
    res = sim(*GAUSS, "replicates=1000", "generations=20", "seed=11", *overrides)
    gens = (1, 5, 19)
    for metric in ("var_ratio", "mean_err", "spread", "pool_var_ratio", "lineage0/var_ratio", "lineage1/mean_err"):
        assert_matches_theory(res, metric, generations=gens)


def test_columns_are_lineage_means_and_the_pool_adds_the_spread():
    res = sim(*GAUSS, "replicates=20", "generations=4", "loop.models=3", "loop.real_fraction=0.3")
    df = res.metrics
    for name in ("var_ratio", "mean_err", "nll_real"):
        lineages = np.stack([df[f"lineage{i}/{name}"] for i in range(3)])
        np.testing.assert_allclose(df[name], lineages.mean(0), rtol=1e-5)
    # MLE moments: tr S_pool = mean tr S_i + (1/M) sum ||mu_i - mu_bar||^2 (one source dimension, tr S0 = 1)
    np.testing.assert_allclose(df["pool_var_ratio"], df["var_ratio"] + df["spread"], rtol=1e-4)
    assert (df["spread"] > 0).all()


def test_one_model_is_todays_loop_number_for_number():
    base = sim(*GAUSS, "replicates=8", "generations=6", "loop.real_fraction=0.2").metrics
    one = sim(*GAUSS, "replicates=8", "generations=6", "loop.real_fraction=0.2", "loop.models=1",
              "loop.mixing=0.3").metrics
    pd.testing.assert_frame_equal(base, one)
    assert not any(c.startswith(("lineage", "pool_", "spread")) for c in one.columns)


def test_vectorised_sweep_equals_single_runs():
    common = (*GAUSS, "replicates=30", "generations=6", "seed=2", "loop.models=2", "loop.mixing=0.8")
    swept = sim(*common, "sweep.loop.real_fraction=[0.1,0.3]").metrics
    for frac in (0.1, 0.3):
        single = sim(*common, f"loop.real_fraction={frac}").metrics
        part = swept[swept["loop.real_fraction"] == frac]
        for name in ("var_ratio", "spread", "pool_var_ratio", "lineage1/mean_err"):
            # float32: the sweep interleaves real and synthetic rows by position, a single run concatenates them, so
            # sums run in another order (a few ulps; spread is a difference of nearby sums)
            np.testing.assert_allclose(part[name].to_numpy(), single[name].to_numpy(), rtol=1e-5, atol=1e-7)


def test_categorical_pool_keeps_symbols_every_lineage_lost():
    res = sim("source=zipf", "model=categorical", "source.categories=50", "loop.samples=40", "replicates=50",
              "generations=30", "loop.models=4", "loop.mixing=1.0", "metrics.sample_based=false")
    df = res.metrics
    lineages = np.stack([df[f"lineage{i}/support"] for i in range(4)])
    assert (df["pool_support"] >= lineages.max(0)).all()  # the union of supports
    last = df[df["generation"] == 29]
    assert (last["pool_support"] > last["support"]).mean() > 0.9  # isolated lineages lose different symbols
    gs = np.stack([df[f"lineage{i}/gini_simpson"] for i in range(4)])
    assert (df["pool_gini_simpson"] >= gs.mean(0) - 1e-6).all()  # concavity: the mixture is more diverse


def test_a_killed_ecosystem_resumes_to_the_same_numbers(tmp_path, monkeypatch):
    args = [*GAUSS, "replicates=4", "generations=9", "loop.models=3", "loop.real_fraction=0.2", "engine.chunks=4",
            "checkpoint.every=1", "quiet=true"]
    resumed = assert_resume_matches(tmp_path, monkeypatch, args)
    assert "lineage2/var_ratio" in resumed.columns


@pytest.mark.parametrize("args, message", [
    (["loop.models=0"], "loop.models=0: must be an integer >= 1 (model lineages per replicate)"),
    (["loop.models=2", "loop.mixing=[0.5,0.6]"], "loop.mixing=[0.5, 0.6]: must be null (uniform), a self share"),
    (["loop.models=2", "loop.mixing=[[1,0]]"], "loop.mixing=[[1, 0]]: must be null (uniform)"),
    (["loop.models=2", "loop.mixing=1.5"], "loop.mixing=1.5: must be null (uniform)"),
    (["loop.models=2", "curation=threshold"], "loop.models=2: must be 1 with curation=threshold"),
    (["loop.models=2", "engine.path=stats"], "engine.path='stats': not available here"),
])
def test_bad_ecosystem_input_is_one_line_exit_2(tmp_path, args, message):
    assert_refused(tmp_path, args, message)
