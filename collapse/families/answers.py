"""``model=answers``: a categorical answer distribution per problem, for ``source=task``.

q(a | p) = (c_pa + alpha) / (n_p + A alpha), c_pa the count of answer a to problem p among the training rows,
n_p = sum_a c_pa, alpha = ``smoothing`` (a problem without rows and alpha = 0: uniform 1 / A). With alpha = 0 an
answer that gets no rows is gone for good in a fully synthetic chain; the right one too. Sampling answers the given
problems (``covariates``) with q(. | p)^(1 / scale), renormalised. The fit depends on the counts only
(``stats``: the (P, A) count table; accumulate regimes merge tables).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from collapse import checks
from collapse.components import FamilySpec, SourceSpec
from collapse.families.base import Family
from collapse.run_settings import dtype_of


def answers(problems: int, answers: int, smoothing: float = 0.0, dtype=jnp.float32) -> Family:
    P, A = int(problems), int(answers)

    def init(truth):
        return {"probs": jnp.full((P, A), 1.0 / A, dtype)}

    def stats(batch, mask):
        if mask.dtype != jnp.bool_:  # float row weights (loop.real_weight): weighted counts
            return jnp.zeros((P, A), dtype).at[batch["x"], batch["y"]].add(mask.astype(dtype))
        return jnp.zeros((P, A), jnp.int32).at[batch["x"], batch["y"]].add(mask.astype(jnp.int32))

    def merge_stats(a, b):
        return a + b

    def fit_stats(key, counts, prev):
        c = counts.astype(dtype)
        denom = jnp.sum(c, axis=1, keepdims=True) + A * smoothing
        probs = jnp.where(denom > 0, (c + smoothing) / jnp.where(denom > 0, denom, 1.0), 1.0 / A)
        return {"probs": probs.astype(dtype)}

    def fit(key, batch, mask, prev):
        return fit_stats(key, stats(batch, mask), prev)

    def sample(key, params, n, scale, covariates):
        x = covariates
        logp = jnp.log(params["probs"][x]) / jnp.asarray(scale, dtype)
        return {"x": x, "y": jax.random.categorical(key, logp, axis=-1).astype(jnp.int32)}

    def log_prob(params, batch):
        return jnp.log(params["probs"][batch["x"], batch["y"]])

    return Family("answers", ("task",), init, fit, sample, log_prob, stats=stats, merge_stats=merge_stats,
                  fit_stats=fit_stats, answer_probs=lambda p: p["probs"], weights=True,
                  weigh_stats=lambda counts, c: counts.astype(dtype) * c)


def check(cfg, source: SourceSpec) -> None:
    checks.number(cfg, "model.smoothing", 0.0, allowed="must be a number >= 0")


def build(cfg, source) -> Family:
    return answers(source.info["problems"], source.dim, float(cfg.model.smoothing), dtype_of(cfg))


FAMILY = FamilySpec("answers", fits=("task",), check=check, build=build)
