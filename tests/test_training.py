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
