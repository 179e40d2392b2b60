"""Loading runs back for analysis: ``load_run`` (one run directory) and ``load_sweep`` (a multirun sweep, or a
single run, as one tidy DataFrame with a column per override)."""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import yaml

from collapse.runs import NotARunError, load_run, t_interval

__all__ = ["load_run", "load_sweep", "NotARunError", "t_interval"]


def _overrides(job: Path) -> list[str]:
    f = job / ".hydra" / "overrides.yaml"
    if not f.is_file():
        return []
    return [str(o) for o in (yaml.safe_load(f.read_text()) or [])]


def _parse(value: str):
    try:
        return yaml.safe_load(value)
    except yaml.YAMLError:
        return value


def load_sweep(path: str | os.PathLike) -> pd.DataFrame:
    """Every finished job of a Hydra multirun folder (``runs/<name>/multirun/<timestamp>``) in one DataFrame:
    the metric rows of each job plus a ``job`` column and one column per override, named by the dotted key as
    typed (``loop.real_fraction``); a key that collides with a metric column (e.g. ``precision``) becomes
    ``config.<key>``. A single run directory (also a vectorised sweep, whose table already has a column per swept
    key) is read as a one-job sweep. Unfinished jobs are skipped and listed in
    ``df.attrs["unfinished"]``; a folder with no finished job raises :class:`NotARunError`."""
    root = Path(path)
    if not root.is_dir():
        raise NotARunError(f"not a sweep directory: {root} does not exist or is not a folder")
    jobs = [root] if (root / "summary.json").is_file() else sorted(
        (p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")),
        key=lambda p: (not p.name.isdigit(), int(p.name) if p.name.isdigit() else 0, p.name))
    frames, unfinished, configs = [], [], {}
    for job in jobs:
        try:
            df = load_run(job)
        except NotARunError:
            unfinished.append(job.name)
            continue
        metric_cols = set(df.columns)
        for ov in _overrides(job):
            key, _, value = ov.lstrip("+~").partition("=")
            if key.startswith(("hydra.", "sweep.")):  # a vectorised sweep's keys are columns already
                continue
            col = f"config.{key}" if key in metric_cols else key
            df[col] = _parse(value)
        df.insert(0, "job", job.name)
        configs[job.name] = df.attrs.get("config", {})
        frames.append(df)
    if not frames:
        raise NotARunError(f"no finished job in {root} (unfinished: {', '.join(unfinished) or 'none'})")
    out = pd.concat(frames, ignore_index=True)
    out.attrs = {"configs": configs, "unfinished": unfinished}
    return out
