"""The generation loop: batch algebra, ``lax.scan`` over generations, ``vmap`` over replicates.

One experiment is one compiled program. Replicate r uses the key ``fold_in(key(seed), r)``; generation
g of that replicate uses ``fold_in(k_gen, g)``, so numbers do not depend on how many replicates run, on
chunking, or on ``metrics.every``. Generations run in chunks of equal length (one compilation) so the
host can print progress between chunks; shapes never change between generations (accumulate mode
writes into a preallocated pool and grows a mask, or keeps exact running statistics).

Batch algebra (README "The experiment"): generation 0 is fit on ``samples`` real points. Every later generation
makes one batch of ``samples`` points, ``n_real`` real (fresh draws, or the fixed subset drawn once from
generation 0's real batch) and the rest sampled from the previous model at ``sampling.scale``; then
``replace`` fits the newest batch, ``accumulate`` all batches so far, and ``accumulate_subsample``
``samples`` points drawn uniformly without replacement from all batches so far.

One generation (:meth:`Chain.step`), every piece chosen once when the :class:`Chain` is built:
  batch  = mix(real part, synthetic part)   real: fresh draws | the fixed subset | a finite source in order;
                                            synthetic: model draws, curated or not; mix: static counts, or a
                                            traced ``n_real`` (a vectorised sweep) with fixed shapes
  params = regime.step(batch)               replace | accumulate (running statistics or a masked pool) |
                                            accumulate_subsample
  out    = metrics(params)
Points or exact sufficient statistics (the data path: :class:`PointPath`, :class:`StatsPath`) decide what a
batch is: both offer the same few methods (real draws, synthetic draws, combine, fit, stats).
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from collapse.families.base import Family
from collapse.metrics.compute import MetricFns
from collapse.placement import host_rows, put_rows, row_mesh, to_host
from collapse.sources.base import Source

tree_map = jax.tree_util.tree_map


@dataclass(frozen=True)
class LoopSpec:
    """Static description of one chain (everything that fixes array shapes)."""

    generations: int
    samples: int
    n_real: int
    synthetic: str  # replace | accumulate | accumulate_subsample
    real: str  # fresh | fixed
    scale: float
    path: str  # samples | stats (resolved, never auto)
    every: int
    sample_every: int
    heldout: int
    dtype: Any
    curation: Any = None  # a collapse.curation.Curation, or None (no curation, no reward_mean)
    keep_models: tuple = ()  # generations whose fitted models the state keeps to the end (``export.generations``)
    keep_replicates: int = 0  # the first replicates whose kept models come back to the host (``export.replicates``)
    real_weight: float | None = None  # loop.real_weight: the real part's share of the fit's weight (None: pooled)
    n_real_schedule: tuple | None = None  # loop.real_fraction as a schedule: real units of each generation (G,)
    scale_schedule: tuple | None = None  # sampling.scale as a schedule: the scale of each generation (G,)
    mixing: tuple | None = None  # loop.models > 1: the M x M mixing matrix of the shared pool (row i: lineage i's)

    @property
    def models(self) -> int:
        """Model lineages per replicate (``loop.models``; 1 without an ecosystem)."""
        return 1 if self.mixing is None else len(self.mixing)

    @property
    def n_syn(self) -> int:
        return self.samples - self.n_real

    @property
    def weighted(self) -> bool:
        return self.real_weight is not None


def point_values(spec: LoopSpec) -> tuple[str, ...]:
    """The loop values every row receives as runtime inputs (a vectorised sweep varies them): ``n_real`` and
    ``scale`` always; ``real_weight`` with ``loop.real_weight``; ``n_real_at`` / ``scale_at`` (one value per
    generation) with a schedule."""
    names = ["n_real", "scale"]
    if spec.weighted:
        names.append("real_weight")
    if spec.n_real_schedule is not None:
        names.append("n_real_at")
    if spec.scale_schedule is not None:
        names.append("scale_at")
    return tuple(names)


def point_defaults(spec: LoopSpec) -> dict:
    """The value of each :func:`point_values` entry in a run that does not sweep it."""
    out = {"n_real": spec.n_real, "scale": spec.scale, "real_weight": spec.real_weight,
           "n_real_at": spec.n_real_schedule, "scale_at": spec.scale_schedule}
    return {k: out[k] for k in point_values(spec)}


def fit_weights(n_real, m: int, w, dtype):
    """Row weights of a batch whose first ``n_real`` of ``m`` rows are real (``loop.real_weight`` = w):
    w m / n_real on real rows and (1 - w) m / (m - n_real) on synthetic ones, so they sum to m and the real
    part carries the share w; all 1 when one part is empty. A weighted fit then minimises
    w mean(real losses) + (1 - w) mean(synthetic losses)."""
    nr = jnp.asarray(n_real, dtype)
    real, syn = weight_factors(nr, m, w, dtype)
    return jnp.where(jnp.arange(m) < n_real, real, syn).astype(dtype)


def weight_factors(n_real, m: int, w, dtype):
    """(real row weight, synthetic row weight) of :func:`fit_weights` (1 and 1 when a part is empty)."""
    nr = jnp.asarray(n_real, dtype)
    ns = m - nr
    w = jnp.asarray(w, dtype)
    mixed = (nr > 0) & (ns > 0)
    real = jnp.where(mixed, w * m / jnp.maximum(nr, 1), 1.0)
    syn = jnp.where(mixed, (1 - w) * m / jnp.maximum(ns, 1), 1.0)
    return real.astype(dtype), syn.astype(dtype)


def n_real_points(real_fraction: float, samples: int) -> int:
    """n_real = floor(real_fraction * samples + 0.5)."""
    return int(math.floor(real_fraction * samples + 0.5))


def uses_pool(spec: LoopSpec, family: Family) -> bool:
    """Whether the chain needs the preallocated pool of every batch's points."""
    if spec.path == "stats":
        return False
    no_stats = "stats" not in family.capabilities
    return spec.synthetic == "accumulate_subsample" or (spec.synthetic == "accumulate" and no_stats)


def stats_path_blockers(source: Source, family: Family, synthetic: str, n_real: int, samples: int,
                        weighted: bool = False) -> list[str]:
    """Reasons the exact sufficient-statistic path cannot run this config (empty list: it can)."""
    reasons = []
    if weighted and family.weigh_stats is None:
        reasons.append(f"model={family.name} cannot weigh its statistics (loop.real_weight)")
    if not {"stats", "stats_sampler"} <= family.capabilities:
        reasons.append(f"model={family.name} has no sufficient-statistic sampler")
    if "stats_sampler" not in source.capabilities:
        reasons.append(f"source={source.name} cannot draw sufficient statistics of real data")
    if synthetic == "accumulate_subsample":
        reasons.append("loop.synthetic=accumulate_subsample needs the points themselves")
    if source.covariate_stats is not None:  # model statistics need the Gram matrix of >= dim input rows
        for label, n in (("real", n_real), ("synthetic", samples - n_real)):
            if 0 < n < source.dim:
                reasons.append(f"{n} {label} rows per batch is fewer than source.dim={source.dim}")
    return reasons


def _concat(a, b):
    return tree_map(lambda x, y: jnp.concatenate([x, y], 0), a, b)


def _take(tree, idx):
    return tree_map(lambda x: x[idx], tree)


def _missing(s):
    """NaN (floats) or -1 (integers) in the shape of ``s``: a skipped metric."""
    fill = jnp.nan if jnp.issubdtype(s.dtype, jnp.inexact) else -1
    return jnp.full(s.shape, fill, s.dtype)


def _maybe(pred, fn):
    """``fn()`` where ``pred`` holds, else the same structure filled with NaN / -1 (skipping the work)."""
    shapes = jax.eval_shape(fn)
    if isinstance(pred, (bool, np.bool_)):  # known at trace time (generation 0)
        return fn() if pred else tree_map(_missing, shapes)
    return jax.lax.cond(pred, fn, lambda: tree_map(_missing, shapes))


def _where(pred, a, b):
    """Leaf-wise ``a if pred else b`` for two trees of one structure (``pred`` traced)."""
    return tree_map(lambda x, y: jnp.where(pred, x, y), a, b)


def _interleave(real, syn, n_real):
    """Rows ``real[:n_real]`` then ``syn[:m - n_real]`` (m rows in all) for a traced ``n_real``: the batch a
    single run builds by concatenation with a static ``n_real``."""
    def one(r, s):
        i = jnp.arange(r.shape[0])
        j = jnp.clip(i - n_real, 0, r.shape[0] - 1)
        pick = (i < n_real).reshape((-1,) + (1,) * (r.ndim - 1))
        return jnp.where(pick, r, s[j])
    return tree_map(one, real, syn)


def draw_points(source: Source, family: Family, key, truth, params, n: int, scale):
    """n points drawn from the model, with their covariates or prompts drawn from the source."""
    k_cov, k_syn = jax.random.split(key) if source.covariates is not None else (None, key)
    covariates = source.covariates(k_cov, truth, n) if source.covariates is not None else None
    return family.sample(k_syn, params, n, scale, covariates)


# ----- the data path: what a batch is and how a model is fit from it ------------------------------------
class PointPath:
    """Batches are points (a pytree of rows): the model is fit from the points themselves."""

    name = "samples"

    def __init__(self, source: Source, family: Family, spec: LoopSpec):
        self.source, self.family, self.spec = source, family, spec

    def draw_real(self, key, truth, n):
        """n exact draws from the source."""
        return self.source.sample(key, truth, n)

    def synthetic(self, key, truth, params, n, scale):
        return draw_points(self.source, self.family, key, truth, params, n, scale)

    def combine(self, a, b):
        return _concat(a, b)

    def fit(self, key, batch, prev, weights=None):
        """The family's fit on every row (``weights``: float row weights, ``loop.real_weight``)."""
        return self.family.fit(key, batch, jnp.ones(self.spec.samples, bool) if weights is None else weights, prev)

    def stats(self, batch):
        """The sufficient statistics of one batch (what accumulate adds)."""
        return self.family.stats(batch, jnp.ones(self.spec.samples, bool))

    def first_batch(self, draw, k_real, k_rest, truth, n_fixed, split):
        """Generation 0's batch (``samples`` real points from ``draw``) and the fixed subset: ``n_fixed`` of its
        rows in a random order (all of them, permuted, when ``n_fixed`` is None). ``split`` is unused: the
        subset is taken from the batch."""
        batch = draw(k_real, truth, self.spec.samples)
        order = jax.random.permutation(k_rest, self.spec.samples)
        return batch, _take(batch, order if n_fixed is None else order[:n_fixed])


class StatsPath:
    """Batches are exact sufficient statistics, drawn directly (no points): the model is fit from them."""

    name = "stats"

    def __init__(self, source: Source, family: Family, spec: LoopSpec):
        self.source, self.family, self.spec = source, family, spec

    def draw_real(self, key, truth, n):
        """The statistics of n exact draws from the source."""
        return self.source.sample_stats(key, truth, n)

    def synthetic(self, key, truth, params, n, scale):
        """The statistics of n model draws; with the Gram matrix of their inputs when the source has one."""
        src = self.source
        k_cov, k_syn = jax.random.split(key) if src.covariates is not None else (None, key)
        cov_stats = src.covariate_stats(k_cov, truth, n) if src.covariate_stats is not None else None
        return self.family.sample_stats(k_syn, params, n, scale, cov_stats)

    def combine(self, a, b):
        return self.family.merge_stats(a, b)

    def fit(self, key, batch, prev, weights=None):
        """The fit from the batch's statistics (weighted parts were weighed when drawn: ``weights`` unused)."""
        return self.family.fit_stats(key, batch, prev)

    def stats(self, batch):
        return batch

    def first_batch(self, draw, k_real, k_rest, truth, n_fixed, split):
        """Generation 0's batch: with ``split`` a fixed part of ``n_fixed`` draws merged with the rest, else one
        draw of ``samples`` (then also the fixed part when every point is real)."""
        if split:
            fixed = draw(k_real, truth, n_fixed)
            return self.family.merge_stats(fixed, draw(k_rest, truth, self.spec.samples - n_fixed)), fixed
        batch = draw(k_real, truth, self.spec.samples)
        return batch, batch


# ----- the real part of a batch ----------------------------------------------------------------------------
class FreshReal:
    """New exact draws every generation."""

    keeps_fixed = False

    def __init__(self, draw):
        self.draw = draw  # (key, truth, n) -> real batch

    def first(self, key, truth, n):
        return self.draw(key, truth, n)

    def part(self, state, key, truth, n, g):
        return self.draw(key, truth, n)


class FiniteReal:
    """A finite source's batches read in order (generation 0's training set, then the fresh pool)."""

    keeps_fixed = False

    def __init__(self, read):
        self.read = read  # (truth, g, n) -> the real units of generation g

    def first(self, key, truth, n):
        return self.read(truth, 0, n)

    def part(self, state, key, truth, n, g):
        return self.read(truth, g, n)


class FixedReal:
    """The subset drawn once at generation 0 (from ``base``'s generation-0 data), reused every generation."""

    keeps_fixed = True

    def __init__(self, base):
        self.base = base

    def first(self, key, truth, n):
        return self.base.first(key, truth, n)

    def part(self, state, key, truth, n, g):
        return state["fixed"]


# ----- the synthetic part of a batch -----------------------------------------------------------------------
class Drawn:
    """Model draws as they come (accept rate: none)."""

    def __init__(self, path):
        self.path = path

    def part(self, key, truth, params, n, scale, state):
        return self.path.synthetic(key, truth, params, n, scale), None


class Curated:
    """n points chosen by curation from c = candidates(n) model draws, and accept_rate = accepted / c."""

    def __init__(self, source: Source, family: Family, curation, dtype):
        self.source, self.family, self.cur, self.dtype = source, family, curation, dtype

    def part(self, key, truth, params, n, scale, state):
        cur = self.cur
        c = cur.candidates(n)
        cand = draw_points(self.source, self.family, key, truth, params, c, scale)
        scores = cur.score(jax.random.fold_in(key, 1), cand, truth, params, self._real_reference(state, truth))
        idx, accepted = cur.select(jax.random.fold_in(key, 2), scores, n)
        rate = (accepted / c).astype(self.dtype)
        if cur.extra is not None:  # more columns of the candidates (the verifier's precision)
            rate = {"accept_rate": rate, **cur.extra(cand, scores, truth)}
        return (cur.take or _take)(cand, idx), rate

    def _real_reference(self, state, truth):
        """Held-out real data the detector score learns from (None when the score needs none)."""
        if not self.cur.needs_real:
            return None
        for where in (state, truth):
            for name in ("det_real", "heldout"):
                if name in where:
                    return where[name]
        raise ValueError(f"source={self.source.name} has no held-out real data for the detector")


# ----- real part + synthetic part: static counts, or a traced n_real (vectorised sweeps) -------------------
class StaticMix:
    """``spec.n_real`` decides which parts exist. ``runtime``: the counts passed to the draws are the row's
    runtime ``n_real`` (the statistic path, shape-free); else the static ones (points have static shapes)."""

    def __init__(self, path, spec: LoopSpec, runtime: bool):
        self.path, self.spec, self.runtime = path, spec, runtime

    def first(self, draw, k_real, k_rest, truth, n_real, keeps_fixed):
        spec = self.spec
        n = n_real if self.runtime else spec.n_real
        split = keeps_fixed and 0 < spec.n_real < spec.samples
        return self.path.first_batch(draw, k_real, k_rest, truth, n, split)

    def batch(self, real, syn, n_real):
        """``real(n)``, ``syn(n) -> (batch, rate)``: the parts of n rows; returns (batch, rate)."""
        spec, rate = self.spec, None
        parts = []
        if spec.n_real > 0:
            parts.append(real(n_real if self.runtime else spec.n_real))
        if spec.n_syn > 0:
            part, rate = syn(spec.samples - n_real if self.runtime else spec.n_syn)
            parts.append(part)
        return (parts[0] if len(parts) == 1 else self.path.combine(parts[0], parts[1])), rate


class TracedPointMix:
    """A traced ``n_real`` on the sample path: real and synthetic points are drawn for the whole batch and
    interleaved by position (each draw's first rows equal a smaller draw's)."""

    def __init__(self, path: PointPath, spec: LoopSpec):
        self.path, self.spec = path, spec

    def first(self, draw, k_real, k_rest, truth, n_real, keeps_fixed):
        return self.path.first_batch(draw, k_real, k_rest, truth, None, False)  # the first n_real rows count

    def batch(self, real, syn, n_real):
        m = self.spec.samples
        return _interleave(real(m), syn(m)[0], n_real), None


class TracedStatsMix:
    """A traced ``n_real`` on the statistic path: both parts are drawn with the row's counts (at least 1) and
    the right merge is selected."""

    def __init__(self, path: StatsPath, spec: LoopSpec):
        self.path, self.spec = path, spec

    def first(self, draw, k_real, k_rest, truth, n_real, keeps_fixed):
        m = self.spec.samples
        whole = draw(k_real, truth, m)
        if not keeps_fixed:
            return whole, whole
        part = draw(k_real, truth, jnp.maximum(n_real, 1))  # a mixed generation-0 batch: fixed part + the rest
        mixed = self.path.combine(part, draw(k_rest, truth, jnp.maximum(m - n_real, 1)))
        inside = (n_real > 0) & (n_real < m)
        return _where(inside, mixed, whole), _where(inside, part, whole)

    def batch(self, real, syn, n_real):
        n_syn = self.spec.samples - n_real
        r = real(jnp.maximum(n_real, 1))
        s = syn(jnp.maximum(n_syn, 1))[0]
        return _where(n_real == 0, s, _where(n_syn == 0, r, self.path.combine(r, s))), None


# ----- the synthetic regime: which data each generation is fit on -----------------------------------------
class Replace:
    """Fit the newest batch."""

    def __init__(self, path, spec: LoopSpec):
        self.path, self.spec = path, spec

    def first(self, state, key, batch):
        return self.path.fit(key, batch, None)

    def step(self, new, g, key, k_sub, batch, prev, weights=None):
        return self.path.fit(key, batch, prev, weights)


class AccumulateStats(Replace):
    """Fit all batches so far through exact running sufficient statistics (``state["acc"]``)."""

    def first(self, state, key, batch):
        state["acc"] = self.path.stats(batch)
        return self.path.fit(key, batch, None)

    def step(self, new, g, key, k_sub, batch, prev, weights=None):
        fam = self.path.family
        new["acc"] = fam.merge_stats(new["acc"], self.path.stats(batch))
        return fam.fit_stats(key, new["acc"], prev)


class PoolAccumulate(Replace):
    """Fit all batches so far: the points of a preallocated pool of every generation's batch, masked."""

    def _fill(self, state, batch):
        size = self.spec.generations * self.spec.samples
        pool = tree_map(lambda x: jnp.zeros((size,) + x.shape[1:], x.dtype), batch)
        state["pool"] = tree_map(lambda p, x: p.at[: self.spec.samples].set(x), pool, batch)
        return size

    def _add(self, new, g, batch):
        m = self.spec.samples
        new["pool"] = tree_map(lambda p, x: jax.lax.dynamic_update_slice_in_dim(p, x, g * m, 0), new["pool"], batch)
        return jnp.arange(self.spec.generations * m) < (g + 1) * m

    def first(self, state, key, batch):
        # fit on the (masked) pool from the start, so the params keep one shape across generations
        size = self._fill(state, batch)
        return self.path.family.fit(key, state["pool"], jnp.arange(size) < self.spec.samples, None)

    def step(self, new, g, key, k_sub, batch, prev, weights=None):
        filled = self._add(new, g, batch)
        return self.path.family.fit(key, new["pool"], filled, prev)


class PoolSubsample(PoolAccumulate):
    """Fit ``samples`` points drawn uniformly without replacement from the pool of all batches so far."""

    def first(self, state, key, batch):
        self._fill(state, batch)
        return self.path.fit(key, batch, None)

    def step(self, new, g, key, k_sub, batch, prev, weights=None):
        filled = self._add(new, g, batch)
        u = jnp.where(filled, jax.random.uniform(k_sub, filled.shape), 2.0)
        idx = jax.lax.top_k(-u, self.spec.samples)[1]
        return self.path.fit(key, _take(new["pool"], idx), prev)


POINT_VALUES = ("n_real", "scale")  # loop values every row receives as runtime inputs (:func:`point_values`)


class Chain:
    """Builds the per-replicate functions ``first(seed, replicate, data, point)`` and ``advance(state, gens)``.

    The pieces are chosen once, here: the data path (:class:`PointPath` or :class:`StatsPath`), the real part
    (:class:`FreshReal`, :class:`FiniteReal` or :class:`FixedReal`), the synthetic part (:class:`Drawn` or
    :class:`Curated`), how the two parts make a batch (:class:`StaticMix`, or :class:`TracedPointMix` /
    :class:`TracedStatsMix` for a traced ``n_real``) and the regime (:class:`Replace`, :class:`AccumulateStats`,
    :class:`PoolAccumulate`, :class:`PoolSubsample`).

    ``point``: the row's ``n_real`` and ``sampling.scale`` (:data:`POINT_VALUES`), runtime inputs of every run,
    so a single run and a sweep point compute the same operations on the same values (constants would be
    folded by XLA with other rounding). ``dynamic``: {"n_real"} when the rows of one program have different
    ``n_real`` (a vectorised sweep); shapes stay fixed (see the traced mixes). Otherwise the static
    ``spec.n_real`` decides which parts exist.
    """

    def __init__(self, source: Source, family: Family, spec: LoopSpec, metrics: MetricFns, with_samples: bool,
                 dynamic: frozenset = frozenset(), with_draws: bool = True):
        self.source, self.family, self.spec, self.metrics = source, family, spec, metrics
        self.dyn = frozenset(dynamic)
        self.with_samples = with_samples and bool(metrics.sample_names)
        self.with_draws = with_draws and metrics.draw_fn is not None  # the _samples / _probs artifacts
        self.keep_gen0 = family.warm_from == "gen0" or metrics.needs_gen0
        self.cur = spec.curation
        self.curating = self.cur is not None and self.cur.active
        stats = spec.path == "stats"
        self.scheduled = spec.n_real_schedule is not None  # n_real changes between generations: traced
        traced = "n_real" in self.dyn or self.scheduled
        finite = "finite" in source.capabilities  # a finite data set read in order
        if stats and (self.curating or finite):
            raise ValueError("the statistic path draws real statistics and scores no candidate points")
        if traced and self.curating:
            raise ValueError("curation draws a static number of candidates: n_real cannot vary between rows")
        self.path = StatsPath(source, family, spec) if stats else PointPath(source, family, spec)
        reader = FiniteReal(source.real_batch) if finite else FreshReal(self.path.draw_real)
        self.real = FixedReal(reader) if spec.real == "fixed" else reader
        self.synthetic = Curated(source, family, self.cur, spec.dtype) if self.curating else Drawn(self.path)
        if traced:
            self.mix = TracedStatsMix(self.path, spec) if stats else TracedPointMix(self.path, spec)
        else:  # the statistic path's counts as runtime values, unless they slice a fixed design (static)
            self.mix = StaticMix(self.path, spec, runtime=stats and source.covariate_stats is None)
        if spec.synthetic == "replace":
            self.regime = Replace(self.path, spec)
        elif spec.synthetic == "accumulate" and not uses_pool(spec, family):
            self.regime = AccumulateStats(self.path, spec)
        elif spec.synthetic == "accumulate":
            self.regime = PoolAccumulate(self.path, spec)
        else:
            self.regime = PoolSubsample(self.path, spec)
        shared = source.data or {}
        # per-replicate held-out real data for the metrics, unless shared or the metrics are exact
        # (a family's category probabilities or coefficients against the truth)
        self.draw_heldout = "heldout" not in shared and not ({"probs", "coef"} & family.capabilities)
        self.draw_det_real = (not self.draw_heldout and self.curating and self.cur.needs_real
                              and "heldout" not in shared)  # the detector's real data

    # ----- metrics ----------------------------------------------------------------------------------
    def _scale(self, point, g):
        """``sampling.scale`` of generation g: the row's value, or its schedule's entry g."""
        return point["scale_at"][g] if self.spec.scale_schedule is not None else point["scale"]

    def _n_real(self, point, g):
        """Real units of generation g's batch: the row's value, or its schedule's entry g."""
        return point["n_real_at"][g] if self.scheduled else point["n_real"]

    def _metrics(self, key, g, params, state, truth):
        spec, m = self.spec, self.metrics
        truth = {**truth, "sampling_scale": self._scale(state["point"], g)}  # metric draws from the model use it
        keep = (g % spec.every == 0) | (g == spec.generations - 1)
        heldout = state["heldout"] if "heldout" in state else truth.get("heldout")
        args = (params, truth, heldout) + ((state["gen0"],) if m.needs_gen0 else ())
        # keys derived inside the branches, so skipped generations pay no hashing
        out = _maybe(keep, lambda: m.param_fn(jax.random.fold_in(key, 0), *args))
        sampled = keep & ((g % spec.sample_every == 0) | (g == spec.generations - 1))
        if self.with_samples:
            prep = state.get("sample_prep")
            out = {**out, **_maybe(sampled, lambda: m.sample_fn(jax.random.fold_in(key, 1), *args[:3], prep))}
        if self.cur is not None and self.cur.reward is not None:  # mean reward of the model's own draws
            cur = self.cur
            when = keep if self.cur.reward_every_kept else sampled  # text / image draws are costly
            out["reward_mean"] = _maybe(when, lambda: jnp.mean(cur.reward(draw_points(
                self.source, self.family, jax.random.fold_in(key, 3), truth, params, cur.reward_draws,
                truth["sampling_scale"]), truth)))
        if self.with_draws:  # model draws for samples.npz / wandb histograms (first replicates kept)
            when = keep if m.draw_every_kept else sampled
            out["_samples"] = _maybe(when, lambda: m.draw_fn(jax.random.fold_in(key, 2), params, truth))
            if m.probs_fn is not None:  # exact category probabilities at the same generations
                out["_probs"] = _maybe(when, lambda: m.probs_fn(params))
        return out

    # ----- generation 0 -----------------------------------------------------------------------------
    def first(self, seed, replicate, data, point=None, lineage=None):
        """Generation 0 of replicate ``replicate``: key ``fold_in(key(seed), replicate)``. ``data``: the
        source's shared arrays (unbatched), merged into every truth lookup; ``point``: this row's dynamic
        loop values (a vectorised sweep). ``lineage``: lineage l of an ecosystem (``loop.models`` > 1) uses
        the generation keys of ``fold_in(k_gen, l)`` and shares the replicate's truth and held-out data."""
        spec, src = self.spec, self.source
        rkey = jax.random.fold_in(jax.random.key(seed), replicate)
        k_truth, k_held, k_gen = jax.random.split(rkey, 3)
        if lineage is not None:
            k_gen = jax.random.fold_in(k_gen, lineage)
        own = src.init(k_truth)
        truth = {**own, **data}
        state: dict = {"k_gen": k_gen, "truth": own, "point": dict(point)}
        if self.draw_heldout:
            state["heldout"] = src.sample(k_held, truth, spec.heldout)
        elif self.draw_det_real:
            state["det_real"] = src.sample(k_held, truth, spec.heldout)
        k_real, k_rest, k_fit, k_metric = jax.random.split(jax.random.fold_in(k_gen, 0), 4)
        keeps = self.real.keeps_fixed
        batch, fixed = self.mix.first(self.real.first, k_real, k_rest, truth, point["n_real"], keeps)
        if keeps and ("n_real" in self.dyn or spec.n_real > 0):
            state["fixed"] = fixed
        if self.with_samples and self.metrics.sample_prepare_fn is not None:  # per-replicate sample-metric constants
            state["sample_prep"] = self.metrics.sample_prepare_fn(truth, state.get("heldout", truth.get("heldout")))
        params = self.regime.first(state, k_fit, batch)  # generation 0 fits from scratch
        state["params"] = params
        if spec.keep_models:  # one slot per kept generation, filled when that generation is fitted
            zeros = tree_map(jnp.zeros_like, params)
            state["models"] = tuple(params if g == 0 else zeros for g in spec.keep_models)
        if self.keep_gen0:
            state["gen0"] = params
        out = self._metrics(k_metric, 0, params, state, truth)
        if self.cur is not None:  # no curation at generation 0
            for name in ("accept_rate",) + self.cur.extra_names:
                out[name] = jnp.asarray(jnp.nan, spec.dtype)
        return state, out

    # ----- generations >= 1 -------------------------------------------------------------------------
    def step(self, state, g, data, pool=None):
        """Generation g: the batch (real part + synthetic part), the fit of the regime, the metrics.
        ``pool``: (every lineage's previous params, stacked; this lineage's mixing weights) in an ecosystem,
        whose synthetic part is drawn from the shared pool (:func:`pooled_draw`)."""
        spec = self.spec
        k_real, k_syn, k_fit, k_sub, k_metric = self._gen_keys(state["k_gen"], g)
        truth, params = {**state["truth"], **data}, state["params"]
        point = state["point"]
        scale, n_real = self._scale(point, g), self._n_real(point, g)
        real = lambda n: self.real.part(state, k_real, truth, n, g)  # noqa: E731
        syn = lambda n: self.synthetic.part(k_syn, truth, params, n, scale, state)  # noqa: E731
        if pool is not None:
            syn = lambda n: (pooled_draw(self.path, k_syn, truth, pool, n, scale), None)  # noqa: E731
        weights = None
        if spec.weighted and spec.path == "stats":  # each part's statistics weighed as they are drawn
            real, syn = self._weighed_parts(real, syn, n_real, point["real_weight"])
        elif spec.weighted:
            weights = fit_weights(n_real, spec.samples, point["real_weight"], spec.dtype)
        batch, rate = self.mix.batch(real, syn, n_real)
        prev = state["gen0"] if self.family.warm_from == "gen0" else params  # the model the fit starts from
        new = dict(state)
        new["params"] = params = self.regime.step(new, g, k_fit, k_sub, batch, prev, weights)
        if spec.keep_models:
            new["models"] = tuple(tree_map(lambda a, b, kg=kg: jnp.where(g == kg, a, b), params, slot)
                                  for kg, slot in zip(spec.keep_models, state["models"]))
        out = self._metrics(k_metric, g, params, new, truth)
        if self.cur is not None:  # none keeps every drawn point: 1
            nan = jnp.asarray(jnp.nan, spec.dtype)
            if spec.n_syn == 0:  # nothing drawn, nothing curated (rate is None): every curation column NaN
                rates = {k: nan for k in ("accept_rate",) + self.cur.extra_names}
            else:
                rate = rate if self.curating else jnp.asarray(1.0, spec.dtype)
                rates = rate if isinstance(rate, dict) else {"accept_rate": rate}
            out.update(rates)
        return new, out

    def _weighed_parts(self, real, syn, n_real, w):
        """The statistic path's parts with ``loop.real_weight``: the real statistics times w m / n_real and the
        synthetic ones times (1 - w) m / n_syn (:func:`weight_factors`), before they are merged."""
        m, weigh = self.spec.samples, self.family.weigh_stats
        c_real, c_syn = weight_factors(n_real, m, w, self.spec.dtype)

        def syn_weighed(n):
            part, rate = syn(n)
            return weigh(part, c_syn), rate
        return (lambda n: weigh(real(n), c_real)), syn_weighed

    @staticmethod
    def _gen_keys(k_gen, g):
        """Keys of generation g for its uses (real, synthetic, fit, subsample, metrics):
        fold_in(fold_in(k_gen, g), i). Separate fold_ins (not one split) let XLA drop the hashing of keys a
        config never uses."""
        kg = jax.random.fold_in(k_gen, g)
        return tuple(jax.random.fold_in(kg, i) for i in range(5))

    def advance(self, state, gens, data):
        return jax.lax.scan(lambda st, g: self.step(st, g, data), state, gens)


def pooled_draw(path, key, truth, pool, n: int, scale):
    """n synthetic points from the shared pool of an ecosystem: each point's model is drawn from the lineage's
    mixing weights pi (row c ~ Categorical(pi)), and the point is row r of model c's own n draws (key
    ``fold_in(k, c)``), so the points are independent draws from the mixture sum_j pi_j p_j. Costs M x n draws."""
    stacked, probs = pool
    k_pick, k_draw = jax.random.split(key)
    models = probs.shape[0]
    draws = jax.vmap(lambda j, p: path.synthetic(jax.random.fold_in(k_draw, j), truth, p, n, scale))(
        jnp.arange(models), stacked)
    pick = jax.random.categorical(k_pick, jnp.log(probs), shape=(n,))
    rows = jnp.arange(n)
    return tree_map(lambda x: x[pick, rows], draws)


def shard_rows(rows: dict[str, np.ndarray]) -> dict:
    """The per-row inputs of the compiled program (``replicate`` ids, seeds, dynamic loop values), sharded over
    ``jax.devices()`` of every process (:func:`collapse.placement.row_mesh`) when there are several devices. Rows
    are padded to a multiple of the device count with extra replicates (fresh ids, last row's other values) whose
    results are dropped. Each row's numbers depend only on its own inputs, so results equal a single-device run."""
    mesh = row_mesh()
    if mesh is None:
        return dict(rows)
    n = len(rows["replicate"])
    pad = (-n) % mesh.size
    out = {}
    for name, v in rows.items():
        extra = v[-1] + 1 + np.arange(pad, dtype=v.dtype) if name == "replicate" else np.repeat(v[-1:], pad)
        out[name] = put_rows(np.concatenate([v, extra]), mesh)
    return out


ARTIFACT_REPLICATES = 2  # replicates whose artifacts (outputs named "_...") come back to the host


def _host(name: str, value, artifact_rows: np.ndarray) -> np.ndarray:
    """Device output to NumPy; artifacts keep only ``artifact_rows`` (the first replicates of each point)."""
    return host_rows(value, artifact_rows) if name.startswith("_") else to_host(value)


@dataclass
class EngineResult:
    columns: dict  # name -> np.ndarray of rows
    compile_s: float
    run_s: float
    generations: np.ndarray = None  # the kept generations
    artifacts: dict = None  # name -> [(replicate ids, array (replicates, kept generations, ...))]
    groups: list = None  # per replicate group: {"replicates": "a-b", "sample_metrics": bool, "compile_s", "run_s"}
    models: dict = None  # (generation, replicate) -> the fitted params (NumPy) of ``spec.keep_models``


def _progress(label: str, done: int, prev: int, total: int, started: float) -> None:
    """One updating stderr line: generations done, rate and ETA of the current replicate group."""
    elapsed = time.perf_counter() - started
    rate = done / elapsed if elapsed > 0 else float("inf")
    eta = (total - done) / rate if rate > 0 else float("nan")
    speed = f"{rate:,.1f} gen/s" if rate >= 1 else f"{1 / rate:,.1f} s/gen"
    line = f"  {label}generation {done}/{total}  {speed}  ETA {eta:6.1f} s "
    if sys.stderr.isatty():
        print("\r" + line, end="\n" if done == total else "", file=sys.stderr, flush=True)
    elif (4 * done) // total > (4 * prev) // total:  # logs (not a terminal): a line about every 25%
        print(line, file=sys.stderr, flush=True)


def at_once(rows: int, limit: int | None) -> int:
    """Rows one compiled step runs together (``engine.rows_at_once``): all ``rows`` without a ``limit``, else the
    largest divisor of ``rows`` that is <= ``limit`` (a divisor: one traced body, no remainder program)."""
    if limit is None or limit >= rows:
        return rows
    return max(d for d in range(1, max(limit, 1) + 1) if rows % d == 0)


def batched_rows(fn: Callable, in_axes: tuple, rows: int, k: int) -> Callable:
    """``fn`` over the leading row axis of the arguments marked 0 in ``in_axes`` (None: shared): one ``vmap``
    when ``k`` = ``rows``, else ``lax.map`` over rows // k blocks of ``k`` rows under ``vmap``, one block after
    another in the same program (memory of k rows' temporaries; the same operations per row)."""
    if k >= rows:
        return jax.vmap(fn, in_axes=in_axes)

    def mapped(*args):
        mapped_args = tuple(a for a, ax in zip(args, in_axes) if ax == 0)

        def one(xs):
            it = iter(xs)
            return fn(*(next(it) if ax == 0 else a for a, ax in zip(args, in_axes)))

        return jax.lax.map(one, mapped_args, batch_size=k)

    return mapped


def per_device(fn: Callable, mesh, in_specs: tuple) -> Callable:
    """``fn`` (rows in, rows out) run by every device on its own rows (``shard_map`` over the ``replicate`` axis;
    ``in_specs``: "rows" or None (shared) per argument), or ``fn`` itself on one device. Every device then runs a
    program of its own rows only: no collective joins the devices, which otherwise the partitioner inserts
    wherever a vmapped ``while_loop`` (rejection sampling, decoding) tests "any row still running" across the
    whole batch. Such a per-iteration all-reduce couples the devices and, on a CPU host with more devices than
    cores, can deadlock."""
    if mesh is None:
        return fn
    P = jax.sharding.PartitionSpec
    specs = tuple(P("replicate") if s == "rows" else P() for s in in_specs)
    return jax.shard_map(fn, mesh=mesh, in_specs=specs, out_specs=P("replicate"), check_vma=False)


def local_rows(n_rows: int) -> int:
    """Rows each device holds of ``n_rows`` (a multiple of the device count after :func:`shard_rows`)."""
    mesh = row_mesh()
    return n_rows if mesh is None else n_rows // mesh.size


def compile_group(chain: Chain, seeds, reps, data, point_in, chunk: int, rows_at_once: int | None = None):
    """The two compiled programs of one replicate group: ``first`` (generation 0 of every row) and ``advance``
    (``chunk`` generations; None when ``chunk`` is 0), the state's shapes, and the seconds spent per stage:
    {"trace_s", "lower_s", "xla_s"} (Python tracing to a jaxpr, lowering to StableHLO, XLA compilation or
    loading from the persistent compilation cache). ``rows_at_once``: at most this many rows of each device run
    together (:func:`at_once`); its others follow one block after another inside the same programs."""
    mesh = row_mesh()
    n_rows = local_rows(len(reps))
    k = at_once(n_rows, rows_at_once)
    first_v = per_device(batched_rows(chain.first, (0, 0, None, 0), n_rows, k), mesh, ("rows", "rows", None, "rows"))
    sharded = getattr(reps, "sharding", None) if mesh is not None else None
    jit_kw = {"out_shardings": sharded} if sharded is not None else {}  # every output is per replicate
    stages = {"trace_s": 0.0, "lower_s": 0.0, "xla_s": 0.0}

    def build(fn, *args):
        t0 = time.perf_counter()
        traced = fn.trace(*args) if hasattr(fn, "trace") else None  # (recent jax)
        t1 = time.perf_counter()
        lowered = traced.lower() if traced is not None else fn.lower(*args)
        t2 = time.perf_counter()
        compiled = lowered.compile()
        t3 = time.perf_counter()
        for k, dt in zip(stages, (t1 - t0, t2 - t1, t3 - t2)):
            stages[k] += dt
        return traced, compiled

    traced, first = build(jax.jit(first_v, **jit_kw), seeds, reps, data, point_in)
    if traced is not None and hasattr(traced, "out_info"):  # the traced program's outputs: no second trace
        state_shape = traced.out_info[0]
    else:
        state_shape = jax.eval_shape(first_v, seeds, reps, data, point_in)[0]
    state_shape = tree_map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharded), state_shape)
    advance = None
    if chunk > 0:
        gens0 = np.arange(1, 1 + chunk, dtype=np.int32)
        advance_v = per_device(batched_rows(chain.advance, (0, None, None), n_rows, k), mesh, ("rows", None, None))
        advance = build(jax.jit(advance_v, donate_argnums=0, **jit_kw), state_shape, gens0, data)[1]
    return first, advance, state_shape, stages


def chunking(steps: int, chunks: int) -> tuple[int, int]:
    """(compiled calls, generations per call) for ``steps`` generations after generation 0 in at most ``chunks``
    calls (``engine.chunks``): (0, 0) when there are none."""
    n_chunks = max(1, min(chunks, steps)) if steps > 0 else 0
    return n_chunks, (math.ceil(steps / n_chunks) if steps > 0 else 0)


def group_rows(ids: np.ndarray, seeds: np.ndarray, points: dict, n_points: int, spec: LoopSpec):
    """(point of each row, the rows' inputs {replicate, seed, n_real, scale}) of one replicate group: every
    replicate of ``ids`` once per sweep point (point-major); seeds are taken modulo 2^32."""
    row_point = np.repeat(np.arange(n_points), len(ids))
    rows_in = {"replicate": np.tile(ids, n_points).astype(np.uint32),
               "seed": (seeds[row_point] % 2**32).astype(np.uint32)}
    for name, default in point_defaults(spec).items():
        values = points.get(name)
        if values is None:  # one value (or one schedule) for every point
            values = np.broadcast_to(np.asarray(default), (n_points,) + np.shape(default))
        dt = np.int32 if name.startswith("n_real") else np.dtype(spec.dtype)
        rows_in[name] = np.asarray(values)[row_point].astype(dt)
    return row_point, rows_in


DRAWS_SPLIT_MIN = 64  # runs with at least this many replicates draw the kept model draws in a group of their own


def replicate_groups(replicates: int, sample_replicates: int, draws: bool) -> list[tuple[np.ndarray, bool, bool]]:
    """The replicate groups of a run, one compiled program each: (replicate ids, with sample metrics, with the
    kept model draws). Sample metrics go to replicates < ``sample_replicates``; the model draws of
    ``samples.npz`` (``metrics.draws``; only :data:`ARTIFACT_REPLICATES` replicates are kept) are drawn by the
    first group only. Without sample metrics, a run of at least :data:`DRAWS_SPLIT_MIN` replicates puts its
    first :data:`ARTIFACT_REPLICATES` in a group of their own (drawing 1000 points for every replicate and
    keeping two costs more than a second program); smaller runs draw in their one group."""
    n_s = min(max(sample_replicates, 0), replicates)
    if n_s == 0 and draws and replicates >= DRAWS_SPLIT_MIN:
        n_s = ARTIFACT_REPLICATES
    if n_s == 0:
        return [(np.arange(replicates), False, draws)]
    groups = [(np.arange(n_s), sample_replicates > 0, draws)]
    if replicates > n_s:
        groups.append((np.arange(n_s, replicates), False, False))
    return groups


def run_chains(source: Source, family: Family, spec: LoopSpec, metrics: MetricFns, seed: int, replicates: int,
               sample_replicates: int, chunks: int = 20, quiet: bool = True, checkpointer=None,
               points: dict[str, np.ndarray] | None = None, rows_at_once: int | None = None) -> EngineResult:
    """Run ``replicates`` chains; sample-based metrics only for replicates < ``sample_replicates``.

    ``rows_at_once``: at most this many rows (replicates x sweep points) of a group run together under ``vmap``;
    the rest run block after block in the same compiled program (:func:`batched_rows`; None: all together).

    ``points``: a vectorised sweep, {name: (P,) values} for ``seed`` and the :data:`POINT_VALUES` that vary;
    every replicate runs once per point (rows ordered point-major) in the same compiled program.
    Returns one row per (point, replicate, kept generation) as flat NumPy columns (``point`` only for sweeps).
    """
    points = {k: np.asarray(v) for k, v in (points or {}).items()}
    n_points = len(next(iter(points.values()))) if points else 1
    dynamic = frozenset({"n_real"} & set(points))
    seeds = points.get("seed", np.full(n_points, seed))
    groups = replicate_groups(replicates, sample_replicates if metrics.sample_names else 0,
                              metrics.draw_fn is not None)

    g_total = spec.generations
    steps = g_total - 1
    n_chunks, chunk = chunking(steps, chunks)
    kept = np.array([g for g in range(g_total) if g % spec.every == 0 or g == g_total - 1])

    compile_s = run_s = 0.0
    timings: list[dict] = []
    all_cols: list[dict] = []
    artifacts: dict = {}
    models: dict = {}
    data = tree_map(jnp.asarray, dict(source.data or {}))
    for gi, (ids, with_samples, with_draws) in enumerate(groups):
        chain = Chain(source, family, spec, metrics, with_samples, dynamic, with_draws)
        if spec.models > 1:  # M lineages per replicate sharing a pool of synthetic data
            from collapse.ecosystem import Ecosystem

            chain = Ecosystem(chain, np.asarray(spec.mixing))
        row_point, rows_in = group_rows(ids, seeds, points, n_points, spec)
        sharded_rows = shard_rows(rows_in)
        reps, seed_arr = sharded_rows["replicate"], sharded_rows["seed"]
        point_in = {k: sharded_rows[k] for k in point_values(spec)}
        art_rows = np.flatnonzero(np.tile(np.arange(len(ids)) < ARTIFACT_REPLICATES, n_points))
        t0 = time.perf_counter()
        first, advance, state_shape, stages = compile_group(chain, seed_arr, reps, data, point_in,
                                                            chunk if steps > 0 else 0, rows_at_once)
        group_compile = time.perf_counter() - t0
        compile_s += group_compile
        t0 = time.perf_counter()
        label = ""
        if len(groups) > 1:
            what = ("with" if with_samples else "without") + " sample metrics"
            if with_draws and not with_samples:
                what = "model draws kept"
            label = f"replicates {ids[0]}-{ids[-1]} ({what}): "
        if n_points > 1:
            label = f"{n_points} sweep points, " + (label or "")
        n_local = local_rows(len(reps))
        k = at_once(n_local, rows_at_once)
        if k < n_local and not quiet:
            where = " per device" if n_local < len(reps) else ""
            print(f"  {label}{k} of {n_local} rows{where} at a time (engine.rows_at_once)", file=sys.stderr, flush=True)
        resumed = checkpointer.load(gi, state_shape) if checkpointer is not None else None
        resumed_models = {}
        if resumed is not None:  # continue from the last durable chunk of this group
            start_chunk, finished, state, saved_rows = resumed
            resumed_models = checkpointer.models if finished else {}
            rows = [saved_rows]
            if finished:
                start_chunk = n_chunks
            if not quiet:
                at = g_total if finished else min(1 + start_chunk * chunk, g_total)
                print(f"  {label}resuming from the checkpoint: {at} of {g_total} generations done", file=sys.stderr,
                      flush=True)
        else:
            start_chunk = 0
            state, row0 = first(seed_arr, reps, data, point_in)
            rows = [{k: _host(k, v, art_rows)[:, None] for k, v in row0.items()}]
        since_save = 0
        for c in range(start_chunk, n_chunks):
            start = 1 + c * chunk
            gens = np.arange(start, start + chunk, dtype=np.int32)
            state, out = advance(state, gens, data)
            keep = (gens < g_total) & ((gens % spec.every == 0) | (gens == g_total - 1))  # thin on arrival
            rows.append({k: _host(k, v, art_rows)[:, keep] for k, v in out.items()})
            since_save += chunk
            if checkpointer is not None and checkpointer.due(since_save, c == n_chunks - 1):
                checkpointer.save(gi, c + 1, state, rows)
                since_save = 0
            if not quiet:
                _progress(label, min(start + chunk, g_total), start, g_total, t0)
        if state is not None:
            jax.block_until_ready(state)
            group_models = kept_models(state, rows_in["replicate"], spec) if spec.keep_models else {}
        else:  # a finished group of a resumed run: its models were saved with it
            group_models = resumed_models
        models.update(group_models)
        if checkpointer is not None:
            checkpointer.save(gi, n_chunks, None, rows, finished=True, models=group_models)
        run_s += time.perf_counter() - t0
        timings.append({"replicates": f"{ids[0]}-{ids[-1]}", "sample_metrics": bool(with_samples and metrics.sample_names),
                        "compile_s": group_compile, **stages, "run_s": time.perf_counter() - t0})
        n = len(row_point)
        # (rows, kept generations) per metric
        full = {k: np.concatenate([r[k] for r in rows], axis=1) for k in rows[0]}
        full = {k: v if k.startswith("_") else v[:n] for k, v in full.items()}  # drop padding rows
        # artifacts (e.g. sample texts), not metric columns: (points x first replicates, kept generations, ...)
        for k in [k for k in full if k.startswith("_")]:
            artifacts.setdefault(k, []).append((ids[:ARTIFACT_REPLICATES], full.pop(k)))
        cols = {"replicate": np.repeat(rows_in["replicate"].astype(np.int64), len(kept)),
                "generation": np.tile(kept, n)}
        if points:
            cols["point"] = np.repeat(row_point, len(kept))
        cols.update({k: v.reshape(-1).astype(np.float64) for k, v in full.items()})
        all_cols.append(cols)
    names = ["replicate", "generation", *(["point"] if points else []), *metrics.param_names, *metrics.sample_names]
    merged = {}
    for name in names:
        parts = []
        for cols in all_cols:
            if name in cols:
                parts.append(cols[name])
            else:
                parts.append(np.full(len(cols["replicate"]), np.nan))
        merged[name] = np.concatenate(parts)
    return EngineResult(merged, compile_s, run_s, kept, artifacts, timings, models)


def kept_models(state, replicate_ids: np.ndarray, spec: LoopSpec) -> dict:
    """{(generation, replicate): params} on the host, for the rows of the first ``spec.keep_replicates``
    replicates (the first sweep point's rows: a run has one)."""
    rows, seen = [], set()
    for row, r in enumerate(int(r) for r in replicate_ids):
        if r < spec.keep_replicates and r not in seen:
            rows.append((row, r))
            seen.add(r)
    picked = np.asarray([row for row, _ in rows], dtype=np.int64)
    out = {}
    for g, slot in zip(spec.keep_models, state["models"]):  # one host copy (one gather) per leaf
        host = tree_map(lambda x: host_rows(x, picked), slot)
        for i, (_, r) in enumerate(rows):
            out[(g, r)] = tree_map(lambda x: x[i], host)
    return out
