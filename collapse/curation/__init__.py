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
- ``detector``:      log-odds of real of a classifier trained this generation (:mod:`collapse.curation.detector`);
- ``verifier``:      1 if an answer checker of false-positive rate ``curation.verifier.fpr`` and false-negative
                     rate ``curation.verifier.fnr`` accepts the candidate, else 0 (:mod:`collapse.curation.verifier`;
                     sources with checkable answers);
- ``learned_verifier``: log-odds of right of a logistic regression refit every generation on
                     ``curation.verifier.labels`` candidates labelled by the exact checker (sources with checkable
                     answers). Both verifiers log their measured precision, fpr and fnr on the candidates.
Text units are scored by the sum over the positions where every density involved is defined.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import jax.numpy as jnp
import numpy as np

from collapse import checks, components
from collapse.curation import detector as det, rewards as rw, verifier as vf
from collapse.errors import ConfigError

SCORES = ("true_loglik", "model_loglik", "density_ratio", "reward", "detector", "verifier", "learned_verifier")


@dataclass(frozen=True)
class Curation:
    """What the engine needs: ``candidates(n)`` (static count drawn for n kept points), ``select(key, scores, n)``
    -> (index (n,), accepted), ``score(key, cand, truth, params, real)`` -> (c,), and ``reward(x, truth)`` for
    ``reward_mean`` (None: not reported). A record without ``select`` (curation=none) curates nothing: it exists only to report ``reward_mean``
    (and ``accept_rate`` = 1) beside curated runs of the same comparison."""

    name: str
    candidates: Callable[[int], int]
    select: Optional[Callable]
    score: Optional[Callable]
    reward: Optional[Callable]
    reward_draws: int
    needs_real: bool
    take: Optional[Callable] = None  # (cand, index) -> kept rows, when faster than a gather (pairwise)
    reward_every_kept: bool = True  # reward_mean at every kept generation (points), else at sampled ones
    extra: Optional[Callable] = None  # (cand, scores, truth) -> {column: scalar} of the candidates (verifier_precision)
    extra_names: tuple[str, ...] = ()

    @property
    def active(self) -> bool:
        return self.select is not None

    @property
    def metric_names(self) -> tuple[str, ...]:
        return ("accept_rate",) + self.extra_names + (("reward_mean",) if self.reward is not None else ())


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
    if name in ("verifier", "learned_verifier"):
        if "answers" not in source.capabilities:
            raise ConfigError("curation.score", name, f"needs a source with checkable answers (source=task or "
                              f"arithmetic); source={source.name} has none")
        v = ccfg.verifier
        if name == "verifier":
            return vf.verifier(source.is_right, float(v.fpr), float(v.fnr), dtype)
        phi = (vf.pair_features(source.info["problems"], source.dim) if source.kind == "task"
               else vf.position_features(source.dim))
        d = ccfg.detector
        return vf.learned_verifier(source.is_right, phi, int(v.labels), int(d.steps), float(d.lr), float(d.l2))
    if source.kind in ("supervised", "task"):
        raise ConfigError("curation.score", name, f"no detector is defined for source={source.name} (supervised "
                          "data); use true_loglik, model_loglik, density_ratio")
    d = ccfg.detector
    train = det.train_detector(det.features_for(source.kind, source.dim), int(d.steps), float(d.lr), float(d.l2))
    return lambda key, x, truth, params, real: train(real, x)


def wants_reward(cfg, source) -> bool:
    """``metrics.reward_mean``: auto = whenever curation is on and the source has a reward (not a task)."""
    v = cfg.metrics.reward_mean
    if v == "auto":  # (a task's measure of quality is its accuracy, not a token reward)
        return components.find("curation", cfg.curation).curates and source.kind in rw.KINDS and not (
            source.kind == "image" and not (source.data and "classifier" in source.data)) and (
            "answers" not in source.capabilities)
    return bool(v)


def check_curation(cfg) -> None:
    """The keys every curation rule shares (``curation.reward_draws``, ``curation.score`` and the detector's), then
    the rule's own (its module's ``RULE.check``), and ``metrics.reward_mean``. Whether the source can be scored is
    checked when the run is built."""
    v = checks.get(cfg, "metrics.reward_mean")
    if v not in ("auto", True, False):
        raise ConfigError("metrics.reward_mean", v, "must be auto, true or false")
    rule = components.find("curation", cfg.curation)
    checks.integer(cfg, "curation.reward_draws")
    if not rule.curates:
        return
    score = checks.choice(cfg, "curation.score", SCORES)
    if score == "verifier":
        for key in ("curation.verifier.fpr", "curation.verifier.fnr"):
            checks.number(cfg, key, 0.0, 1.0, allowed="must be a probability in [0, 1]")
    if score == "learned_verifier":
        checks.integer(cfg, "curation.verifier.labels", allowed="must be an integer >= 1 (labelled answers per "
                       "generation)")
    if score in ("detector", "learned_verifier"):
        checks.integer(cfg, "curation.detector.steps")
        checks.number(cfg, "curation.detector.lr", 0.0, lo_open=True, allowed="must be a number > 0")
        checks.number(cfg, "curation.detector.l2", 0.0, allowed="must be a number >= 0")
    rule.check(cfg)
    if checks.get(cfg, "engine.path") == "stats":
        raise ConfigError("engine.path", "stats", f"curation={rule.name} scores candidate points, so it needs "
                          "engine.path=samples (or auto)")


def build_curation(cfg, source, family, dtype) -> Optional[Curation]:
    """The :class:`Curation` of a validated config, or None when there is nothing to do (``none``, no reward_mean)."""
    c = cfg.curation
    rule = components.find("curation", c)
    reward = _reward_fn(c, source, dtype, key="metrics.reward_mean") if wants_reward(cfg, source) else None
    if not rule.curates:
        if reward is None:
            return None
        return Curation(rule.name, lambda n: n, None, None, reward, int(c.reward_draws), False,
                        reward_every_kept=_cheap_draws(source))
    candidates, select, take = rule.build(c)
    score = _score_fn(c, source, family, dtype)
    quality = None  # a task's runs all get the verifier columns (NaN without a verifier), so their sweeps load together
    if c.score in ("verifier", "learned_verifier"):  # accepted: score 1 of 0/1, or log-odds > 0
        quality = vf.quality(source.is_right, 0.5 if c.score == "verifier" else 0.0)
    elif "answers" in source.capabilities:
        quality = vf.no_quality
    return Curation(rule.name, candidates, select, score, reward, int(c.reward_draws), c.score == "detector", take,
                    _cheap_draws(source), quality, vf.QUALITY if quality is not None else ())


def _cheap_draws(source) -> bool:
    """Whether reward_mean's model draws are cheap enough for every kept generation: points (continuous, discrete,
    supervised data), not text segments or images, whose draws are measured on sampled generations only."""
    return source.kind not in ("text", "image")
