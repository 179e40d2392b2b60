"""Benchmark: the default experiment as a user waits for it, with and without its sample-based metrics.

Measured, in this order:
  (1) ``collapse`` as a command in fresh processes (what ``make run`` runs after the install): once with an
      empty compilation cache (cold: ``COLLAPSE_CACHE_DIR`` = a new folder) and twice more with that cache
      (warm); wall time of the whole process, and the phases it printed.
  (2) In this process, ``collapse.simulate()`` with its defaults (1000 replicates x 200 generations, default
      metrics: the sample-based ones for 20 replicates every 20 generations) against the same run with
      ``metrics.sample_based=false`` (the baseline), alternating, best of ``--repeats`` warm runs each; the
      ratio of their wall times and of their chain (compiled generations) times.
  (3) 1000 replicates x 1000 generations with the default metrics (``generations=1000``), warm, best of
      ``--repeats``.
Every run writes its run directory (as the command does), in a temporary folder.

Targets (issue 15, the 2-core reference machine): (1) cold < 15 s, warm < 5 s; (2) default / baseline <= 1.5x;
(3) < 5 s.

Usage: python benchmarks/bench_default_run.py [--repeats n] [--skip-cli]
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import start


def cli_run(cache: str, out: Path) -> tuple[float, str]:
    """Wall seconds of one ``collapse`` process (cache folder ``cache``, run folder ``out``) and its time line."""
    exe = Path(sys.executable).parent / "collapse"
    env = {**os.environ, "COLLAPSE_CACHE_DIR": cache}
    t0 = time.perf_counter()
    p = subprocess.run([str(exe), f"hydra.run.dir={out}"], env=env, capture_output=True, text=True, timeout=900)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"collapse failed: {p.stderr[-2000:]}")
    line = next((x.strip() for x in p.stdout.splitlines() if x.strip().startswith("time:")), "")
    return wall, line


def simulate(collapse, out: Path, *overrides: str) -> dict:
    """Wall seconds and phases of one ``collapse.simulate`` run writing ``out``."""
    t0 = time.perf_counter()
    res = collapse.simulate(*overrides, "quiet=true", run_dir=out)
    return {"wall": time.perf_counter() - t0, **res.summary["phases"]}


def phase_text(ph: dict) -> str:
    groups = ", ".join(f"{g['replicates']}{' (sample metrics)' if g['sample_metrics'] else ''} {g['run_s']:.2f}"
                       for g in ph["groups"])
    return (f"wall {ph['wall']:.2f} s = compile {ph['compile']:.2f} + chains {ph['chains']:.2f} [{groups}] + "
            f"summary {ph['summary']:.2f} + reference {ph['reference']:.2f} + writing {ph['writing']:.2f} + setup "
            f"{ph['setup']:.2f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--skip-cli", action="store_true", help="skip (1), the fresh-process measurements")
    a = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="collapse-bench-default-"))
    try:
        if not a.skip_cli:
            cache = str(tmp / "cli-cache")
            print("(1) `collapse` in fresh processes (process wall time, install excluded):", flush=True)
            for i, what in enumerate(("cold (empty compilation cache)", "warm", "warm")):
                wall, line = cli_run(cache, tmp / f"cli{i}")
                print(f"  {what:<32} {wall:6.2f} s   {line}", flush=True)
        jax, collapse = start(None, "default experiment: default metrics vs metrics.sample_based=false",
                              "Both sides are collapse runs.", a.repeats)
        n = 0

        def run(*ov):
            nonlocal n
            n += 1
            return simulate(collapse, tmp / f"run{n}", *ov)

        first_default, first_base = run(), run("metrics.sample_based=false")  # cold compiles (fresh cache)
        print(f"cold default : {phase_text(first_default)}")
        print(f"cold baseline: {phase_text(first_base)}")
        default, base = [], []
        for _ in range(a.repeats):  # alternating, so both sides see the same machine load
            default.append(run())
            base.append(run("metrics.sample_based=false"))
        d = min(default, key=lambda x: x["wall"])
        b = min(base, key=lambda x: x["wall"])
        print("(2) warm, best of", a.repeats)
        print(f"  default metrics      : {phase_text(d)}")
        print(f"  sample_based=false   : {phase_text(b)}")
        print(f"  ratio default / sample_based=false: wall {d['wall'] / b['wall']:.2f}x, chains "
              f"{d['chains'] / b['chains']:.2f}x   (target wall <= 1.5x: {'met' if d['wall'] <= 1.5 * b['wall'] else 'NOT MET'})")
        run("generations=1000")  # its compile (the chunk length differs)
        long = min((run("generations=1000") for _ in range(a.repeats)), key=lambda x: x["wall"])
        print("(3) 1000 replicates x 1000 generations, default metrics, warm, best of", a.repeats)
        print(f"  {phase_text(long)}   (target < 5 s: {'met' if long['wall'] < 5 else 'NOT MET'})")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
