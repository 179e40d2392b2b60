"""A plug-in metric: the median absolute deviation of the model's first coordinate relative to the truth's
standard deviation. One function; ``plugins=[laplace_metrics]`` imports it before the run is built."""
from __future__ import annotations

import jax.numpy as jnp

from collapse.metrics.registry import metric


@metric("spread_ratio", kinds=("continuous",), label="spread ratio (coordinate 1)",
        about="std of model draws / std of the truth, first coordinate (1 = intact)")
def spread_ratio(ctx):
    draws = ctx.tail_draws[:, 0]
    return {"spread_ratio": jnp.std(draws) / jnp.sqrt(ctx.truth["cov"][0, 0])}
