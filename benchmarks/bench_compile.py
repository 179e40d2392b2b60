"""Benchmark: the compile time of every experiment preset (``conf/experiment/*.yaml``), cold and warm.

For each preset (a multirun preset: its first job), two fresh processes each compose the config, build the
run and compile the engine's programs exactly as a run does (``collapse.engine.compile_group`` for every
replicate group) without running them: the first with an empty compilation cache (cold), the second with
the cache the first left (warm: the XLA step becomes a cache load). Printed per preset: seconds to trace
(Python to jaxpr), lower (to StableHLO) and compile (XLA, or the cache load), summed over the programs, and
the number of programs. The baseline of the warm column is the cold one (ratio cold / warm). A preset whose
``model.path`` is not on disk (``shumailov_pretrained`` before ``make base-model``) is skipped, and says so.

Usage: python benchmarks/bench_compile.py [--only NAME ...] [--markdown]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import numpy as np
import jax, jax.numpy as jnp
from jax.tree_util import tree_map
from collapse import api, config as C, engine as E
overrides = json.loads(sys.argv[1])
jobs = C.multirun_jobs(overrides, False)
cfg = C.compose(jobs[0] if jobs else overrides)
out = {"import_s": time.perf_counter() - t0, "programs": 0, "trace_s": 0.0, "lower_s": 0.0, "xla_s": 0.0}
with api.precision_context(cfg):
    t1 = time.perf_counter()
    source, family, spec, metrics = api.prepare(cfg)
    out["build_s"] = time.perf_counter() - t1
    data = tree_map(jnp.asarray, dict(source.data or {}))
    groups = E.replicate_groups(cfg.replicates, api.sample_replicates(cfg) if metrics.sample_names else 0,
                                metrics.draw_fn is not None)
    _, chunk = E.chunking(spec.generations - 1, cfg.engine.chunks)
    for ids, with_samples, with_draws in groups:  # (a single run: one point, one device)
        chain = E.Chain(source, family, spec, metrics, with_samples, frozenset(), with_draws)
        _, rows = E.group_rows(ids, np.full(1, cfg.seed), {}, 1, spec)
        point = {k: rows[k] for k in E.POINT_VALUES}
        _, _, _, st = E.compile_group(chain, rows["seed"], rows["replicate"], data, point, chunk)
        out["programs"] += 2 if chunk else 1
        for k in ("trace_s", "lower_s", "xla_s"):
            out[k] += st[k]
print("RESULT " + json.dumps(out))
"""


def presets(only: list[str]) -> list[str]:
    names = sorted(p.stem for p in (ROOT / "conf" / "experiment").glob("*.yaml"))
    return [n for n in names if not only or n in only]


def missing_model(name: str) -> str | None:
    """The ``model.path`` a preset needs that is not on disk (a pretrained LM trained by ``make base-model``)."""
    from omegaconf import OmegaConf

    path = OmegaConf.load(ROOT / "conf" / "experiment" / f"{name}.yaml").get("model", {}).get("path")
    return path if path and not (ROOT / path).is_dir() else None


def measure(name: str, cache: str) -> dict:
    env = {**os.environ, "COLLAPSE_CACHE_DIR": cache}
    p = subprocess.run([sys.executable, "-c", CHILD, json.dumps([f"experiment={name}"])], env=env, cwd=ROOT,
                       capture_output=True, text=True, timeout=1800)
    line = next((x for x in p.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise SystemExit(f"{name}: {p.stderr[-3000:]}")
    return json.loads(line[len("RESULT "):])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", nargs="*", default=[])
    ap.add_argument("--markdown", action="store_true", help="also print the table as markdown")
    a = ap.parse_args()
    import platform

    print(f"machine: os.cpu_count()={os.cpu_count()} {platform.processor() or platform.machine()} "
          f"load {', '.join('%.2f' % x for x in os.getloadavg())}")
    rows = []
    head = f"{'preset':<26}{'programs':>9}{'cold trace':>11}{'lower':>7}{'XLA':>7}{'total':>7}" \
           f"{'warm trace':>11}{'lower':>7}{'load':>7}{'total':>7}{'cold/warm':>10}"
    print(head, flush=True)
    for name in presets(a.only):
        if missing_model(name):
            print(f"{name:<26} skipped: its model.path {missing_model(name)} is not there (make base-model)", flush=True)
            continue
        cache = tempfile.mkdtemp(prefix="collapse-bench-compile-")
        try:
            cold, warm = measure(name, cache), measure(name, cache)
        finally:
            shutil.rmtree(cache, ignore_errors=True)
        tc = cold["trace_s"] + cold["lower_s"] + cold["xla_s"]
        tw = warm["trace_s"] + warm["lower_s"] + warm["xla_s"]
        rows.append((name, cold, warm, tc, tw))
        print(f"{name:<26}{cold['programs']:>9}{cold['trace_s']:>11.2f}{cold['lower_s']:>7.2f}{cold['xla_s']:>7.2f}"
              f"{tc:>7.2f}{warm['trace_s']:>11.2f}{warm['lower_s']:>7.2f}{warm['xla_s']:>7.2f}{tw:>7.2f}"
              f"{tc / tw:>9.1f}x", flush=True)
    if a.markdown:
        print("\n| preset | programs | cold: trace + lower + XLA = total s | warm: trace + lower + load = total s |")
        print("|---|---|---|---|")
        for name, cold, warm, tc, tw in rows:
            print(f"| {name} | {cold['programs']} | {cold['trace_s']:.2f} + {cold['lower_s']:.2f} + "
                  f"{cold['xla_s']:.2f} = **{tc:.1f}** | {warm['trace_s']:.2f} + {warm['lower_s']:.2f} + "
                  f"{warm['xla_s']:.2f} = **{tw:.1f}** |")


if __name__ == "__main__":
    main()
