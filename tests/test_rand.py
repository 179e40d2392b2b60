"""Statistical and structural tests for ``collapse.rand``.

jit / vmap / scan: "a vmapped batch of keys gives the same as separate calls"
is checked inside the sampler tests (``_assert_vmap_matches_single``, explicit
loops, or a ``lax.scan`` of single calls), so that each sampler is compiled as
few times as possible -- compilation dominates this file's runtime.

Seeds are fixed and were chosen (0, 1, 2, ...) before looking at any result;
they are never tuned to make a test pass.  Statistical tolerances are derived
from standard errors (SE) and explained next to each check: moment checks use
5 SE (two-sided false-alarm rate ~6e-7 per check under a correct sampler),
goodness-of-fit tests require p > 1e-3.
"""

import functools

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


def _assert_vmap_matches_single(batched_fn, single_fn, keys, *batched_args):
    """jit(vmap(batched_fn)) over ``keys`` (and ``batched_args``) must equal
    separate ``single_fn`` calls: integers exactly, floats to a few ulp
    (rtol 2e-5: code compiled inside vmap may round differently, e.g. the
    boost exp(log x + log(u) / alpha) amplifies by 1 / alpha)."""
    out = np.asarray(jax.jit(jax.vmap(batched_fn))(keys, *batched_args))
    for i in range(len(keys)):
        one = np.asarray(single_fn(keys[i], *(a[i] for a in batched_args)))
        if np.issubdtype(one.dtype, np.integer):
            np.testing.assert_array_equal(out[i], one)
        else:
            np.testing.assert_allclose(out[i], one, rtol=2e-5, atol=1e-30)


ALPHAS = [0.3, 1.0, 4.5, 49.5]
TINY_ALPHA = 0.01
N_GAMMA = 20_000


@functools.lru_cache(maxsize=None)
def _gamma_rows(dtype_name):
    """One (5, N_GAMMA) draw: rows for ALPHAS and TINY_ALPHA.

    A single call with a (5, 1) alpha array keeps the number of compilations
    (which dominate this file's runtime) low; rows are independent.
    """
    alphas = np.array(ALPHAS + [TINY_ALPHA])[:, None]
    if dtype_name == "float64":
        with jax.enable_x64(True):
            x = rand.gamma(jax.random.key(1), alphas.astype(np.float64), (5, N_GAMMA))
            assert x.dtype == jnp.float64  # default dtype follows alpha
            return np.asarray(x)
    x = rand.gamma(jax.random.key(0), alphas.astype(np.float32), (5, N_GAMMA), jnp.float32)
    assert x.dtype == jnp.float32 and x.shape == (5, N_GAMMA)
    return np.asarray(x)


@pytest.mark.parametrize("dtype_name", ["float32", "float64"])
@pytest.mark.parametrize("alpha", ALPHAS)
def test_gamma_distribution(alpha, dtype_name):
    _check_gamma_sample(_gamma_rows(dtype_name)[ALPHAS.index(alpha)], alpha)


def test_gamma_shapes_and_default_dtype():
    # (Broadcasting a (5, 1) alpha array to (5, N) is exercised by the
    # distribution tests above.)  Shapes/dtypes via jax.eval_shape: traced
    # only, nothing compiled.
    alpha = jnp.array([[0.5], [2.0], [30.0]], jnp.float32)

    def sd(*a, **kw):
        return jax.eval_shape(lambda k: rand.gamma(k, *a, **kw), jax.random.key(0))

    assert sd(alpha).shape == (3, 1)
    assert sd(alpha, (2, 3, 4)).shape == (2, 3, 4)
    assert sd(2.0).shape == () and sd(2.0).dtype == jnp.float32
    assert sd(2.0, (5,), jnp.float16).dtype == jnp.float16
    with jax.enable_x64(True):
        assert sd(jnp.ones(3, jnp.float64)).dtype == jnp.float64  # follows alpha
        assert sd(2.0).dtype == jnp.float64  # JAX default float under x64
        assert sd(jnp.ones(3, jnp.float32)).dtype == jnp.float32


def test_gamma_fallback_loop_runs_small_array():
    # alpha = 1 rejects ~4.85% of candidates (alpha = 0.25 uses candidates
    # for alpha + 1 = 1.25, ~3.5%); with one up-front candidate and ~4000
    # outputs (< the compaction threshold, so the full-shape loop), the chance
    # that no output needs the fallback is < 0.97^4000 ~ 1e-53.
    # The last five alphas are invalid / edge cases.
    edge = [0.0, -1.0, np.nan, np.inf, 2.0]
    alpha = np.concatenate([np.repeat([1.0, 0.25], 2000), edge]).astype(np.float32)
    keys = jax.random.split(jax.random.key(3), 3)
    x, rounds = rand.gamma(keys[0], alpha, _n_candidates=1, _return_info=True)
    assert int(rounds) >= 1
    x = np.asarray(x)
    _assert_vmap_matches_single(
        lambda k: rand.gamma(k, alpha, _n_candidates=1),
        lambda k: rand.gamma(k, alpha, _n_candidates=1, _return_info=True)[0], keys)
    _check_gamma_sample(x[:2000], 1.0)
    _check_gamma_sample(x[2000:4000], 0.25)
    # alpha <= 0 or NaN -> NaN; alpha = inf -> inf; valid alpha unaffected
    assert np.isnan(x[4000:4003]).all() and x[4003] == np.inf and np.isfinite(x[4004])


def test_gamma_fallback_loop_compacted(monkeypatch):
    # Large array: pending outputs are compacted into a buffer.  Shrinking
    # the buffer to size/1000 (50 slots for ~2400 pending) forces many
    # outer rounds, i.e. the buffer-overflow path too.
    monkeypatch.setattr(rand, "_COMPACT_DIVISOR", 1000)
    alpha = 1.0
    keys = jax.random.split(jax.random.key(5), 2)
    x, rounds = rand.gamma(keys[0], alpha, (50_000,), _n_candidates=1, _return_info=True)
    assert int(rounds) > 10
    _check_gamma_sample(x, alpha)
    _assert_vmap_matches_single(
        lambda k: rand.gamma(k, alpha, (50_000,), _n_candidates=1),
        lambda k: rand.gamma(k, alpha, (50_000,), _n_candidates=1, _return_info=True)[0],
        keys)


def test_gamma_more_upfront_candidates_still_exact():
    x = rand.gamma(jax.random.key(6), 1.0, (4000,), _n_candidates=4)
    _check_gamma_sample(x, 1.0)


@pytest.mark.parametrize("dtype_name", ["float32", "float64"])
def test_gamma_tiny_alpha_left_tail(dtype_name):
    # Gamma(0.01): most mass is astronomically small.  The boost works in log
    # space, so values down to the dtype's range are produced correctly:
    # compare P(X < 1e-20) = gammainc(0.01, 1e-20) ~= 0.634 with the
    # empirical fraction, binomial SE = sqrt(q (1 - q) / n).
    x = _gamma_rows(dtype_name)[-1]
    t, n = 1e-20, x.size
    assert np.all(np.isfinite(x)) and np.all(x >= 0)
    q = special.gammainc(TINY_ALPHA, t)
    assert abs((x < t).mean() - q) < Z_MAX * np.sqrt(q * (1 - q) / n)
    # Not everything below 1e-20 collapsed to 0: only values below the
    # dtype's range may underflow; even in float32, P(X < 1.2e-38 = smallest
    # normal) ~= 0.42 (if subnormals are flushed to zero), far from 0.63.
    assert (x == 0).mean() < 0.5


def test_chi2_distribution():
    # real-valued dfs; a (5, 1) df array (same compiled sampler as above)
    dfs = np.array([0.6, 2.0, 3.7, 9.0, 99.0], np.float32)
    x = np.asarray(rand.chi2(jax.random.key(9), dfs[:, None], (5, N_GAMMA)), np.float64)
    for df, row in zip(dfs, x):
        assert stats.kstest(row, "chi2", args=(df,)).pvalue > P_MIN
        assert abs(row.mean() - df) < Z_MAX * np.sqrt(2 * df / N_GAMMA)


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


def test_wishart_factor_vmap_and_scan():
    # Separate (unbatched) calls are made inside lax.scan, which also checks
    # that the samplers work in a scan; they must equal one vmapped call over
    # the same keys and (real, batched) dfs.
    L = jnp.linalg.cholesky(jnp.asarray(S3, jnp.float32))
    keys = jax.random.split(jax.random.key(12), 4)
    dfs = jnp.array([2.5, 3.0, 5.5, 40.0], jnp.float32)

    def step(carry, kd):
        k, df = kd
        B = rand.wishart_factor(k, df, L)
        return carry + jnp.trace(B), (B, rand.wishart(k, df, L))

    _, (B, W) = jax.jit(lambda: jax.lax.scan(step, jnp.float32(0), (keys, dfs)))()
    B, W = np.asarray(B), np.asarray(W)
    np.testing.assert_array_equal(np.triu(B, 1), 0)  # lower triangular
    assert np.all(np.diagonal(B, axis1=1, axis2=2) > 0)  # = chol(W)
    np.testing.assert_allclose(W, B @ np.swapaxes(B, 1, 2), rtol=1e-5, atol=1e-5)
    Wv = np.asarray(jax.jit(jax.vmap(rand.wishart, (0, 0, None)))(keys, dfs, L))
    np.testing.assert_allclose(Wv, W, rtol=2e-5, atol=1e-30)
    # d = 1 shape (traced only)
    out = jax.eval_shape(lambda k: rand.wishart(k, 3.0, jnp.ones((1, 1))), keys[0])
    assert out.shape == (1, 1)


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
    # n = 9001 > one chunk (4096): three balanced rounds of 3001 draws.
    n, R = 9001, 500
    p = jnp.asarray(P_ZEROS * 3.7, jnp.float32)  # unnormalised on purpose
    keys = jax.random.split(jax.random.key(20), R)
    C = jax.jit(jax.vmap(lambda k: rand.multinomial(k, n, p)))(keys)
    _check_multinomial_counts(C, n, P_ZEROS)
    for i in range(3):  # vmapped == separate calls
        np.testing.assert_array_equal(C[i], rand.multinomial(keys[i], n, p))


@pytest.mark.parametrize("chunk", [None, 96])
def test_multinomial_traced_n(monkeypatch, chunk):
    # Traced n runs the chunked loop; chunk=96 forces ceil(1000/96) = 11
    # rounds with a partially used last round.
    if chunk is not None:
        monkeypatch.setattr(rand, "_MULTINOMIAL_CHUNK", chunk)
    n, R = 1000, 2000
    p = jnp.asarray(P_ZEROS, jnp.float32)
    keys = jax.random.split(jax.random.key(21), R)
    # first 8 replicates: other traced n (n = 0 gives all zeros)
    special_n = [0, 1, 7, 96, 97, 5000, 9000, 1000]
    ns = np.full(R, n, np.int32)
    ns[:8] = special_n
    C = np.asarray(jax.jit(jax.vmap(lambda k, m: rand.multinomial(k, m, p)))(keys, ns))
    np.testing.assert_array_equal(C.sum(1), ns)
    assert np.all(C[:, P_ZEROS == 0] == 0)
    _check_multinomial_counts(C[8:], n, P_ZEROS)
    if chunk is None:  # vmapped == separate (unbatched, still traced-n) calls
        single = jax.jit(lambda k, m: rand.multinomial(k, m, p))
        for i in range(8):
            np.testing.assert_array_equal(C[i], single(keys[i], ns[i]))


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
    keys = jax.random.split(jax.random.key(24), 2)
    idx = np.asarray(jax.jit(lambda k: rand.categorical(k, p, n))(keys[0]))
    assert idx.dtype == np.int32 and idx.shape == (n,)
    counts = np.bincount(idx, minlength=len(P_ZEROS))
    assert counts.shape == (len(P_ZEROS),)  # no out-of-range index
    assert np.all(counts[P_ZEROS == 0] == 0)
    pos = P_ZEROS > 0
    assert stats.chisquare(counts[pos], n * P_ZEROS[pos] / P_ZEROS.sum()).pvalue > P_MIN
    out = jax.eval_shape(lambda k: rand.categorical(k, p, (3, 5)), jax.random.key(0))
    assert out.shape == (3, 5) and out.dtype == jnp.int32
    _assert_vmap_matches_single(lambda k: rand.categorical(k, p, n),
                                lambda k: rand.categorical(k, p, n), keys)


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
    got, want = _guide_vs_searchsorted(jax.random.key(26), jnp.asarray(p, jnp.float32))
    np.testing.assert_array_equal(got, want)
    assert np.all(p[np.asarray(got)] > 0)


@jax.jit
def _guide_vs_searchsorted(key, p):
    got = rand._inverse_cdf_indices(key, p, (50_000,))
    c, _, _ = rand._inverse_cdf_table(p)
    u = jax.random.uniform(key, (50_000,), c.dtype)
    return got, jnp.searchsorted(c, u, side="right")




def test_float32_multinomial_never_draws_an_extinct_category():
    # a Zipf(1000, 1.1) distribution after 60 Wright-Fisher steps of 10^4 draws: 136 categories left, the rest
    # exactly 0; float32 cumsum (a parallel scan) used to step up at some zeros (66 of 20000 draws hit one)
    from collapse.theory import zipf_probs
    rng = np.random.default_rng(0)
    p = zipf_probs(1000, 1.1)
    for _ in range(60):
        p = rng.multinomial(10_000, p) / 10_000
    P = jnp.asarray(p, jnp.float32)
    keys = jax.random.split(jax.random.key(0), 20_000)
    counts = np.asarray(jax.jit(jax.vmap(lambda k: rand.multinomial(k, 10_000, P)))(keys))
    assert (p > 0).sum() == 136 and counts[:, p == 0].max() == 0
    draws = np.asarray(rand.categorical(jax.random.key(1), P, 200_000))
    assert np.all(p[draws] > 0)
