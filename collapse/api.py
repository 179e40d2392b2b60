"""``simulate``: compose a config, run the compiled experiment, return (and optionally write) the result."""
from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import jax
import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from collapse import components, config as C, precision_guard, schedules, sweep
from collapse import distributed, provenance
from collapse.curation import build_curation
from collapse.engine import LoopSpec, n_real_points, run_chains, stats_path_blockers, uses_pool
from collapse.metrics.compute import build_metrics
from collapse.metrics.registry import sampled_names
from collapse.metrics.reference import reference_entry
from collapse.run_settings import dtype_of, first_fraction, text_units
from collapse.runs import versions, write_run
from collapse.summaries import describe, theory_check


@dataclass
class Result:
    """What ``simulate`` returns: ``metrics`` (one row per replicate x kept generation), the composed
    ``config``, the ``summary`` dict written to ``summary.json``, the run directory if one was written, and
    for text runs a few generated ``samples`` per kept generation (also in ``samples.jsonl``)."""

    metrics: pd.DataFrame
    config: DictConfig
    summary: dict = field(default_factory=dict)
    run_dir: Optional[Path] = None
    samples: list = field(default_factory=list)  # text runs: {replicate, generation, index, text} per sample


def precision_context(cfg) -> contextlib.AbstractContextManager:
    return jax.enable_x64(True) if cfg.precision == "float64" else contextlib.nullcontext()


def batch_units(cfg, source) -> tuple[int, int]:
    """(units per batch, real units per batch): points, or segments of ``source.segment`` tokens for text."""
    if source.kind == "text":
        return text_units(cfg)
    return cfg.loop.samples, n_real_points(first_fraction(cfg), cfg.loop.samples)


def first_scale(cfg) -> float:
    """``sampling.scale``, or a schedule's value at generation 1."""
    scale = cfg.sampling.scale
    if not schedules.is_schedule(scale):
        return scale
    s = schedules.values("sampling.scale", scale, cfg.generations)
    return float(s[1] if len(s) > 1 else s[0])


def schedule_counts(cfg, units: int) -> tuple | None:
    """Real units of every generation's batch under a ``loop.real_fraction`` schedule, else None:
    n_real(g) = floor(fraction(g) x units + 0.5). A schedule giving every generation g >= 1 the same count is the
    plain key (None: the same program, number for number)."""
    frac = cfg.loop.real_fraction
    if not schedules.is_schedule(frac):
        return None
    counts = tuple(n_real_points(float(v), units) for v in schedules.values("loop.real_fraction", frac, cfg.generations))
    return None if len(set(counts[1:])) <= 1 else counts


def scale_schedule(cfg) -> tuple | None:
    """``sampling.scale`` of every generation under a schedule, else None (also for a constant schedule: the plain
    key)."""
    scale = cfg.sampling.scale
    if not schedules.is_schedule(scale):
        return None
    values = tuple(float(v) for v in schedules.values("sampling.scale", scale, cfg.generations))
    return None if len(set(values)) <= 1 else values


def resolve_path(cfg, source, family) -> str:
    """``engine.path``: ``auto`` takes the exact statistic path whenever it applies, else ``samples``."""
    samples, n_real = batch_units(cfg, source)
    blockers = stats_path_blockers(source, family, cfg.loop.synthetic, n_real, samples,
                                   weighted=cfg.loop.get("real_weight") is not None)
    if components.find("curation", cfg.curation).curates:
        blockers.append(f"curation={cfg.curation.name} scores the candidate points")
    if C.loop_models(cfg) > 1:
        blockers.append(f"loop.models={C.loop_models(cfg)} draws points from the shared pool of models")
    if cfg.engine.path == "stats" and blockers:
        raise C.ConfigError("engine.path", "stats", "not available here (" + "; ".join(blockers) + "); use auto or samples")
    if cfg.engine.path == "auto":
        return "samples" if blockers else "stats"
    return cfg.engine.path


def check_pool(cfg, spec: LoopSpec, family, source, points: int = 1) -> None:
    """Refuse an accumulate pool larger than ``engine.max_pool_gib`` (all replicates and sweep points together)."""
    if not uses_pool(spec, family):
        return
    if source.kind == "text":
        row_bytes = 4 * source.segment
    else:
        row_bytes = (source.dim + (1 if source.kind == "supervised" else 0)) * (8 if cfg.precision == "float64" else 4)
    gib = points * cfg.replicates * cfg.generations * spec.samples * row_bytes / 2**30
    if gib > cfg.engine.max_pool_gib:
        what = "sweep points x replicates" if points > 1 else "replicates"
        raise C.ConfigError("replicates", cfg.replicates,
                            f"the accumulate pool would take {gib:.1f} GiB ({what} x generations x loop.samples "
                            f"rows) > engine.max_pool_gib={cfg.engine.max_pool_gib}; lower replicates or generations")


def prepare(cfg):
    """Validate and build (source, family, spec, metric functions); call inside ``precision_context``.
    For a vectorised sweep this checks every point and builds from the first (see :func:`prepare_sweep`)."""
    if sweep.axes(cfg):
        return prepare_sweep(cfg)[:4]
    C.validate(cfg)
    source = C.build_source(cfg)
    family = C.build_family(cfg, source)
    C.check_built(cfg, source, family)
    spec = loop_spec(cfg, source, family)
    metrics = build_metrics(source, family, cfg.metrics, spec.scale, spec.dtype,
                            histogram=cfg.logger.name == "wandb")
    if spec.curation is not None:  # accept_rate / reward_mean come from the engine's step
        metrics = dataclasses.replace(metrics, param_names=metrics.param_names + spec.curation.metric_names)
    if spec.models > 1:  # an ecosystem's pooled population and its lineages, beside the lineage means
        from collapse.ecosystem import lineage_names, pooled_names

        own = metrics.param_names + metrics.sample_names
        metrics = dataclasses.replace(metrics, param_names=metrics.param_names + pooled_names(source, family)
                                      + lineage_names(own, spec.models))
    return source, family, spec, metrics


def prepare_sweep(cfg):
    """(source, family, spec, metrics, per-point engine inputs, point configs, points) of a vectorised sweep:
    every point's config is validated; they must share one program (only seed / n_real / scale differ)."""
    axes = sweep.axes(cfg)
    points = sweep.grid(axes)
    cfgs = [sweep.point_config(cfg, p) for p in points]
    for pcfg in cfgs:
        try:
            C.validate(pcfg)
        except C.ConfigError as exc:  # name the swept key the user typed
            swept = next((k for k in axes if exc.key == k), None)
            if swept is None:
                raise
            raise C.ConfigError(f"sweep.{swept}", axes[swept], f"value {exc.value!r}: {exc.allowed}") from None
    if "loop.real_fraction" in axes and components.find("curation", cfg.curation).curates:
        raise C.ConfigError("sweep.loop.real_fraction", axes["loop.real_fraction"], f"cannot be vectorised with "
                            f"curation={cfg.curation.name} (the candidate count follows the synthetic count); run one "
                            "job per value: collapse -m loop.real_fraction=v1,v2,...")
    if cfg.get("export") is not None and cfg.export.generations:
        raise C.ConfigError("export.generations", list(cfg.export.generations), "cannot be used in a vectorised sweep "
                            "(sweep.*); export from single runs (collapse -m ... runs one job per value)")
    source, family, spec, metrics = prepare(cfgs[0])
    sweep.check_source(axes, source, family)
    specs = [spec] + [loop_spec(c, source, family) for c in cfgs[1:]]
    check_pool(cfg, spec, family, source, points=len(points))
    return source, family, spec, metrics, sweep.dynamic_values(cfgs, specs, axes), cfgs, points


def loop_spec(cfg, source, family) -> LoopSpec:
    """The static loop description of a validated config (checks the engine path and the pool size)."""
    path = resolve_path(cfg, source, family)
    samples, n_real = batch_units(cfg, source)
    keep = C.export_generations(cfg) if cfg.get("export") is not None else ()
    spec = LoopSpec(
        generations=cfg.generations, samples=samples, n_real=n_real, synthetic=cfg.loop.synthetic,
        real=cfg.loop.real, scale=float(first_scale(cfg)), path=path, every=cfg.metrics.every,
        sample_every=cfg.metrics.sample_every,
        heldout=max(cfg.metrics.heldout, cfg.metrics.eval_samples), dtype=dtype_of(cfg),
        curation=build_curation(cfg, source, family, dtype_of(cfg)), keep_models=keep,
        keep_replicates=int(cfg.export.replicates) if keep else 0,
        real_weight=None if cfg.loop.get("real_weight") is None else float(cfg.loop.real_weight),
        n_real_schedule=schedule_counts(cfg, samples), scale_schedule=scale_schedule(cfg), mixing=ecosystem_mixing(cfg))
    check_pool(cfg, spec, family, source)
    return spec


def ecosystem_mixing(cfg) -> tuple | None:
    """The M x M mixing matrix of ``loop.models`` = M > 1 (rows as tuples), else None (today's loop)."""
    m = C.loop_models(cfg)
    if m == 1:
        return None
    from collapse.ecosystem import mixing_matrix

    mix = cfg.loop.get("mixing")
    mix = OmegaConf.to_container(mix) if OmegaConf.is_config(mix) else mix
    return tuple(tuple(float(v) for v in row) for row in mixing_matrix(m, mix))


def theory_for(cfg, generations: int) -> dict:
    try:
        from collapse.theory import theory_curves
    except ImportError:  # pragma: no cover
        return {}
    return theory_curves(OmegaConf.to_container(cfg, resolve=True), generations)


def summarize(cfg, df: pd.DataFrame, *, path: str, wall_s: float, compile_s: float, run_s: float) -> dict:
    last = int(df["generation"].max())
    final = df[df["generation"] == last]
    metric_cols = [c for c in df.columns if c not in ("replicate", "generation")]
    curves = theory_for(cfg, cfg.generations)
    events = []
    for c in metric_cols:
        vals = final[c].to_numpy()
        bad = int(np.sum(~np.isfinite(vals) & ~np.isnan(vals)))
        nan = int(np.sum(np.isnan(vals)))
        if bad:
            events.append({"event": "infinite_metric", "metric": c, "replicates": bad, "generation": last})
        if nan and nan < len(vals) and c not in sampled_names():
            events.append({"event": "diverged", "metric": c, "replicates": nan, "generation": last})
    if "train_loss" in df.columns:  # neural families: a NaN loss marks a diverged replicate from then on
        bad = df[df["train_loss"].isna()]
        if len(bad):
            first = bad.groupby("replicate")["generation"].min()
            events.append({"event": "diverged", "metric": "train_loss", "replicates": int(len(first)),
                           "first_generation": int(first.min()),
                           "first_generation_by_replicate": {str(k): int(v) for k, v in first.items()}})
    stats = {c: describe(final[c].to_numpy()) for c in metric_cols}
    theory = {k: float(v[last]) for k, v in curves.items() if np.isfinite(v[last])}
    for k, value in theory.items():  # a closed form outside the mean's interval is flagged, with the reason
        miss = theory_check(stats.get(k, {}), value)
        if miss is not None:
            stats[k]["theory_outside"] = miss
            events.append({"event": "theory_outside_interval", "metric": k, "generation": last, **miss})
    heavy = [c for c in metric_cols if stats[c]["heavy_tailed"]]
    if heavy:
        events.append({"event": "heavy_tailed", "metrics": heavy, "generation": last,
                       "meaning": "the 1% of replicates farthest from the median carry > 20% of the spread: "
                                  "read the median"})
    guard = precision_guard.check(df, cfg.precision, C.source_kind(cfg))
    if guard.get("replicates"):
        events.append({"event": "float32_range", **{k: v for k, v in guard.items() if k != "checked"}})
    return {
        "status": "finished",
        "name": cfg.name,
        "generation": last,
        "replicates": int(cfg.replicates),
        "engine_path": path,
        "metrics": stats,
        "theory": theory,
        "precision_guard": guard,
        "wall_time_s": wall_s,
        "compile_s": compile_s,
        "run_s": run_s,
        "versions": versions(),
        "events": events,
    }


def model_files(family, models: dict) -> dict[str, bytes]:
    """``models/gen<g>/replicate<r>/<file>`` of every kept model (``export.*``): the family's own format
    (``Family.export``), else ``params.safetensors``."""
    from collapse.families.base import params_files

    write = family.export or params_files
    return {f"models/gen{g}/replicate{r}/{name}": data for (g, r), params in sorted(models.items())
            for name, data in write(params).items()}


def run(cfg: DictConfig, run_dir: Optional[str | Path] = None, quiet: Optional[bool] = None,
        group: Optional[str] = None, overrides: Optional[list[str]] = None) -> Result:
    """Run a composed config; writes ``run_dir`` if given. ``group``: the wandb group (the sweep);
    ``overrides``: what the config was composed from, for ``summary.json``'s provenance."""
    distributed.start()  # a multi-process run asked for by the environment (collapse.distributed)
    if sweep.axes(cfg):
        return run_sweep(cfg, run_dir, quiet, group, overrides)
    t0 = time.perf_counter()
    quiet = (cfg.quiet if quiet is None else quiet) or not distributed.is_writer()
    with precision_context(cfg):
        source, family, spec, metrics = prepare(cfg)
        t_setup = time.perf_counter()
        eng = _run_engine(cfg, run_dir, quiet, source, family, spec, metrics)
    t_engine = time.perf_counter()
    writes = run_dir is not None and distributed.is_writer()  # one writer: process 0 of a multi-process run
    out_dtype = np.float64 if cfg.precision == "float64" else np.float32
    cols = {k: (v.astype(np.int64) if k in ("replicate", "generation") else v.astype(out_dtype))
            for k, v in eng.columns.items()}
    df = pd.DataFrame(cols).sort_values(["replicate", "generation"], kind="stable").reset_index(drop=True)
    summary = summarize(cfg, df, path=spec.path, wall_s=time.perf_counter() - t0, compile_s=eng.compile_s,
                        run_s=eng.run_s)
    summary["provenance"] = provenance.record(cfg, overrides)
    warn_precision(summary["precision_guard"])
    t_summary = time.perf_counter()
    summary.update(reference_entry(cfg, source, family))  # real-vs-real values of the sample metrics
    t_reference = time.perf_counter()
    samples, extra = [], {}
    if source.kind == "text":
        samples = text_samples(source, eng)
        summary["data"] = data_summary(cfg, source, spec)
        extra["samples.jsonl"] = "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in samples).encode()
    elif eng.artifacts and "_samples" in eng.artifacts:
        summary["data"] = data_summary(cfg, source, spec)
        if writes:
            extra.update(sample_pictures(source, eng))
            if source.kind in ("continuous", "discrete"):
                extra["samples.npz"] = draws_npz(eng)
    if eng.models and writes:
        extra.update(model_files(family, eng.models))
        summary["models"] = sorted(f"models/gen{g}/replicate{r}" for g, r in eng.models)
    clf = (source.info or {}).get("classifier")
    if clf is not None:
        summary["classifier_accuracy"] = float(clf.accuracy)
        if writes:
            extra["classifier.npz"] = classifier_bytes(clf)
    df.attrs["config"] = OmegaConf.to_container(cfg, resolve=True)
    summary["phases"] = phases(t0, t_setup, t_engine, t_summary, t_reference, eng)

    def writing_done(s: dict) -> None:
        s["phases"]["writing"] = time.perf_counter() - t_reference

    written = write_run(run_dir, cfg, df, summary, extra, writing_done) if writes else None
    if written is not None:  # finished: the checkpoints have done their job
        import shutil
        shutil.rmtree(Path(written) / "checkpoint", ignore_errors=True)
    if cfg.logger.name == "wandb" and distributed.is_writer():
        from collapse.wandb_log import log_run
        summary["wandb_dir"] = log_run(cfg, df, summary, written, histogram_samples(eng), group=group)
        if written is not None:
            rewrite_summary(written, summary)
    return Result(df, cfg, summary, written, samples)


def phases(t0: float, t_setup: float, t_engine: float, t_summary: float, t_reference: float, eng) -> dict:
    """Seconds per phase of a run (``summary.json`` ``phases``; the CLI prints them): ``startup`` (Python and
    package imports, from the import of collapse to this run's start; 0 for a process's later runs), ``setup``
    (validate and build), ``compile`` (trace, lower and compile the engine's programs, or load them from the compilation cache),
    ``chains`` (the compiled generations, metrics included; ``groups``: per replicate group, so the cost of
    the sample-based metrics is the group that has them), ``summary`` (intervals, theory, checks),
    ``reference`` (real-vs-real values of the sample metrics), ``writing`` (artifacts, sample figures and the
    run's files, up to summary.json itself)."""
    import collapse

    now = time.perf_counter()
    start = getattr(collapse, "IMPORTED_AT", None)
    collapse.IMPORTED_AT = None  # a process's later runs have no start-up of their own
    return {"startup": max(t0 - start, 0.0) if start is not None else 0.0, "setup": t_setup - t0, "compile": eng.compile_s, "chains": eng.run_s,
            "summary": t_summary - t_engine, "reference": t_reference - t_summary, "writing": now - t_reference,
            "groups": eng.groups or []}


def sample_replicates(cfg) -> int:
    """The replicates with sample-based metrics: ``metrics.sample_replicates``, all of them for -1."""
    return cfg.replicates if cfg.metrics.sample_replicates < 0 else cfg.metrics.sample_replicates


def _run_engine(cfg, run_dir, quiet, source, family, spec, metrics, points=None):
    """Write the config (so an interrupted run can be resumed from its folder), then run the chains with
    checkpoints every ``checkpoint.every`` generations when there is a run directory."""
    sample_reps = sample_replicates(cfg)
    ckpt = None
    if run_dir is not None and distributed.is_writer():
        from collapse.runs import write_config
        write_config(run_dir, cfg)
    if run_dir is not None and cfg.checkpoint.every > 0:  # every process reads it; process 0 writes it
        from collapse.checkpoint import Checkpointer
        ckpt = Checkpointer(Path(run_dir) / "checkpoint", cfg.checkpoint.every, C.config_digest(cfg),
                            writer=distributed.is_writer())
    return run_chains(source, family, spec, metrics, cfg.seed, cfg.replicates, sample_reps,
                      chunks=cfg.engine.chunks, quiet=quiet, checkpointer=ckpt, points=points,
                      rows_at_once=C.rows_at_once(cfg))


def run_sweep(cfg: DictConfig, run_dir=None, quiet: Optional[bool] = None, group: Optional[str] = None,
              overrides: Optional[list[str]] = None) -> Result:
    """A vectorised sweep (``sweep.<key>=[...]``): every point in one compiled program, one run directory whose
    ``metrics.parquet`` has a column per swept key (named by the dotted key) besides replicate and generation;
    ``summary.json`` holds the final-generation intervals per point under ``points``."""
    t0 = time.perf_counter()
    quiet = (cfg.quiet if quiet is None else quiet) or not distributed.is_writer()
    with precision_context(cfg):
        source, family, spec, metrics, dynamic, cfgs, points = prepare_sweep(cfg)
        per_point = {k: np.asarray(v) for k, v in dynamic.items()}  # every swept key is one of these
        eng = _run_engine(cfg, run_dir, quiet, source, family, spec, metrics, per_point)
    out_dtype = np.float64 if cfg.precision == "float64" else np.float32
    cols = dict(eng.columns)
    point = cols.pop("point").astype(np.int64)
    keys = list(points[0])
    table = {"replicate": cols.pop("replicate").astype(np.int64), "generation": cols.pop("generation").astype(np.int64)}
    for key in keys:
        table[key] = np.asarray([p[key] for p in points])[point]
    table.update({k: v.astype(out_dtype) for k, v in cols.items()})
    df = pd.DataFrame(table).sort_values(keys + ["replicate", "generation"], kind="stable").reset_index(drop=True)
    wall = time.perf_counter() - t0
    point_summaries, events = [], []
    tables = [point_rows(df, p) for p in points]
    for pcfg, p, sub in zip(cfgs, points, tables):
        ps = summarize(pcfg, sub, path=spec.path, wall_s=wall, compile_s=eng.compile_s, run_s=eng.run_s)
        events += [{**e, "point": p} for e in ps["events"]]
        point_summaries.append({"point": p, "metrics": ps["metrics"], "theory": ps["theory"],
                                "precision_guard": ps["precision_guard"]})
    warn_precision(next((ps["precision_guard"] for ps in point_summaries
                         if ps["precision_guard"].get("replicates")), {}))
    summary = {
        "status": "finished", "name": cfg.name, "generation": int(df["generation"].max()),
        "replicates": int(cfg.replicates), "engine_path": spec.path,
        "sweep": {"keys": keys, "points": len(points)}, "points": point_summaries,
        "wall_time_s": wall, "compile_s": eng.compile_s, "run_s": eng.run_s, "versions": versions(),
        "events": events,
    }
    summary["provenance"] = provenance.record(cfg, overrides)
    summary.update(reference_entry(cfgs[0], source, family))  # real-vs-real values of the sample metrics
    df.attrs["config"] = OmegaConf.to_container(cfg, resolve=True)
    written = write_run(run_dir, cfg, df, summary) if run_dir is not None and distributed.is_writer() else None
    if written is not None:
        import shutil
        shutil.rmtree(Path(written) / "checkpoint", ignore_errors=True)
    if cfg.logger.name == "wandb" and distributed.is_writer():  # one wandb run per point, grouped by the sweep
        from collapse.wandb_log import log_run
        dirs = []
        for i, (pcfg, p, ps, sub) in enumerate(zip(cfgs, points, point_summaries, tables)):
            if pcfg.logger.get("run_name") is None:
                pcfg.logger.run_name = sweep.label(p)
            psum = {**summary, "metrics": ps["metrics"], "theory": ps["theory"], "events": []}
            dirs.append(log_run(pcfg, sub, psum, written, histogram_samples(eng, i),
                                group=group or (str(written) if written is not None else cfg.name)))
            events += psum["events"]
        summary["wandb_dirs"] = dirs
        if written is not None:
            rewrite_summary(written, summary)
    return Result(df, cfg, summary, written, [])


def warn_precision(guard: dict) -> None:
    """Say once, on stderr, that float32 ran out of range (see :mod:`collapse.precision_guard`)."""
    import sys

    msg = precision_guard.message(guard)
    if msg:
        print(f"collapse: warning: {msg}", file=sys.stderr)


def point_rows(df: pd.DataFrame, point: dict) -> pd.DataFrame:
    """The rows of one sweep point, without the swept columns: the table its single run would write."""
    mask = np.ones(len(df), bool)
    for key, value in point.items():
        mask &= (df[key] == value).to_numpy()
    return df[mask].drop(columns=list(point)).reset_index(drop=True)


def draws_npz(eng) -> bytes:
    """``samples.npz``: ``generation`` (the generations with draws) and ``draws`` (generations, draws[, dim]) of
    replicate 0's model draws (float; integer categories for discrete sources), and for discrete sources
    ``probs`` (generations, categories): the model's exact probabilities."""
    import io

    ids, arr = eng.artifacts["_samples"][0]
    x = np.asarray(arr[0])
    flat = x.reshape(x.shape[0], -1)
    done = np.isfinite(flat).all(1) & (flat >= 0).all(1) if x.dtype.kind in "iu" else np.isfinite(flat).all(1)
    extra = {}
    if "_probs" in eng.artifacts:  # discrete sources: the model's exact probabilities at those generations
        extra["probs"] = np.asarray(eng.artifacts["_probs"][0][1][0])[done]
    buf = io.BytesIO()
    np.savez(buf, generation=np.asarray(eng.generations)[done], draws=x[done], replicate=np.asarray(int(ids[0])),
             **extra)
    return buf.getvalue()


def histogram_samples(eng, point: int = 0) -> dict:
    """{generation: replicate 0's kept samples, flattened} from the engine's ``_samples`` artifact (of sweep point
    ``point``: artifacts hold the first replicates of every point, point-major)."""
    if not eng.artifacts or "_samples" not in eng.artifacts:
        return {}
    ids, arr = eng.artifacts["_samples"][0]
    row = point * len(ids)
    first = (lambda x: x[..., 0]) if arr.ndim == 4 else (lambda x: x)  # several dimensions: the first coordinate
    return {int(g): np.asarray(first(arr[row, gi]), dtype=np.float64).ravel() for gi, g in enumerate(eng.generations)}


def rewrite_summary(run_dir: Path, summary: dict) -> None:
    from collapse.runs import _atomic_write, _clean
    _atomic_write(Path(run_dir) / "summary.json", json.dumps(_clean(summary), indent=2).encode())


def text_samples(source, eng) -> list[dict]:
    """Generated segments of the first replicates at each kept generation, detokenised."""
    if not eng.artifacts or "_samples" not in eng.artifacts:
        return []
    from collapse.text.corpus import detokenize

    info = source.info or {}
    out = []
    for ids, arr in eng.artifacts["_samples"]:
        for r, rep in enumerate(ids):
            for gi, g in enumerate(eng.generations):
                for i, seg in enumerate(arr[r, gi]):
                    if seg[0] < 0:  # a skipped generation
                        continue
                    out.append({"replicate": int(rep), "generation": int(g), "index": i,
                                "text": detokenize(seg, info["vocab"], info["level"], info.get("tokenizer"))})
    return out


def sample_pictures(source, eng) -> dict[str, bytes]:
    """``samples/generation_<g>.png`` for replicate 0: an image grid (image sources) or a scatter (2-D)."""
    from collapse import grids

    ids, arr = eng.artifacts["_samples"][0]
    info = source.info or {}
    out = {}
    modes = None
    if info.get("modes"):
        modes = np.asarray(source.init(jax.random.key(0))["modes"])
    for gi, g in enumerate(eng.generations):
        x = np.asarray(arr[0, gi], dtype=np.float64)
        if x.ndim != 2 or not np.isfinite(x).all():  # (1-D histogram draws of classical families: no picture)
            continue
        title = f"generation {int(g)} (replicate {int(ids[0])})"
        if source.kind == "image":
            png = grids.image_grid_png(x, tuple(info["shape"]), title)
        elif x.shape[1] == 2:
            lim = None if modes is None else 1.3 * float(np.abs(modes).max()) + 0.5
            png = grids.scatter_png(x, title, modes, lim)
        else:
            continue
        out[f"samples/generation_{int(g):04d}.png"] = png
    return out


def classifier_bytes(clf) -> bytes:
    """The feature classifier as ``.npz`` bytes (:func:`collapse.metrics.features.load_classifier` reads it)."""
    import tempfile

    from collapse.metrics.features import save_classifier
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "classifier.npz"
        save_classifier(clf, path)
        return path.read_bytes()


def data_summary(cfg, source, spec) -> dict:
    """How much real text the run used (fresh segments are read in order and never reused)."""
    info = dict(source.info or {})
    out = {}
    if "segments_fresh" in info:
        used = (cfg.generations - 1) * spec.n_real if cfg.loop.real == "fresh" else 0
        out.update({"corpus_tokens": info["corpus_tokens"], "segments_heldout": info["segments_heldout"],
                    "segments_fresh": info["segments_fresh"], "segments_fresh_used": used})
    if "entropy_rate" in info:
        out["entropy_rate"] = info["entropy_rate"]
    for k in ("images_total", "images_heldout", "images_train0", "images_fresh"):
        if k in info:
            out[k] = info[k]
    if "images_fresh" in info:
        out["images_fresh_used"] = (cfg.generations - 1) * spec.n_real if cfg.loop.real == "fresh" else 0
    if source.kind == "text":
        out.update({"vocab_size": source.dim, "segment": source.segment, "segments_per_batch": spec.samples,
                    "real_segments_per_batch": spec.n_real})
    return out


def simulate(*overrides: str, run_dir: Optional[str | Path] = None) -> Result:
    """Run one experiment from CLI-syntax overrides, e.g. ``simulate("loop.real_fraction=0.1")``.

    Returns a :class:`Result`; writes a run directory only when ``run_dir`` (the folder itself) is given.
    Progress output is off unless ``quiet=false`` is passed.
    """
    cfg = C.compose(overrides)
    if not any(o.split("=", 1)[0].lstrip("+") == "quiet" for o in overrides):
        cfg.quiet = True
    return run(cfg, run_dir, overrides=list(overrides))
