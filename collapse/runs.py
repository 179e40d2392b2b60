"""The run directory: composed config, ``metrics.parquet`` and ``summary.json`` (written last, atomically).

Layout (README "The run directory"): ``config.yaml`` (the composed, resolved config), ``metrics.parquet`` (one row per
(replicate, generation), one float column per metric) and ``summary.json`` (``"status": "finished"``,
final-generation mean and 95% t-interval per metric, wall time, versions, events). A directory without
``summary.json`` is an unfinished (or failed) run; ``metrics.parquet`` is removed if the summary cannot
be written, so the two files exist only together.

A finished run is never overwritten: :func:`write_config` refuses a folder that holds ``summary.json``
(:class:`FinishedRunError`); an unfinished folder is reused (its partial results are cleared, its checkpoint
kept for resume). :func:`override_dir` names the CLI's folder after the overrides that were typed.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import OmegaConf
from scipy import special as sc

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
    half = float(sc.stdtrit(n - 1, 0.5 + level / 2) * finite.std(ddof=1) / math.sqrt(n))
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


OUTPUTS = ("summary.json", "metrics.parquet", "samples.npz", "samples.jsonl", "classifier.npz", "samples", "report",
           "models")


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


class FinishedRunError(FileExistsError):
    """The folder already holds a finished run (``summary.json``), which collapse never overwrites."""


def is_finished(run_dir: str | os.PathLike) -> bool:
    """Whether ``run_dir`` holds a finished run (``summary.json`` is written last, only when a run finishes)."""
    return (Path(run_dir) / "summary.json").is_file()


def refuse_finished(run_dir: str | os.PathLike) -> None:
    """Raise :class:`FinishedRunError` naming the folder and what to do if it holds a finished run."""
    if is_finished(run_dir):
        raise FinishedRunError(f"{run_dir} already holds a finished run (summary.json); a finished run is never "
                               f"overwritten: write to another folder, repeat it with `collapse repeat {run_dir}`, "
                               "or delete the folder to run it again")


def write_config(run_dir: str | os.PathLike, cfg) -> Path:
    """Write the resolved ``config.yaml`` (at the start of a run: what ``resume`` reads back), after clearing an
    unfinished run's partial results from the folder; a finished run's folder is refused, untouched."""
    refuse_finished(run_dir)
    out = Path(run_dir)
    out.mkdir(parents=True, exist_ok=True)
    if (out / "config.yaml").is_file():  # only a folder a run wrote before (never a user's own files)
        clear_outputs(out)
    _atomic_write(out / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True).encode())
    return out


def write_run(run_dir: str | os.PathLike, cfg, metrics: pd.DataFrame, summary: dict,
              extra: dict[str, bytes] | None = None, before_summary=None) -> Path:
    """Write config, ``extra`` files (name -> bytes, e.g. ``samples.jsonl``), metrics and (last) summary into
    ``run_dir``; returns the folder. A folder that already holds a finished run is refused. ``before_summary``:
    called with ``summary`` just before it is written (the run's ``writing`` phase time)."""
    refuse_finished(run_dir)
    out = Path(run_dir)
    out.mkdir(parents=True, exist_ok=True)
    _atomic_write(out / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True).encode())
    for name, data in (extra or {}).items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(out / name, data)
    tmp = out / ".metrics.parquet.tmp"
    metrics.to_parquet(tmp, index=False)
    os.replace(tmp, out / "metrics.parquet")
    if before_summary is not None:
        before_summary(summary)
    try:
        _atomic_write(out / "summary.json", json.dumps(_clean(summary), indent=2).encode())
    except BaseException:
        (out / "metrics.parquet").unlink(missing_ok=True)
        raise
    return out


OVERRIDE_DIR_MAX = 100  # characters of a folder name made from overrides; longer ones end in a hash
_DROP = re.compile(r"[\[\](){}'\"]")
_UNSAFE = re.compile(r"[^A-Za-z0-9._+%@-]")  # left: characters a Hydra override value takes unquoted


def override_dir(overrides: str) -> str:
    """The folder level that says what a run changed, from Hydra's ``override_dirname`` (sorted overrides as
    ``key-value`` joined by ``+``, result-neutral keys excluded; ``hydra.job.config.override_dirname``), plus
    ``/``; ``""`` when nothing was overridden (``runs/<name>/<timestamp>``). The name stays a valid unquoted
    Hydra value (``resume=<folder>`` works): the ``+`` of added keys is dropped, brackets, braces and quotes
    too, a comma becomes ``_``, so does any character other than letters, digits and ``._+%@-``; a name over
    :data:`OVERRIDE_DIR_MAX` characters keeps its first whole items and ends in ``-`` and a 10-digit hash."""
    text = re.sub(r"(^|\+)\+", r"\1", str(overrides or ""))
    if not text:
        return ""
    name = _UNSAFE.sub("_", _DROP.sub("", text).replace(",", "_"))
    if name.startswith((".", "-", "+")):
        name = "_" + name
    if len(name) > OVERRIDE_DIR_MAX:
        digest = hashlib.sha1(text.encode()).hexdigest()[:10]
        head = name[:OVERRIDE_DIR_MAX - 11]
        cut = head.rfind("+")
        head = head[:cut] if cut > 0 else head
        name = f"{head}-{digest}"
    return name + "/"


def register_resolvers() -> None:
    """Register ``${collapse.override_dir:...}`` (:func:`override_dir`) and ``${collapse.now:...}``
    (:func:`collapse.distributed.now`), used by ``hydra.run.dir`` and ``hydra.sweep.dir``."""
    if not OmegaConf.has_resolver("collapse.override_dir"):
        OmegaConf.register_new_resolver("collapse.override_dir", override_dir)
    if not OmegaConf.has_resolver("collapse.now"):  # Hydra's ${now:...}, shared by a multi-process run's processes
        from collapse.distributed import now

        OmegaConf.register_new_resolver("collapse.now", now, use_cache=True)


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
