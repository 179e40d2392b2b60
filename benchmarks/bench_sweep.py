"""Benchmark: a vectorised real_fraction sweep vs one job per point; checkpoint overhead.

Experiment: the default Gaussian loop (1-D, loop.samples=100, engine.path=auto -> exact statistics, default
metrics: parametric metrics every generation, sample-based metrics for the first 20 replicates every 20
generations), ``--replicates`` (1000) x ``--generations`` (200), at loop.real_fraction in
{0, 0.05, 0.1, 0.2, 0.5}.

Headline (sweep benchmarks time end-to-end CLI invocations, as users run them): one
``collapse sweep.loop.real_fraction=[0,0.05,0.1,0.2,0.5]`` process vs five ``collapse loop.real_fraction=X``
processes one after another (what one cluster job per point pays: start-up, imports, compile, run, writing),
first with an empty compilation cache for each side (cold), then again with the cache warm; best of
``--repeats`` warm rounds.
Detail, in this process after a warm-up run: (a) the sweep through ``collapse.api.run`` vs (b) the five single
runs through ``collapse.api.run``, which is what ``collapse -m loop.real_fraction=...`` does with Hydra's basic
launcher (each job compiles its own program: n_real is a static shape there); wall and run-only (compile
excluded) ratios, and a check that every point's final var_ratio equals its single run (rtol 1e-6).
Then checkpoint overhead: one single run with ``checkpoint.every=1`` (a durable save after every compiled chunk
of generations) vs ``checkpoint.every=0``, per generation.

Usage: python benchmarks/bench_sweep.py [--replicates R] [--generations G] [--quick] [--repeats K]
"""
from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import parse, parser, start

FRACTIONS = [0, 0.05, 0.1, 0.2, 0.5]


def cli_comparison(args, base: list[str], sweep_typed: str, work: Path) -> None:
    """End-to-end: one vectorised ``collapse`` process vs one ``collapse`` process per point."""
    import os
    import subprocess
    import sys

    cli = str(Path(sys.executable).parent / "collapse")

    def timed(argv_list, cache: Path) -> float:
        env = dict(os.environ, COLLAPSE_CACHE_DIR=str(cache))
        t0 = time.perf_counter()
        for argv in argv_list:
            subprocess.run([cli, *argv], cwd=work, env=env, check=True, capture_output=True)
        return time.perf_counter() - t0

    jobs = [[*base, f"loop.real_fraction={f}"] for f in FRACTIONS]
    vec_cache, seq_cache = Path(tempfile.mkdtemp(prefix="vec-cache-")), Path(tempfile.mkdtemp(prefix="seq-cache-"))
    cold_vec = timed([[*base, sweep_typed]], vec_cache)
    cold_seq = timed(jobs, seq_cache)
    print(f"CLI, cold compilation cache: one vectorised collapse {cold_vec:6.2f} s vs five collapse jobs "
          f"{cold_seq:6.2f} s -> {cold_seq / cold_vec:.2f}x")
    warm_vec = min(timed([[*base, sweep_typed]], vec_cache) for _ in range(args.repeats))
    warm_seq = min(timed(jobs, seq_cache) for _ in range(args.repeats))
    print(f"RESULT (CLI, warm compilation cache, best of {args.repeats}): one vectorised collapse {warm_vec:.2f} s vs "
          f"five collapse jobs {warm_seq:.2f} s -> {warm_seq / warm_vec:.2f}x; target >= 4x")


def main() -> None:
    args = parse(parser(__doc__, replicates=1000, generations=200, samples=100))
    start(args.pin, "bench_sweep: vectorised sweep vs sequential jobs (Gaussian family)",
          "Both sides are collapse; the baseline is the sequential multirun a user would otherwise run.",
          args.repeats)
    from collapse import config as C
    from collapse.api import point_rows, run

    base = [f"replicates={args.replicates}", f"generations={args.generations}", f"loop.samples={args.samples}",
            f"seed={args.seed}", "checkpoint.every=0", "quiet=true"]
    work = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    sweep_typed = "sweep.loop.real_fraction=[" + ",".join(map(str, FRACTIONS)) + "]"
    print(f"config: {' '.join(base)}; points: loop.real_fraction in {FRACTIONS}")
    cli_comparison(args, base, sweep_typed, work)

    run(C.compose(["replicates=2", "generations=2", "quiet=true", "checkpoint.every=0"]))  # warm-up: JAX start-up
    best = {"vector": (np.inf, np.inf), "sequential": (np.inf, np.inf)}
    for rep in range(args.repeats):
        t0 = time.perf_counter()
        vec = run(C.compose([*base, sweep_typed]), run_dir=work / f"vec{rep}")
        vec_wall = time.perf_counter() - t0
        vec_run = vec.summary["run_s"]
        singles, seq_wall, seq_run = [], 0.0, 0.0
        for frac in FRACTIONS:
            t0 = time.perf_counter()
            one = run(C.compose([*base, f"loop.real_fraction={frac}"]), run_dir=work / f"seq{rep}_{frac}")
            seq_wall += time.perf_counter() - t0
            seq_run += one.summary["run_s"]
            singles.append(one)
        cache = "cold cache" if rep == 0 else "warm cache"
        print(f"repeat {rep + 1} ({cache}): vectorised {vec_wall:7.2f} s (run {vec_run:6.2f} s)   "
              f"sequential {seq_wall:7.2f} s (run {seq_run:6.2f} s)   ratio {seq_wall / vec_wall:5.2f}x "
              f"(run only {seq_run / vec_run:5.2f}x)")
        best["vector"] = min(best["vector"], (vec_wall, vec_run))
        best["sequential"] = min(best["sequential"], (seq_wall, seq_run))
    last = args.generations - 1
    worst = 0.0
    for frac, one in zip(FRACTIONS, singles):
        a = one.metrics[one.metrics["generation"] == last]["var_ratio"].to_numpy()
        b = point_rows(vec.metrics, {"loop.real_fraction": frac})
        b = b[b["generation"] == last]["var_ratio"].to_numpy()
        worst = max(worst, float(np.max(np.abs(a - b) / np.abs(a))))
    print(f"check: final var_ratio of every replicate, sweep vs single runs: max relative difference {worst:.1e} "
          f"({'ok' if worst <= 1e-6 else 'FAIL'}, rtol 1e-6)")
    (vw, vr), (sw, sr) = best["vector"], best["sequential"]
    print(f"in-process (basic-launcher multirun) vs sweep, best of {args.repeats}: {sw / vw:.2f}x wall "
          f"({vw:.2f} s vs {sw:.2f} s, compile included), {sr / vr:.2f}x run only")

    times = {}
    for every in (0, 1):
        cfg = C.compose([*base, "loop.real_fraction=0.1", f"checkpoint.every={every}"])
        runs = []
        for rep in range(args.repeats):
            res = run(cfg, run_dir=work / f"ckpt{every}_{rep}")
            runs.append(res.summary["run_s"])
        times[every] = min(runs)
    per_gen = (times[1] - times[0]) / max(1, args.generations - 1) * 1e3
    size = sum(f.stat().st_size for f in (work / "ckpt1_0").rglob("*") if f.is_file())
    print(f"checkpoints: run {times[0]:.3f} s without, {times[1]:.3f} s with a save after every chunk "
          f"(engine.chunks=20: a save every {-(-(args.generations - 1) // 20)} generations) -> "
          f"{per_gen:+.2f} ms per generation ({100 * (times[1] / times[0] - 1):+.1f}%); run folder {size / 1e6:.1f} MB")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
