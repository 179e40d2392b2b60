"""source=task / model=answers: verified self-training on problems with checkable answers, in the engine.

The simulated accuracy follows collapse.task_theory's exact count chain within 4 Monte-Carlo standard errors
(over replicates) at every generation, for a verifier that improves the model (with human data and smoothing)
and one that lets hallucinations through faster than it keeps right answers (fpr > 1 - fnr: accuracy falls);
best-of-1 with any verifier is the plain loop's drift. Seeds are fixed before looking at results."""
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import collapse
from collapse import config as C
from collapse.theory import theory_curves

Z = 4.0
CLI = str(Path(sys.executable).parent / "collapse")
BASE = ("source=task", "model=answers", "source.problems=40", "source.answers=4", "loop.samples=800", "quiet=true")
VERIFIED = ("curation=best_of", "curation.score=verifier")


def _run(*overrides):
    cfg = C.compose([*BASE, *overrides])
    res = collapse.simulate(*BASE, *overrides)
    return res.metrics, theory_curves(cfg, cfg.generations)


def _assert_follows(df, curve, metric="task_accuracy"):
    g = df.groupby("generation")[metric]
    mean, se = g.mean().to_numpy(), (g.std(ddof=1) / np.sqrt(g.size())).to_numpy()
    assert len(curve) == len(mean)
    for t, (m, s, c) in enumerate(zip(mean, se, curve)):
        assert abs(m - c) <= Z * s + 1e-9, f"{metric} at generation {t}: {m:.5f} +- {s:.2g} (SE) vs theory {c:.5f}"
    return mean, se


def _assert_lost_follows(df, curve, problems: int):
    """Lost problems are independent rare events (balanced design): the count over replicates x problems by an
    exact binomial test at the two-sided level of Z standard errors."""
    from scipy.stats import binomtest, norm

    for t, (lost, c) in enumerate(zip(df.groupby("generation")["lost_problems"].apply(list), curve)):
        count, n = int(round(sum(lost) * problems)), len(lost) * problems
        p = binomtest(count, n, min(max(c, 1e-300), 1.0)).pvalue
        assert p >= 2 * norm.sf(Z), f"lost_problems at generation {t}: {count}/{n} vs theory {c:.3g} (p = {p:.2g})"


def test_a_good_verifier_with_human_data_improves_accuracy_as_the_theory_says():
    df, th = _run(*VERIFIED, "curation.k=3", "curation.verifier.fpr=0.1", "curation.verifier.fnr=0.2",
                  "source.human_accuracy=0.6", "model.smoothing=0.5", "loop.real_fraction=0.2", "generations=6",
                  "replicates=150", "seed=11")
    mean, se = _assert_follows(df, th["task_accuracy"])
    assert mean[-1] - Z * se[-1] > mean[0] + Z * se[0]  # it improves on generation 0
    prec = df[df.generation > 0].groupby("generation")["verifier_precision"].mean().to_numpy()
    assert np.all(np.diff(prec) > 0) and prec[-1] > 0.9  # the accepted share right grows with accuracy


def test_a_verifier_with_fpr_above_one_minus_fnr_drives_accuracy_below_its_start():
    df, th = _run(*VERIFIED, "curation.k=4", "curation.verifier.fpr=0.6", "curation.verifier.fnr=0.5",
                  "source.human_accuracy=0.7", "generations=6", "replicates=150", "seed=12")
    mean, se = _assert_follows(df, th["task_accuracy"])
    _assert_lost_follows(df, th["lost_problems"], problems=40)
    assert mean[-1] + Z * se[-1] < mean[0] - Z * se[0]
    assert th["lost_problems"][-1] > 0.01  # problems are being lost (the right answer can vanish)


def test_best_of_one_is_the_plain_loop_whatever_the_verifier():
    """k = 1 keeps each sample whatever the verifier says, so the curve is the uncurated one (pure drift)."""
    args = ("source.human_accuracy=0.6", "generations=5", "replicates=150", "seed=13")
    plain, th_plain = _run(*args)
    one, th_one = _run(*VERIFIED, "curation.k=1", "curation.verifier.fpr=0.9", "curation.verifier.fnr=0.9", *args)
    np.testing.assert_allclose(th_one["task_accuracy"], th_plain["task_accuracy"], rtol=1e-12)
    _assert_follows(plain, th_plain["task_accuracy"])
    _assert_follows(one, th_one["task_accuracy"])


def test_task_metrics_and_verifier_precision_equal_their_definitions_on_hand_made_cases():
    from collapse.curation.verifier import quality, verifier
    from collapse.families.answers import answers
    from collapse.metrics.builtin import task_metrics
    from collapse.metrics.registry import MetricContext
    from collapse.sources.task import task

    src, fam = task(2, 3), answers(2, 3)
    truth = {"answers": jnp.array([0, 1], jnp.int32)}
    params = {"probs": jnp.array([[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])}
    ctx = MetricContext(jax.random.key(0), params, truth, None, source=src, family=fam, cfg={"pass_k": 2}, scale=1.0,
                        dtype=jnp.float32)
    got = {k: float(v) for k, v in task_metrics(ctx).items()}
    # problem 0: q(right) = 0.5, a tie of two with the right one; problem 1: the right answer has probability 0
    assert got == pytest.approx({"task_accuracy": 0.25, "task_accuracy_greedy": 0.25, "pass_at_k": 0.375,
                                 "answer_diversity": 1.5, "lost_problems": 0.5}, abs=1e-6)
    cand = {"x": jnp.array([0, 0, 1, 1, 1], jnp.int32), "y": jnp.array([0, 2, 1, 1, 0], jnp.int32)}
    scores = jnp.array([1.0, 1.0, 0.0, 1.0, 1.0])  # accepted: right, wrong, right, wrong; rejected: right
    got = {k: float(v) for k, v in quality(src.is_right, 0.5)(cand, scores, truth).items()}
    assert got == pytest.approx({"verifier_precision": 0.5, "verifier_fpr": 1.0, "verifier_fnr": 1 / 3})
    none = quality(src.is_right, 0.5)(cand, jnp.zeros(5), truth)
    assert np.isnan(float(none["verifier_precision"])) and float(none["verifier_fpr"]) == 0.0
    exact = verifier(src.is_right, 0.0, 0.0)(jax.random.key(1), cand, truth, None, None)
    np.testing.assert_array_equal(exact, [1.0, 0.0, 1.0, 1.0, 0.0])  # fpr = fnr = 0: the exact checker
    rates = verifier(src.is_right, 0.25, 0.4)(jax.random.key(2), {"x": jnp.zeros(40000, jnp.int32),
                                                    "y": jnp.tile(jnp.array([0, 1], jnp.int32), 20000)}, truth, None,
                                None)
    acc_right, acc_wrong = float(rates[0::2].mean()), float(rates[1::2].mean())
    se = np.sqrt(0.25 / 20000)
    assert abs(acc_right - 0.6) < Z * se and abs(acc_wrong - 0.25) < Z * se


def test_a_verified_run_with_no_synthetic_part_reports_nan_curation_columns():
    df = collapse.simulate(*BASE, *VERIFIED, "loop.real_fraction=1.0", "generations=3", "replicates=2").metrics
    assert df["accept_rate"].isna().all() and df["verifier_precision"].isna().all()
    assert np.isfinite(df["task_accuracy"]).all()


def test_problem_ids_are_balanced_and_do_not_overflow_int32():
    from collapse.sources.task import problems_of

    np.testing.assert_array_equal(problems_of(6, 3), [0, 0, 1, 1, 2, 2])
    np.testing.assert_array_equal(problems_of(5, 3), [0, 0, 1, 1, 2])  # floor(i P / n)
    big = np.asarray(problems_of(4_000_001, 1000))  # i P passes 2^31 here
    assert big.min() == 0 and big.max() == 999 and np.all(np.diff(big) >= 0)
    counts = np.bincount(big)
    assert counts.min() >= 4000 and counts.max() <= 4001


@pytest.mark.parametrize("args,message", [
    (["curation=best_of", "curation.score=verifier", "curation.verifier.fpr=1.5"],
     "curation.verifier.fpr=1.5: must be a probability in [0, 1]"),
    (["curation=best_of", "curation.score=verifier", "curation.verifier.fnr=-0.1"],
     "curation.verifier.fnr=-0.1: must be a probability in [0, 1]"),
    (["metrics.pass_k=0"], "metrics.pass_k=0: must be an integer >= 1"),
    (["curation=best_of", "curation.score=verifier", "curation.k=0"], "curation.k=0"),
    (["loop.samples=20"], "loop.samples=20: must be >= source.problems=40"),
    (["source=gaussian", "model=gaussian", "curation=best_of", "curation.score=verifier"],
     "curation.score='verifier': needs a source with checkable answers (source=task or arithmetic); source=gaussian "
     "has none"),
    (["source.human_accuracy=2"], "source.human_accuracy=2"),
])
def test_bad_task_input_is_one_line_exit_2(tmp_path, args, message):
    base = [a for a in BASE if not (a.startswith(("source", "model")) and any(x.startswith(("source=", "model="))
                                                                              for x in args))]
    if any(a.startswith("source=gaussian") for a in args):
        base = ["quiet=true"]
    p = subprocess.run([CLI, *base, *args, "generations=2", "replicates=2"], cwd=tmp_path, capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], p.stderr
    assert not (tmp_path / "runs").exists()


def test_a_learned_verifier_is_as_good_as_its_labels_and_logs_its_measured_rates():
    """With labels covering every (problem, answer) pair the logistic verifier is exact (measured fpr = fnr = 0) and
    the loop improves; with 2 labels it can only accept or reject nearly everything (fpr + fnr ~ 1: uninformative)
    and accuracy does not rise."""
    args = ("curation=best_of", "curation.k=3", "curation.score=learned_verifier", "source.human_accuracy=0.6",
            "model.smoothing=0.5", "loop.real_fraction=0.2", "generations=6", "replicates=50", "seed=5")
    many = collapse.simulate(*BASE, *args, "curation.verifier.labels=800").metrics
    few = collapse.simulate(*BASE, *args, "curation.verifier.labels=2").metrics
    later = many.generation > 0
    assert many.loc[later, "verifier_fpr"].max() <= 0.01 and many.loc[later, "verifier_fnr"].max() <= 0.01
    g = many.groupby("generation")["task_accuracy"]
    mean, se = g.mean().to_numpy(), (g.std(ddof=1) / np.sqrt(g.size())).to_numpy()
    assert mean[-1] - Z * se[-1] > mean[0] + Z * se[0]
    both = (few.verifier_fpr + few.verifier_fnr)[few.generation > 0]
    assert abs(both.mean() - 1.0) < 0.1  # an uninformative verifier: fpr = 1 - fnr
    g = few.groupby("generation")["task_accuracy"]
    mean, se = g.mean().to_numpy(), (g.std(ddof=1) / np.sqrt(g.size())).to_numpy()
    assert mean[-1] <= mean[0] + Z * se[0]


def test_a_task_run_curated_without_a_verifier_has_the_verifier_columns_as_nan():
    """So that a sweep over curation.score (verifier, model_loglik, ...) loads as one table."""
    df = collapse.simulate(*BASE, "curation=best_of", "curation.score=model_loglik", "generations=2",
                           "replicates=2").metrics
    for name in ("verifier_precision", "verifier_fpr", "verifier_fnr"):
        assert df[name].isna().all()
    assert np.isfinite(df.loc[df.generation > 0, "accept_rate"]).all()
