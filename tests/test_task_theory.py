"""collapse.task_theory against an independent NumPy simulation of verified self-training on one problem (full
answer vectors: k samples per slot from the model, a verifier with fpr / fnr, best-of-k, human answers, the
smoothed categorical refit), within 4 Monte-Carlo standard errors at two settings; and the closed forms' limits.
Seeds are fixed before looking at results."""
import numpy as np
import pytest
from scipy.stats import binomtest, norm

from collapse.task_theory import accepted_right, kept_right, task_accuracy_exact, task_accuracy_limit

Z = 4.0


def simulate(R, m, h, A, fpr, fnr, k, ha, alpha, G, seed):
    """(G, R) model accuracy q(right) and (G, R) right-answer counts of R independent problems (answer 0 right)."""
    rng = np.random.default_rng(seed)

    def human(n):
        return np.where(rng.random((R, n)) < ha, 0, rng.integers(1, A, (R, n)))

    def fit(ans):
        counts = np.stack([(ans == a).sum(1) for a in range(A)], 1)
        return (counts + alpha) / (ans.shape[1] + A * alpha), counts[:, 0]

    q, right = fit(human(m))
    acc, rights = [q[:, 0]], [right]
    for _ in range(1, G):
        s = m - h
        u = rng.random((R, s, k, 1))
        draws = np.minimum((u > np.cumsum(q, 1)[:, None, None, :]).sum(-1), A - 1)  # (R, s, k) answers
        ok = draws == 0
        accept = np.where(ok, rng.random(draws.shape) < 1 - fnr, rng.random(draws.shape) < fpr)
        first = np.argmax(accept, -1)
        kept = np.where(accept.any(-1), np.take_along_axis(draws, first[..., None], -1)[..., 0], draws[..., 0])
        q, right = fit(np.concatenate([human(h), kept], 1))
        acc.append(q[:, 0])
        rights.append(right)
    return np.asarray(acc), np.asarray(rights)


@pytest.mark.parametrize("setting", [
    dict(m=10, h=2, A=4, fpr=0.1, fnr=0.2, k=3, ha=0.6, alpha=0.5),   # a good verifier, some human data: improves
    dict(m=8, h=0, A=5, fpr=0.6, fnr=0.5, k=4, ha=0.7, alpha=0.0),    # fpr > 1 - fnr, no human data: collapses
])
def test_the_exact_count_chain_matches_a_simulation_of_the_loop(setting):
    s = setting
    G, R = 6, 20000
    acc, rights = simulate(R, s["m"], s["h"], s["A"], s["fpr"], s["fnr"], s["k"], s["ha"], s["alpha"], G, seed=7)
    th = task_accuracy_exact(np.arange(G), s["m"], s["h"], s["A"], s["fpr"], s["fnr"], s["k"], s["ha"], s["alpha"])
    for g in range(G):
        se = acc[g].std(ddof=1) / np.sqrt(R)
        assert abs(acc[g].mean() - th["accuracy"][g]) <= Z * se + 1e-12, (g, acc[g].mean(), th["accuracy"][g], se)
        lost = int((rights[g] == 0).sum())  # a rare event: an exact binomial test at the two-sided level of 4 SE
        p_value = binomtest(lost, R, min(max(th["lost"][g], 1e-300), 1.0)).pvalue
        assert p_value >= 2 * norm.sf(Z), (g, lost / R, th["lost"][g], p_value)
    improving = s["fpr"] < 1 - s["fnr"]
    last, first = th["accuracy"][-1], th["accuracy"][0]
    assert (last > first) if improving else (last < first), (first, last)


def test_accepted_share_multiplies_the_odds_and_best_of_k_interpolates():
    a = np.linspace(0.05, 0.95, 19)
    t = accepted_right(a, 0.1, 0.2)
    np.testing.assert_allclose(t / (1 - t), a / (1 - a) * (0.8 / 0.1), rtol=1e-12)
    np.testing.assert_allclose(kept_right(a, 0.1, 0.2, 1), a, rtol=1e-12)  # one sample: no selection
    np.testing.assert_allclose(kept_right(a, 0.1, 0.2, 400), t, rtol=1e-9)
    g = np.arange(8)
    lim = task_accuracy_limit(g, 0.3, 0.1, 0.2)
    np.testing.assert_allclose(lim / (1 - lim), (0.3 / 0.7) * 8.0 ** g, rtol=1e-9)
    falls = task_accuracy_limit(g, 0.3, 0.6, 0.5)  # fpr > 1 - fnr: the odds shrink by 5/6 a generation
    assert np.all(np.diff(falls) < 0)
    flat = task_accuracy_limit(g, 0.3, 0.5, 0.5)  # an uninformative verifier leaves accuracy where it is
    np.testing.assert_allclose(flat, 0.3, rtol=1e-12)


def test_many_answers_per_problem_approach_the_limit_recursion():
    g = np.arange(6)
    exact = task_accuracy_exact(g, 1000, 100, 4, 0.2, 0.3, k=3, human_accuracy=0.5)["accuracy"]
    limit = task_accuracy_limit(g, 0.5, 0.2, 0.3, k=3, human_share=0.1, human_accuracy=0.5)
    np.testing.assert_allclose(exact, limit, atol=3e-3)
    small = task_accuracy_exact(g, 4, 0, 4, 0.2, 0.3, k=3, human_accuracy=0.5)
    assert small["lost"][-1] > 0.05 and abs(small["accuracy"][-1] - limit[-1]) > 0.02  # finite m: drift and loss


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="human_per_problem"):
        task_accuracy_exact([0], 4, 5, 3, 0.1, 0.1)
