"""Which metrics a (source, family) pair gets, and the compiled functions that compute them.

The metrics are the functions registered in :mod:`collapse.metrics.registry` (collapse's own:
:mod:`collapse.metrics.builtin`); :func:`build_metrics` selects those that apply to the run (by source kind
and capabilities) and builds two functions: ``param_fn`` (metrics of ``cost="every"``: every kept generation,
from the fitted parameters) and ``sample_fn`` (``cost="sampled"``: k-NN / Vendi / Hill metrics from
``metrics.eval_samples`` model draws, thinned by ``metrics.sample_every`` and ``metrics.sample_replicates``).
Their column names are the registered names, in registration order.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import jax
import jax.numpy as jnp

from collapse.metrics import registry as R

TEXT_SAMPLES_SHOWN = 3  # generated segments per generation kept for samples.jsonl
IMAGES_SHOWN = 16  # generated images (or 2-D points x 16) per generation kept for the sample grids


@dataclass(frozen=True)
class MetricFns:
    """The compiled-side metric interface the engine calls (column names and the functions filling them)."""

    param_names: tuple[str, ...]
    sample_names: tuple[str, ...]
    param_fn: Callable  # (key, params, truth, heldout[, gen0_params]) -> dict
    sample_fn: Callable  # (key, params, truth, heldout, prepared=None) -> dict
    needs_gen0: bool = False  # param_fn also takes the generation-0 params
    draw_fn: Callable | None = None  # (key, params, truth) -> model draws kept as the ``_samples`` artifact
    draw_every_kept: bool = False  # draws at every kept generation (wandb histograms), else at sampled ones
    probs_fn: Callable | None = None  # params -> the model's exact category probabilities (``_probs`` artifact)
    sample_prepare_fn: Callable | None = None  # (truth, heldout) -> per-replicate constants of sample_fn


def build_metrics(source, family, mcfg, scale: float, dtype, histogram: bool = False) -> MetricFns:
    """``mcfg``: the validated ``metrics`` config node (tail_level, eval_samples, knn_k, dc_k, draws, ...).

    Classical families (continuous and discrete sources) also get ``draw_fn``: ``metrics.draws`` model draws
    (at ``sampling.scale``) per generation of ``metrics.sample_every`` (``samples.npz``: tail and density plots),
    or at every kept generation with ``histogram`` (the wandb histogram; at least 1000 draws then); discrete
    sources also keep the model's exact probabilities at the same generations (``probs_fn``: rank-frequency
    plots). Text and
    neural families return their own ``_samples`` from ``param_fn``."""
    fns = _build_metrics(source, family, mcfg, scale, dtype)
    draws = int(mcfg.get("draws", 0))
    if histogram:
        draws = max(draws, HISTOGRAM_DRAWS)
    if draws <= 0 or source.kind not in ("continuous", "discrete") or family.trains:
        return fns

    def draw_fn(key, params, truth):
        return family.sample(key, params, draws, scale_of(truth, scale), None)

    probs_fn = family.probs if source.kind == "discrete" and "probs" in family.capabilities else None
    return MetricFns(fns.param_names, fns.sample_names, fns.param_fn, fns.sample_fn, fns.needs_gen0, draw_fn,
                     histogram, probs_fn, fns.sample_prepare_fn)


def scale_of(truth: dict, scale: float):
    """The sampling scale of metric draws: the row's own (``truth["sampling_scale"]``, set by a vectorised sweep
    over ``sampling.scale``) or the run's."""
    return truth.get("sampling_scale", scale)


HISTOGRAM_DRAWS = 1000  # least model draws per kept generation for the wandb histogram (classical families)


def _build_metrics(source, family, mcfg, scale: float, dtype) -> MetricFns:
    chosen = R.select(source, family, mcfg)
    every = [c for c in chosen if c[0].cost == "every"]
    sampled = [c for c in chosen if c[0].cost == "sampled"]
    needs_gen0 = any(m.gen0 for m, _ in every)
    neural = _neural(source, family)
    shown = IMAGES_SHOWN * (16 if source.kind != "image" else 1)

    def context(key, params, truth, heldout, gen0=None, prepared=None):
        return R.MetricContext(key, params, truth, heldout, source=source, family=family, cfg=mcfg, scale=scale,
                               dtype=dtype, gen0=gen0, prepared=prepared)

    def param_fn(key, params, truth, heldout, gen0=None):
        ctx = context(key, params, truth, heldout, gen0)
        out = R.evaluate(every, ctx)
        if source.kind == "text":  # a few generated segments for samples.jsonl
            out["_samples"] = ctx.tokens[:TEXT_SAMPLES_SHOWN].astype(jnp.int32)
        elif neural:
            ok = _finite_params(params)  # a diverged model: NaN metrics from that generation on
            out = {k: jnp.where(ok, v, jnp.nan) for k, v in out.items()}
            fake = ctx.fake
            extra = fake if fake.shape[0] >= shown else family.sample(
                jax.random.fold_in(key, 7), params, shown, ctx.draw_scale, None)
            out["_samples"] = extra[:shown]  # the sample grids
        return out

    def sample_fn(key, params, truth, heldout, prepared=None):
        return R.evaluate(sampled, context(key, params, truth, heldout, prepared=prepared)) if sampled else {}

    def sample_prepare_fn(truth, heldout):
        return R.prepare(sampled, context(None, None, truth, heldout))

    has_prepare = any(m.prepare is not None for m, _ in sampled)
    return MetricFns(R.names_of(every), R.names_of(sampled), param_fn, sample_fn, needs_gen0,
                     sample_prepare_fn=sample_prepare_fn if has_prepare else None)


def _neural(source, family) -> bool:
    """A trained generative family (vae, diffusion) on an image or continuous source: its metrics come from
    model draws every kept generation, are NaN once its params diverge, and it keeps sample grids."""
    return family.trains and source.kind != "text"


def _finite_params(params):
    leaves = [x for x in jax.tree_util.tree_leaves(params) if jnp.issubdtype(x.dtype, jnp.inexact)]
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


def _builtin_names(kind: str, scaps=(), fcaps=(), cost: str | None = None) -> tuple[str, ...]:
    """Column names collapse's own metrics give a run of this kind and these capabilities (legacy tuples)."""
    R.ensure_builtin()
    scaps, fcaps = frozenset(scaps), frozenset(fcaps)
    builtin = [m for m in R.REGISTRY if m.where.startswith("collapse.metrics.builtin:")]
    return tuple(n for m in builtin if m.applies(kind, scaps, fcaps) and (cost is None or m.cost == cost)
                 for n in m.names)


# The built-in columns of each kind of run, derived from the registry (for readers of whole name lists;
# a run's own columns are ``build_metrics(...).param_names + sample_names``).
CONTINUOUS = _builtin_names("continuous", {"density"}, {"log_prob"}, "every")
SAMPLE_BASED = _builtin_names("continuous", {"density"}, {"log_prob"}, "sampled")
DISCRETE = _builtin_names("discrete", (), {"probs"})
SUPERVISED = _builtin_names("supervised", (), {"coef"})
TEXT = _builtin_names("text", {"density"}, {"log_prob"})
NEURAL = _builtin_names("image", {"labels", "modes"}, {"trains", "log_prob"})
