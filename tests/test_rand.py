"""Statistical and structural tests for ``collapse.rand``.

Seeds are fixed and were chosen (0, 1, 2, ...) before looking at any result;
they are never tuned to make a test pass.  Statistical tolerances are derived
from standard errors (SE) and explained next to each check: moment checks use
5 SE (two-sided false-alarm rate ~6e-7 per check under a correct sampler),
goodness-of-fit tests require p > 1e-3.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special, stats

from collapse import rand

P_MIN = 1e-3  # goodness-of-fit tests must give p-value above this
Z_MAX = 5.0  # moment checks: |estimate - truth| < 5 standard errors


def _check_gamma_sample(x, alpha):
    """KS against scipy's Gamma(alpha) plus mean/variance within 5 SE."""
    x = np.asarray(x, np.float64)
    n = x.size
    assert np.all(np.isfinite(x)) and np.all(x >= 0)
    assert stats.kstest(x, "gamma", args=(alpha,)).pvalue > P_MIN
    # mean: Var(xbar) = alpha / n.
    assert abs(x.mean() - alpha) < Z_MAX * np.sqrt(alpha / n)
    # sample variance: Var(s^2) ~= (mu4 - sigma^4) / n, and for Gamma(alpha)
    # mu4 = sigma^4 (3 + 6 / alpha), so SE = alpha * sqrt((2 + 6/alpha) / n).
    assert abs(x.var(ddof=1) - alpha) < Z_MAX * alpha * np.sqrt((2 + 6 / alpha) / n)


ALPHAS = [0.3, 1.0, 4.5, 49.5]
N_GAMMA = 20_000


@pytest.mark.parametrize("alpha", ALPHAS)
def test_gamma_distribution_float32(alpha):
    x = rand.gamma(jax.random.key(0), alpha, (N_GAMMA,), jnp.float32)
    assert x.dtype == jnp.float32 and x.shape == (N_GAMMA,)
    _check_gamma_sample(x, alpha)


@pytest.mark.parametrize("alpha", ALPHAS)
def test_gamma_distribution_float64(alpha):
    with jax.enable_x64(True):
        x = rand.gamma(jax.random.key(1), alpha, (N_GAMMA,), jnp.float64)
        assert x.dtype == jnp.float64
        # default dtype follows a float64 alpha array
        assert rand.gamma(jax.random.key(1), jnp.asarray(alpha, jnp.float64)).dtype == jnp.float64
        _check_gamma_sample(x, alpha)


def test_gamma_array_alpha_broadcast_and_default_dtype():
    alpha = jnp.array([[0.5], [2.0], [30.0]], jnp.float32)
    x = rand.gamma(jax.random.key(2), alpha, (3, 4000))
    assert x.shape == (3, 4000) and x.dtype == jnp.float32
    for i, a in enumerate([0.5, 2.0, 30.0]):
        _check_gamma_sample(x[i], a)
    assert rand.gamma(jax.random.key(2), alpha).shape == (3, 1)
    assert rand.gamma(jax.random.key(2), 2.0).shape == ()


def test_gamma_fallback_loop_runs_small_array():
    # alpha = 1 rejects ~4.85% of candidates; with one up-front candidate and
    # 3000 outputs (< the compaction threshold, so the full-shape loop), the
    # chance that no output needs the loop is 0.9515^3000 ~ 1e-65.
    alpha = 1.0
    x, rounds = rand.gamma(jax.random.key(3), alpha, (3000,), _n_candidates=1,
                           _return_info=True)
    assert int(rounds) >= 1
    _check_gamma_sample(x, alpha)
    # also for alpha < 1 (boost path: candidates use alpha + 1 = 1.25)
    x, rounds = rand.gamma(jax.random.key(4), 0.25, (3000,), _n_candidates=1,
                           _return_info=True)
    assert int(rounds) >= 1
    _check_gamma_sample(x, 0.25)


def test_gamma_fallback_loop_compacted(monkeypatch):
    # Large array: pending outputs are compacted into a buffer.  Shrinking
    # the buffer to size/1000 (50 slots for ~2400 pending) forces many
    # outer rounds, i.e. the buffer-overflow path too.
    monkeypatch.setattr(rand, "_COMPACT_DIVISOR", 1000)
    alpha = 1.0
    x, rounds = rand.gamma(jax.random.key(5), alpha, (50_000,), _n_candidates=1,
                           _return_info=True)
    assert int(rounds) > 10
    _check_gamma_sample(x, alpha)


def test_gamma_more_upfront_candidates_still_exact():
    x = rand.gamma(jax.random.key(6), 1.0, (N_GAMMA,), _n_candidates=4)
    _check_gamma_sample(x, 1.0)


def test_gamma_tiny_alpha_left_tail():
    # Gamma(0.01): most mass is astronomically small.  The boost works in log
    # space, so values down to float32's range are produced correctly:
    # compare P(X < 1e-20) = gammainc(0.01, 1e-20) ~= 0.634 with the
    # empirical fraction, binomial SE = sqrt(q (1 - q) / n).
    alpha, t, n = 0.01, 1e-20, N_GAMMA
    x = np.asarray(rand.gamma(jax.random.key(7), alpha, (n,)))
    assert np.all(np.isfinite(x)) and np.all(x >= 0)
    q = special.gammainc(alpha, t)
    assert abs((x < t).mean() - q) < Z_MAX * np.sqrt(q * (1 - q) / n)
    # Not everything below 1e-20 collapsed to 0: only values below float32's
    # range may underflow, P(X < 1.2e-38 = smallest normal) ~= 0.42 (even if
    # subnormals are flushed to zero), far from 0.63.
    assert (x == 0).mean() < 0.5


def test_gamma_invalid_alpha():
    x = rand.gamma(jax.random.key(8), jnp.array([0.0, -1.0, jnp.nan, jnp.inf, 2.0]))
    x = np.asarray(x)
    assert np.isnan(x[:3]).all() and x[3] == np.inf and np.isfinite(x[4])


def test_chi2_distribution():
    df = 3.7  # real-valued df
    x = np.asarray(rand.chi2(jax.random.key(9), df, (N_GAMMA,)), np.float64)
    assert stats.kstest(x, "chi2", args=(df,)).pvalue > P_MIN
    assert abs(x.mean() - df) < Z_MAX * np.sqrt(2 * df / N_GAMMA)


# --------------------------------------------------------------------------
# Wishart
# --------------------------------------------------------------------------

S3 = np.array([[2.0, 0.5, 0.3], [0.5, 1.0, -0.2], [0.3, -0.2, 1.5]])


@pytest.mark.parametrize("x64", [False, True])
def test_wishart_moments_and_trace(x64):
    d, df, m = 3, 5.5, 10_000  # real df > d - 1
    with jax.enable_x64(x64):
        dt = jnp.float64 if x64 else jnp.float32
        L = jnp.linalg.cholesky(jnp.asarray(S3, dt))
        keys = jax.random.split(jax.random.key(10), m)
        W = jax.jit(jax.vmap(rand.wishart, (0, None, None)))(keys, df, L)
        assert W.dtype == dt and W.shape == (m, d, d)
        W = np.asarray(W, np.float64)
    assert np.all(np.isfinite(W))
    np.testing.assert_array_equal(W, np.swapaxes(W, 1, 2))  # exactly symmetric
    assert np.all(np.linalg.eigvalsh(W) > 0)

    # E[W] = df S; Var(W_ij) = df (S_ij^2 + S_ii S_jj)  (entrywise 5 SE).
    se = np.sqrt(df * (S3**2 + np.outer(np.diag(S3), np.diag(S3))) / m)
    assert np.all(np.abs(W.mean(0) - df * S3) < Z_MAX * se)

    # log det W = log det S + sum_i log chi2(df - i):
    # mean = log det S + d log 2 + sum_i digamma((df - i)/2),
    # variance = sum_i trigamma((df - i)/2).
    half = (df - np.arange(d)) / 2
    logdet = np.linalg.slogdet(W)[1]
    mu = np.linalg.slogdet(S3)[1] + d * np.log(2) + special.digamma(half).sum()
    sd = np.sqrt(special.polygamma(1, half).sum())
    assert abs(logdet.mean() - mu) < Z_MAX * sd / np.sqrt(m)

    # trace and log-determinant distributions vs scipy.stats.wishart draws
    # (two-sample KS).
    ref = stats.wishart(df=df, scale=S3).rvs(size=m, random_state=np.random.default_rng(11))
    assert stats.ks_2samp(np.trace(W, axis1=1, axis2=2),
                          np.trace(ref, axis1=1, axis2=2)).pvalue > P_MIN
    assert stats.ks_2samp(logdet, np.linalg.slogdet(ref)[1]).pvalue > P_MIN


def test_wishart_factor_and_d1():
    L = jnp.linalg.cholesky(jnp.asarray(S3, jnp.float32))
    key = jax.random.key(12)
    B = rand.wishart_factor(key, 4.0, L)
    np.testing.assert_array_equal(np.triu(np.asarray(B), 1), 0)  # lower triangular
    assert np.all(np.diag(np.asarray(B)) > 0)
    np.testing.assert_allclose(np.asarray(rand.wishart(key, 4.0, L)),
                               np.asarray(B @ B.T), rtol=1e-5, atol=1e-5)
    # d = 1: Wishart_1(df, s) = s * chi2(df); KS, 1-sample.
    df, s, m = 2.5, 3.0, 5000
    keys = jax.random.split(jax.random.key(13), m)
    w = jax.jit(jax.vmap(lambda k: rand.wishart(k, df, jnp.sqrt(jnp.full((1, 1), s)))))(keys)
    assert stats.kstest(np.asarray(w[:, 0, 0], np.float64) / s, "chi2",
                        args=(df,)).pvalue > P_MIN


# --------------------------------------------------------------------------
# multinomial / categorical
# --------------------------------------------------------------------------

P_ZEROS = np.array([0.0, 0.05, 0.2, 0.0, 0.1, 0.3, 0.0, 0.15, 0.2, 0.0])


def _check_multinomial_counts(C, n, p):
    """C: (R, K) counts.  Sums, zeros, and mean counts within 5 SE."""
    C = np.asarray(C)
    R = C.shape[0]
    p = np.asarray(p, np.float64) / np.sum(p)
    assert C.dtype == np.int32
    np.testing.assert_array_equal(C.sum(1), n)
    assert np.all(C >= 0)
    assert np.all(C[:, p == 0] == 0)
    # per-category mean over R replicates: SE = sqrt(n p (1 - p) / R).
    se = np.sqrt(n * p * (1 - p) / R)
    assert np.all(np.abs(C.mean(0) - n * p) <= Z_MAX * se)


def test_multinomial_static_n():
    n, R = 1000, 2000
    p = jnp.asarray(P_ZEROS * 3.7, jnp.float32)  # unnormalised on purpose
    keys = jax.random.split(jax.random.key(20), R)
    C = jax.jit(jax.vmap(lambda k: rand.multinomial(k, n, p)))(keys)
    _check_multinomial_counts(C, n, P_ZEROS)


@pytest.mark.parametrize("chunk", [None, 96])
def test_multinomial_traced_n(monkeypatch, chunk):
    # Traced n runs the chunked loop; chunk=96 forces ceil(1000/96) = 11
    # rounds with a partially used last round.
    if chunk is not None:
        monkeypatch.setattr(rand, "_MULTINOMIAL_CHUNK", chunk)
    n, R = 1000, 2000
    p = jnp.asarray(P_ZEROS, jnp.float32)
    keys = jax.random.split(jax.random.key(21), R)
    f = jax.jit(jax.vmap(lambda k, m: rand.multinomial(k, m, p)))
    C = f(keys, jnp.full((R,), n, jnp.int32))
    _check_multinomial_counts(C, n, P_ZEROS)
    # different traced n per replicate (n = 0 gives all zeros)
    ns = jnp.array([0, 1, 7, 96, 97, 5000, 9000, 1000], jnp.int32)
    C = np.asarray(f(keys[:8], ns))
    np.testing.assert_array_equal(C.sum(1), ns)
    assert np.all(C[:, P_ZEROS == 0] == 0)
    # static n larger than a chunk (balanced rounds)
    C = jax.jit(jax.vmap(lambda k: rand.multinomial(k, 9001, p)))(keys[:500])
    _check_multinomial_counts(C, 9001, P_ZEROS)


def test_multinomial_chi2_large_k():
    # Dirichlet-like p over K = 1000 with some exact zeros: pooled counts of
    # R replicates are Multinomial(R n, p) -> chi-square goodness of fit.
    K, n, R = 1000, 10_000, 20
    rng = np.random.default_rng(22)
    p = rng.gamma(0.5, size=K)
    p[::13] = 0.0
    keys = jax.random.split(jax.random.key(23), R)
    C = np.asarray(jax.jit(jax.vmap(lambda k: rand.multinomial(k, n, jnp.asarray(p, jnp.float32))))(keys))
    np.testing.assert_array_equal(C.sum(1), n)
    assert np.all(C[:, p == 0] == 0)
    pooled = C.sum(0)
    pn = p / p.sum()
    pos = pn > 0
    exp = R * n * pn[pos]
    # chi-square needs expected counts not too small: merge tiny-expectation
    # categories (< 5) into one bin.
    big = exp >= 5
    obs_b = np.append(pooled[pos][big], pooled[pos][~big].sum())
    exp_b = np.append(exp[big], exp[~big].sum())
    assert stats.chisquare(obs_b, exp_b).pvalue > P_MIN


def test_categorical_frequencies():
    n = 200_000
    p = jnp.asarray(P_ZEROS, jnp.float32)
    idx = np.asarray(jax.jit(lambda k: rand.categorical(k, p, n))(jax.random.key(24)))
    assert idx.dtype == np.int32 and idx.shape == (n,)
    counts = np.bincount(idx, minlength=len(P_ZEROS))
    assert counts.shape == (len(P_ZEROS),)  # no out-of-range index
    assert np.all(counts[P_ZEROS == 0] == 0)
    pos = P_ZEROS > 0
    assert stats.chisquare(counts[pos], n * P_ZEROS[pos] / P_ZEROS.sum()).pvalue > P_MIN
    assert rand.categorical(jax.random.key(24), p, (3, 5)).shape == (3, 5)


@pytest.mark.parametrize("case", ["dirichlet", "skewed", "trailing_zeros"])
def test_categorical_guide_table_matches_searchsorted(case):
    # The guide-table bisection must return exactly searchsorted(c, u,
    # 'right') for the same uniforms (deterministic check).
    rng = np.random.default_rng(25)
    K = 3000
    if case == "dirichlet":
        p = rng.gamma(0.3, size=K)
    elif case == "skewed":  # one dominant category + many tiny ones in a bucket
        p = np.full(K, 1e-7)
        p[1234] = 1.0
        p[::5] = 0.0
    else:
        p = rng.random(K)
        p[-100:] = 0.0
        p[:50] = 0.0
    p = jnp.asarray(p, jnp.float32)
    key = jax.random.key(26)
    got = np.asarray(rand._inverse_cdf_indices(key, p, (50_000,)))
    c, _, _ = rand._inverse_cdf_table(p)
    u = jax.random.uniform(key, (50_000,), c.dtype)
    want = np.asarray(jnp.searchsorted(c, u, side="right"))
    np.testing.assert_array_equal(got, want)
    assert np.all(np.asarray(p)[got] > 0)


# --------------------------------------------------------------------------
# jit / vmap / scan
# --------------------------------------------------------------------------


def test_vmap_equals_separate_calls():
    keys = jax.random.split(jax.random.key(30), 4)
    alphas = jnp.array([0.3, 1.0, 4.5, 49.5], jnp.float32)
    # gamma with batched keys and alphas; per-call shape (500,) uses the
    # full-shape fallback loop, (5000,) the compacted one.  Each element runs
    # a different number of loop rounds.
    for size in (500, 5000):
        one = jax.jit(lambda k, a: rand.gamma(k, a, (size,)))
        g = jax.jit(jax.vmap(one))(keys, alphas)
        for i in range(4):
            # rtol: the boost exp(log x + log(u) / alpha) may round a few
            # ulp differently (amplified by 1/alpha) when compiled in vmap.
            np.testing.assert_allclose(g[i], one(keys[i], alphas[i]), rtol=2e-5)
    # wishart, batched keys and dfs
    L = jnp.linalg.cholesky(jnp.asarray(S3, jnp.float32))
    dfs = jnp.array([2.5, 3.0, 5.5, 40.0], jnp.float32)
    W = jax.vmap(rand.wishart, (0, 0, None))(keys, dfs, L)
    for i in range(4):
        np.testing.assert_allclose(W[i], rand.wishart(keys[i], dfs[i], L), rtol=1e-5, atol=1e-6)
    # multinomial (static and traced n) and categorical: integers, exact
    p = jnp.asarray(P_ZEROS, jnp.float32)
    traced = jax.jit(lambda k, n: rand.multinomial(k, n, p))
    ns = jnp.array([0, 100, 5000, 300], jnp.int32)
    C = jax.vmap(lambda k: rand.multinomial(k, 300, p))(keys)
    T = jax.vmap(traced)(keys, ns)
    I = jax.vmap(lambda k: rand.categorical(k, p, 300))(keys)
    for i in range(4):
        np.testing.assert_array_equal(C[i], rand.multinomial(keys[i], 300, p))
        np.testing.assert_array_equal(T[i], traced(keys[i], ns[i]))
        np.testing.assert_array_equal(I[i], rand.categorical(keys[i], p, 300))


def test_works_inside_scan():
    # A toy "generations" loop: refit a Gaussian's scatter each step.
    L0 = jnp.eye(2, dtype=jnp.float32)

    def step(L, key):
        W = rand.wishart(key, 49.0, L) / 49.0
        return jnp.linalg.cholesky(W), jnp.trace(W)

    _, tr = jax.lax.scan(step, L0, jax.random.split(jax.random.key(31), 20))
    assert tr.shape == (20,) and np.all(np.isfinite(np.asarray(tr)))
