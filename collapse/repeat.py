"""``collapse repeat <run dir>``: run a finished run again from its own ``config.yaml`` and compare the numbers.

The repeat runs in a temporary folder that is removed afterwards (``--out DIR`` keeps it there instead), so
nothing is written beside the original and a sweep folder never gains a stray job. Every metric column of
``metrics.parquet`` is compared row by row (rows matched on replicate, generation and any swept keys): the
same machine and versions give the same numbers, so the default tolerance is exact equality (NaN equals NaN).
Exit code 0: all metrics match; 1: some differ (one line each); 2: not a finished run, or a bad option.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from collapse.runs import META_COLUMNS, NotARunError

PROVENANCE_KEYS = ("commit", "dirty")  # compared with the repeat's, to explain a mismatch


@dataclass
class MetricDiff:
    """One metric column compared: the largest absolute and relative differences and how many values differ."""

    name: str
    max_abs: float
    max_rel: float
    n_diff: int
    n: int
    note: str = ""  # e.g. "only in the original"

    @property
    def ok(self) -> bool:
        return self.n_diff == 0 and not self.note

    def line(self) -> str:
        if self.note:
            return f"  {self.name}: {self.note}"
        return (f"  {self.name}: {self.n_diff} of {self.n} values differ, max abs diff {self.max_abs:.3g}, "
                f"max rel diff {self.max_rel:.3g}")


@dataclass
class RepeatResult:
    """What :func:`repeat_run` found: the original folder, where the repeat was kept (``None``: a temporary
    folder, removed), one :class:`MetricDiff` per metric, the tolerances and notes on what else differs."""

    run_dir: Path
    out: Optional[Path]
    metrics: list[MetricDiff]
    rtol: float
    atol: float
    rows: tuple[int, int]  # (original, repeat)
    wall_s: float
    notes: list[str] = field(default_factory=list)

    @property
    def mismatches(self) -> list[MetricDiff]:
        return [m for m in self.metrics if not m.ok]

    @property
    def matched(self) -> bool:
        return not self.mismatches and self.rows[0] == self.rows[1]

    def lines(self) -> list[str]:
        """The report ``collapse repeat`` prints."""
        tol = "exactly" if self.rtol == 0 and self.atol == 0 else f"within rtol={self.rtol:g}, atol={self.atol:g}"
        out = [f"collapse repeat: ran {self.run_dir} again ({self.wall_s:.1f} s)"
               + (f" into {self.out}" if self.out is not None else "")]
        if self.rows[0] != self.rows[1]:
            out.append(f"  rows: the original has {self.rows[0]}, the repeat {self.rows[1]}")
        if self.matched:
            out.append(f"all {len(self.metrics)} metrics match ({tol})")
        else:
            out.append(f"{len(self.mismatches)} of {len(self.metrics)} metrics differ ({tol} expected):")
            out += [m.line() for m in self.mismatches]
        out += [f"  note: {n}" for n in self.notes]
        return out


def check_finished(path: str | Path) -> Path:
    """The run folder, if it is a finished run with ``config.yaml``; else :class:`NotARunError` in one line."""
    p = Path(path)
    if not p.is_dir():
        raise NotARunError(f"not a run directory: {p} does not exist or is not a folder")
    missing = [n for n in ("config.yaml", "metrics.parquet", "summary.json") if not (p / n).is_file()]
    if missing:
        raise NotARunError(f"not a finished run: {p} has no {', '.join(missing)}; only a finished run can be repeated")
    try:
        status = json.loads((p / "summary.json").read_text()).get("status")
    except (json.JSONDecodeError, OSError, AttributeError):
        status = None
    if status != "finished":
        raise NotARunError(f"not a finished run: {p}/summary.json does not say status finished")
    return p


def repeat_config(run_dir: Path):
    """The run's own config, made ready to run again: no resume, wandb (if any) disabled."""
    cfg = OmegaConf.load(run_dir / "config.yaml")
    cfg.resume = None
    if OmegaConf.select(cfg, "logger.name") == "wandb":
        cfg.logger.mode = "disabled"
    return cfg


def key_columns(a: pd.DataFrame, summary: dict) -> list[str]:
    """The columns that identify a row: replicate, generation and a vectorised sweep's keys."""
    swept = list((summary.get("sweep") or {}).get("keys") or [])
    return [c for c in (*swept, *META_COLUMNS) if c in a.columns]


def compare_column(name: str, a: np.ndarray, b: np.ndarray, rtol: float, atol: float) -> MetricDiff:
    """Compare two aligned columns: NaN equals NaN, infinities must agree, finite values within atol + rtol*|a|."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    both_nan = np.isnan(a) & np.isnan(b)
    finite = np.isfinite(a) & np.isfinite(b)
    diff = np.where(finite, np.abs(a - b), 0.0)
    scale = np.maximum(np.abs(a), np.abs(b))
    rel = np.where(finite & (scale > 0), diff / np.where(scale > 0, scale, 1.0), 0.0)
    bad = ~both_nan & ~(a == b)  # exact equality, infinities included
    bad &= ~(finite & (diff <= atol + rtol * np.abs(a)))
    other = ~finite & ~both_nan & bad  # NaN vs number, or infinities that disagree
    max_abs = float(np.inf if other.any() else (diff.max() if diff.size else 0.0))
    max_rel = float(np.inf if other.any() else (rel.max() if rel.size else 0.0))
    return MetricDiff(name, max_abs, max_rel, int(bad.sum()), int(a.size))


def compare_tables(a: pd.DataFrame, b: pd.DataFrame, keys: list[str], rtol: float, atol: float) -> list[MetricDiff]:
    """One :class:`MetricDiff` per metric column of either table (rows aligned on ``keys``)."""
    names = [c for c in a.columns if c not in keys] + [c for c in b.columns if c not in keys and c not in a.columns]
    if len(a) != len(b):
        return [MetricDiff(c, np.inf, np.inf, max(len(a), len(b)), max(len(a), len(b)),
                           note=f"different rows (original {len(a)}, repeat {len(b)})") for c in names]
    a = a.sort_values(keys, kind="stable").reset_index(drop=True)
    b = b.sort_values(keys, kind="stable").reset_index(drop=True)
    if not a[keys].equals(b[keys]):
        return [MetricDiff(c, np.inf, np.inf, len(a), len(a), note="rows of different replicates or generations")
                for c in names]
    out = []
    for c in names:
        if c not in b.columns:
            out.append(MetricDiff(c, np.inf, np.inf, len(a), len(a), note="only in the original"))
        elif c not in a.columns:
            out.append(MetricDiff(c, np.inf, np.inf, len(b), len(b), note="only in the repeat"))
        else:
            out.append(compare_column(c, a[c].to_numpy(), b[c].to_numpy(), rtol, atol))
    return out


def provenance_notes(before: dict, after: dict) -> list[str]:
    """What differs between the original's and the repeat's provenance (commit, versions, device)."""
    if not before:
        return ["the original's summary.json has no provenance (an older collapse): its code and versions are unknown"]
    notes = [f"{k}: original {before.get(k)!r}, now {after.get(k)!r}" for k in PROVENANCE_KEYS
             if before.get(k) != after.get(k)]
    va, vb = before.get("versions") or {}, after.get("versions") or {}
    notes += [f"{k} {va.get(k)} -> {vb.get(k)}" for k in sorted(set(va) | set(vb)) if va.get(k) != vb.get(k)]
    da, db = before.get("device") or {}, after.get("device") or {}
    for k in ("platform", "kind", "count"):
        if da.get(k) != db.get(k):
            notes.append(f"device {k}: original {da.get(k)!r}, now {db.get(k)!r}")
    return notes


def repeat_run(path: str | Path, rtol: float = 0.0, atol: float = 0.0, out: Optional[str | Path] = None,
               quiet: bool = True) -> RepeatResult:
    """Run the finished run at ``path`` again with its own config (same seed) and compare every metric.

    The repeat goes to a temporary folder, removed afterwards, unless ``out`` names a new folder to keep it in.
    Raises :class:`~collapse.runs.NotARunError` for a folder that is not a finished run.
    """
    from collapse import provenance
    from collapse.api import run

    run_dir = check_finished(path)
    summary = json.loads((run_dir / "summary.json").read_text())
    original = pd.read_parquet(run_dir / "metrics.parquet")
    cfg = repeat_config(run_dir)
    cfg.quiet = quiet
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="collapse-repeat-") as tmp:
        target = Path(out) if out is not None else Path(tmp) / "run"
        res = run(cfg, run_dir=target, overrides=[])
        again = pd.read_parquet(Path(res.run_dir) / "metrics.parquet")
    keys = key_columns(original, summary)
    diffs = compare_tables(original, again, keys, rtol, atol)
    notes = provenance_notes(summary.get("provenance") or {}, res.summary.get("provenance") or provenance.record())
    return RepeatResult(run_dir, Path(out) if out is not None else None, diffs, rtol, atol,
                        (len(original), len(again)), time.perf_counter() - t0, notes)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="collapse repeat", description="Run a finished run again from its own "
                                "config.yaml and compare every metric of metrics.parquet (exit 0: all match, "
                                "1: some differ, 2: not a finished run).")
    p.add_argument("run_dir", help="a finished run folder (single run, multirun job or vectorised sweep)")
    p.add_argument("--rtol", type=float, default=0.0, help="relative tolerance (default 0: exact)")
    p.add_argument("--atol", type=float, default=0.0, help="absolute tolerance (default 0: exact)")
    p.add_argument("--out", default=None, help="keep the repeat in this new folder (default: a temporary "
                   "folder, removed)")
    p.add_argument("--progress", action="store_true", help="print the repeat's progress on stderr")
    return p


def main(argv: Optional[list[str]] = None) -> None:
    """``collapse repeat <run dir> [--rtol R] [--atol A] [--out DIR]``."""
    from collapse.config import ConfigError
    from collapse.runs import FinishedRunError

    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    if args.rtol < 0 or args.atol < 0:
        _fail("--rtol and --atol must be >= 0")
    try:
        res = repeat_run(args.run_dir, args.rtol, args.atol, args.out, quiet=not args.progress)
    except (NotARunError, ConfigError, FinishedRunError) as exc:
        _fail(str(exc))
    for line in res.lines():
        print(line)
    raise SystemExit(0 if res.matched else 1)


def _fail(msg: str) -> None:
    print(f"collapse repeat: error: {msg}", file=sys.stderr)
    raise SystemExit(2)
