"""Counting chains (Suresh et al. 2024): the Poisson rate's extinction and the Wright-Fisher forgetting of symbols,
each against its exact form within 4 Monte-Carlo standard errors."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from collapse import theory as th
from conftest import assert_matches_theory, by_generation, sim

CLI = str(Path(sys.executable).with_name("collapse"))


@pytest.mark.parametrize("overrides, path", [
    (("loop.samples=20", "source.rate=0.05"), "stats"),     # n rate = 1
    (("loop.samples=30", "source.rate=0.1"), "samples"),    # n rate = 3, from drawn counts
])
def test_poisson_extinction_and_rate_follow_the_branching_process(overrides, path):
    res = sim("source=poisson", "model=poisson", "generations=40", "replicates=4000", "seed=4",
              f"engine.path={path}", *overrides)
    assert res.summary["engine_path"] == path
    assert_matches_theory(res, "extinct", generations=(0, 1, 3, 10, 20, 39))
    assert_matches_theory(res, "rate_ratio", generations=(0, 10, 39))  # a martingale: mean 1
    M, rate = (int(o.split("=")[1]) if "samples" in o else float(o.split("=")[1]) for o in overrides)
    r = by_generation(res.metrics, "rate_ratio")
    for g in (0, 9, 39):  # Var = (g + 1) / (n rate); SE of a sample variance from the 4th central moment
        x = r[g]
        v, m4 = x.var(ddof=1), np.mean((x - x.mean()) ** 4)
        se = np.sqrt((m4 - v * v) / len(x))
        assert abs(v - th.poisson_rate_ratio_var(np.array([g]), M, rate)[0]) <= 4 * se, (g, v)


def test_poisson_forgetting_of_an_event_seen_c_times():
    q = th.poisson_extinct_one(np.arange(200))
    assert q[1] == pytest.approx(np.exp(-1))
    k = np.array([50, 100, 199])
    np.testing.assert_allclose(1 - q[k], 2 / k, rtol=0.12)  # 1 - q_k ~ 2/k (critical branching)
    np.testing.assert_allclose(th.poisson_forgotten(k, 3), q[k] ** 3)


@pytest.mark.parametrize("categories, samples", [(50, 40), (200, 100)])
def test_categorical_support_follows_the_symbols_wright_fisher_chains(categories, samples):
    res = sim("source=zipf", "model=categorical", f"source.categories={categories}", f"loop.samples={samples}",
              "generations=60", "replicates=2000", "seed=6")
    assert_matches_theory(res, "support", generations=(0, 1, 5, 20, 59))


def test_a_bernoulli_chain_is_absorbed_and_forgets_its_rare_symbol_on_time():
    """Two categories (p0 = 2/3, 1/3 with zipf exponent 1): the first generation with support 1 is the
    absorption time; the rare symbol's loss time, given it is lost, is the h-transformed chain's."""
    M, G = 20, 300
    res = sim("source=zipf", "model=categorical", "source.categories=2", "source.exponent=1.0", f"loop.samples={M}",
              f"generations={G}", "replicates=3000", "seed=8")
    from scipy.stats import binom

    p0 = th.zipf_probs(2, 1.0)
    start = binom.pmf(np.arange(M + 1), M, p0[1])  # the rare symbol's count at generation 0
    support = by_generation(res.metrics, "support")
    assert (support[-1] == 1).all()  # every chain absorbed by generation G - 1 (P(not) ~ 0.95^300)
    T = np.argmax(support == 1, axis=0).astype(float)  # generations until absorption
    want = float(start @ th.absorption_time(M))
    assert abs(T.mean() - want) <= 4 * T.std(ddof=1) / np.sqrt(len(T)), (T.mean(), want)
    lost_rare = np.isclose(by_generation(res.metrics, "extinct_mass")[-1], p0[1])
    p_lost = start * (1 - np.arange(M + 1) / M)
    assert abs(lost_rare.mean() - p_lost.sum()) <= 4 * np.sqrt(p_lost.sum() * (1 - p_lost.sum()) / len(T))
    t_lost = th.forgetting_time(M)
    want_lost = float(np.nansum(p_lost[:M] * t_lost[:M]) / p_lost.sum())
    x = T[lost_rare]
    assert abs(x.mean() - want_lost) <= 4 * x.std(ddof=1) / np.sqrt(len(x)), (x.mean(), want_lost)


def test_wright_fisher_forms_agree_with_each_other():
    M = 30
    t_abs, t_lost = th.absorption_time(M), th.forgetting_time(M)
    c = np.arange(1, M)
    h = 1 - c / M
    # E[T] = P(lost) E[T | lost] + P(fixed) E[T | fixed]; by symmetry E[T | fixed, c] = E[T | lost, M - c]
    np.testing.assert_allclose(t_abs[c], h * t_lost[c] + (1 - h) * t_lost[M - c], rtol=1e-9)
    assert np.all(np.diff(t_lost[1:M]) > 0)  # a symbol seen more often is forgotten later
    s = th.symbol_survival(np.arange(400), M)
    assert s[0, 0] == 0 and s[0, 5] == 1 and np.all(np.diff(s[:, 5]) <= 1e-12)


@pytest.mark.parametrize("args, message", [
    (["source.rate=0"], "source.rate=0: must be a number > 0 (the Poisson rate)"),
    (["source.rate=-1.5"], "source.rate=-1.5: must be a number > 0"),
    (["sampling.scale=0.5"], "sampling.scale=0.5: must be 1 for source=poisson"),
])
def test_bad_poisson_input_is_one_line_exit_2(tmp_path, args, message):
    p = subprocess.run([CLI, "source=poisson", "model=poisson", *args, "generations=3", "replicates=2",
                        "quiet=true"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], p.stderr
    assert not (tmp_path / "runs").exists()
