"""Parameter metrics against independent computations (SciPy / NumPy) on hand-made cases."""
import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg as sla
from scipy import stats as sps

from collapse.metrics import continuous as cm
from collapse.metrics.discrete import discrete_metrics
from collapse.sources.discrete import tail_set


def test_mixture_moments_keep_tiny_variances_in_float32():
    mu, cov = cm.mixture_moments(jnp.ones(1, jnp.float32), jnp.array([[1.9]], jnp.float32),
                                 jnp.array([[[1e-9]]], jnp.float32))
    assert float(cov[0, 0]) == np.float32(1e-9)
    w = jnp.array([0.25, 0.75])
    m = jnp.array([[0.0], [2.0]])
    c = jnp.array([[[1.0]], [[0.5]]])
    mu, cov = cm.mixture_moments(w, m, c)
    # law of total variance: E[var] + var[E] = 0.25*1 + 0.75*0.5 + 0.25*0.75*4
    assert np.isclose(float(mu[0]), 1.5) and np.isclose(float(cov[0, 0]), 0.625 + 0.75)


def test_frechet_and_kl_match_scipy():
    rng = np.random.default_rng(0)
    with jax.enable_x64(True):
        a = rng.standard_normal((3, 3))
        s = a @ a.T + 0.5 * np.eye(3)
        b = rng.standard_normal((3, 3))
        s0 = b @ b.T + 0.5 * np.eye(3)
        mu, mu0 = rng.standard_normal(3), rng.standard_normal(3)
        root = sla.sqrtm(s)
        expected = np.sum((mu - mu0) ** 2) + np.trace(s + s0 - 2 * np.real(sla.sqrtm(root @ s0 @ root)))
        got = float(cm.frechet(jnp.asarray(mu), jnp.asarray(s), jnp.asarray(mu0), jnp.asarray(s0)))
        assert abs(got - expected) < 1e-8
        inv = np.linalg.inv(s)
        kl = 0.5 * (np.trace(inv @ s0) + (mu - mu0) @ inv @ (mu - mu0) - 3 + np.log(np.linalg.det(s) / np.linalg.det(s0)))
        assert abs(float(cm.gaussian_kl(jnp.asarray(mu0), jnp.asarray(s0), jnp.asarray(mu), jnp.asarray(s))) - kl) < 1e-9


def test_tail_probability_is_exact_in_one_dimension():
    r2 = sps.chi2.ppf(0.99, 1)
    u = cm.sphere_directions(jax.random.key(0), 256, 1, jnp.float32)
    for m, v in [(0.0, 1.0), (0.7, 0.3), (-2.0, 2.5)]:
        p = float(cm.elliptical_tail_prob(jnp.ones(1), jnp.array([[m]]), jnp.array([[[v]]]), jnp.zeros(1),
                                          jnp.eye(1), jnp.asarray(r2), u))
        r = np.sqrt(r2)
        exact = sps.norm.sf(r, m, np.sqrt(v)) + sps.norm.cdf(-r, m, np.sqrt(v))
        assert abs(p - exact) < 1e-5, (m, v, p, exact)


def test_tail_probability_in_three_dimensions_agrees_with_monte_carlo():
    """Conditional Monte Carlo (8 independent sets of 1024 directions) vs 400k plain draws, within 4
    combined standard errors (each side's SE estimated from its own spread)."""
    r2 = sps.chi2.ppf(0.99, 3)
    mean, cov = np.array([0.5, 0.0, -0.3]), np.diag([2.0, 0.5, 1.0])
    with jax.enable_x64(True):
        est = np.array([float(cm.elliptical_tail_prob(
            jnp.ones(1), jnp.asarray(mean)[None], jnp.asarray(cov)[None], jnp.zeros(3), jnp.eye(3),
            jnp.asarray(r2), cm.sphere_directions(jax.random.key(k), 1024, 3, jnp.float64))) for k in range(8)])
    x = np.random.default_rng(2).multivariate_normal(mean, cov, 400_000)
    mc = np.mean(np.sum(x * x, 1) > r2)
    se = np.sqrt(mc * (1 - mc) / len(x) + est.var(ddof=1) / len(est))
    assert abs(est.mean() - mc) < 4 * se


def test_discrete_metrics_on_a_hand_made_case():
    p0 = jnp.array([0.5, 0.3, 0.15, 0.05])
    p = jnp.array([0.6, 0.4, 0.0, 0.0])
    tail = jnp.asarray(tail_set(np.asarray(p0)))
    assert list(np.asarray(tail)) == [False, False, True, True]  # 0.05 < 0.1, so 0.15 joins: 0.2 >= 0.1
    m = {k: float(v) for k, v in discrete_metrics(p, p0, tail).items()}
    assert m["support"] == 2 and np.isclose(m["extinct_mass"], 0.2)
    assert np.isclose(m["entropy"], -(0.6 * np.log(0.6) + 0.4 * np.log(0.4)))
    assert np.isclose(m["gini_simpson"], 1 - 0.36 - 0.16) and np.isclose(m["tv_true"], 0.2)
    assert np.isinf(m["kl_true"]) and m["tail_mass"] == 0.0
    same = {k: float(v) for k, v in discrete_metrics(p0, p0, tail).items()}
    assert same["kl_true"] == 0.0 and same["tail_mass"] == 1.0 and same["tv_true"] == 0.0


def test_tail_set_breaks_ties_toward_higher_index():
    mask = tail_set(np.array([0.4, 0.2, 0.2, 0.2]))
    assert list(mask) == [False, False, False, True]
