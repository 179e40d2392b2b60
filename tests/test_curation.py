"""Curation (``curation=...``): selection rules on hand-made scores, the engine wiring, and the phenomena the
literature expects, on small fully synthetic chains with fixed seeds (seed 0, chosen before looking)."""
import json
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import collapse
from collapse.analysis import load_sweep
from collapse.cli import main
from collapse.curation import detector as det, select as sel

CLI = str(Path(sys.executable).parent / "collapse")
FAST = ["quiet=true", "metrics.sample_based=false", "metrics.draws=0", "loop.samples=100", "replicates=200"]


def _final(df, col, g=None):
    """(mean, standard error) over replicates of ``col`` at generation ``g`` (default: the last)."""
    g = int(df["generation"].max()) if g is None else g
    v = df.loc[df["generation"] == g, col].to_numpy(np.float64)
    return v.mean(), v.std(ddof=1) / np.sqrt(len(v))


# ----- selection rules on hand-made scores ----------------------------------------------------------------
def test_threshold_keeps_scores_at_or_above_the_quantile_in_candidate_order():
    s = jnp.array([5.0, 1.0, 4.0, 2.0, 3.0, 0.0, jnp.nan, 6.0])
    idx, accepted = sel.threshold(None, s, 3, quantile=0.5)
    # sorted (NaN lowest): -inf 0 1 2 | 3 4 5 6 -> bar s_(4) = 3; accepted {0, 2, 4, 7}; the first 3 kept
    assert idx.tolist() == [0, 2, 4] and int(accepted) == 4
    idx, accepted = sel.threshold(None, s, 2, quantile=0.75)  # bar s_(6) = 5: {0, 7}
    assert idx.tolist() == [0, 7] and int(accepted) == 2
    idx, accepted = sel.threshold(None, jnp.ones(6), 3, quantile=0.5)  # ties all pass
    assert idx.tolist() == [0, 1, 2] and int(accepted) == 6
    assert sel.threshold_candidates(100, 2.0) == 200 and sel.threshold_candidates(7, 1.5) == 11


def test_best_of_keeps_the_best_of_each_group():
    s = jnp.array([0.0, 3.0, 1.0, 2.0, 9.0, 9.0, 5.0, jnp.nan, 4.0])
    idx, accepted = sel.best_of(None, s, 3, k=3)
    assert idx.tolist() == [1, 4, 6] and int(accepted) == 3  # a tie keeps the first; NaN loses


def test_pairwise_follows_bradley_terry():
    n = 20000
    key = jax.random.key(0)
    # score difference 1 at temperature 1: P(first) = sigmoid(1) = 0.7311; at temperature 0.5: sigmoid(2)
    for temp, p in ((1.0, 1 / (1 + np.exp(-1))), (0.5, 1 / (1 + np.exp(-2)))):
        s = jnp.tile(jnp.array([1.0, 0.0]), n)
        idx, accepted = sel.pairwise(key, s, n, temperature=temp)
        first = float(jnp.mean(idx % 2 == 0))
        assert abs(first - p) < 4 * np.sqrt(p * (1 - p) / n) and int(accepted) == n
    idx, _ = sel.pairwise(key, jnp.tile(jnp.array([0.0, 50.0]), 100), 100, temperature=1e-3)
    assert bool(jnp.all(idx % 2 == 1))  # a near-zero temperature always keeps the better one
    cand = {"x": jnp.arange(12.0).reshape(6, 2), "y": jnp.arange(6)}  # take_pairs == a gather, any tree
    pick = jnp.array([1, 2, 4])
    out = sel.take_pairs(cand, pick)
    assert out["x"].tolist() == cand["x"][pick].tolist() and out["y"].tolist() == [1, 2, 4]


def test_importance_resamples_with_weights_exp_score():
    n = 20000
    idx, accepted = sel.importance(jax.random.key(1), jnp.log(jnp.array([1.0, 3.0, 0.0, 4.0])), n, temperature=1.0)
    freq = np.bincount(np.asarray(idx), minlength=4) / n
    want = np.array([1, 3, 0, 4]) / 8
    assert np.all(np.abs(freq - want) < 4 * np.sqrt(want * (1 - want) / n) + 1e-12)
    assert int(accepted) == 3  # the zero-weight candidate is never drawn
    idx, accepted = sel.importance(jax.random.key(2), jnp.array([-jnp.inf, jnp.nan, 0.0]), 50, temperature=1.0)
    assert set(np.asarray(idx).tolist()) == {2} and int(accepted) == 1
    idx, _ = sel.importance(jax.random.key(3), jnp.array([0.0, 2.0]), n, temperature=2.0)  # weights e^0, e^1
    assert abs(float(jnp.mean(idx == 1)) - np.e / (1 + np.e)) < 4 * np.sqrt(0.25 / n)


def test_systematic_resampling_keeps_each_candidate_its_expected_count_to_within_one():
    w = jnp.log(jnp.array([1.0, 3.0, 0.0, 4.0]))
    for seed in range(5):  # n w_i integer: the counts are exact whatever U is
        idx, accepted = sel.importance_systematic(jax.random.key(seed), w, 8, temperature=1.0)
        assert idx.tolist() == [0, 1, 1, 1, 3, 3, 3, 3] and int(accepted) == 3
    s = jax.random.normal(jax.random.key(9), (50,))
    p = np.asarray(jax.nn.softmax(s))
    for seed in range(20):
        idx, accepted = sel.importance_systematic(jax.random.key(seed), s, 37, temperature=1.0)
        counts = np.bincount(np.asarray(idx), minlength=50)
        assert counts.sum() == 37 and np.all(np.abs(counts - 37 * p) < 1 + 1e-5)
        assert int(accepted) == int(np.sum(counts > 0))


@pytest.mark.parametrize("newton", [True, False])
def test_detector_learns_the_gaussian_log_ratio(newton, monkeypatch):
    """Real N(0, 1) vs candidates N(0, 0.5): log p_real - log p_cand = x^2 / 2 + log sqrt(0.5), exactly quadratic.
    Both fits: Newton (few features) and Adam (forced by allowing Newton for no feature count)."""
    if not newton:
        monkeypatch.setattr(det, "NEWTON_FEATURES", 0)
    k1, k2 = jax.random.split(jax.random.key(0))
    real = jax.random.normal(k1, (4000, 1))
    cand = jnp.sqrt(0.5) * jax.random.normal(k2, (4000, 1))
    score = det.train_detector(det.features_for("continuous", 1), steps=300, lr=0.1, l2=0.0)
    x = jnp.linspace(-1.5, 1.5, 7)[:, None]
    f = score(real, jnp.concatenate([cand, x]))[-7:]
    truth = 0.5 * x[:, 0] ** 2 + 0.5 * np.log(0.5)
    np.testing.assert_allclose(np.asarray(f), np.asarray(truth), atol=0.15)


# ----- the engine ------------------------------------------------------------------------------------------
def test_none_reproduces_the_uncurated_engine_exactly():
    # every replicate with sample metrics: one replicate group, one pair of programs per run
    base = ["generations=6", "replicates=3", "metrics.sample_replicates=3", "metrics.sample_every=5"]
    plain = collapse.simulate(*base).metrics
    with_reward = collapse.simulate(*base, "curation=none", "metrics.reward_mean=true").metrics
    assert list(with_reward.columns.drop(["accept_rate", "reward_mean"])) == list(plain.columns)
    assert (with_reward.loc[with_reward["generation"] > 0, "accept_rate"] == 1).all()  # none keeps every point
    for col in plain.columns:
        np.testing.assert_array_equal(with_reward[col].to_numpy(), plain[col].to_numpy(), err_msg=col)
    # keep-everything rules select the candidates as drawn: the uncurated sample path, number for number
    samples = collapse.simulate(*base, "engine.path=samples").metrics
    for rule in (["curation=threshold", "curation.quantile=0", "curation.oversample=1"],
                 ["curation=best_of", "curation.k=1"]):
        kept = collapse.simulate(*base, *rule).metrics
        for col in samples.columns:
            np.testing.assert_array_equal(kept[col].to_numpy(), samples[col].to_numpy(), err_msg=f"{rule} {col}")
        assert np.isnan(_final(kept, "accept_rate", 0)[0]) and _final(kept, "accept_rate")[0] == 1.0


@pytest.mark.parametrize("rule, rate", [
    (["curation=best_of", "curation.k=4"], 0.25),
    (["curation=pairwise"], 0.5),
    (["curation=threshold", "curation.quantile=0.5", "curation.oversample=2"], 0.5),  # 200 - floor(100) pass
    (["curation=threshold", "curation.quantile=0.3", "curation.oversample=2"], 0.7),  # 200 - 60 pass
])
def test_accept_rate_equals_its_definition(rule, rate):
    df = collapse.simulate("generations=4", "replicates=6", "quiet=true", "metrics.sample_based=false", *rule,
                           "curation.score=true_loglik").metrics
    later = df.loc[df["generation"] > 0, "accept_rate"].to_numpy()
    assert np.all(np.abs(later - rate) < 1e-6) and df.loc[df["generation"] == 0, "accept_rate"].isna().all()


def test_importance_accept_rate_counts_distinct_candidates():
    df = collapse.simulate("generations=3", "replicates=50", "quiet=true", "metrics.sample_based=false",
                           "curation=importance", "curation.score=model_loglik", "curation.oversample=4").metrics
    rate = df.loc[df["generation"] > 0, "accept_rate"].to_numpy()
    # 100 draws with replacement from 400 candidates: at most 100 distinct, and far more than 1
    assert np.all(rate <= 100 / 400 + 1e-7) and np.all(rate > 10 / 400)


# ----- what the literature expects -------------------------------------------------------------------------
def test_filtering_by_model_likelihood_erodes_tails_sooner():
    none = collapse.simulate(*FAST, "generations=4").metrics
    kept = collapse.simulate(*FAST, "generations=4", "curation=threshold", "curation.score=model_loglik").metrics
    (m0, s0), (m1, s1) = _final(none, "tail_mass", 1), _final(kept, "tail_mass", 1)
    assert m1 < m0 - 4 * np.hypot(s0, s1)
    # the curated chain's tail mass is gone after one generation; the uncurated one still holds most of it at 3
    assert m1 < 0.5 and _final(none, "tail_mass", 3)[0] > 0.5
    assert _final(kept, "var_ratio", 3)[0] < _final(none, "var_ratio", 3)[0]


@pytest.mark.parametrize("score, resampling", [("density_ratio", "multinomial"), ("detector", "multinomial"),
                                               ("density_ratio", "systematic")])
def test_density_ratio_resampling_keeps_a_synthetic_gaussian_from_collapsing(score, resampling):
    G = 50
    none = collapse.simulate(*FAST, f"generations={G}").metrics
    kept = collapse.simulate(*FAST, f"generations={G}", "curation=importance", f"curation.score={score}",
                             f"curation.resampling={resampling}").metrics
    (m0, s0), (m1, s1) = _final(none, "var_ratio"), _final(kept, "var_ratio")
    assert m1 > m0 + 4 * np.hypot(s0, s1)  # the uncurated variance decays ((n-1)/n)^g ~ 0.61
    g0 = _final(kept, "var_ratio", 0)[0]
    assert abs(m1 - g0) < max(4 * s1, 0.1 * g0)  # "near the generation-0 level": within 10% (or 4 SE)


@pytest.mark.parametrize("rule", ["best_of", "pairwise"])
def test_reward_curation_moves_mass_to_the_maximiser_and_diversity_falls(rule):
    none = collapse.simulate(*FAST, "generations=10", "metrics.reward_mean=true").metrics
    kept = collapse.simulate(*FAST, "generations=10", f"curation={rule}", "curation.score=reward").metrics
    (r0, e0), (r1, e1) = _final(none, "reward_mean"), _final(kept, "reward_mean")
    assert r1 > r0 + 4 * np.hypot(e0, e1)  # reward -||x - 1||^2 / 2 rises toward its maximum 0
    (v0, f0), (v1, f1) = _final(none, "var_ratio"), _final(kept, "var_ratio")
    assert v1 < v0 - 4 * np.hypot(f0, f1)
    assert _final(kept, "mean_err")[0] > _final(none, "mean_err")[0]  # the mean walked away from 0, toward 1


def test_curation_on_text_and_discrete_sources():
    df = collapse.simulate("experiment=markov_ngram", "generations=3", "replicates=2", "quiet=true",
                           "curation=best_of", "curation.score=density_ratio").metrics
    assert np.allclose(df.loc[df["generation"] > 0, "accept_rate"], 0.25)
    assert np.isfinite(df["reward_mean"].dropna()).all() and df["reward_mean"].notna().any()
    z = collapse.simulate("source=zipf", "model=categorical", "generations=3", "replicates=4", "quiet=true",
                          "curation=importance", "curation.score=detector").metrics
    assert z["accept_rate"].dropna().between(0, 1).all() and np.isfinite(z["entropy"]).all()


def test_curation_on_images_detector_on_pixels_and_class_reward():
    df = collapse.simulate("source=digits", "model=vae", "model.steps=30", "loop.samples=128", "generations=2",
                           "replicates=1", "quiet=true", "metrics.eval_samples=64", "curation=importance",
                           "curation.score=detector", "curation.detector.steps=20").metrics
    rate = float(df.loc[df["generation"] == 1, "accept_rate"].iloc[0])
    assert 0 < rate <= 0.5  # 128 resampled from 256 candidates
    r = df["reward_mean"].to_numpy()  # log p(class 0 | x) under the feature classifier: a log-probability
    assert np.all(np.isfinite(r)) and np.all(r <= 0)


def test_a_vectorised_seed_and_scale_sweep_of_a_curated_chain_equals_its_single_runs():
    base = ["generations=4", "replicates=3", "quiet=true", "metrics.sample_based=false", "curation=importance"]
    sweep = collapse.simulate(*base, "sweep.seed=[0,5]", "sweep.sampling.scale=[1.0,0.9]").metrics
    single = collapse.simulate(*base, "seed=5", "sampling.scale=0.9").metrics
    part = sweep[(sweep["seed"] == 5) & (sweep["sampling.scale"] == 0.9)]
    for col in single.columns:
        np.testing.assert_allclose(part[col].to_numpy(np.float64), single[col].to_numpy(np.float64), rtol=1e-6,
                                   equal_nan=True, err_msg=col)


def test_a_curated_run_killed_mid_way_resumes_to_the_same_numbers(tmp_path, monkeypatch):
    """The detector's held-out real draw (zipf: part of the chain state) and the curation keys survive a resume."""
    from conftest import assert_resume_matches

    args = ["source=zipf", "model=categorical", "replicates=3", "generations=9", "engine.chunks=4",
            "checkpoint.every=1", "curation=importance", "curation.score=detector", "quiet=true"]
    assert_resume_matches(tmp_path, monkeypatch, args)


# ----- the command line ------------------------------------------------------------------------------------
def test_preset_runs_every_rule_as_one_multirun(tmp_path):
    out = tmp_path / "sweep"
    subprocess.run([CLI, "experiment=curation_gaussian", "generations=3", "replicates=4",
                    "metrics.sample_based=false", f"hydra.sweep.dir={out}"], check=True, capture_output=True,
                   text=True, cwd=tmp_path)
    df = load_sweep(out)
    assert sorted(df["curation"].unique()) == ["best_of", "importance", "none", "pairwise", "threshold"]
    rates = df[df["generation"] > 0].groupby("curation")["accept_rate"].mean()
    assert rates["best_of"] == 0.25 and rates["pairwise"] == 0.5 and rates["none"] == 1
    assert df["reward_mean"].notna().all()
    summary = json.loads((out / "1" / "summary.json").read_text())
    assert "accept_rate" in summary["metrics"] and summary.get("theory", {}) == {}  # no uncurated closed form


@pytest.mark.parametrize("args, expected", [
    (["source=text", "model=ngram", "curation=threshold", "curation.score=true_loglik"],
     "curation.score='true_loglik': source=text has no known density"),
    (["curation=threshold", "curation.quantile=1"], "curation.quantile=1: must be a number in [0.0, 1.0)"),
    (["curation=threshold", "curation.quantile=-0.1"], "curation.quantile=-0.1: must be a number in [0.0, 1.0)"),
    (["curation=importance", "curation.oversample=0.5"], "curation.oversample=0.5: must be a number >= 1"),
    (["curation=threshold", "curation.quantile=0.8"], "curation.oversample=2.0: keeps only the 20% of candidates"),
    (["curation=pairwise", "curation.temperature=0"], "curation.temperature=0: must be a number > 0"),
    (["curation=pairwise", "curation.temperature=-1"], "curation.temperature=-1: must be a number > 0"),
    (["curation=best_of", "curation.k=0"], "curation.k=0: must be an integer >= 1"),
    (["curation=threshold", "curation.score=foo"], "curation.score='foo': must be one of true_loglik"),
    (["curation=threshold", "engine.path=stats"], "engine.path='stats': curation=threshold scores candidate points"),
    (["curation=importance", "source=linear", "model=linear_regression", "source.design=fresh",
      "curation.score=detector"], "no detector is defined for source=linear"),
    (["curation=importance", "source=linear", "model=linear_regression"],
     "source.design='fixed': places every synthetic row at a fixed design point"),
    (["curation=best_of", "curation.reward.target=[1,2]"], "curation.reward.target=[1, 2]: must be a number or a list"),
    (["curation=best_of", "source=zipf", "model=categorical", "curation.reward.kind=point"],
     "curation.reward.kind='point': source=zipf (discrete) allows auto, tokens"),
    (["curation=importance", "model=diffusion", "source=ring", "curation.score=model_loglik"],
     "model=diffusion has no likelihood"),
    (["curation=threshold", "sweep.loop.real_fraction=[0,0.5]"], "cannot be vectorised with curation=threshold"),
    (["curation=importance", "curation.resampling=stratified"],
     "curation.resampling='stratified': must be one of multinomial, systematic"),
    (["curation=wrong"], "curation='wrong': must be one of best_of, importance, none, pairwise, threshold"),
])
def test_bad_curation_fails_with_one_line_and_no_run(tmp_path, monkeypatch, capsys, args, expected):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        main(["generations=3", "replicates=2", *args])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expected in err, err
    assert not (tmp_path / "runs").exists()
