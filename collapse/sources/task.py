"""``source=task``: problems with checkable answers, the closed-form toy of self-improvement (verified
self-training) against collapse.

``problems`` = P problems, each with ``answers`` = A possible answers of which one is right; the right answer of
each problem is drawn uniformly per replicate (truth ``answers``, (P,) int32). A unit is a pair
{"x": problem id, "y": answer} (both int32). Human data answer right with probability ``human_accuracy`` = ha,
else a wrong answer uniformly over the other A - 1: log p_true(y | x) = log ha for the right answer, log((1 - ha)
/ (A - 1)) for each wrong one.

Design: n rows answer problem floor(i P / n) for row i = 0..n-1, the same for real rows and for the problems the
model answers (``covariates``), so when P divides n every problem is answered n / P times, consecutive rows share
a problem, and the k candidates of one ``best_of`` group answer the same problem (best-of-k per problem).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from collapse import checks
from collapse.components import SourceSpec
from collapse.errors import ConfigError
from collapse.run_settings import dtype_of
from collapse.sources.base import Source


def problems_of(n: int, problems: int):
    """(n,) int32 problem ids of n rows: floor(i P / n), consecutive and balanced (i // (n / P) when P divides n;
    otherwise computed on the host in int64, since i P may pass 2^31 for large candidate counts)."""
    if n % problems == 0:
        return jnp.arange(n, dtype=jnp.int32) // (n // problems)
    return jnp.asarray((np.arange(n, dtype=np.int64) * problems // n).astype(np.int32))


def task(problems: int = 100, answers: int = 10, human_accuracy: float = 0.8, dtype=jnp.float32) -> Source:
    P, A, ha = int(problems), int(answers), float(human_accuracy)

    def init(key):
        return {"answers": jax.random.randint(key, (P,), 0, A, jnp.int32)}

    def covariates(key, truth, n):
        return problems_of(n, P)

    def sample(key, truth, n):
        x = problems_of(n, P)
        right = truth["answers"][x]
        k_ok, k_wrong = jax.random.split(key)
        ok = jax.random.uniform(k_ok, (n,), dtype) < ha
        wrong = (right + 1 + jax.random.randint(k_wrong, (n,), 0, A - 1, jnp.int32)) % A
        return {"x": x, "y": jnp.where(ok, right, wrong).astype(jnp.int32)}

    def log_prob(truth, batch):
        right = batch["y"] == truth["answers"][batch["x"]]
        return jnp.where(right, jnp.log(jnp.asarray(ha, dtype)), jnp.log(jnp.asarray((1.0 - ha) / (A - 1), dtype)))

    def is_right(truth, batch):
        return batch["y"] == truth["answers"][batch["x"]]

    return Source("task", "task", A, init, sample, log_prob, covariates=covariates, info={"problems": P},
                  is_right=is_right)


def check(cfg) -> None:
    P = checks.integer(cfg, "source.problems")
    checks.integer(cfg, "source.answers", lo=2)
    checks.number(cfg, "source.human_accuracy", 0.0, 1.0)
    samples = checks.get(cfg, "loop.samples")
    if isinstance(samples, int) and samples < P:
        raise ConfigError("loop.samples", samples, f"must be >= source.problems={P} (every problem answered at "
                          "least once a generation)")


def build(cfg):
    s = cfg.source
    return task(s.problems, s.answers, float(s.human_accuracy), dtype_of(cfg))


SOURCE = SourceSpec("task", "task", check, build)
