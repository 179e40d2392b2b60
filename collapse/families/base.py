"""The record every model family fills in: pure functions over pytrees (optax/distrax style).

A family is built by a factory (``gaussian(estimator="mle")`` ...) that closes over its hyper-parameters
and returns a :class:`Family`. The engine only calls these functions; it knows nothing family-specific.

Conventions
- A *batch* is a pytree whose leaves share a leading axis of length n: an ``(n, d)`` float array for
  continuous data, an ``(n,)`` int32 array of category indices for discrete data, and a dict
  ``{"x": (n, d), "y": (n,)}`` for supervised data.
- ``mask`` is an ``(n,)`` bool array: rows with ``False`` are padding and must not influence the fit. A family
  with ``weights=True`` also takes float row weights there (``loop.real_weight``): its fit then minimises the
  weighted mean loss sum_i w_i loss_i / sum_i w_i (weighted counts and moments for statistic families).
- ``prev`` is the previous generation's params (same structure as the output of ``fit``); families may
  use it as a warm start (GMM) or ignore it. For generation 0, ``prev`` is ``None`` (fit from scratch;
  known at trace time, so no both-branches ``cond`` under ``vmap``).
- ``scale`` is ``sampling.scale``: continuous families multiply every covariance by it, discrete ones use
  p -> p**(1/scale) renormalised.
- Everything must be jit/vmap/scan friendly: static shapes, no Python branching on traced values.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Protocol

Params = Any
Batch = Any
Stats = Any
Array = Any
Key = Any


class InitFn(Protocol):
    def __call__(self, truth: dict) -> Params: ...


class FitFn(Protocol):
    """Fit on the rows of ``batch`` where ``mask`` holds; ``prev`` is None at generation 0."""

    def __call__(self, key: Key, batch: Batch, mask: Array, prev: Optional[Params]) -> Params: ...


class SampleFn(Protocol):
    """n rows from the model at sampling scale ``scale`` (covariates: inputs to label, or text prompts)."""

    def __call__(self, key: Key, params: Params, n: int, scale: Any, covariates: Optional[Array]) -> Batch: ...


class LogProbFn(Protocol):
    """(n,) log-density / log-pmf / log p(y | x) in nats at scale 1 ((n, L) per position for text)."""

    def __call__(self, params: Params, batch: Batch) -> Array: ...


class ComponentsFn(Protocol):
    """The model as a Gaussian mixture at scale 1: weights (K,), means (K, d), covariances (K, d, d)."""

    def __call__(self, params: Params) -> tuple[Array, Array, Array]: ...


class StatsFn(Protocol):
    def __call__(self, batch: Batch, mask: Array) -> Stats: ...


class MergeStatsFn(Protocol):
    def __call__(self, a: Stats, b: Stats) -> Stats: ...


class FitStatsFn(Protocol):
    def __call__(self, key: Key, stats: Stats, prev: Optional[Params]) -> Params: ...


class SampleStatsFn(Protocol):
    """Statistics of n exact model draws, drawn directly; ``covariate_stats`` = X^T X (supervised) or None."""

    def __call__(self, key: Key, params: Params, n: Any, scale: Any, covariate_stats: Optional[Array]) -> Stats: ...


class ParamsFn(Protocol):
    """A quantity read off the params: probs (K,), coef (d,), transitions (V^m, V)."""

    def __call__(self, params: Params) -> Array: ...


@dataclass(frozen=True)
class Family:
    """A model family as a record of pure functions.

    Required
      name:      config name (``model=<name>``).
      kinds:     the source kinds (batch layouts above) its functions handle: continuous, discrete, supervised,
                 text, image. Which sources a config may pair it with is its spec's ``fits``
                 (:class:`collapse.components.FamilySpec`).
      init:      (truth) -> params, a placeholder with the final shapes (for tools that need the structure).
      fit:       (key, batch, mask, prev) -> params.
      sample:    (key, params, n, scale, covariates) -> batch of n rows. ``covariates`` is None except for
                 supervised sources, where it is the ``(n, d)`` input matrix to label.
      log_prob:  (params, batch) -> (n,) log-density (continuous), log-pmf (discrete) or
                 log p(y | x) (supervised), in nats, at scale 1; None for a family without a likelihood
                 (diffusion): metrics and curation scores that need it are then left out.

    Optional (each adds a capability, see :attr:`capabilities`; metrics fall back without it: a continuous
    family without ``components`` gets Monte-Carlo moments and tail mass from its draws)
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
      answer_probs: (params) -> (P, A) answer probabilities of every problem (``source=task`` families): exact
                  task accuracy.
      decode:     (key, params, n, prompts, decoding) -> (n, L) tokens: text families sampling through the given
                  :class:`~collapse.text.decoding.Decoding` controls instead of the run's (greedy task accuracy).
      weights:    True when ``fit`` takes float row weights in place of the bool mask (``loop.real_weight``).
      weigh_stats: (stats, c) -> the statistics of the same points each weighted c (counts and sums times c;
                  means unchanged): ``loop.real_weight`` on the statistic path.
      export:     (params as NumPy) -> {file name: bytes}: the model in its own format for
                  ``export.generations`` (a pretrained LM: the Hugging Face layout). Without it a model is written
                  as ``params.safetensors`` (:func:`collapse.families.base.params_files`).

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
    init: InitFn
    fit: FitFn
    sample: SampleFn
    log_prob: Optional[LogProbFn]
    components: Optional[ComponentsFn] = None
    probs: Optional[ParamsFn] = None
    coef: Optional[ParamsFn] = None
    warm_from: str = "previous"
    stats: Optional[StatsFn] = None
    merge_stats: Optional[MergeStatsFn] = None
    fit_stats: Optional[FitStatsFn] = None
    sample_stats: Optional[SampleStatsFn] = None
    gaussian: bool = False
    trains: bool = False
    transitions: Optional[ParamsFn] = None
    answer_probs: Optional[ParamsFn] = None
    export: Optional[Callable[[Any], dict]] = None
    decode: Optional[Callable] = None
    weights: bool = False
    weigh_stats: Optional[Callable] = None

    @property
    def capabilities(self) -> frozenset[str]:
        """What the family offers, by name: log_prob, components (exact mixture moments and tail mass), probs,
        coef, stats (sufficient-statistic fit), stats_sampler (draws statistics directly), gaussian, trains,
        transitions, answer_probs, decode, weights (float row weights in ``fit``). Metrics and the engine choose estimators from these, never from the family's name."""
        have = {"log_prob": self.log_prob, "components": self.components, "probs": self.probs, "coef": self.coef,
                "stats_sampler": self.sample_stats, "transitions": self.transitions, "answer_probs": self.answer_probs,
                "decode": self.decode}
        out = {k for k, v in have.items() if v is not None} | {k for k in ("gaussian", "trains", "weights")
                                                                if getattr(self, k)}
        return frozenset(out | ({"stats"} if self.has_stats else set()))

    @property
    def has_stats(self) -> bool:
        return self.stats is not None and self.fit_stats is not None and self.merge_stats is not None


def params_files(params) -> dict[str, bytes]:
    """``{"params.safetensors": bytes}``: every leaf of a params tree as a tensor named by its path
    (``w/transformer.h.0.attn.c_attn.weight``, ``loss``); read back with ``safetensors.numpy.load_file``."""
    import jax
    import numpy as np
    from safetensors.numpy import save

    flat = jax.tree_util.tree_flatten_with_path(params)[0]
    tensors = {jax.tree_util.keystr(p, simple=True, separator="/"): np.ascontiguousarray(np.asarray(v)) for p, v in flat}
    return {"params.safetensors": save(tensors)}
