"""Shared start-up of the benchmark scripts: a cold compilation cache, optional pinning, the machine line."""
from __future__ import annotations

import argparse
import os
import platform
import tempfile

import numpy as np


def start(pin: int | None, title: str, numpy_note: str, repeats: int):
    """Point collapse's compilation cache at an empty folder (first run = cold compile), pin the process
    to one core if asked, import jax and collapse, and print the machine. Returns (jax, collapse)."""
    os.environ["COLLAPSE_CACHE_DIR"] = tempfile.mkdtemp(prefix="collapse-bench-cache-")
    if pin is not None:
        os.sched_setaffinity(0, {pin})
    import jax
    import collapse

    print("=" * 88)
    print(title)
    print(f"machine: os.cpu_count()={os.cpu_count()}  processor={platform.processor() or platform.machine()!r}  "
          f"python {platform.python_version()}  numpy {np.__version__}  jax {jax.__version__}  "
          f"jax.devices()={jax.devices()}")
    print(f"CPU affinity: {sorted(os.sched_getaffinity(0))}"
          f"{'  (pinned with --pin: collapse/XLA and NumPy on one core)' if pin is not None else ''}"
          f"  load average: {', '.join('%.2f' % x for x in os.getloadavg())}")
    env = {k: os.environ.get(k, "<unset>") for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                                     "XLA_FLAGS")}
    xla_note = "XLA is pinned to the same single core (--pin)." if pin is not None else "XLA may use all cores."
    print(f"env (left as is): {env}")
    print(f"note: {numpy_note} {xla_note} Shared machine: timings are noisy, best of {repeats}.")
    return jax, collapse


def parser(doc: str, replicates: int, generations: int, samples: int) -> argparse.ArgumentParser:
    """The arguments every benchmark takes (sizes, repeats, --quick, seed, --pin); scripts add their own."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("--replicates", type=int, default=replicates)
    p.add_argument("--generations", type=int, default=generations)
    p.add_argument("--samples", type=int, default=samples)
    p.add_argument("--repeats", type=int, default=3, help="timings are the best of this many runs")
    p.add_argument("--quick", action="store_true", help="10x smaller run: generations / 10")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pin", type=int, default=None, metavar="CPU",
                   help="pin the whole process (XLA's threads included) to this one CPU before JAX starts: a "
                        "single-core comparison")
    return p


def parse(p: argparse.ArgumentParser) -> argparse.Namespace:
    a = p.parse_args()
    if a.quick:
        a.generations = max(2, a.generations // 10)
    return a


# ----- memory and machine load (the neural benchmarks) -----------------------------------------------------
MEM: list = []  # (label, peak RSS MiB, current RSS MiB) after each phase


def peak_rss_mib() -> float:
    """High-water mark of this process's resident memory (ru_maxrss, KiB on Linux)."""
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cur_rss_mib() -> float:
    """Current resident memory (VmRSS)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def mem(label: str) -> None:
    MEM.append((label, peak_rss_mib(), cur_rss_mib()))


def print_memory(width: int = 40) -> None:
    """The RSS table of every :func:`mem` phase so far."""
    print("process RSS after each phase (peak = ru_maxrss high-water mark so far; current = VmRSS):")
    prev = 0.0
    for label, peak, cur in MEM:
        print(f"  {label:{width}s} peak {peak:8.1f} MiB (+{peak - prev:7.1f})   current {cur:8.1f} MiB")
        prev = peak


def machine_busy(seconds: float = 1.0) -> float:
    """Share of all CPUs' time not idle over ``seconds`` (from /proc/stat), this process idle meanwhile."""
    import time

    def read():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v), v[3] + v[4]  # total, idle + iowait
    try:
        t0, i0 = read()
        time.sleep(seconds)
        t1, i1 = read()
        return 1.0 - (i1 - i0) / max(1, t1 - t0)
    except OSError:
        return 0.0


def schedule_fn(lr: float, warmup: int, steps: int):
    """optax.warmup_cosine_decay_schedule(0, lr, warm, max(steps, warm + 1), lr / 10) as collapse builds it."""
    import math

    warm = min(warmup, steps - 1)
    decay = max(steps, warm + 1)
    end = lr / 10

    def f(t):
        if t < warm:
            return lr * t / warm
        frac = min(t - warm, decay - warm) / (decay - warm)
        return end + (lr - end) * 0.5 * (1 + math.cos(math.pi * frac))
    return f
