"""``curation.score=verifier``: an answer checker of known quality, for sources with checkable answers
(``source=task``, ``source=arithmetic``: :attr:`Source.is_right`).

A candidate (a {"x": problem, "y": answer} pair, or a text segment holding a problem and its answer) scores 1 when the verifier accepts it and 0 otherwise: a right answer is
accepted with probability 1 - ``fnr`` (false negatives: right answers rejected) and a wrong one with probability
``fpr`` (false positives: hallucinations let through), independently per candidate. ``best_of`` then keeps, of
each group of k candidates (one problem's k samples), the first accepted one, else the first: best-of-k
rejection sampling, whose expected accuracy :mod:`collapse.task_theory` gives.

``curation.score=learned_verifier``: a logistic regression, refit every generation on ``curation.verifier.labels``
of the model's candidates labelled by the exact checker (:func:`learned_verifier`), scoring the log-odds that an
answer is right; features: the one-hot (problem, answer) pair of a task, the one-hot token at every position of a
text segment. Either verifier's measured quality on the candidates (:func:`quality`) is logged every generation:
``verifier_precision``, ``verifier_fpr``, ``verifier_fnr``.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def verifier(is_right, fpr: float, fnr: float, dtype=jnp.float32):
    """score(key, cand, truth, params, real) -> (c,) 1.0 (accepted) / 0.0 (rejected); ``is_right(truth, cand)``
    -> (c,) bool is the source's exact checker."""
    def score(key, cand, truth, params, real):
        right = is_right(truth, cand)
        u = jax.random.uniform(key, right.shape, dtype)
        return jnp.where(right, u < 1.0 - fnr, u < fpr).astype(dtype)
    return score


def pair_features(problems: int, answers: int):
    """phi(cand) -> (c, P A) one-hot of the (problem, answer) pair of task candidates."""
    return lambda cand: jax.nn.one_hot(cand["x"] * answers + cand["y"], problems * answers,
                                       dtype=jnp.result_type(float))


def position_features(vocab: int):
    """phi(cand) -> (c, L V) one-hot of the token at every position of text candidates."""
    return lambda cand: jax.nn.one_hot(cand, vocab, dtype=jnp.result_type(float)).reshape(cand.shape[0], -1)


def learned_verifier(is_right, phi, labels: int, steps: int, lr: float, l2: float):
    """score(key, cand, truth, params, real) -> (c,) log-odds of right of a logistic regression f = <w, phi> + b
    fit, every generation, on ``labels`` candidates drawn without replacement and labelled by ``is_right`` (a
    human labelling a sample of the model's answers; min(labels, c) when fewer candidates): ``steps`` Adam steps
    of rate ``lr`` from w = 0 on the class-balanced logistic loss mean_right softplus(-f) + mean_wrong softplus(f)
    + ``l2`` ||w||^2 / 2 (a class without labels contributes 0)."""
    import optax

    from collapse.curation.detector import adam_minimise

    opt = optax.adam(lr)

    def score(key, cand, truth, params, real):
        feats = phi(cand)
        c = feats.shape[0]
        pick = jax.random.permutation(key, c)[:min(labels, c)]
        f, y = feats[pick], is_right(truth, jax.tree_util.tree_map(lambda v: v[pick], cand))
        dt = feats.dtype
        w_pos = y.astype(dt) / jnp.maximum(jnp.sum(y), 1)
        w_neg = (~y).astype(dt) / jnp.maximum(jnp.sum(~y), 1)
        theta = {"w": jnp.zeros(f.shape[1], dt), "b": jnp.zeros((), dt)}

        def loss(p):
            z = f @ p["w"] + p["b"]
            return (w_pos @ jax.nn.softplus(-z) + w_neg @ jax.nn.softplus(z) + 0.5 * l2 * jnp.sum(p["w"] ** 2))

        theta = adam_minimise(loss, theta, steps, opt)
        return feats @ theta["w"] + theta["b"]
    return score


def quality(is_right, accept_above: float):
    """(cand, scores, truth) -> the verifier's measured quality on one generation's candidates (all of them: a
    learned verifier's labelled ones included, labels / c of them), against the exact checker (accepted: score >
    ``accept_above``): ``verifier_precision`` = right and accepted / accepted, ``verifier_fpr`` = wrong and accepted / wrong, ``verifier_fnr`` = right and rejected / right (NaN when the
    denominator is 0)."""
    def ratio(a, b, dt):
        return jnp.where(b > 0, a / jnp.maximum(b, 1), jnp.nan).astype(dt)

    def extra(cand, scores, truth):
        accepted, right = scores > accept_above, is_right(truth, cand)
        dt = scores.dtype
        return {"verifier_precision": ratio(jnp.sum(accepted & right), jnp.sum(accepted), dt),
                "verifier_fpr": ratio(jnp.sum(accepted & ~right), jnp.sum(~right), dt),
                "verifier_fnr": ratio(jnp.sum(~accepted & right), jnp.sum(right), dt)}
    return extra


QUALITY = ("verifier_precision", "verifier_fpr", "verifier_fnr")


def no_quality(cand, scores, truth):
    """The verifier columns of a task run curated by another score: NaN."""
    return {name: jnp.full((), jnp.nan, scores.dtype) for name in QUALITY}
