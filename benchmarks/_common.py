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
