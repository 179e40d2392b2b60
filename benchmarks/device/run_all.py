"""Device check: the runs users wait for, on one accelerator, in one call of at most 8 minutes.

Parts, in this order (each is skipped, and says so, once ``--budget-s`` is spent; results are written after
every part, so a call cut short still returns what it measured):

1. ``gaussian``: the Gaussian chain (``source=gaussian model=gaussian``, 1-D, ``loop.samples=100``, exact
   sufficient statistics, parametric metrics only, ``metrics.every=50``) at ``--gaussian-replicates``
   (1e5 and 1e6) x ``--generations`` (1000). Reported: compile seconds, chain seconds (``run_s``: the compiled
   generations and the metrics' device-to-host copies), replicate-generations per second. Goal on one
   H100-class GPU: 1e6 x 1000 in under 10 s.
2. ``sweep``: a ``--sweep-points`` (16) point vectorised sweep over ``loop.real_fraction`` (one compiled
   program) against the same points as separate runs one after another (what 16 jobs of a multirun pay in
   this process: a compile and a run each), ``--sweep-replicates`` x ``--sweep-generations``; wall ratio, and
   a check that every point's final ``var_ratio`` equals its single run.
3. ``neural``: seconds per generation (``run_s / generations``, compile apart) of the default VAE
   (``source=digits model=vae``) and Transformer (``source=text model=transformer``) configs at
   ``--neural-replicates`` (1, 8, 64) replicates under ``vmap``, ``--neural-generations`` (2) generations.
4. ``lm_finetune``: ``lm_finetune.py`` (pretrained GPT-2 small fine-tuning throughput and MFU) at
   ``--lm-replicates`` (1, 4), in a subprocess; its own JSON and table are kept beside these.

Writes ``--out`` (default ``$OUT`` or ``.``): ``device_check.json`` and ``device_check.md`` (Markdown tables).
``--tiny``: sizes for a CPU check of the script itself (seconds per part). README.md beside this file says
how to prepare the device machine (wheels) and the exact command.

Usage: python benchmarks/device/run_all.py [--tiny] [--budget-s 450] [--out DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def args_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    ap.add_argument("--budget-s", type=float, default=450.0, help="start no part after this many seconds")
    ap.add_argument("--parts", nargs="*", default=["gaussian", "sweep", "neural", "lm_finetune"])
    ap.add_argument("--gaussian-replicates", type=int, nargs="*", default=[100_000, 1_000_000])
    ap.add_argument("--generations", type=int, default=1000)
    ap.add_argument("--sweep-points", type=int, default=16)
    ap.add_argument("--sweep-replicates", type=int, default=1000)
    ap.add_argument("--sweep-generations", type=int, default=200)
    ap.add_argument("--neural-replicates", type=int, nargs="*", default=[1, 8, 64])
    ap.add_argument("--neural-generations", type=int, default=2)
    ap.add_argument("--lm-replicates", type=int, nargs="*", default=[1, 4])
    ap.add_argument("--tiny", action="store_true", help="small sizes: a CPU check of the script")
    return ap


TINY = {"gaussian_replicates": [1000, 10_000], "generations": 50, "sweep_points": 4, "sweep_replicates": 50,
        "sweep_generations": 20, "neural_replicates": [1, 2], "neural_generations": 1, "lm_replicates": [1, 2]}


def shrink(a: argparse.Namespace, defaults: argparse.Namespace) -> None:
    """The ``--tiny`` sizes, for every size left at its default."""
    for key, value in TINY.items():
        if getattr(a, key) == getattr(defaults, key):
            setattr(a, key, value)


def run_config(overrides: list[str]):
    from collapse import config as C
    from collapse.api import run

    return run(C.compose([*overrides, "checkpoint.every=0", "quiet=true"]))


def gaussian(a) -> list[dict]:
    rows = []
    for r in a.gaussian_replicates:
        t0 = time.perf_counter()
        res = run_config(["source=gaussian", "model=gaussian", f"replicates={r}", f"generations={a.generations}",
                          "engine.path=stats", "metrics.sample_based=false", "metrics.draws=0", "metrics.every=50"])
        wall = time.perf_counter() - t0
        s = res.summary
        rows.append({"replicates": r, "generations": a.generations, "compile_s": s["compile_s"], "run_s": s["run_s"],
                     "wall_s": wall, "replicate_generations_per_s": r * a.generations / s["run_s"],
                     "final_var_ratio_mean": s["metrics"]["var_ratio"]["mean"]})
        print(f"  gaussian {r:,} x {a.generations}: chains {s['run_s']:.2f} s, compile {s['compile_s']:.1f} s, "
              f"wall {wall:.1f} s", flush=True)
    return rows


def sweep(a) -> dict:
    import numpy as np

    from collapse.api import point_rows

    fractions = [round(i / (2 * a.sweep_points), 4) for i in range(a.sweep_points)]  # 0 .. < 0.5
    base = [f"replicates={a.sweep_replicates}", f"generations={a.sweep_generations}"]
    t0 = time.perf_counter()
    vec = run_config([*base, "sweep.loop.real_fraction=[" + ",".join(map(str, fractions)) + "]"])
    vec_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    singles = [run_config([*base, f"loop.real_fraction={f}"]) for f in fractions]
    seq_s = time.perf_counter() - t0
    last = a.sweep_generations - 1
    worst = 0.0
    for f, one in zip(fractions, singles):
        x = one.metrics[one.metrics["generation"] == last]["var_ratio"].to_numpy()
        y = point_rows(vec.metrics, {"loop.real_fraction": f})
        y = y[y["generation"] == last]["var_ratio"].to_numpy()
        worst = max(worst, float(np.max(np.abs(x - y) / np.abs(x))))
    out = {"points": a.sweep_points, "replicates": a.sweep_replicates, "generations": a.sweep_generations,
           "vectorised_s": vec_s, "vectorised_compile_s": vec.summary["compile_s"], "separate_s": seq_s,
           "separate_compile_s": sum(o.summary["compile_s"] for o in singles), "ratio": seq_s / vec_s,
           "max_rel_diff_final_var_ratio": worst}
    print(f"  sweep of {a.sweep_points} points: one program {vec_s:.1f} s vs {a.sweep_points} runs {seq_s:.1f} s -> "
          f"{seq_s / vec_s:.1f}x (final var_ratio max relative difference {worst:.1e})", flush=True)
    return out


NEURAL = {"vae": ["source=digits", "model=vae"], "transformer": ["source=text", "model=transformer"]}


def neural(a) -> list[dict]:
    rows = []
    for name, cfg in NEURAL.items():
        for r in a.neural_replicates:
            extra = ["model.steps=20"] if a.tiny else []
            try:
                res = run_config([*cfg, *extra, f"replicates={r}", f"generations={a.neural_generations}"])
            except Exception as exc:  # an out-of-memory at this R is a result, not a failure of the script
                rows.append({"model": name, "replicates": r, "error": f"{type(exc).__name__}: {str(exc)[:200]}"})
                print(f"  {name} R={r}: failed ({rows[-1]['error']})", flush=True)
                continue
            s = res.summary
            per_gen = s["run_s"] / a.neural_generations
            rows.append({"model": name, "replicates": r, "generations": a.neural_generations,
                         "compile_s": s["compile_s"], "s_per_generation": per_gen,
                         "replicate_generations_per_s": r / per_gen})
            print(f"  {name} R={r}: {per_gen:.2f} s per generation (compile {s['compile_s']:.1f} s)", flush=True)
    return rows


def lm_finetune(a) -> dict:
    out = Path(a.out)
    cmd = [sys.executable, str(HERE / "lm_finetune.py"), "--out", str(out), "--replicates", *map(str, a.lm_replicates)]
    if a.tiny:
        cmd.append("--tiny")
    p = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    print("\n".join("  " + line for line in p.stdout.splitlines()), flush=True)
    if p.returncode != 0:
        return {"error": p.stderr.strip().splitlines()[-1] if p.stderr.strip() else f"exit {p.returncode}"}
    return json.loads((out / "lm_finetune.json").read_text())


PARTS = {"gaussian": gaussian, "sweep": sweep, "neural": neural, "lm_finetune": lm_finetune}


def markdown(result: dict) -> str:
    d = result
    lines = [f"Device check on {d['device']} ({d['platform']}), jax {d['jax']}, collapse {d['collapse']}"
             + (" (--tiny sizes: a CPU check, not a measurement)" if d["tiny"] else ""), ""]
    if "gaussian" in d["parts"]:
        lines += ["| Gaussian chain | compile s | chains s | replicate-generations/s |", "|---|---|---|---|"]
        lines += [f"| {r['replicates']:,} x {r['generations']} | {r['compile_s']:.1f} | {r['run_s']:.2f} | "
                  f"{r['replicate_generations_per_s']:.3g} |" for r in d["parts"]["gaussian"]]
        lines.append("")
    if "sweep" in d["parts"]:
        s = d["parts"]["sweep"]
        lines += [f"| {s['points']}-point sweep ({s['replicates']} x {s['generations']}) | seconds | compile s |",
                  "|---|---|---|", f"| one vectorised program | {s['vectorised_s']:.1f} | {s['vectorised_compile_s']:.1f} |",
                  f"| {s['points']} separate runs | {s['separate_s']:.1f} | {s['separate_compile_s']:.1f} |",
                  f"| ratio | {s['ratio']:.1f}x | |", ""]
    if "neural" in d["parts"]:
        lines += ["| model | replicates | s per generation | compile s |", "|---|---|---|---|"]
        for r in d["parts"]["neural"]:
            lines.append(f"| {r['model']} | {r['replicates']} | {r['error']} | |" if "error" in r else
                         f"| {r['model']} | {r['replicates']} | {r['s_per_generation']:.3f} | {r['compile_s']:.1f} |")
        lines.append("")
    if "lm_finetune" in d["parts"]:
        lm = d["parts"]["lm_finetune"]
        lines += ["lm_finetune: " + (lm["error"] if "error" in lm else "see lm_finetune.md"), ""]
    if d["skipped"]:
        lines.append(f"Skipped (over the {d['budget_s']:.0f} s budget): {', '.join(d['skipped'])}")
    lines.append(f"Total {d['total_s']:.0f} s.")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = args_parser()
    a = parser.parse_args()
    if a.tiny:
        shrink(a, parser.parse_args([]))
    unknown = [p for p in a.parts if p not in PARTS]
    if unknown:
        raise SystemExit(f"--parts: unknown {unknown}; choose from {list(PARTS)}")
    t_start = time.perf_counter()
    import jax

    import collapse

    dev = jax.devices()[0]
    print(f"device: {dev.device_kind} ({dev.platform}) x {len(jax.devices())}, jax {jax.__version__}, "
          f"{platform.machine()}, python {platform.python_version()}", flush=True)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {"device": dev.device_kind, "platform": dev.platform, "devices": len(jax.devices()),
              "jax": jax.__version__, "collapse": getattr(collapse, "__version__", "?"), "tiny": a.tiny,
              "budget_s": a.budget_s, "parts": {}, "seconds": {}, "skipped": [], "total_s": 0.0}
    for name in a.parts:
        if time.perf_counter() - t_start > a.budget_s:
            result["skipped"].append(name)
            print(f"{name}: skipped (the {a.budget_s:.0f} s budget is spent)", flush=True)
            continue
        print(f"{name}:", flush=True)
        t0 = time.perf_counter()
        result["parts"][name] = PARTS[name](a)
        result["seconds"][name] = time.perf_counter() - t0
        result["total_s"] = time.perf_counter() - t_start
        (out / "device_check.json").write_text(json.dumps(result, indent=2) + "\n")
        (out / "device_check.md").write_text(markdown(result))
    result["total_s"] = time.perf_counter() - t_start
    (out / "device_check.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "device_check.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
