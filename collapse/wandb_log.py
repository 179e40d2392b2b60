"""Weights & Biases logging of a finished run (``logger=wandb``), and a reader for offline run files.

A run's generations execute inside one compiled program, so logging happens once the metrics are on the host:
one wandb run per job, step = generation; per metric the replicate median with its 95% order-statistic
interval and quartiles (``<metric>/median``, ``/median_lo``, ``/median_hi``, ``/q25``, ``/q75``) and the mean
with its 95% interval (``/mean``, ``/lo``, ``/hi``; bootstrap for non-negative metrics); a histogram of each
kept generation's samples where the run kept some (replicate 0); at the end the per-replicate table of the
last generation, the sample pictures, and the summary. Config: the resolved config plus the git commit; group =
the sweep (Hydra multirun folder) or the run name; job_type = the model family. Mode ``offline`` by default
(files under ``<run dir>/wandb``, upload later with ``wandb sync``), ``online`` or ``disabled``. wandb failing
to start never fails the run: it is said once on stderr and recorded as an event.
"""
from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd

from collapse.summaries import describe

LOGGED_STATS = ("median", "median_lo", "median_hi", "q25", "q75", "mean", "lo", "hi")


def git_commit() -> Optional[str]:
    """The commit of the collapse source tree, when it is a git checkout."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def generation_stats(df: pd.DataFrame) -> dict[int, dict[str, float]]:
    """{generation: {"<metric>/median": ..., "/median_lo", "/median_hi", "/q25", "/q75", "/mean", "/lo", "/hi"}}
    over replicates (finite values only), as :func:`collapse.summaries.describe` computes them for summary.json
    (the mean's interval from 400 bootstrap resamples per generation for non-negative metrics, else Student-t)."""
    out: dict[int, dict[str, float]] = {}
    metrics = [c for c in df.columns if c not in ("replicate", "generation")]
    for g, rows in df.groupby("generation", sort=True):
        row = {}
        for m in metrics:
            st = describe(rows[m].to_numpy(), n_boot=400)
            for k in LOGGED_STATS:
                if st[k] is not None:
                    row[f"{m}/{k}"] = st[k]
        out[int(g)] = row
    return out


def log_run(cfg, df: pd.DataFrame, summary: dict, run_dir: Optional[Path], samples: Optional[dict] = None,
            group: Optional[str] = None) -> Optional[str]:
    """Log a finished run to wandb; returns the wandb run directory (or None when wandb could not start).
    ``samples``: {generation: 1-D array of sample values for the histogram}."""
    from omegaconf import OmegaConf

    lg = cfg.logger
    mode = str(lg.get("mode", "offline"))
    os.environ.setdefault("WANDB_START_METHOD", "thread")
    os.environ.setdefault("WANDB_SILENT", "true")
    try:
        import wandb

        run = wandb.init(project=lg.get("project", "collapse"), entity=lg.get("entity"), mode=mode,
                         dir=str(run_dir) if run_dir is not None else None,
                         config={**OmegaConf.to_container(cfg, resolve=True), "git_commit": git_commit()},
                         group=group or cfg.name, job_type=cfg.model.name, name=lg.get("run_name"),
                         tags=list(lg.get("tags") or []), reinit="finish_previous")
    except Exception as exc:  # never fail a finished run because of logging
        print(f"collapse: wandb could not start ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
              "the run continues without it", file=sys.stderr)
        summary.setdefault("events", []).append({"event": "wandb_failed", "error": type(exc).__name__})
        return None
    try:
        import wandb

        for g, row in generation_stats(df).items():
            if samples and g in samples:
                vals = np.asarray(samples[g], dtype=np.float64).ravel()
                vals = vals[np.isfinite(vals)]
                if vals.size:
                    row["samples"] = wandb.Histogram(vals)
            run.log(row, step=g)
        last = df[df["generation"] == df["generation"].max()]
        run.log({"final_replicates": wandb.Table(dataframe=last.reset_index(drop=True))})
        if run_dir is not None:
            for png in sorted((Path(run_dir) / "samples").glob("*.png"))[-4:]:
                run.log({f"samples_picture/{png.stem}": wandb.Image(str(png))})
        for k, v in summary.get("metrics", {}).items():
            if v.get("mean") is not None:
                run.summary[f"final/{k}"] = v["mean"]
        return run.dir
    finally:
        run.finish()


# ----- reading offline runs back ------------------------------------------------------------------------------
_BLOCK = 32768
_HEADER = 7  # ":W&B" + magic (2 bytes) + version (1 byte)


def _records(path: Path):
    """Raw protobuf records of a ``.wandb`` file (LevelDB log framing: 32 KiB blocks of fragments with a
    7-byte header: crc32c (4), length (2, little-endian), type (1: full, 2: first, 3: middle, 4: last))."""
    data = path.read_bytes()
    if data[:4] != b":W&B":
        raise ValueError(f"{path} is not a wandb run file")
    pos, buf = _HEADER, b""
    while pos + 7 <= len(data):
        room = _BLOCK - (pos % _BLOCK)
        if room < 7:
            pos += room
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0 and length == 0:  # zero padding
            pos += room
            continue
        frag = data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind == 1:
            yield frag
        elif kind == 2:
            buf = frag
        elif kind == 3:
            buf += frag
        elif kind == 4:
            yield buf + frag
            buf = b""


def read_offline_history(wandb_run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The logged history rows ({"_step": g, key: value}) of an offline wandb run folder (``.../offline-run-*``)."""
    import json

    from wandb.proto import wandb_internal_pb2 as pb

    folder = Path(wandb_run_dir)
    files = sorted(folder.glob("*.wandb")) if folder.is_dir() else [folder]
    rows = []
    for f in files:
        for raw in _records(f):
            rec = pb.Record()
            rec.ParseFromString(raw)
            if rec.WhichOneof("record_type") == "history":
                row = {}
                for item in rec.history.item:
                    key = item.key or "/".join(item.nested_key)
                    row[key] = json.loads(item.value_json)
                rows.append(row)
    return rows


def read_offline_config(wandb_run_dir: str | os.PathLike) -> dict[str, Any]:
    """The config logged to an offline wandb run folder ({key: value}, last value wins)."""
    import json

    from wandb.proto import wandb_internal_pb2 as pb

    folder = Path(wandb_run_dir)
    out: dict[str, Any] = {}
    for f in (sorted(folder.glob("*.wandb")) if folder.is_dir() else [folder]):
        for raw in _records(f):
            rec = pb.Record()
            rec.ParseFromString(raw)
            kind = rec.WhichOneof("record_type")
            items = rec.config.update if kind == "config" else rec.run.config.update if kind == "run" else []
            for item in items:
                out[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
    return out
