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
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from collapse.families.base import Family
from collapse.metrics.compute import MetricFns
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

    @property
    def n_syn(self) -> int:
        return self.samples - self.n_real


def n_real_points(real_fraction: float, samples: int) -> int:
    """n_real = floor(real_fraction * samples + 0.5)."""
    return int(math.floor(real_fraction * samples + 0.5))


def uses_pool(spec: LoopSpec, family: Family) -> bool:
    """Whether the chain needs the preallocated pool of every batch's points."""
    if spec.path == "stats":
        return False
    return spec.synthetic == "accumulate_subsample" or (spec.synthetic == "accumulate" and not family.has_stats)


def stats_path_blockers(source: Source, family: Family, synthetic: str, n_real: int, samples: int) -> list[str]:
    """Reasons the exact sufficient-statistic path cannot run this config (empty list: it can)."""
    reasons = []
    if not (family.has_stats and family.sample_stats is not None):
        reasons.append(f"model={family.name} has no sufficient-statistic sampler")
    if source.sample_stats is None:
        reasons.append(f"source={source.name} cannot draw sufficient statistics of real data")
    if synthetic == "accumulate_subsample":
        reasons.append("loop.synthetic=accumulate_subsample needs the points themselves")
    if source.kind == "supervised":
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


POINT_VALUES = ("n_real", "scale")  # loop values every row receives as runtime inputs (a sweep varies them)


class Chain:
    """Builds the per-replicate functions ``first(seed, replicate, data, point)`` and ``advance(state, gens)``.

    ``point``: the row's ``n_real`` and ``sampling.scale`` (:data:`POINT_VALUES`), runtime inputs of every run,
    so a single run and a sweep point compute the same operations on the same values (constants would be
    folded by XLA with other rounding). ``dynamic``: {"n_real"} when the rows of one program have different
    ``n_real`` (a vectorised sweep); shapes stay fixed: on the sample path real and synthetic points are drawn
    for the whole batch and interleaved by position (each draw's first rows equal a smaller draw), on the
    statistic path both parts are drawn with the row's counts and the right merge is selected. Otherwise the
    static ``spec.n_real`` decides which parts exist.
    """

    def __init__(self, source: Source, family: Family, spec: LoopSpec, metrics: MetricFns, with_samples: bool,
                 dynamic: frozenset = frozenset()):
        self.source, self.family, self.spec, self.metrics = source, family, spec, metrics
        self.dyn = frozenset(dynamic)
        # counts of the statistic path as runtime values (supervised statistics slice a design: static counts)
        self.runtime_counts = spec.path == "stats" and source.kind != "supervised"
        self.with_samples = with_samples and bool(metrics.sample_names)
        self.pool = uses_pool(spec, family)
        self.acc_stats = spec.synthetic == "accumulate" and (spec.path == "stats" or family.has_stats)
        self.keep_gen0 = family.warm_from == "gen0" or metrics.needs_gen0
        self.cur = spec.curation
        self.curating = self.cur is not None and self.cur.active

    # ----- data -----------------------------------------------------------------------------------
    def _real(self, key, truth, n, g):
        if self.source.real_batch is not None:  # finite source: read in order, never reused
            return self.source.real_batch(truth, g, n)
        if self.spec.path == "stats":
            return self.source.sample_stats(key, truth, n)
        return self.source.sample(key, truth, n)


    def _synthetic(self, key, truth, params, n, scale):
        if self.spec.path == "stats":
            src = self.source
            k_cov, k_syn = jax.random.split(key) if src.covariates is not None else (None, key)
            cov_stats = src.covariate_stats(k_cov, truth, n) if src.kind == "supervised" else None
            return self.family.sample_stats(k_syn, params, n, scale, cov_stats)
        return self._draw(key, truth, params, n, scale)

    def _draw(self, key, truth, params, n, scale):
        """n points drawn from the model (with their covariates or prompts, drawn from the source)."""
        src = self.source
        k_cov, k_syn = jax.random.split(key) if src.covariates is not None else (None, key)
        covariates = src.covariates(k_cov, truth, n) if src.covariates is not None else None
        return self.family.sample(k_syn, params, n, scale, covariates)

    def _curated(self, key, truth, params, n, scale, state):
        """n synthetic points chosen by curation from c = candidates(n) model draws, and accept_rate = accepted / c."""
        cur = self.cur
        c = cur.candidates(n)
        cand = self._draw(key, truth, params, c, scale)
        scores = cur.score(jax.random.fold_in(key, 1), cand, truth, params, self._real_reference(state, truth))
        idx, accepted = cur.select(jax.random.fold_in(key, 2), scores, n)
        return (cur.take or _take)(cand, idx), (accepted / c).astype(self.spec.dtype)

    def _real_reference(self, state, truth):
        """Held-out real data the detector score learns from (None when the score needs none)."""
        if not self.cur.needs_real:
            return None
        for where in (state, truth):
            for name in ("det_real", "heldout"):
                if name in where:
                    return where[name]
        raise ValueError(f"source={self.source.name} has no held-out real data for the detector")

    def _combine(self, a, b):
        return self.family.merge_stats(a, b) if self.spec.path == "stats" else _concat(a, b)

    def _fit_batch(self, key, batch, prev):
        if self.spec.path == "stats":
            return self.family.fit_stats(key, batch, prev)
        return self.family.fit(key, batch, jnp.ones(self.spec.samples, bool), prev)

    # ----- metrics ----------------------------------------------------------------------------------
    def _metrics(self, key, g, params, state, truth):
        spec, m = self.spec, self.metrics
        truth = {**truth, "sampling_scale": state["point"]["scale"]}  # metric draws from the model use it
        keep = (g % spec.every == 0) | (g == spec.generations - 1)
        heldout = state["heldout"] if "heldout" in state else truth.get("heldout")
        args = (params, truth, heldout) + ((state["gen0"],) if m.needs_gen0 else ())
        # keys derived inside the branches, so skipped generations pay no hashing
        out = _maybe(keep, lambda: m.param_fn(jax.random.fold_in(key, 0), *args))
        sampled = keep & ((g % spec.sample_every == 0) | (g == spec.generations - 1))
        if self.with_samples:
            out = {**out, **_maybe(sampled, lambda: m.sample_fn(jax.random.fold_in(key, 1), *args[:3]))}
        if self.cur is not None and self.cur.reward is not None:  # mean reward of the model's own draws
            cur, kind = self.cur, self.source.kind
            when = keep if kind in ("continuous", "discrete", "supervised") else sampled  # neural draws are costly
            out["reward_mean"] = _maybe(when, lambda: jnp.mean(cur.reward(self._draw(
                jax.random.fold_in(key, 3), truth, params, cur.reward_draws, truth["sampling_scale"]), truth)))
        if m.draw_fn is not None:  # model draws for samples.npz / wandb histograms (first replicates kept)
            when = keep if m.draw_every_kept else sampled
            out["_samples"] = _maybe(when, lambda: m.draw_fn(jax.random.fold_in(key, 2), params, truth))
            if m.probs_fn is not None:  # exact category probabilities at the same generations
                out["_probs"] = _maybe(when, lambda: m.probs_fn(params))
        return out

    # ----- generation 0 -----------------------------------------------------------------------------
    def first(self, seed, replicate, data, point=None):
        """Generation 0 of replicate ``replicate``: key ``fold_in(key(seed), replicate)``. ``data``: the
        source's shared arrays (unbatched), merged into every truth lookup; ``point``: this row's dynamic
        loop values (a vectorised sweep)."""
        spec, src, fam = self.spec, self.source, self.family
        n_real, dyn_real = point["n_real"], "n_real" in self.dyn
        rkey = jax.random.fold_in(jax.random.key(seed), replicate)
        k_truth, k_held, k_gen = jax.random.split(rkey, 3)
        own = src.init(k_truth)
        truth = {**own, **data}
        state: dict = {"k_gen": k_gen, "truth": own, "point": dict(point)}
        if src.kind == "continuous" or (src.kind == "text" and "heldout" not in data):
            state["heldout"] = src.sample(k_held, truth, spec.heldout)
        elif self.curating and self.cur.needs_real and "heldout" not in data:  # detector's real data
            state["det_real"] = src.sample(k_held, truth, spec.heldout)
        k_real, k_rest, k_fit, k_metric = jax.random.split(jax.random.fold_in(k_gen, 0), 4)
        prev = None  # generation 0 fits from scratch
        if spec.path == "stats" and dyn_real:
            whole = src.sample_stats(k_real, truth, spec.samples)
            batch = fixed = whole
            if spec.real == "fixed":  # a mixed generation-0 batch: fixed real part + the rest
                part = src.sample_stats(k_real, truth, jnp.maximum(n_real, 1))
                mixed = fam.merge_stats(part, src.sample_stats(k_rest, truth, jnp.maximum(spec.samples - n_real, 1)))
                inside = (n_real > 0) & (n_real < spec.samples)
                batch, fixed = _where(inside, mixed, whole), _where(inside, part, whole)
        elif spec.path == "stats":
            if spec.real == "fixed" and 0 < spec.n_real < spec.samples:
                n = n_real if self.runtime_counts else spec.n_real
                fixed = src.sample_stats(k_real, truth, n)
                batch = fam.merge_stats(fixed, src.sample_stats(k_rest, truth, spec.samples - n))
            else:
                batch = fixed = src.sample_stats(k_real, truth, spec.samples)
        else:
            batch = self._real(k_real, truth, spec.samples, 0)
            order = jax.random.permutation(k_rest, spec.samples)
            fixed = _take(batch, order if dyn_real else order[: spec.n_real])  # dynamic: the first n_real rows count
        if spec.real == "fixed" and (dyn_real or spec.n_real > 0):
            state["fixed"] = fixed
        if self.acc_stats:
            state["acc"] = batch if spec.path == "stats" else fam.stats(batch, jnp.ones(spec.samples, bool))
        if self.pool:
            size = spec.generations * spec.samples
            pool = tree_map(lambda x: jnp.zeros((size,) + x.shape[1:], x.dtype), batch)
            state["pool"] = tree_map(lambda p, x: p.at[: spec.samples].set(x), pool, batch)
        if self.pool and spec.synthetic == "accumulate":
            # fit on the (masked) pool from the start, so the params keep one shape across generations
            params = fam.fit(k_fit, state["pool"], jnp.arange(size) < spec.samples, prev)
        else:
            params = self._fit_batch(k_fit, batch, prev)
        state["params"] = params
        if self.keep_gen0:
            state["gen0"] = params
        out = self._metrics(k_metric, 0, params, state, truth)
        if self.cur is not None:  # no curation at generation 0
            out["accept_rate"] = jnp.asarray(jnp.nan, spec.dtype)
        return state, out

    # ----- generations >= 1 -------------------------------------------------------------------------
    def step(self, state, g, data):
        spec, fam = self.spec, self.family
        k_real, k_syn, k_fit, k_sub, k_metric = self._gen_keys(state["k_gen"], g)
        truth, params = {**state["truth"], **data}, state["params"]
        scale, n_real = state["point"]["scale"], state["point"]["n_real"]
        rate = None
        if "n_real" in self.dyn:
            batch = self._dynamic_batch(state, k_real, k_syn, truth, params, g, scale)
        else:  # counts of the statistic path as runtime values, shapes of the sample path static
            stat = self.runtime_counts
            parts = []
            if spec.n_real > 0:
                n = n_real if stat else spec.n_real
                parts.append(state["fixed"] if spec.real == "fixed" else self._real(k_real, truth, n, g))
            if spec.n_syn > 0 and self.curating:  # the sample path: static counts
                syn, rate = self._curated(k_syn, truth, params, spec.n_syn, scale, state)
                parts.append(syn)
            elif spec.n_syn > 0:
                n = spec.samples - n_real if stat else spec.n_syn
                parts.append(self._synthetic(k_syn, truth, params, n, scale))
            batch = parts[0] if len(parts) == 1 else self._combine(parts[0], parts[1])
        if fam.warm_from == "gen0":
            params = state["gen0"]  # the model later generations start from
        new = dict(state)
        if spec.synthetic == "replace":
            params = self._fit_batch(k_fit, batch, params)
        elif self.acc_stats:
            add = batch if spec.path == "stats" else fam.stats(batch, jnp.ones(spec.samples, bool))
            new["acc"] = fam.merge_stats(state["acc"], add)
            params = fam.fit_stats(k_fit, new["acc"], params)
        else:
            m = spec.samples
            pool = tree_map(lambda p, x: jax.lax.dynamic_update_slice_in_dim(p, x, g * m, 0), state["pool"], batch)
            new["pool"] = pool
            filled = jnp.arange(spec.generations * m) < (g + 1) * m
            if spec.synthetic == "accumulate":
                params = fam.fit(k_fit, pool, filled, params)
            else:
                u = jnp.where(filled, jax.random.uniform(k_sub, filled.shape), 2.0)
                idx = jax.lax.top_k(-u, m)[1]
                params = fam.fit(k_fit, _take(pool, idx), jnp.ones(m, bool), params)
        new["params"] = params
        out = self._metrics(k_metric, g, params, new, truth)
        if self.cur is not None:  # none keeps every drawn point: 1
            rate = rate if self.curating else jnp.asarray(1.0, spec.dtype)
            out["accept_rate"] = rate if spec.n_syn > 0 else jnp.asarray(jnp.nan, spec.dtype)
        return new, out

    def _dynamic_batch(self, state, k_real, k_syn, truth, params, g, scale):
        """The batch of generation g for a traced ``n_real`` (see the class docstring)."""
        spec, n_real = self.spec, state["point"]["n_real"]
        m = spec.samples
        if spec.path == "stats":
            n_syn = m - n_real
            real = state["fixed"] if spec.real == "fixed" else self._real(k_real, truth, jnp.maximum(n_real, 1), g)
            syn = self._synthetic(k_syn, truth, params, jnp.maximum(n_syn, 1), scale)
            return _where(n_real == 0, syn, _where(n_syn == 0, real, self._combine(real, syn)))
        real = state["fixed"] if spec.real == "fixed" else self._real(k_real, truth, m, g)
        return _interleave(real, self._synthetic(k_syn, truth, params, m, scale), n_real)

    @staticmethod
    def _gen_keys(k_gen, g):
        """Keys of generation g for its uses (real, synthetic, fit, subsample, metrics):
        fold_in(fold_in(k_gen, g), i). Separate fold_ins (not one split) let XLA drop the hashing of keys a
        config never uses."""
        kg = jax.random.fold_in(k_gen, g)
        return tuple(jax.random.fold_in(kg, i) for i in range(5))

    def advance(self, state, gens, data):
        return jax.lax.scan(lambda st, g: self.step(st, g, data), state, gens)


def shard_rows(rows: dict[str, np.ndarray]) -> dict:
    """The per-row inputs of the compiled program (``replicate`` ids, seeds, dynamic loop values), sharded over
    ``jax.devices()`` (a 1-D mesh over rows) when there are several devices. Rows are padded to a multiple of the
    device count with extra replicates (fresh ids, last row's other values) whose results are dropped. Each row's
    numbers depend only on its own inputs, so results equal a single-device run."""
    devices = jax.devices()
    if len(devices) == 1:
        return dict(rows)
    n = len(rows["replicate"])
    pad = (-n) % len(devices)
    out = {}
    mesh = jax.sharding.Mesh(np.asarray(devices), ("replicate",))
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("replicate"))
    for name, v in rows.items():
        extra = v[-1] + 1 + np.arange(pad, dtype=v.dtype) if name == "replicate" else np.repeat(v[-1:], pad)
        out[name] = jax.device_put(np.concatenate([v, extra]), sharding)
    return out


ARTIFACT_REPLICATES = 2  # replicates whose artifacts (outputs named "_...") come back to the host


def _host(name: str, value, artifact_rows: np.ndarray) -> np.ndarray:
    """Device output to NumPy; artifacts keep only ``artifact_rows`` (the first replicates of each point)."""
    return np.asarray(value[artifact_rows] if name.startswith("_") else value)


@dataclass
class EngineResult:
    columns: dict  # name -> np.ndarray of rows
    compile_s: float
    run_s: float
    generations: np.ndarray = None  # the kept generations
    artifacts: dict = None  # name -> [(replicate ids, array (replicates, kept generations, ...))]


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


def run_chains(source: Source, family: Family, spec: LoopSpec, metrics: MetricFns, seed: int, replicates: int,
               sample_replicates: int, chunks: int = 20, quiet: bool = True, checkpointer=None,
               points: dict[str, np.ndarray] | None = None) -> EngineResult:
    """Run ``replicates`` chains; sample-based metrics only for replicates < ``sample_replicates``.

    ``points``: a vectorised sweep, {name: (P,) values} for ``seed`` and the :data:`POINT_VALUES` that vary;
    every replicate runs once per point (rows ordered point-major) in the same compiled program.
    Returns one row per (point, replicate, kept generation) as flat NumPy columns (``point`` only for sweeps).
    """
    points = {k: np.asarray(v) for k, v in (points or {}).items()}
    n_points = len(next(iter(points.values()))) if points else 1
    dynamic = frozenset({"n_real"} & set(points))
    seeds = points.get("seed", np.full(n_points, seed))
    groups = []
    n_s = min(max(sample_replicates, 0), replicates) if metrics.sample_names else 0
    if n_s > 0:
        groups.append((np.arange(n_s), True))
    if replicates - n_s > 0:
        groups.append((np.arange(n_s, replicates), False))

    g_total = spec.generations
    steps = g_total - 1
    n_chunks = max(1, min(chunks, steps)) if steps > 0 else 0
    chunk = math.ceil(steps / n_chunks) if steps > 0 else 0
    kept = np.array([g for g in range(g_total) if g % spec.every == 0 or g == g_total - 1])

    compile_s = run_s = 0.0
    all_cols: list[dict] = []
    artifacts: dict = {}
    data = tree_map(jnp.asarray, dict(source.data or {}))
    for gi, (ids, with_samples) in enumerate(groups):
        chain = Chain(source, family, spec, metrics, with_samples, dynamic)
        row_point = np.repeat(np.arange(n_points), len(ids))
        rows_in = {"replicate": np.tile(ids, n_points).astype(np.uint32),
                   "seed": (seeds[row_point] % 2**32).astype(np.uint32)}  # seeds are taken modulo 2^32
        for name, default in (("n_real", spec.n_real), ("scale", spec.scale)):
            values = points.get(name, np.full(n_points, default))
            rows_in[name] = np.asarray(values)[row_point].astype(np.int32 if name == "n_real" else np.dtype(spec.dtype))
        sharded_rows = shard_rows(rows_in)
        reps, seed_arr = sharded_rows["replicate"], sharded_rows["seed"]
        point_in = {k: sharded_rows[k] for k in POINT_VALUES}
        art_rows = np.flatnonzero(np.tile(np.arange(len(ids)) < ARTIFACT_REPLICATES, n_points))
        t0 = time.perf_counter()
        first_v = jax.vmap(chain.first, in_axes=(0, 0, None, 0))
        sharded = getattr(reps, "sharding", None) if len(jax.devices()) > 1 else None
        jit_kw = {"out_shardings": sharded} if sharded is not None else {}  # every output is per replicate
        first = jax.jit(first_v, **jit_kw).lower(seed_arr, reps, data, point_in).compile()
        state_shape = jax.eval_shape(first_v, seed_arr, reps, data, point_in)[0]
        if sharded is not None:
            state_shape = tree_map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharded), state_shape)
        advance = None
        if steps > 0:
            gens0 = np.arange(1, 1 + chunk, dtype=np.int32)
            advance = jax.jit(jax.vmap(chain.advance, in_axes=(0, None, None)), donate_argnums=0, **jit_kw).lower(
                state_shape, gens0, data).compile()
        compile_s += time.perf_counter() - t0
        t0 = time.perf_counter()
        label = ""
        if len(groups) > 1:
            label = f"replicates {ids[0]}-{ids[-1]} ({'with' if with_samples else 'without'} sample metrics): "
        if n_points > 1:
            label = f"{n_points} sweep points, " + (label or "")
        resumed = checkpointer.load(gi, state_shape) if checkpointer is not None else None
        if resumed is not None:  # continue from the last durable chunk of this group
            start_chunk, finished, state, saved_rows = resumed
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
        if checkpointer is not None:
            checkpointer.save(gi, n_chunks, None, rows, finished=True)
        run_s += time.perf_counter() - t0
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
    return EngineResult(merged, compile_s, run_s, kept, artifacts)
