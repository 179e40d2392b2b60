"""Curation: verify, filter, rank or reweight each generation's synthetic points before they enter the batch.

A generation that needs ``n`` synthetic points draws ``c >= n`` candidates from the previous model, scores them
(:data:`SCORES`) and keeps ``n`` by a selection rule (:mod:`collapse.curation.select`): ``threshold``,
``best_of``, ``pairwise`` (Bradley-Terry) or ``importance`` (resampling with weights exp(score)). ``none`` leaves
the engine exactly as it is. The record :class:`Curation` holds pure functions the engine calls inside the
compiled program; :func:`build_curation` makes it from the validated ``curation`` config node.

Scores of a candidate x (nats unless stated):
- ``true_loglik``:   log p_true(x), the source's exact log-density (an oracle verifier);
- ``model_loglik``:  log p_model(x) of the model that drew it (its own confidence);
- ``density_ratio``: log p_true(x) - log p_model(x);
- ``reward``:        r(x) of :mod:`collapse.curation.rewards`;
- ``detector``:      log-odds of real of a classifier trained this generation (:mod:`collapse.curation.detector`).
Text units are scored by the sum over the positions where every density involved is defined.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Callable, Optional

import jax.numpy as jnp
import numpy as np

from collapse.curation import detector as det, rewards as rw, select as sel

METHODS = ("none", "threshold", "best_of", "pairwise", "importance")
SCORES = ("true_loglik", "model_loglik", "density_ratio", "reward", "detector")


@dataclass(frozen=True)
class Curation:
    """What the engine needs: ``candidates(n)`` (static count drawn for n kept points), ``select(key, scores, n)``
    -> (index (n,), accepted), ``score(key, cand, truth, params, real)`` -> (c,), and ``reward(x, truth)`` for
    ``reward_mean`` (None: not reported). ``name == "none"`` curates nothing: it exists only to report ``reward_mean``
    (and ``accept_rate`` = 1) beside curated runs of the same comparison."""

    name: str
    candidates: Callable[[int], int]
    select: Optional[Callable]
    score: Optional[Callable]
    reward: Optional[Callable]
    reward_draws: int
    needs_real: bool
    take: Optional[Callable] = None  # (cand, index) -> kept rows, when faster than a gather (pairwise)

    @property
    def active(self) -> bool:
        return self.name != "none"

    @property
    def metric_names(self) -> tuple[str, ...]:
        return ("accept_rate",) + (("reward_mean",) if self.reward is not None else ())


def _total(lp):
    """Per-unit score: a text unit's per-position log-probabilities (n, L) summed where defined (NaN = undefined
    position), other kinds unchanged."""
    if lp.ndim == 1:
        return lp
    return jnp.sum(jnp.where(jnp.isnan(lp), 0.0, lp), axis=-1)


def _ratio(lt, lm):
    if lt.ndim == 1:
        return lt - lm
    both = ~(jnp.isnan(lt) | jnp.isnan(lm))
    return jnp.sum(jnp.where(both, lt - lm, 0.0), axis=-1)


def _reward_fn(ccfg, source, dtype, key: str = "curation.reward.kind"):
    """The configured reward of ``source`` (ConfigError when the source kind has none)."""
    from collapse.config import ConfigError

    r = ccfg.reward
    kinds = rw.KINDS.get(source.kind)
    if not kinds:
        raise ConfigError(key, "reward",
                          f"no reward is defined for source={source.name} ({source.kind} data); rewards exist for "
                          "continuous, discrete, text and labelled image sources")
    kind = rw.DEFAULT[source.kind] if r.kind == "auto" else r.kind
    if kind not in kinds:
        raise ConfigError("curation.reward.kind", r.kind, f"source={source.name} ({source.kind}) allows auto, "
                          + ", ".join(kinds))
    if kind in ("point", "direction"):
        t = rw.target_vector(r.target, source.dim)
        if t.size != source.dim or not np.all(np.isfinite(t)):
            raise ConfigError("curation.reward.target", r.target, f"must be a number or a list of source.dim="
                              f"{source.dim} finite numbers")
        if kind == "direction" and not float((t ** 2).sum()) > 0:
            raise ConfigError("curation.reward.target", r.target, "must be non-zero for a direction reward")
        return rw.point(t, dtype) if kind == "point" else rw.direction(t, dtype)
    if kind == "class":
        classes = None
        if source.data and "classifier" in source.data:
            classes = source.data["classifier"]["params"]["head"]["kernel"].shape[1]
        if classes is None:
            raise ConfigError("curation.reward.kind", "class", f"needs a labelled image source (source={source.name} "
                              "has no labels, so no feature classifier)")
        if not (isinstance(r["class"], int) and 0 <= r["class"] < classes):
            raise ConfigError("curation.reward.class", r["class"], f"must be a class id in [0, {classes - 1}]")
        return rw.image_class(int(r["class"]), dtype)
    ids = list(r.tokens) if not isinstance(r.tokens, int) else [r.tokens]
    if not ids or not all(isinstance(i, int) and 0 <= i < source.dim for i in ids):
        raise ConfigError("curation.reward.tokens", r.tokens,
                          f"must be a non-empty list of ids in [0, {source.dim - 1}]")
    if kind == "length":
        return rw.length(ids, int(r.length), dtype)
    return rw.tokens(ids, dtype)


def _score_fn(ccfg, source, family, dtype):
    """score(key, cand, truth, params, real) of ``curation.score`` (ConfigError where it cannot be computed)."""
    from collapse.config import ConfigError

    name = ccfg.score
    if name in ("true_loglik", "density_ratio") and source.log_prob is None:
        raise ConfigError("curation.score", name, f"source={source.name} has no known density (true_loglik and "
                          "density_ratio need one: gaussian, student_t, gmm, ring, grid, zipf, linear, markov); use "
                          "model_loglik, reward or detector")
    if name in ("model_loglik", "density_ratio") and family.log_prob is None:
        raise ConfigError("curation.score", name, f"model={family.name} has no likelihood; use true_loglik, reward "
                          "or detector")
    if name == "true_loglik":
        return lambda key, x, truth, params, real: _total(source.log_prob(truth, x))
    if name == "model_loglik":
        return lambda key, x, truth, params, real: _total(family.log_prob(params, x))
    if name == "density_ratio":
        return lambda key, x, truth, params, real: _ratio(source.log_prob(truth, x), family.log_prob(params, x))
    if name == "reward":
        reward = _reward_fn(ccfg, source, dtype, key="curation.score")
        return lambda key, x, truth, params, real: reward(x, truth)
    if source.kind == "supervised":
        raise ConfigError("curation.score", name, f"no detector is defined for source={source.name} (supervised "
                          "data); use true_loglik, model_loglik, density_ratio")
    d = ccfg.detector
    train = det.train_detector(det.features_for(source.kind, source.dim), int(d.steps), float(d.lr), float(d.l2))
    return lambda key, x, truth, params, real: train(real, x)


def wants_reward(cfg, source) -> bool:
    """``metrics.reward_mean``: auto = whenever curation is on and the source has a reward."""
    v = cfg.metrics.reward_mean
    if v == "auto":
        return cfg.curation.name != "none" and source.kind in rw.KINDS and not (
            source.kind == "image" and not (source.data and "classifier" in source.data))
    return bool(v)


def build_curation(cfg, source, family, dtype) -> Optional[Curation]:
    """The :class:`Curation` of a validated config, or None when there is nothing to do (``none``, no reward_mean)."""
    c = cfg.curation
    reward = _reward_fn(c, source, dtype, key="metrics.reward_mean") if wants_reward(cfg, source) else None
    if c.name == "none":
        if reward is None:
            return None
        return Curation("none", lambda n: n, None, None, reward, int(c.reward_draws), False)
    if c.name == "threshold":
        candidates, select = partial(sel.threshold_candidates, oversample=float(c.oversample)), \
            partial(sel.threshold, quantile=float(c.quantile))
    elif c.name == "best_of":
        k = int(c.k)
        candidates, select = (lambda n: k * n), partial(sel.best_of, k=k)
    elif c.name == "pairwise":
        candidates, select = (lambda n: 2 * n), partial(sel.pairwise, temperature=float(c.temperature))
    else:
        candidates, select = partial(sel.threshold_candidates, oversample=float(c.oversample)), \
            partial(sel.importance, temperature=float(c.temperature), resampling=str(c.resampling))
    score = _score_fn(c, source, family, dtype)
    take = sel.take_pairs if c.name == "pairwise" else None
    return Curation(c.name, candidates, select, score, reward, int(c.reward_draws), c.score == "detector",
                    take)
