"""Text-collapse metrics on small hand-made token arrays with answers worked out by hand."""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from collapse.text import metrics as tm
from collapse.text.metrics import TEXT_METRICS, tail_set

# Most tests call jitted versions (one compilation instead of dozens of eager op dispatches keeps the file
# fast); test_jit_and_vmap_agree_with_eager checks them against the plain eager functions.
unigram_counts = jax.jit(tm.unigram_counts, static_argnums=2)
token_entropy = jax.jit(tm.token_entropy)
distinct_n = jax.jit(tm.distinct_n, static_argnums=(2, 3))
vocab_coverage = jax.jit(tm.vocab_coverage)
extinct_types = jax.jit(tm.extinct_types)
rare_mass = jax.jit(tm.rare_mass)
zipf_slope = jax.jit(tm.zipf_slope)
repetition = jax.jit(tm.repetition, static_argnums=2)
ppl_quantiles = jax.jit(tm.ppl_quantiles, static_argnames="qs")
text_sample_metrics = jax.jit(tm.text_sample_metrics, static_argnums=2, static_argnames="repetition_n")

# The running example: V = 5, type 4 is not a real type.
TOKENS = np.array([[0, 1, 0, 1], [2, 2, 2, 2]], dtype=np.int32)
VALID = np.ones((2, 4), dtype=bool)
V = 5
REAL_TYPES = np.array([True, True, True, True, False])
# Real corpus counts [3, 1, 5, 1, 0], head_mass 0.8: order 2(5), 0(3), 1(1), 3(1), 4(0);
# cumulative shares 0.5, 0.8 -> head {2, 0}; tail {1, 3, 4} with real share (1 + 1 + 0) / 10 = 0.2.
REAL_COUNTS = np.array([3, 1, 5, 1, 0])
TAIL = np.array([False, True, False, True, True])
TAIL_SHARE = 0.2


def _ols_slope(x, y):
    x, y = np.asarray(x, float), np.asarray(y, float)
    return np.sum((x - x.mean()) * (y - y.mean())) / np.sum((x - x.mean()) ** 2)


# Hand values for the running example (all positions valid):
# counts = [2, 2, 4, 0, 0], N = 8, f = [1/4, 1/4, 1/2, 0, 0]
# entropy = -(2 * 1/4 log 1/4 + 1/2 log 1/2) = 1/2 log 4 + 1/2 log 2 = 1.5 log 2
# distinct_1: 8 tokens, types {0, 1, 2}                                 -> 3/8
# distinct_2: 01 10 01 | 22 22 22 = 6 bigrams, {01, 10, 22}              -> 3/6
# distinct_3: 010 101 | 222 222 = 4, {010, 101, 222}                     -> 3/4
# distinct_4: 0101 | 2222 = 2, both distinct                             -> 1
# coverage: real types {0,1,2,3}, 3 seen -> 3/4;  extinct: type 3 -> 1 (type 4 not real)
# rare_mass: tail {1,3,4} holds 2 of 8 tokens -> (2/8) / 0.2 = 1.25
# zipf: sorted positive counts [4, 2, 2] at ranks 1..3 -> x = log[1,2,3], y = log[4,2,2]
# repetition n=1: row0 0 1 [0] [1] -> 2/4, row1 2 [2][2][2] -> 3/4, mean 0.625
# repetition n=2: row0 01 10 [01] -> 1/3, row1 22 [22][22] -> 2/3, mean 0.5
# repetition n=4: one 4-gram per row, nothing earlier -> 0
HAND = {
    "token_entropy": 1.5 * math.log(2.0),
    "distinct_1": 3 / 8,
    "distinct_2": 3 / 6,
    "distinct_3": 3 / 4,
    "distinct_4": 1.0,
    "vocab_coverage": 3 / 4,
    "extinct_types": 1.0,
    "rare_mass": (2 / 8) / 0.2,
    "zipf_slope": -_ols_slope(np.log([1, 2, 3]), np.log([4, 2, 2])),
    "repetition": 0.5,  # n = 2
}


def _close(a, b, tol=1e-6):
    assert np.asarray(a).dtype == jnp.result_type(float)
    np.testing.assert_allclose(float(a), b, rtol=tol, atol=tol)


def test_running_example_by_hand():
    counts = unigram_counts(TOKENS, VALID, V)
    np.testing.assert_array_equal(np.asarray(counts), [2, 2, 4, 0, 0])
    _close(token_entropy(counts), HAND["token_entropy"])
    for n in (1, 2, 3, 4):
        _close(distinct_n(TOKENS, VALID, n, V), HAND[f"distinct_{n}"])
    _close(vocab_coverage(counts, REAL_TYPES), 0.75)
    _close(extinct_types(counts, REAL_TYPES), 1.0)
    _close(rare_mass(counts, TAIL, TAIL_SHARE), 1.25)
    _close(zipf_slope(counts), HAND["zipf_slope"])
    _close(repetition(TOKENS, VALID, 1), 0.625)
    _close(repetition(TOKENS, VALID, 2), 0.5)
    _close(repetition(TOKENS, VALID, 3), 0.25)  # row0 010 101 -> 0, row1 222 [222] -> 1/2
    _close(repetition(TOKENS, VALID, 4), 0.0)
    out = text_sample_metrics(TOKENS, VALID, V, REAL_TYPES, TAIL, TAIL_SHARE, repetition_n=2)
    assert set(out) == set(TEXT_METRICS) and len(TEXT_METRICS) == 10
    for k, v in HAND.items():
        _close(out[k], v)


def test_tail_set_by_hand_with_ties():
    tail, share = tail_set(REAL_COUNTS, 0.8)
    np.testing.assert_array_equal(tail, TAIL)
    assert share == pytest.approx(TAIL_SHARE, abs=1e-12)
    # counts [1, 3, 3, 0, 2, 1], total 10; stable order 1(3) 2(3) 4(2) 0(1) 5(1) 3(0); shares .3 .6 .8 .9 1.
    c = np.array([1, 3, 3, 0, 2, 1])
    expected = {
        0.25: ({1}, 0.7),  # a tie split: type 1 (lower index) heads, type 2 stays in the tail
        0.6: ({1, 2}, 0.4),
        0.8: ({1, 2, 4}, 0.2),
        0.85: ({1, 2, 4, 0}, 0.1),  # tie between types 0 and 5: the lower index joins the head
        1.0: ({1, 2, 4, 0, 5}, 0.0),  # zero-count type 3 is always in the tail
    }
    for head_mass, (head, tail_share) in expected.items():
        tail, share = tail_set(c, head_mass)
        assert tail.dtype == bool and tail.shape == (6,)
        assert set(np.nonzero(~tail)[0]) == head, head_mass
        assert share == pytest.approx(tail_share, abs=1e-12)
    # Default head_mass 0.9: head {1, 2, 4, 0}, tail {3, 5}.
    tail, share = tail_set(c)
    assert set(np.nonzero(tail)[0]) == {3, 5} and share == pytest.approx(0.1)
    for bad in (0.0, 1.5):
        with pytest.raises(ValueError):
            tail_set(c, bad)
    with pytest.raises(ValueError):
        tail_set(np.zeros(4))


def test_prompt_positions_are_ignored():
    # The same generated text behind prompts made of a token (3) that would change every metric if read.
    tok = np.array([[3, 3, 0, 1, 0, 1], [3, 3, 2, 2, 2, 2]], dtype=np.int32)
    val = np.array([[0, 0, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1]], dtype=bool)
    out = text_sample_metrics(tok, val, V, REAL_TYPES, TAIL, TAIL_SHARE, repetition_n=2)
    for k, v in HAND.items():
        _close(out[k], v)

    # Uneven suffixes and a row that is all prompt:
    # row0 valid [0 1 0 1], row1 valid [2 2], row2 nothing.
    tok = np.array([[3, 0, 1, 0, 1], [3, 3, 3, 2, 2], [3, 3, 3, 3, 3]], dtype=np.int32)
    val = np.array([[0, 1, 1, 1, 1], [0, 0, 0, 1, 1], [0, 0, 0, 0, 0]], dtype=bool)
    counts = unigram_counts(tok, val, V)
    np.testing.assert_array_equal(np.asarray(counts), [2, 2, 2, 0, 0])
    _close(token_entropy(counts), math.log(3.0))
    _close(distinct_n(tok, val, 2, V), 3 / 4)  # 01 10 01 | 22 -> {01, 10, 22} of 4
    _close(distinct_n(tok, val, 3, V), 2 / 2)  # 010 101 | (none)
    _close(distinct_n(tok, val, 4, V), 1.0)  # 0101 only
    _close(repetition(tok, val, 2), (1 / 3 + 0 / 1) / 2)  # row2 has no bigram: not in the mean
    _close(repetition(tok, val, 3), 0.0)  # only row0 counts
    _close(repetition(tok, val, 1), (2 / 4 + 1 / 2) / 2)

    # A prompt that repeats the generated text: an n-gram only repeats *valid* earlier n-grams.
    tok = np.array([[0, 1, 0, 1]], dtype=np.int32)
    val = np.array([[0, 0, 1, 1]], dtype=bool)
    _close(repetition(tok, val, 2), 0.0)  # the one valid bigram 01 has no valid predecessor
    _close(repetition(tok, val, 1), 0.0)  # 0 1 are both new among valid tokens
    _close(distinct_n(tok, val, 1, V), 1.0)


def test_valid_mask_with_a_hole():
    # Not produced by the pipeline (valid is a suffix there), but n-grams must not span an invalid position.
    tok = np.array([[0, 1, 2, 0, 1]], dtype=np.int32)
    val = np.array([[1, 1, 0, 1, 1]], dtype=bool)
    _close(distinct_n(tok, val, 2, V), 1 / 2)  # 01 | 01 (12 and 20 cross the hole)
    _close(repetition(tok, val, 2), 1 / 2)
    assert np.isnan(distinct_n(tok, val, 3, V))


def test_distinct_n_matches_python_sets():
    rng = np.random.default_rng(1234)
    for vocab, e, l in ((7, 6, 30), (50_000, 4, 40)):  # exact codes; hashed codes for n >= 3
        tok = rng.integers(0, vocab, size=(e, l)).astype(np.int32)
        start = rng.integers(0, l + 1, size=e)
        start[0] = 0
        start[-1] = l  # one row is all prompt
        val = np.arange(l)[None, :] >= start[:, None]
        for n in (1, 2, 3, 4, 5):
            grams = [
                tuple(tok[i, j:j + n])
                for i in range(e)
                for j in range(l - n + 1)
                if val[i, j:j + n].all()
            ]
            want = len(set(grams)) / len(grams)
            _close(distinct_n(tok, val, n, vocab), want)
            if vocab == 7 and n <= 2:
                assert want < 1  # the small vocabulary really produces duplicates
    # The code of (V-1, V-1) with V = 2**16 is 2**32 - 1, the sentinel of invalid windows: still counted.
    big = 2**16
    tok = np.array([[0, 0, big - 1, big - 1], [big - 1, big - 1, big - 1, 0]], dtype=np.int32)
    val = np.array([[0, 0, 1, 1], [1, 1, 1, 1]], dtype=bool)
    # bigrams: (b,b) | (b,b) (b,b) (b,0) -> 4 bigrams, 2 distinct
    _close(distinct_n(tok, val, 2, big), 2 / 4)
    _close(distinct_n(tok[:1], val[:1], 2, big), 1.0)


def test_zipf_slope():
    # Exact power law c_r = r^-1.5 (float, no rounding), shuffled and padded with zero counts.
    rng = np.random.default_rng(0)
    r = np.arange(1, 41)
    c = np.concatenate([r ** -1.5, np.zeros(10)])
    _close(zipf_slope(rng.permutation(c)), 1.5, tol=1e-4)  # float32 logs: ~1e-6 relative error
    # Integer counts round(1e6 r^-1.5), r <= 50: the smallest is ~2828, so each log count is off by at
    # most 0.5 / 2828 = 1.8e-4, and an OLS slope moves by at most that over the half-range of log r
    # (~1.96) times a small constant -> tolerance 1e-3 is generous but still tight relative to 1.5.
    r = np.arange(1, 51)
    c = np.round(1e6 * r ** -1.5)
    assert c.min() > 2800
    _close(zipf_slope(rng.permutation(c)), 1.5, tol=1e-3)
    # Two types: the fit passes through both points: s = (log 4 - log 1) / (log 2 - log 1) = 2.
    _close(zipf_slope(np.array([0, 1, 0, 4, 0])), 2.0)
    # All counts equal: slope 0.
    _close(zipf_slope(np.array([3, 3, 3, 0])), 0.0)


def test_ppl_quantiles_by_hand():
    # Rows with constant logp = -log k have perplexity k = 1..5; row 5 has no valid position (garbage logp);
    # invalid positions hold -inf / NaN which must be ignored.
    ks = [1.0, 2.0, 3.0, 4.0, 5.0]
    logp = np.full((6, 4), -np.inf)
    val = np.zeros((6, 4), dtype=bool)
    for i, k in enumerate(ks):
        logp[i, 1:] = -math.log(k)
        val[i, 1:] = True
        logp[i, 0] = np.nan
    # linear quantiles of [1..5]: position q * 4 -> q50 = 3, q95 = 1 + 3.8 = 4.8, q99 = 1 + 3.96 = 4.96
    out = ppl_quantiles(logp, val)
    assert set(out) == {"ppl_gen0_q50", "ppl_gen0_q95", "ppl_gen0_q99"}
    _close(out["ppl_gen0_q50"], 3.0, tol=1e-5)
    _close(out["ppl_gen0_q95"], 4.8, tol=1e-5)
    _close(out["ppl_gen0_q99"], 4.96, tol=1e-5)
    # A row of varying logp: mean of (-1, -3) = -2 -> ppl e^2.
    out = ppl_quantiles(np.array([[-1.0, -3.0, 7.0]]), np.array([[True, True, False]]), qs=(0.5, 0.999))
    assert set(out) == {"ppl_gen0_q50", "ppl_gen0_q99.9"}
    _close(out["ppl_gen0_q50"], math.exp(2.0), tol=1e-5)
    _close(out["ppl_gen0_q99.9"], math.exp(2.0), tol=1e-5)


def test_nan_edge_cases():
    nothing = np.zeros((2, 4), dtype=bool)
    assert np.isnan(distinct_n(TOKENS, nothing, 2, V))
    assert np.isnan(distinct_n(TOKENS, VALID, 5, V))  # n > L: no n-gram at all
    assert np.isnan(repetition(TOKENS, nothing, 2))
    assert np.isnan(repetition(TOKENS, VALID, 5))
    zero = unigram_counts(TOKENS, nothing, V)
    assert np.isnan(token_entropy(zero))
    assert np.isnan(rare_mass(zero, TAIL, TAIL_SHARE))
    counts = unigram_counts(TOKENS, VALID, V)
    assert np.isnan(rare_mass(counts, TAIL, 0.0))
    assert np.isnan(zipf_slope(zero))
    assert np.isnan(zipf_slope(np.array([0, 7, 0])))  # one type
    assert np.isnan(vocab_coverage(counts, np.zeros(V, dtype=bool)))
    _close(extinct_types(zero, REAL_TYPES), 4.0)
    _close(vocab_coverage(zero, REAL_TYPES), 0.0)
    _close(token_entropy(np.array([0, 5, 0])), 0.0)  # one type: no uncertainty
    out = ppl_quantiles(np.zeros((3, 2)), np.zeros((3, 2), dtype=bool))
    assert all(np.isnan(v) for v in out.values())
    out = text_sample_metrics(TOKENS, nothing, V, REAL_TYPES, TAIL, TAIL_SHARE)
    for k in ("token_entropy", "distinct_1", "distinct_4", "rare_mass", "zipf_slope", "repetition"):
        assert np.isnan(out[k]), k
    with pytest.raises(ValueError):
        distinct_n(TOKENS, VALID, 0, V)


def test_jit_and_vmap_agree_with_eager():
    # Batch of 3 variants of the running example, with different prompts (valid suffixes).
    tok = np.stack([TOKENS, TOKENS[::-1], np.array([[4, 1, 1, 0], [2, 3, 2, 3]])]).astype(np.int32)
    val = np.stack([VALID, np.array([[0, 1, 1, 1], [0, 0, 1, 1]]), np.array([[0, 0, 0, 0], [1, 1, 1, 1]])])
    val = val.astype(bool)
    def f(t, v, real, tail, share):
        return tm.text_sample_metrics(t, v, V, real, tail, share, repetition_n=2)

    batched = jax.jit(jax.vmap(f, in_axes=(0, 0, None, None, None)))(tok, val, REAL_TYPES, TAIL, TAIL_SHARE)
    jitted = jax.jit(f)
    for b in range(3):
        eager = f(tok[b], val[b], REAL_TYPES, TAIL, TAIL_SHARE)
        assert tuple(eager) == TEXT_METRICS  # eager keeps the documented order
        single = jitted(tok[b], val[b], REAL_TYPES, TAIL, TAIL_SHARE)
        for k in TEXT_METRICS:
            np.testing.assert_allclose(np.asarray(batched[k][b]), np.asarray(eager[k]), rtol=1e-6, err_msg=k)
            np.testing.assert_allclose(np.asarray(single[k]), np.asarray(eager[k]), rtol=1e-6, err_msg=k)
    for k, v in HAND.items():  # batch element 0 is the running example
        np.testing.assert_allclose(float(batched[k][0]), v, rtol=1e-6, err_msg=k)
    # Batch element 2: only row1 [2 3 2 3] is valid -> distinct_2 = {23, 32} / 3, repetition(2) = 1/3.
    np.testing.assert_allclose(float(batched["distinct_2"][2]), 2 / 3, rtol=1e-6)
    np.testing.assert_allclose(float(batched["repetition"][2]), 1 / 3, rtol=1e-6)

    # The traced real_tail_share may differ per batch element.
    rm = jax.jit(jax.vmap(tm.rare_mass, in_axes=(None, None, 0)))(
        tm.unigram_counts(TOKENS, VALID, V), TAIL, jnp.array([0.2, 0.5, 0.0])
    )
    np.testing.assert_allclose(np.asarray(rm[:2]), [1.25, 0.5], rtol=1e-6)
    assert np.isnan(rm[2])

    # ppl_quantiles under jit + vmap over a leading batch axis.
    logp = -np.log(np.arange(1.0, 7.0)).reshape(2, 3, 1) * np.ones((1, 1, 2))  # batch 2, rows ppl 1..3 / 4..6
    g = jax.jit(jax.vmap(tm.ppl_quantiles, in_axes=(0, None)))
    out = g(logp, np.ones((3, 2), dtype=bool))
    np.testing.assert_allclose(np.asarray(out["ppl_gen0_q50"]), [2.0, 5.0], rtol=1e-5)
    eager = tm.ppl_quantiles(logp[1], np.ones((3, 2), dtype=bool))
    for k in eager:
        np.testing.assert_allclose(float(out[k][1]), float(eager[k]), rtol=1e-6, err_msg=k)
