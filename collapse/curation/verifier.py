"""``curation.score=verifier``: an answer checker of known quality, for sources with checkable answers
(``source=task``).

A candidate {"x": problem, "y": answer} scores 1 when the verifier accepts it and 0 otherwise: a right answer is
accepted with probability 1 - ``fnr`` (false negatives: right answers rejected) and a wrong one with probability
``fpr`` (false positives: hallucinations let through), independently per candidate. ``best_of`` then keeps, of
each group of k candidates (one problem's k samples), the first accepted one, else the first: best-of-k
rejection sampling, whose expected accuracy :mod:`collapse.task_theory` gives. ``verifier_precision`` is the
share of accepted candidates that are right (NaN when none is accepted).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def is_right(cand, truth):
    """(c,) bool: whether each candidate's answer is its problem's right answer."""
    return cand["y"] == truth["answers"][cand["x"]]


def verifier(fpr: float, fnr: float, dtype=jnp.float32):
    """score(key, cand, truth, params, real) -> (c,) 1.0 (accepted) / 0.0 (rejected)."""
    def score(key, cand, truth, params, real):
        u = jax.random.uniform(key, cand["y"].shape, dtype)
        accept = jnp.where(is_right(cand, truth), u < 1.0 - fnr, u < fpr)
        return accept.astype(dtype)
    return score


def precision(cand, scores, truth):
    """{"verifier_precision": right and accepted / accepted} of one generation's candidates."""
    accepted = scores > 0.5
    n = jnp.sum(accepted)
    hits = jnp.sum(accepted & is_right(cand, truth))
    return {"verifier_precision": jnp.where(n > 0, hits / jnp.maximum(n, 1), jnp.nan).astype(scores.dtype)}
