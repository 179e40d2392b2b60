"""Decoding controls: repetition penalty, temperature, top-k, top-p, and exact sampling law.

Statistical checks use fixed seeds chosen before looking at results.  Frequency
tests are chi-square tests over the cells with positive probability, accepted
below the (1 - 1e-6) quantile of chi2(df); proportion tests use 5 standard
errors.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from collapse.text.decoding import Decoding, process_logits, sample_token, token_probs

CHI2_LEVEL = 1e-6  # false-failure probability of each chi-square check


def _counts(tokens, V: int) -> np.ndarray:
    return np.bincount(np.asarray(tokens).ravel(), minlength=V)


def _draws(seed: int, logits, seen, d: Decoding, n: int) -> np.ndarray:
    """n tokens from one row of logits (one key, batch of identical rows)."""
    V = logits.shape[-1]
    lb = jnp.broadcast_to(jnp.asarray(logits, jnp.float32), (n, V))
    sb = None if seen is None else jnp.broadcast_to(jnp.asarray(seen), (n, V))
    return np.asarray(jax.jit(sample_token, static_argnums=3)(jax.random.PRNGKey(seed), lb, sb, d))


def _assert_chi2(counts: np.ndarray, probs: np.ndarray) -> None:
    n = counts.sum()
    pos = probs > 0
    assert counts[~pos].sum() == 0, f"drew a zero-probability token: {counts}"
    expected = n * probs[pos]
    stat = ((counts[pos] - expected) ** 2 / expected).sum()
    df = int(pos.sum()) - 1
    if df == 0:
        return
    bound = stats.chi2.ppf(1 - CHI2_LEVEL, df)
    assert stat < bound, f"chi2 = {stat:.1f} >= {bound:.1f} (df {df}); counts {counts}, probs {probs}"


def test_decoding_validation_and_is_plain():
    assert Decoding().is_plain
    for d in (Decoding(temperature=0.5), Decoding(top_k=3), Decoding(top_p=0.9),
              Decoding(repetition_penalty=1.2), Decoding(temperature=0.0)):
        assert not d.is_plain
    for bad in (dict(temperature=-0.1), dict(top_k=-1), dict(top_p=0.0), dict(top_p=1.5),
                dict(repetition_penalty=0.9)):
        with pytest.raises(ValueError):
            Decoding(**bad)
    assert hash(Decoding(top_k=2)) == hash(Decoding(top_k=2))


def test_plain_is_identity():
    z = jnp.array([[0.3, -1.0, 2.0, -jnp.inf]])
    np.testing.assert_array_equal(process_logits(z, None, Decoding()), z)


def test_repetition_penalty_hand_example():
    z = jnp.array([2.0, -1.0, 0.5, -3.0, 0.0])
    seen = jnp.array([True, True, False, False, True])
    out = process_logits(z, seen, Decoding(repetition_penalty=2.0))
    # seen positive -> z / 2, seen non-positive -> z * 2, unseen untouched
    np.testing.assert_allclose(out, [1.0, -2.0, 0.5, -3.0, 0.0])
    # penalty first, then temperature
    out_t = process_logits(z, seen, Decoding(repetition_penalty=2.0, temperature=0.5))
    np.testing.assert_allclose(out_t, [2.0, -4.0, 1.0, -6.0, 0.0])
    with pytest.raises(ValueError):
        process_logits(z, None, Decoding(repetition_penalty=2.0))


def test_repetition_penalty_changes_greedy_choice():
    z = jnp.array([3.0, 2.0, -1.0])
    seen = jnp.array([True, False, False])
    g = Decoding(temperature=0.0, repetition_penalty=2.0)  # 3 / 2 = 1.5 < 2
    assert int(sample_token(jax.random.PRNGKey(0), z, seen, g)) == 1
    np.testing.assert_array_equal(token_probs(z, seen, g), [0.0, 1.0, 0.0])


def test_temperature_zero_is_argmax():
    z = jax.random.normal(jax.random.PRNGKey(1), (64, 17))
    d = Decoding(temperature=0.0, top_k=3, top_p=0.5)
    tok = sample_token(jax.random.PRNGKey(2), z, None, d)
    assert tok.dtype == jnp.int32 and tok.shape == (64,)
    np.testing.assert_array_equal(tok, np.argmax(np.asarray(z), axis=-1))
    # no randomness
    np.testing.assert_array_equal(tok, sample_token(jax.random.PRNGKey(3), z, None, d))
    p = token_probs(z, None, d)
    np.testing.assert_array_equal(p, jax.nn.one_hot(tok, 17))
    # ties: lowest index
    assert int(sample_token(jax.random.PRNGKey(0), jnp.array([1.0, 3.0, 3.0, 0.0]), None,
                            Decoding(temperature=0.0))) == 1


def test_small_temperature_concentrates_on_argmax():
    z = jnp.array([0.0, 1.0, 2.0, 2.5, -jnp.inf, 1.5])
    top = [float(token_probs(z, None, Decoding(temperature=t))[3]) for t in (2.0, 1.0, 0.5, 0.1, 0.01)]
    assert all(a < b for a, b in zip(top, top[1:])), top
    assert top[-1] > 1 - 1e-12
    # gap 0.5 / 0.01 = 50 nats: every draw is the argmax
    tok = _draws(4, z, None, Decoding(temperature=0.01), 20_000)
    assert np.all(tok == 3)


def test_top_k_keeps_exactly_k_with_low_index_ties():
    z = jnp.array([1.0, 1.0, 1.0, 0.0, 2.0])
    out = process_logits(z, None, Decoding(top_k=2))
    np.testing.assert_array_equal(np.isfinite(out), [True, False, False, False, True])
    out3 = process_logits(z, None, Decoding(top_k=3))
    np.testing.assert_array_equal(np.isfinite(out3), [True, True, False, False, True])
    # k >= V is a no-op
    np.testing.assert_array_equal(process_logits(z, None, Decoding(top_k=5)), z)
    np.testing.assert_array_equal(process_logits(z, None, Decoding(top_k=9)), z)


def test_top_k_never_emits_outside_top_k():
    V, k, n = 20, 4, 40_000
    z = jax.random.normal(jax.random.PRNGKey(5), (V,)) * 0.5  # flat-ish: the tail has mass
    d = Decoding(top_k=k)
    tok = _draws(6, z, None, d, n)
    allowed = set(np.argsort(-np.asarray(z))[:k].tolist())
    assert set(np.unique(tok).tolist()) == allowed
    _assert_chi2(_counts(tok, V), np.asarray(token_probs(z, None, d), np.float64))


@pytest.mark.parametrize("order", [[0, 1, 2, 3], [2, 0, 3, 1]])
def test_top_p_hand_example(order):
    probs = np.array([0.5, 0.3, 0.15, 0.05])
    perm = np.array(order)  # token perm[i] gets probs[i]
    z = np.empty(4, np.float32)
    z[perm] = np.log(probs)
    z = jnp.asarray(z)
    for p, keep in [(0.3, 1), (0.5, 1), (0.51, 2), (0.8, 2), (0.81, 3), (0.95, 3), (0.96, 4), (1.0, 4)]:
        kept = np.isfinite(np.asarray(process_logits(z, None, Decoding(top_p=p))))
        assert kept.sum() == keep, (p, kept)
        np.testing.assert_array_equal(kept[perm], np.arange(4) < keep)
    # renormalised nucleus
    q = np.asarray(token_probs(z, None, Decoding(top_p=0.8)))
    np.testing.assert_allclose(q[perm], [0.625, 0.375, 0.0, 0.0], rtol=1e-6)


def test_top_p_ties_and_at_least_one_token():
    z = jnp.zeros(4)
    kept = np.isfinite(np.asarray(process_logits(z, None, Decoding(top_p=0.5))))
    np.testing.assert_array_equal(kept, [True, True, False, False])
    kept = np.isfinite(np.asarray(process_logits(z, None, Decoding(top_p=1e-9))))
    np.testing.assert_array_equal(kept, [True, False, False, False])


def test_top_k_then_top_p_uses_filtered_mass():
    probs = np.array([0.4, 0.3, 0.2, 0.1])
    z = jnp.log(jnp.asarray(probs, jnp.float32))
    # after top-2 the law is [4/7, 3/7]; p = 0.5 keeps only the first
    kept = np.isfinite(np.asarray(process_logits(z, None, Decoding(top_k=2, top_p=0.5))))
    np.testing.assert_array_equal(kept, [True, False, False, False])
    # without top-k, p = 0.5 keeps two (0.4 < 0.5 <= 0.7)
    kept = np.isfinite(np.asarray(process_logits(z, None, Decoding(top_p=0.5))))
    np.testing.assert_array_equal(kept, [True, True, False, False])


CONFIGS = [
    Decoding(),
    Decoding(temperature=0.7, top_k=5),
    Decoding(temperature=1.5, top_p=0.9, repetition_penalty=1.5),
    Decoding(top_k=6, top_p=0.8, repetition_penalty=2.0),
]


@pytest.mark.parametrize("i", range(len(CONFIGS)))
def test_sample_frequencies_match_token_probs(i):
    d = CONFIGS[i]
    V, n = 10, 50_000
    z = np.array(jax.random.normal(jax.random.PRNGKey(7), (V,)))
    z[3] = -np.inf  # impossible token
    z = jnp.asarray(z)
    seen = jnp.arange(V) % 3 == 0
    probs = np.asarray(token_probs(z, seen, d), np.float64)
    np.testing.assert_allclose(probs.sum(), 1.0, rtol=1e-6)
    assert probs[3] == 0.0
    tok = _draws(100 + i, z, seen, d, n)
    _assert_chi2(_counts(tok, V), probs)


def test_neg_inf_never_emitted_under_nucleus_and_flat_logits():
    # finite mass is tiny relative to nothing: all finite tokens equal, many -inf
    V, n = 12, 20_000
    z = jnp.where(jnp.arange(V) % 2 == 0, 0.0, -jnp.inf)
    for d in (Decoding(), Decoding(top_p=0.999), Decoding(top_k=10), Decoding(temperature=5.0)):
        tok = _draws(8, z, None, d, n)
        assert np.all(tok % 2 == 0), d


def test_batched_shapes_jit_and_vmap():
    V = 9
    z = jax.random.normal(jax.random.PRNGKey(9), (2, 3, V))
    seen = jax.random.bernoulli(jax.random.PRNGKey(10), 0.3, (2, 3, V))
    d = Decoding(temperature=0.8, top_k=4, top_p=0.9, repetition_penalty=1.3)
    key = jax.random.PRNGKey(11)
    tok = sample_token(key, z, seen, d)
    assert tok.shape == (2, 3) and tok.dtype == jnp.int32
    jitted = jax.jit(sample_token, static_argnums=3)
    np.testing.assert_array_equal(jitted(key, z, seen, d), tok)
    # vmap over keys and rows agrees with separate calls
    zf, sf = z.reshape(6, V), seen.reshape(6, V)
    keys = jax.random.split(key, 6)
    vm = jax.vmap(sample_token, in_axes=(0, 0, 0, None))(keys, zf, sf, d)
    sep = jnp.stack([sample_token(keys[j], zf[j], sf[j], d) for j in range(6)])
    np.testing.assert_array_equal(vm, sep)
    # token_probs under vmap and jit equals the batched call
    pb = token_probs(zf, sf, d)
    pv = jax.vmap(token_probs, in_axes=(0, 0, None))(zf, sf, d)
    pj = jax.jit(token_probs, static_argnums=2)(zf, sf, d)
    np.testing.assert_allclose(pv, pb, rtol=1e-6)
    np.testing.assert_allclose(pj, pb, rtol=1e-6)
    # sampled tokens are in the support
    assert np.all(np.asarray(jnp.take_along_axis(pb, vm[:, None], axis=-1)) > 0)
