"""The record every ground-truth source fills in.

A source is built by a factory that closes over its config and returns a :class:`Source`.
``init(key)`` returns the per-replicate *truth*: a dict of arrays (constants such as ``mean``/``cov``/
``probs``, or random draws such as the regression weights ``w`` of the linear source). All other
functions take that truth dict, so each replicate can have its own ground truth under ``vmap``.

Truth keys by kind
- continuous: ``mean`` (d,), ``cov`` (d, d) (NaN where the moment does not exist),
  ``tail_q`` () = the alpha-quantile of log p_true(X) under the truth (alpha = metrics.tail_level).
- discrete:   ``probs`` (K,).
- supervised: ``w`` (d,), ``noise_var`` (), and ``X`` (T, d) for a fixed design.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

Truth = dict
Batch = Any
Stats = Any
Array = Any
Key = Any


@dataclass(frozen=True)
class Source:
    """A ground-truth ("human") data distribution.

    Required
      name, kind ("continuous" | "discrete" | "supervised"), dim (data dimension, or K categories).
      init:     (key) -> truth dict (see module docstring).
      sample:   (key, truth, n) -> batch of n exact draws (real rows).
      log_prob: (truth, batch) -> (n,) exact log-density / log-pmf / log p(y|x), nats.

    Optional
      covariates:      (key, truth, n) -> (n, d) inputs for n synthetic rows (supervised only).
      sample_stats:    (key, truth, n) -> sufficient statistics of n real draws, drawn directly, in the
                       statistics format of the matching family.
      covariate_stats: (key, truth, n) -> Gram matrix X^T X of the n synthetic-row inputs (supervised).
      elliptical:      True when log p_true is a decreasing function of the Mahalanobis distance to
                       ``mean`` under ``shape`` (truth key), so the tail region is {Q(x) > r2}; then
                       truth also holds ``shape`` (d, d) and ``tail_r2`` ().
    """

    name: str
    kind: str
    dim: int
    init: Callable[..., Truth]
    sample: Callable[..., Batch]
    log_prob: Callable[..., Array]
    covariates: Optional[Callable[..., Array]] = None
    sample_stats: Optional[Callable[..., Stats]] = None
    covariate_stats: Optional[Callable[..., Array]] = None
    elliptical: bool = False
