"""The run directory: composed config, ``metrics.parquet`` and ``summary.json`` (written last, atomically).

Layout (CONTRACT.md): ``config.yaml`` (the composed, resolved config), ``metrics.parquet`` (one row per
(replicate, generation), one float column per metric) and ``summary.json`` (``"status": "finished"``,
final-generation mean and 95% t-interval per metric, wall time, versions, events). A directory without
``summary.json`` is an unfinished (or failed) run; ``metrics.parquet`` is removed if the summary cannot
be written, so the two files exist only together.
"""
from __future__ import annotations

import json
import math
import os
import platform
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import OmegaConf
from scipy import stats as sps

META_COLUMNS = ("replicate", "generation")


def t_interval(values: np.ndarray, level: float = 0.95) -> dict:
    """Mean, Student-t interval mean +- t_{(1+level)/2, n-1} * sd / sqrt(n), and median of the finite values."""
    v = np.asarray(values, dtype=np.float64)
    finite = v[np.isfinite(v)]
    n = int(finite.size)
    if n == 0:
        return {"mean": None, "lo": None, "hi": None, "n_finite": 0, "median": None}
    mean = float(finite.mean())
    median = float(np.median(finite))
    if n == 1:
        return {"mean": mean, "lo": None, "hi": None, "n_finite": 1, "median": median}
    half = float(sps.t.ppf(0.5 + level / 2, n - 1) * finite.std(ddof=1) / math.sqrt(n))
    return {"mean": mean, "lo": mean - half, "hi": mean + half, "n_finite": n, "median": median}


def versions() -> dict:
    import jax

    from collapse import __version__
    return {"collapse": __version__, "jax": jax.__version__, "numpy": np.__version__, "pandas": pd.__version__,
            "python": platform.python_version()}


def _clean(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    return x


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


OUTPUTS = ("summary.json", "metrics.parquet", "samples.npz", "samples.jsonl", "classifier.npz", "samples", "report")


def clear_outputs(run_dir: Path) -> None:
    """Remove a previous run's results from a reused folder (summary first, so it never looks finished); the
    checkpoint folder stays (it is what ``resume`` continues from)."""
    import shutil
    for name in OUTPUTS:
        f = run_dir / name
        if f.is_dir():
            shutil.rmtree(f, ignore_errors=True)
        else:
            f.unlink(missing_ok=True)


def write_config(run_dir: str | os.PathLike, cfg) -> Path:
    """Write the resolved ``config.yaml`` (at the start of a run: what ``resume`` reads back), after clearing a
    previous run's results from the folder."""
    out = Path(run_dir)
    out.mkdir(parents=True, exist_ok=True)
    if (out / "config.yaml").is_file():  # only a folder a run wrote before (never a user's own files)
        clear_outputs(out)
    _atomic_write(out / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True).encode())
    return out


def write_run(run_dir: str | os.PathLike, cfg, metrics: pd.DataFrame, summary: dict,
              extra: dict[str, bytes] | None = None) -> Path:
    """Write config, ``extra`` files (name -> bytes, e.g. ``samples.jsonl``), metrics and (last) summary into
    ``run_dir``; returns the folder."""
    out = Path(run_dir)
    out.mkdir(parents=True, exist_ok=True)
    _atomic_write(out / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True).encode())
    for name, data in (extra or {}).items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(out / name, data)
    tmp = out / ".metrics.parquet.tmp"
    metrics.to_parquet(tmp, index=False)
    os.replace(tmp, out / "metrics.parquet")
    try:
        _atomic_write(out / "summary.json", json.dumps(_clean(summary), indent=2).encode())
    except BaseException:
        (out / "metrics.parquet").unlink(missing_ok=True)
        raise
    return out


class NotARunError(FileNotFoundError):
    """The folder is not a finished run directory."""


def load_run(path: str | os.PathLike) -> pd.DataFrame:
    """Read a finished run directory: the metrics table with ``attrs["config"]`` and ``attrs["summary"]``."""
    p = Path(path)
    if not p.is_dir():
        raise NotARunError(f"not a run directory: {p} does not exist or is not a folder")
    found = sorted(x.name for x in p.iterdir())
    if not (p / "summary.json").is_file() or not (p / "metrics.parquet").is_file():
        raise NotARunError(f"not a finished run: {p} has no summary.json and metrics.parquet "
                           f"(found: {', '.join(found) or 'nothing'}); unfinished runs have no summary")
    summary = json.loads((p / "summary.json").read_text())
    df = pd.read_parquet(p / "metrics.parquet")
    cfg_file = p / "config.yaml"
    df.attrs["config"] = OmegaConf.to_container(OmegaConf.load(cfg_file)) if cfg_file.is_file() else {}
    df.attrs["summary"] = summary
    return df
