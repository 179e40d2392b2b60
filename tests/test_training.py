"""The neural families' minibatch rows: uniform over the valid rows of the mask, never a padded row."""
import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from collapse.families.training import draw_rows


def test_rows_are_uniform_over_valid_rows_and_skip_padding():
    mask = np.zeros(40, bool)
    mask[[0, 3, 4, 5, 17, 30, 39]] = True  # holes anywhere, not only a filled prefix
    rows = np.asarray(draw_rows(jax.random.key(0), jnp.cumsum(jnp.asarray(mask, jnp.int32)), 70000))
    assert mask[rows].all()
    counts = np.bincount(rows, minlength=40)[mask]
    chi2 = ((counts - 10000) ** 2 / 10000).sum()
    assert chi2 < stats.chi2.ppf(1 - 1e-4, 6), counts


def test_gradient_accumulation_is_the_step_of_one_large_batch():
    """accumulate=4 microbatches of 2 rows take the step of one batch of 8 (the same rows, gradients averaged);
    a batch of 2 alone does not (the accumulated microbatches count)."""
    from collapse.families.training import adamw, train

    x = jax.random.normal(jax.random.key(1), (64, 3))
    data = {"x": x, "y": x @ jnp.array([1.0, -2.0, 0.5]) + 0.1 * jax.random.normal(jax.random.key(2), (64,))}
    mask = jnp.arange(64) < 50

    def loss(w, mb, key):
        return jnp.mean((mb["x"] @ w - mb["y"]) ** 2)

    opt = adamw(0.05, 30, 3)
    args = (jnp.zeros(3), data, mask, jax.random.key(3), 30)
    w8, l8 = train(loss, *args, 8, opt)
    w24, l24 = train(loss, *args, 2, opt, accumulate=4)
    w2, l2 = train(loss, *args, 2, opt)
    np.testing.assert_allclose(w24, w8, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(l24, l8, rtol=1e-5, atol=1e-6)
    assert np.abs(np.asarray(l2) - np.asarray(l8)).max() > 1e-2
