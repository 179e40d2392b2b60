"""The record every model family fills in: pure functions over pytrees (optax/distrax style).

A family is built by a factory (``gaussian(estimator="mle")`` ...) that closes over its hyper-parameters
and returns a :class:`Family`. The engine only calls these functions; it knows nothing family-specific.

Conventions
- A *batch* is a pytree whose leaves share a leading axis of length n: an ``(n, d)`` float array for
  continuous data, an ``(n,)`` int32 array of category indices for discrete data, and a dict
  ``{"x": (n, d), "y": (n,)}`` for supervised data.
- ``mask`` is an ``(n,)`` bool array: rows with ``False`` are padding and must not influence the fit.
- ``prev`` is the previous generation's params (same structure as the output of ``fit``); families may
  use it as a warm start (GMM) or ignore it. For generation 0, ``prev`` is ``None`` (fit from scratch;
  known at trace time, so no both-branches ``cond`` under ``vmap``).
- ``scale`` is ``sampling.scale``: continuous families multiply every covariance by it, discrete ones use
  p -> p**(1/scale) renormalised.
- Everything must be jit/vmap/scan friendly: static shapes, no Python branching on traced values.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

Params = Any
Batch = Any
Stats = Any
Array = Any
Key = Any


@dataclass(frozen=True)
class Family:
    """A model family as a record of pure functions.

    Required
      name:      config name (``model=<name>``).
      kinds:     source kinds it can fit: subset of {"continuous", "discrete", "supervised"}.
      init:      (truth) -> params, a placeholder with the final shapes (for tools that need the structure).
      fit:       (key, batch, mask, prev) -> params.
      sample:    (key, params, n, scale, covariates) -> batch of n rows. ``covariates`` is None except for
                 supervised sources, where it is the ``(n, d)`` input matrix to label.
      log_prob:  (params, batch) -> (n,) log-density (continuous), log-pmf (discrete) or
                 log p(y | x) (supervised), in nats, at scale 1.

    Optional
      components: (params) -> (weights (K,), means (K, d), covs (K, d, d)): the model as an exact mixture
                  of Gaussians at scale 1 (gaussian, gmm, kde). Gives exact moments and tail_mass.
      probs:      (params) -> (K,) category probabilities at scale 1 (discrete families).
      coef:       (params) -> (d,) regression coefficients (supervised families).
      warm_from:  which params later generations receive as ``prev``: "previous" (generation g-1, the
                  default) or "gen0" (the generation-0 model: fine-tuning from it, as in Shumailov et al.).
      gaussian:   True when the model is exactly one Gaussian (``components`` returns K = 1): the KL to a
                  Gaussian truth is then the closed form.
      trains:     True for a neural family trained by gradient steps; its params carry the final ``loss``
                  (the metric ``train_loss``), and its metrics come from model draws, not exact moments.
      transitions: (params) -> (V^m, V) next-token probabilities of every length-m context (n-gram tables):
                  the exact KL rate to a Markov-chain truth.

    Sufficient-statistic path (families whose fit depends only on additive statistics)
      stats:        (batch, mask) -> stats.
      merge_stats:  (a, b) -> stats of the union of both sets (exact, numerically stable).
      fit_stats:    (key, stats, prev) -> params; ``fit(k, b, m, p) == fit_stats(k, stats(b, m), p)``.
      sample_stats: (key, params, n, scale, covariate_stats) -> stats of n exact draws from the model,
                    drawn directly (no points). ``covariate_stats`` is the Gram matrix X^T X of the n
                    input rows for supervised families, else None.
    """

    name: str
    kinds: tuple[str, ...]
    init: Callable[..., Params]
    fit: Callable[..., Params]
    sample: Callable[..., Batch]
    log_prob: Callable[..., Array]
    components: Optional[Callable[..., Any]] = None
    probs: Optional[Callable[..., Array]] = None
    coef: Optional[Callable[..., Array]] = None
    warm_from: str = "previous"
    stats: Optional[Callable[..., Stats]] = None
    merge_stats: Optional[Callable[..., Stats]] = None
    fit_stats: Optional[Callable[..., Params]] = None
    sample_stats: Optional[Callable[..., Stats]] = None
    gaussian: bool = False
    trains: bool = False
    transitions: Optional[Callable[..., Array]] = None

    @property
    def capabilities(self) -> frozenset[str]:
        """What the family offers, by name: log_prob, components (exact mixture moments and tail mass), probs,
        coef, stats (sufficient-statistic fit), stats_sampler (draws statistics directly), gaussian, trains,
        transitions. Metrics and the engine choose estimators from these, never from the family's name."""
        have = {"log_prob": self.log_prob, "components": self.components, "probs": self.probs, "coef": self.coef,
                "stats_sampler": self.sample_stats, "transitions": self.transitions}
        out = {k for k, v in have.items() if v is not None} | {k for k in ("gaussian", "trains") if getattr(self, k)}
        return frozenset(out | ({"stats"} if self.has_stats else set()))

    @property
    def has_stats(self) -> bool:
        return self.stats is not None and self.fit_stats is not None and self.merge_stats is not None
