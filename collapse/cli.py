"""The ``collapse`` command: validate, then hand over to a Hydra app over ``conf/``.

A single run, or every job of a multirun (``-m``, or a preset that is one), is composed and validated before
Hydra starts, so a bad key or value exits with one line and code 2 before any run directory exists.
"""
from __future__ import annotations

import sys

import hydra
import numpy as np
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from collapse import config as C, provenance
from collapse.runs import FinishedRunError, refuse_finished, register_resolvers

register_resolvers()  # ${collapse.override_dir:...} in hydra.run.dir (also in launcher subprocesses)

INFO_FLAGS = ("--help", "-h", "--hydra-help", "--cfg", "-c", "--info", "-i", "--version", "--shell-completion", "-sc")


def _fail(msg: str) -> "None":
    print(f"collapse: error: {msg}", file=sys.stderr)
    raise SystemExit(2)


CURATION_LINES = ("accept_rate", "reward_mean")  # added below the headline when the run reports them
ECOSYSTEM_LINES = ("pool_var_ratio", "spread", "pool_support", "spread_tv")  # loop.models > 1: the pooled population
HEADLINE_LINES = 4


def _g(x) -> str:
    return f"{x:.4g}"


def metric_line(name: str, m: dict, g0: float, last: int, theory: float | None) -> list[str]:
    """One metric of the final generation: the median [95% interval] first (the typical chain), then the mean
    [95% interval] and the closed form; a second line when the chains are heavy-tailed or the closed form lies
    outside the mean's interval."""
    start = f"generation 0 {_g(g0)} -> " if np.isfinite(g0) else ""  # accept_rate: none at generation 0
    med = f"median {_g(m['median'])}" + (f" [{_g(m['median_lo'])}, {_g(m['median_hi'])}]"
                                           if m.get("median_lo") is not None else "")
    mean = f"mean {_g(m['mean'])}" + (f" [{_g(m['lo'])}, {_g(m['hi'])}]" if m.get("lo") is not None else "")
    th = f" (theory {_g(theory)})" if theory is not None else ""
    lines = [f"  {name:>12}: {start}generation {last} {med}, {mean}{th}"]
    notes = []
    if m.get("heavy_tailed"):
        notes.append(f"heavy-tailed: the 1% of chains farthest from the median carry {m['top1_share']:.0%} of the "
                     "spread, so the mean describes rare chains")
    miss = m.get("theory_outside")
    if miss:
        notes.append(f"the closed form lies {miss['side']} the mean's interval"
                     + (" because the expectation is carried by chains too rare to sample" if m.get("heavy_tailed")
                        else "; check the config against its assumptions"))
    if notes:
        lines.append(" " * 16 + "; ".join(notes))
    return lines


def headline(res) -> list[str]:
    """A few lines that say what the run showed: generation 0 vs the last generation, with theory."""
    from collapse.metrics.table import headline as order

    s = res.summary
    df = res.metrics
    first = df[df["generation"] == 0]
    kind = C.source_kind(res.config)
    have = [k for k in s["metrics"] if s["metrics"][k]["mean"] is not None]
    extra = CURATION_LINES + ECOSYSTEM_LINES
    keys = [k for k in order(kind, have) if k not in extra][:HEADLINE_LINES]
    keys += [k for k in extra if k in have]
    lines = []
    for k in keys:
        g0 = float(np.nanmedian(first[k].to_numpy(np.float64))) if np.isfinite(first[k]).any() else np.nan
        lines += metric_line(k, s["metrics"][k], g0, s["generation"], s.get("theory", {}).get(k))
    guard = s.get("precision_guard") or {}
    if guard.get("replicates"):
        from collapse.precision_guard import message
        lines.append(f"  warning: {message(guard)}")
    return lines


@hydra.main(config_path=str(C.CONF_DIR), config_name="config", version_base="1.3")
def _app(cfg: DictConfig) -> None:
    import logging

    from collapse.api import run

    logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)
    out = HydraConfig.get().runtime.output_dir
    cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    cfg.pop("hydra", None)
    if cfg.get("resume"):  # continue a run: its own config, written into its own folder
        saved = OmegaConf.load(f"{cfg.resume}/config.yaml")
        saved.resume, saved.quiet = cfg.resume, cfg.quiet
        cfg = saved
    hc = HydraConfig.get()
    group = None
    if str(hc.mode) == "RunMode.MULTIRUN":
        from pathlib import Path
        group = "/".join(Path(hc.sweep.dir).parts[-3:])  # <name>/multirun/<timestamp>
    from pathlib import Path
    done = Path(out) / "summary.json"
    if done.is_file() and (Path(out) / "config.yaml").is_file() and \
            C.config_digest(OmegaConf.load(Path(out) / "config.yaml")) == C.config_digest(cfg):
        print(f"collapse: {out} already holds this run, finished; skipping it (delete the folder to run it again)")
        return  # a re-run multirun (same hydra.sweep.dir) skips its finished jobs; interrupted ones resume below
    from collapse.checkpoint import CheckpointError
    try:
        res = run(cfg, run_dir=out, group=group)
    except (C.ConfigError, CheckpointError, FinishedRunError) as exc:
        _fail(str(exc))
    from collapse import distributed
    if not distributed.is_writer():
        print(f"collapse: process {distributed.process_index()} of {distributed.process_count()} finished its rows; "
              f"process 0 writes the run folder {out}")
        return
    s = res.summary
    if "points" in s:
        print_sweep(res, out)
        return
    print(f"collapse: finished '{cfg.name}': {cfg.replicates} replicates x {cfg.generations} generations "
          f"of model={cfg.model.name} on source={cfg.source.name} ({cfg.loop.synthetic}, real_fraction="
          f"{cfg.loop.real_fraction}) in {s['wall_time_s']:.1f} s (compile {s['compile_s']:.1f} s); "
          f"over replicates, the median [95% interval] (the typical chain), then the mean [95% interval]:")
    for line in headline(res):
        print(line)
    if s.get("phases"):
        print(phase_line(s["phases"]))
    if res.samples:
        last = [x for x in res.samples if x["generation"] == s["generation"]][:1]
        for x in last:
            print(f"  sample of generation {x['generation']}: {x['text'][:100]!r}  (more in samples.jsonl)")
    from pathlib import Path
    if (Path(out) / "samples").is_dir():
        print(f"  sample pictures per generation: {Path(out) / 'samples'}")
    print(f"  run directory: {out}")


def phase_line(ph: dict) -> str:
    """``  time: startup 1.1 s, setup 0.0 s, compile 1.7 s, chains 1.5 s (replicates 0-19 with sample metrics
    1.1 s, 20-999 0.4 s), ...``: where the run's wall time went (summary.json ``phases``)."""
    groups = ph.get("groups") or []
    detail = ""
    if len(groups) > 1:
        parts = [f"replicates {g['replicates']}{' with sample metrics' if g['sample_metrics'] else ''} "
                 f"{g['run_s']:.1f} s" for g in groups]
        detail = " (" + ", ".join(parts) + ")"
    names = ("startup", "setup", "compile", "chains", "summary", "reference", "writing")
    items = [f"{n} {ph[n]:.1f} s" + (detail if n == "chains" else "") for n in names if n in ph]
    return "  time: " + ", ".join(items)


def print_sweep(res, out: str) -> None:
    """What a vectorised sweep showed: per point, generation 0 vs the last generation of a few metrics."""
    cfg, s = res.config, res.summary
    keys = s["sweep"]["keys"]
    print(f"collapse: finished vectorised sweep '{cfg.name}' over {', '.join(keys)}: {s['sweep']['points']} points x "
          f"{cfg.replicates} replicates x {cfg.generations} generations of model={cfg.model.name} on "
          f"source={cfg.source.name} in one program, {s['wall_time_s']:.1f} s (compile {s['compile_s']:.1f} s); "
          f"final generation {s['generation']}, median [95% interval] over replicates (mean):")
    from collapse.metrics.table import headline as order
    names = order(C.source_kind(cfg), list(s["points"][0]["metrics"]))[:3]
    df = res.metrics
    for p in s["points"]:
        first = df[(df["generation"] == 0) & np.logical_and.reduce([df[k] == v for k, v in p["point"].items()])]
        parts = []
        for k in names:
            m = p["metrics"][k]
            if m["mean"] is None:
                continue
            ci = f" [{m['median_lo']:.3g}, {m['median_hi']:.3g}]" if m.get("median_lo") is not None else ""
            parts.append(f"{k} {first[k].median():.3g} -> {m['median']:.3g}{ci} (mean {m['mean']:.3g})")
        label = ", ".join(f"{k}={v}" for k, v in p["point"].items())
        print(f"  {label}: " + "; ".join(parts))
    print(f"  run directory: {out} (metrics.parquet has a column per swept key; "
          f"collapse.analysis.load_sweep reads it)")


def _resume_argv(resume: str, overrides: list[str], argv: list[str]) -> list[str]:
    """Check that ``resume`` is an unfinished run whose config agrees with the other overrides; return the
    argument list that continues it in its own folder."""
    from pathlib import Path

    run = Path(resume)
    if not (run / "config.yaml").is_file():
        _fail(f"resume={resume!r}: not a run directory (no config.yaml); give the folder of a run started by collapse")
    if (run / "summary.json").is_file():
        print(f"collapse: resume={resume}: the run is already finished; nothing to do")
        raise SystemExit(0)
    saved = OmegaConf.to_container(OmegaConf.load(run / "config.yaml"), resolve=True)
    others = [o for o in C.run_overrides(overrides) if o.split("=", 1)[0] not in ("resume", "quiet")]
    if others:
        try:
            given = OmegaConf.to_container(C.with_derived(C.compose(others)), resolve=False)
        except C.ConfigError as exc:
            _fail(str(exc))
        typed = [o.lstrip("+~").split("=", 1)[0] for o in others]
        keys = [k for k in C.flat_items(given)
                if any(k == t or k.startswith(t + ".") or t == "experiment" for t in typed)]
        diff = [k for k in C.config_differences(saved, given) if k in keys]
        if diff:
            a, b = C.flat_items(saved), C.flat_items(given)
            what = ", ".join(f"{k} (run: {a.get(k)!r}, given: {b.get(k)!r})" for k in diff[:5])
            _fail(f"resume={resume!r}: the config differs from the run's in {what}; resume with the run's config")
    return [*argv, f"hydra.run.dir={run}"]


def _refuse_finished_run_dir(overrides: list[str]) -> None:
    """Exit 2 before Hydra writes anything when ``hydra.run.dir`` names a folder holding a finished run."""
    run_dir = next((o.split("=", 1)[1] for o in overrides if o.split("=", 1)[0] == "hydra.run.dir"), None)
    try:
        if run_dir:
            refuse_finished(run_dir.strip("'\""))
    except FinishedRunError as exc:
        _fail(f"hydra.run.dir={exc}")


def _prepare(cfg) -> None:
    """Validate and build what the run needs (source, family, loop spec, metric functions); nothing compiles."""
    from collapse.api import precision_context, prepare

    C.validate(cfg)
    with precision_context(cfg):
        prepare(cfg)  # also checks the engine path and the pool size


def check_before_start(overrides: list[str], multirun: bool) -> None:
    """Compose and check the run, or every job of a multirun, before Hydra starts (or writes) anything. Of the
    jobs on a finite image source only the first is built (its feature classifier trains for seconds); the
    others are validated without building."""
    single: dict = {}
    jobs = C.multirun_jobs(overrides, multirun, single)
    if jobs is None:
        _prepare(single.get("config") or C.compose(C.run_overrides(overrides)))
        return
    built_image = False
    for i, job in enumerate(jobs):
        try:
            cfg = C.compose(job)
            image = C.source_kind(cfg) == "image"
            C.validate(cfg) if image and built_image else _prepare(cfg)
            built_image |= image
        except C.ConfigError as exc:
            swept = " ".join(o for o in job if o not in overrides) or "no swept keys"
            raise C.ConfigError(exc.key, exc.value, f"{exc.allowed} (multirun job {i} of {len(jobs)}: {swept}); "
                                "no job was started") from None


def _start_distributed(argv: list[str]) -> list[str]:
    """Join a multi-process run when the environment asks for one (:mod:`collapse.distributed`), before any JAX
    computation. Processes other than 0 write nothing: Hydra's ``.hydra/`` folder and job log are switched off
    for them (process 0 writes the run folder)."""
    from collapse import distributed

    try:
        if not distributed.start():
            return argv
    except distributed.DistributedSettingError as exc:
        _fail(str(exc))
    if distributed.is_writer():
        return argv
    return [*argv, "hydra.output_subdir=null", "hydra/job_logging=disabled", "hydra/hydra_logging=disabled"]


def main(argv: list[str] | None = None) -> None:
    import warnings
    warnings.filterwarnings("ignore", message=".*is validated against ConfigStore schema.*")  # submitit plugin
    from collapse.sweep import rewrite_overrides

    typed = [sys.argv[0] if sys.argv else "collapse", *(sys.argv[1:] if argv is None else argv)]
    argv = rewrite_overrides(list(sys.argv[1:] if argv is None else argv))
    if argv and argv[0] == "report":
        from collapse.report import main as report_main
        report_main(argv[1:])
        return
    if argv and argv[0] == "repeat":
        from collapse.repeat import main as repeat_main
        repeat_main(argv[1:])
        return
    multirun = "-m" in argv or "--multirun" in argv
    info = any(a in INFO_FLAGS or a.startswith("--cfg") for a in argv)
    overrides = [a for a in argv if not a.startswith("-")]
    resume = next((o.split("=", 1)[1] for o in overrides if o.split("=", 1)[0] == "resume"), None)
    if resume not in (None, "", "null") and not multirun and not info:
        argv = _resume_argv(resume, overrides, argv)
        overrides = [a for a in argv if not a.startswith("-")]
    if not info:
        argv = _start_distributed(argv)
    try:
        C.check_group_overrides(overrides)
        if not info and resume in (None, "", "null"):
            check_before_start(overrides, multirun)
    except C.ConfigError as exc:
        _fail(str(exc))
    if not multirun and not info:
        _refuse_finished_run_dir(overrides)
    sys.argv = [sys.argv[0] if sys.argv else "collapse", *argv]
    with provenance.cli_command(typed):  # summary.json records the command as typed
        _app()


if __name__ == "__main__":
    main()
