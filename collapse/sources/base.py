"""The record every ground-truth source fills in.

A source is built by a factory that closes over its config and returns a :class:`Source`.
``init(key)`` returns the per-replicate *truth*: a dict of arrays (constants such as ``mean``/``cov``/
``probs``, or random draws such as the regression weights ``w`` of the linear source). All other
functions take that truth dict, so each replicate can have its own ground truth under ``vmap``.

Truth keys by kind
- continuous: ``mean`` (d,), ``cov`` (d, d) (NaN where the moment does not exist),
  ``tail_q`` () = the alpha-quantile of log p_true(X) under the truth (alpha = metrics.tail_level).
- discrete:   ``probs`` (K,).
- counts:     ``rate`` () (a batch is an ``(n,)`` int32 array of counts; source=poisson).
- supervised: ``w`` (d,), ``noise_var`` (), and ``X`` (T, d) for a fixed design.
- text:       nothing per replicate; the shared ``data`` (below) holds the corpus split or the Markov chain.

Shared data: ``data`` is a dict of host arrays common to every replicate (a real corpus, a synthetic
language). The engine passes it into the compiled program once, unbatched, and every source function
sees it merged into ``truth``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Protocol

Truth = dict
Batch = Any
Stats = Any
Array = Any
Key = Any


class TruthFn(Protocol):
    def __call__(self, key: Key) -> Truth: ...


class RealSampleFn(Protocol):
    """n exact draws of real data (or their sufficient statistics, for ``sample_stats``)."""

    def __call__(self, key: Key, truth: Truth, n: Any) -> Batch: ...


class TrueLogProbFn(Protocol):
    """(n,) exact log-density / log-pmf / log p(y | x) in nats ((n, L) per position for text)."""

    def __call__(self, truth: Truth, batch: Batch) -> Array: ...


class RealBatchFn(Protocol):
    """The n real units of generation g of a finite source, read in order."""

    def __call__(self, truth: Truth, g: Any, n: int) -> Batch: ...


@dataclass(frozen=True)
class Source:
    """A ground-truth ("human") data distribution.

    Required
      name, kind ("continuous" | "discrete" | "supervised" | "text" | "image" | "task" | "counts"), dim (data dimension, K
      categories, or A answers of a task).
      init:     (key) -> truth dict (see module docstring).
      sample:   (key, truth, n) -> batch of n exact draws (real rows).
      log_prob: (truth, batch) -> (n,) exact log-density / log-pmf / log p(y|x), nats; None when unknown (a
                corpus, an image set): metrics and scores that need the truth's density are left out.

    Optional
      covariates:      (key, truth, n) -> (n, d) inputs for n synthetic rows (supervised), or (n, P)
                       prompt tokens that n synthetic text segments continue (text with a prompt).
      sample_stats:    (key, truth, n) -> sufficient statistics of n real draws, drawn directly, in the
                       statistics format of the matching family.
      covariate_stats: (key, truth, n) -> Gram matrix X^T X of the n synthetic-row inputs (supervised).
      elliptical:      True when log p_true is a decreasing function of the Mahalanobis distance to
                       ``mean`` under ``shape`` (truth key), so the tail region is {Q(x) > r2}; then
                       truth also holds ``shape`` (d, d) and ``tail_r2`` ().
      data:            shared host arrays (see the module docstring).
      real_batch:      (truth, g, n) -> the n real units of generation g of a finite source, read in order
                       (g = 0: generation 0's training set; g >= 1: the fresh pool, never reused).
      segment:         tokens per unit (text sources).
      info:            host constants worth reporting (e.g. the Markov source's exact entropy rate).
      gaussian:        True when the truth is exactly N(``mean``, ``cov``) (closed-form KL to a Gaussian model).
      is_right:        (truth, batch) -> (n,) bool: whether each unit's answer is its problem's right answer (task
                       sources: the exact checker behind ``curation.score=verifier`` and the task metrics).
    """

    name: str
    kind: str
    dim: int
    init: TruthFn
    sample: RealSampleFn
    log_prob: Optional[TrueLogProbFn]
    covariates: Optional[RealSampleFn] = None
    sample_stats: Optional[RealSampleFn] = None
    covariate_stats: Optional[RealSampleFn] = None
    elliptical: bool = False
    data: Optional[dict] = None
    real_batch: Optional[RealBatchFn] = None
    segment: int = 0
    info: Optional[dict] = None
    gaussian: bool = False
    is_right: Optional[Callable[[Truth, Batch], Array]] = None

    @property
    def capabilities(self) -> frozenset[str]:
        """What the source knows, by name: density (``log_prob``), gaussian, elliptical, stats_sampler,
        covariates, finite (``real_batch``: a finite data set read in order), labels (a feature classifier),
        modes (known mode centres), transitions (an exact Markov chain: ``T_m``, ``pi_m`` in ``data``), answers
        (a task whose answers ``is_right`` checks)."""
        data, info = self.data or {}, self.info or {}
        have = {"density": self.log_prob is not None, "gaussian": self.gaussian, "elliptical": self.elliptical,
                "stats_sampler": self.sample_stats is not None, "covariates": self.covariates is not None,
                "finite": self.real_batch is not None, "labels": "classifier" in data,
                "modes": info.get("modes", 0) > 0, "transitions": "T_m" in data,
                "answers": self.is_right is not None}
        return frozenset(k for k, v in have.items() if v)


def ordered_real_batch(truth: Truth, g, n: int):
    """Real units of generation ``g`` of a finite source split into ``train0`` and ``fresh`` (shared data):
    g = 0 (a Python int, known at trace time) reads generation 0's batch, g >= 1 the fresh pool in order,
    rows (g - 1) n .. g n - 1, so no unit is used twice (the run checks beforehand that the pool suffices)."""
    import jax

    if isinstance(g, int) and g == 0:
        return truth["train0"][:n]
    return jax.lax.dynamic_slice_in_dim(truth["fresh"], (g - 1) * n, n, 0)
