"""Synthetic order-k Markov language: exact quantities vs closed forms and Monte Carlo.

Fixed seeds chosen before looking at results.  Monte-Carlo checks use 4
standard errors; frequency checks are chi-square tests accepted below the
(1 - 1e-6) quantile of chi2(df).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from collapse.text.markov import (entropy_rate, extend, kl_rate, log_prob_tokens, make_transitions,
                                  sample_sequences, stationary)

CHI2_LEVEL = 1e-6


def _context_matrix(T: np.ndarray, order: int) -> np.ndarray:
    """Dense (V^k, V^k) context transition matrix, built by explicit loops."""
    C, V = T.shape
    P = np.zeros((C, C))
    for h in range(C):
        for w in range(V):
            P[h, (h * V + w) % C] += T[h, w]
    return P


def _chi2_ok(obs: np.ndarray, probs: np.ndarray) -> tuple[float, float]:
    """(statistic, bound) for observed counts against cell probabilities (rows = groups)."""
    obs = np.atleast_2d(obs).astype(float)
    probs = np.atleast_2d(probs)
    n = obs.sum(axis=1, keepdims=True)
    use = n[:, 0] > 0
    e = n[use] * probs[use]
    stat = ((obs[use] - e) ** 2 / e).sum()
    df = int(use.sum()) * (probs.shape[1] - 1)
    return stat, stats.chi2.ppf(1 - CHI2_LEVEL, df)


def test_make_transitions_zipf_rows():
    V, k, s = 6, 2, 1.2
    T = make_transitions(3, V, k, s)
    assert T.shape == (V ** k, V) and T.dtype == np.float64
    np.testing.assert_allclose(T.sum(axis=1), 1.0, atol=1e-14)
    zipf = np.arange(1, V + 1) ** -s
    zipf /= zipf.sum()
    np.testing.assert_allclose(np.sort(T, axis=1)[:, ::-1], np.broadcast_to(zipf, T.shape), rtol=1e-14)
    # different contexts get different permutations; the seed fixes them
    assert len({tuple(np.argsort(r)) for r in T}) > 1
    np.testing.assert_array_equal(T, make_transitions(3, V, k, s))
    assert not np.array_equal(T, make_transitions(4, V, k, s))


def test_entropy_rate_two_state_closed_form():
    a, b = 0.3, 0.1
    T = np.array([[1 - a, a], [b, 1 - b]])
    pi = stationary(T, 1)
    np.testing.assert_allclose(pi, [b / (a + b), a / (a + b)], rtol=1e-10)

    def h(x):
        return -x * np.log(x) - (1 - x) * np.log(1 - x)

    expected = b / (a + b) * h(a) + a / (a + b) * h(b)
    np.testing.assert_allclose(entropy_rate(T, pi), expected, rtol=1e-12)
    # 0 log 0 = 0: a deterministic row contributes nothing
    np.testing.assert_allclose(entropy_rate(np.array([[1.0, 0.0], [0.5, 0.5]]), np.array([0.5, 0.5])),
                               0.5 * np.log(2), rtol=1e-12)


def test_stationary_is_stationary():
    V, k = 5, 2
    T = make_transitions(0, V, k, 1.1)
    pi = stationary(T, k)
    assert pi.shape == (V ** k,) and np.all(pi > 0)
    np.testing.assert_allclose(pi.sum(), 1.0, atol=1e-14)
    P = _context_matrix(T, k)
    np.testing.assert_allclose(pi @ P, pi, atol=1e-12)


def test_order_zero_is_iid():
    T = make_transitions(1, 4, 0, 1.0)
    pi = stationary(T, 0)
    np.testing.assert_array_equal(pi, [1.0])
    np.testing.assert_allclose(entropy_rate(T, pi), -(T * np.log(T)).sum())
    T2, pi2 = extend(T, pi, 0, 2)
    np.testing.assert_allclose(pi2, np.outer(T[0], T[0]).ravel())
    seqs = sample_sequences(jax.random.PRNGKey(0), jnp.asarray(T, jnp.float32), jnp.asarray(pi, jnp.float32),
                            0, 5, 7)
    assert seqs.shape == (5, 7)
    assert not np.any(np.isnan(np.asarray(log_prob_tokens(jnp.asarray(T), 0, seqs))))


def test_extend_consistency():
    V, k, m = 3, 1, 4
    T = make_transitions(2, V, k, 1.0)
    pi = stationary(T, k)
    Tk, pik = extend(T, pi, k, k)
    assert Tk is T and pik is pi
    prev = pi
    for j in range(k + 1, m + 1):
        T_j, pi_j = extend(T, pi, k, j)
        assert T_j.shape == (V ** j, V) and pi_j.shape == (V ** j,)
        np.testing.assert_allclose(pi_j.sum(), 1.0, atol=1e-14)
        # marginal over the oldest token = stationary law of the shorter context
        np.testing.assert_allclose(pi_j.reshape(V, V ** (j - 1)).sum(axis=0), prev, atol=1e-14)
        # marginal over the newest token = same law, by construction
        np.testing.assert_allclose(pi_j.reshape(V ** (j - 1), V).sum(axis=1), prev, atol=1e-14)
        # conditional depends only on the last k tokens
        np.testing.assert_array_equal(T_j, T[np.arange(V ** j) % V ** k])
        # same entropy rate from any context length
        np.testing.assert_allclose(entropy_rate(T_j, pi_j), entropy_rate(T, pi), rtol=1e-12)
        prev = pi_j
    # explicit product for one length-3 context h = (2, 0, 1)
    _, pi3 = extend(T, pi, k, 3)
    np.testing.assert_allclose(pi3[2 * 9 + 0 * 3 + 1], pi[2] * T[2, 0] * T[0, 1], rtol=1e-14)
    with pytest.raises(ValueError):
        extend(T, pi, k, 0)


def test_kl_rate_zero_and_hand_value():
    T = make_transitions(5, 4, 2, 1.0)
    pi = stationary(T, 2)
    T3, pi3 = extend(T, pi, 2, 3)
    assert abs(float(kl_rate(jnp.asarray(T3), jnp.asarray(pi3), jnp.asarray(T3)))) < 1e-6

    T = np.array([[0.5, 0.5], [0.25, 0.75]])
    pi = np.array([1 / 3, 2 / 3])
    Q = np.array([[0.25, 0.75], [0.5, 0.5]])
    # row 0: .5 log(.5/.25) + .5 log(.5/.75) = .5 log(4/3)
    # row 1: .25 log(.25/.5) + .75 log(.75/.5) = .75 log 1.5 - .25 log 2
    expected = (1 / 3) * 0.5 * np.log(4 / 3) + (2 / 3) * (0.75 * np.log(1.5) - 0.25 * np.log(2.0))
    got = jax.jit(kl_rate)(jnp.asarray(T), jnp.asarray(pi), jnp.asarray(Q))
    np.testing.assert_allclose(float(got), expected, rtol=1e-6)
    # 0 log 0 = 0, and Q = 0 where T = 0 is harmless
    Tz = np.array([[1.0, 0.0], [0.25, 0.75]])
    Qz = np.array([[1.0, 0.0], [0.25, 0.75]])
    assert float(kl_rate(jnp.asarray(Tz), jnp.asarray(pi), jnp.asarray(Qz))) == 0.0
    # +inf where Q = 0 < T
    assert float(kl_rate(jnp.asarray(T), jnp.asarray(pi), jnp.asarray(Qz))) == np.inf
    # vmap over a batch of models
    Qs = jnp.stack([jnp.asarray(Q), jnp.asarray(T)])
    np.testing.assert_allclose(jax.vmap(kl_rate, in_axes=(None, None, 0))(jnp.asarray(T), jnp.asarray(pi), Qs),
                               [expected, 0.0], rtol=1e-6, atol=1e-7)


def test_entropy_rate_matches_monte_carlo():
    V, k, n, L = 5, 2, 400, 202
    T = make_transitions(11, V, k, 1.0)
    pi = stationary(T, k)
    H = entropy_rate(T, pi)
    seqs = sample_sequences(jax.random.PRNGKey(12), jnp.asarray(T, jnp.float32), jnp.asarray(pi, jnp.float32),
                            k, n, L)
    lp = np.asarray(log_prob_tokens(jnp.asarray(T, jnp.float32), k, seqs), np.float64)
    assert np.all(np.isnan(lp[:, :k])) and np.all(np.isfinite(lp[:, k:]))
    per_seq = -lp[:, k:].mean(axis=1)  # independent across sequences
    est, se = per_seq.mean(), per_seq.std(ddof=1) / np.sqrt(n)
    assert abs(est - H) <= 4 * se, f"MC {est:.5f} +- {se:.2g}, exact {H:.5f}"


def test_log_prob_tokens_by_hand():
    V, k = 3, 2
    T = make_transitions(7, V, k, 1.5)
    seqs = jnp.array([[0, 2, 1, 1, 0], [2, 2, 2, 0, 1]], jnp.int32)
    lp = np.asarray(log_prob_tokens(jnp.asarray(T), k, seqs))
    assert lp.shape == (2, 5) and np.all(np.isnan(lp[:, :2]))
    s = np.asarray(seqs)
    for i in range(2):
        for t in range(k, 5):
            h = s[i, t - 2] * V + s[i, t - 1]
            np.testing.assert_allclose(lp[i, t], np.log(T[h, s[i, t]]), rtol=1e-6)
    lj = jax.jit(log_prob_tokens, static_argnums=1)(jnp.asarray(T), k, seqs)
    np.testing.assert_allclose(lj, lp, rtol=1e-6)


def test_sample_sequences_frequencies_match_truth():
    V, k, n, L = 4, 2, 2000, 40
    T = make_transitions(21, V, k, 0.8)
    pi = stationary(T, k)
    key = jax.random.PRNGKey(22)
    seqs = sample_sequences(key, jnp.asarray(T, jnp.float32), jnp.asarray(pi, jnp.float32), k, n, L)
    assert seqs.shape == (n, L) and seqs.dtype == jnp.int32
    s = np.asarray(seqs)
    assert s.min() >= 0 and s.max() < V
    # initial contexts ~ pi
    ctx0 = s[:, 0] * V + s[:, 1]
    stat, bound = _chi2_ok(np.bincount(ctx0, minlength=V ** k), pi)
    assert stat < bound, (stat, bound)
    # transitions ~ T, pooled over all positions t >= k
    ctx = (s[:, :-2] * V + s[:, 1:-1]).ravel()
    nxt = s[:, 2:].ravel()
    counts = np.zeros((V ** k, V))
    np.add.at(counts, (ctx, nxt), 1)
    stat, bound = _chi2_ok(counts, T)
    assert stat < bound, (stat, bound)
    # same key -> same sequences; vmap over keys matches separate calls
    np.testing.assert_array_equal(
        sample_sequences(key, jnp.asarray(T, jnp.float32), jnp.asarray(pi, jnp.float32), k, n, L), seqs)
    keys = jax.random.split(key, 3)
    Tj, pj = jnp.asarray(T, jnp.float32), jnp.asarray(pi, jnp.float32)
    vm = jax.vmap(lambda kk: sample_sequences(kk, Tj, pj, k, 8, 10))(keys)
    for j in range(3):
        np.testing.assert_array_equal(vm[j], sample_sequences(keys[j], Tj, pj, k, 8, 10))
    with pytest.raises(ValueError):
        sample_sequences(key, Tj, pj, k, 3, k)
