"""Runs back as tables: ``load_run`` (one run directory), ``load_sweep`` (a multirun sweep, a vectorised sweep or a
single run, as one tidy DataFrame with a column per override), ``aggregate`` (replicate mean and 95% interval per
generation and metric) and ``compare_theory`` (the closed forms of :mod:`collapse.theory` beside them)."""
from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from collapse.runs import NotARunError, load_run, t_interval

__all__ = ["load_run", "load_sweep", "MixedSweepError", "aggregate", "compare_theory", "metric_columns", "group_columns",
           "NotARunError", "t_interval"]

META = ("replicate", "generation", "job")


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


class MixedSweepError(ValueError):
    """A sweep whose jobs measured different metrics (e.g. different source kinds)."""


def load_sweep(path: str | os.PathLike, allow_mixed: bool = False) -> pd.DataFrame:
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
    frames, unfinished, configs, summaries = [], [], {}, {}
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
        summaries[job.name] = df.attrs.get("summary", {})
        frames.append(df)
    if not frames:
        raise NotARunError(f"no finished job in {root} (unfinished: {', '.join(unfinished) or 'none'})")
    sets = {}
    for f in frames:
        cols = tuple(c for c in f.columns if c not in META and pd.api.types.is_float_dtype(f[c])
                     and not (c.startswith("config.") or "." in c))
        sets.setdefault(cols, []).append(str(f["job"].iloc[0]))
    if len(sets) > 1 and not allow_mixed:
        what = "; ".join(f"jobs {', '.join(jobs)}: {', '.join(cols)}" for cols, jobs in sets.items())
        raise MixedSweepError(f"the jobs of {root} have different metrics ({what}); load them one kind at a time "
                              f"(load_run), or pass allow_mixed=True to get NaN where a job lacks a metric")
    out = pd.concat(frames, ignore_index=True)
    out.attrs = {"configs": configs, "summaries": summaries, "unfinished": unfinished}
    return out


def metric_columns(df: pd.DataFrame) -> list[str]:
    """The metric columns of a run or sweep table: float columns that are not replicate/generation/job or a
    swept key (a column named in ``df.attrs`` as a group, or a dotted config key)."""
    return [c for c in df.columns if c not in META and not _is_override(c) and pd.api.types.is_float_dtype(df[c])]


def _is_override(column: str) -> bool:
    """A config key column of a sweep: dotted (``loop.real_fraction``, ``config.precision``) or a top-level key;
    a top-level key with a metric's name is written ``config.<key>`` (the column rule in README, "Sweeps, launchers,
    logging, resume, devices"), so such a name is a metric (every registered metric, plug-ins included)."""
    from collapse.metrics.registry import INFO, ensure_builtin

    ensure_builtin()
    return column not in INFO and ("." in column or column in _top_keys())


@functools.lru_cache(maxsize=1)
def _top_keys() -> frozenset:
    """Top-level config keys incl. the config groups, read once."""
    from collapse import config as C

    top = set(yaml.safe_load((C.CONF_DIR / "config.yaml").read_text())) - {"hydra", "defaults"}
    top |= {g.split("/")[0] for g in C.GROUPS if not g.startswith("hydra")}
    return frozenset(top)


def group_columns(df: pd.DataFrame) -> list[str]:
    """Columns that tell regimes apart: the override columns of a sweep (dotted keys such as
    ``loop.real_fraction``, top-level keys such as ``model`` or ``seed``, and ``config.<key>``) that take more than
    one value, in table order."""
    return [c for c in df.columns if c not in META and _is_override(c) and df[c].nunique(dropna=False) > 1]


def _check_metrics(df: pd.DataFrame, metrics) -> list[str]:
    have = metric_columns(df)
    if metrics is None:
        return have
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    missing = [m for m in metrics if m not in df.columns]
    if missing:
        raise KeyError(f"metric {missing[0]!r} is not in this table; available: {', '.join(have) or 'none'}")
    return metrics


def aggregate(df: pd.DataFrame, by=None, metrics=None, level: float = 0.95, method: str = "t",
              n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Replicate summaries per (``by`` groups, generation, metric), one row each (long format): columns
    ``*by, generation, metric, mean, lo, hi, sd, n, median, median_lo, median_hi, q25, q75``.

    ``by``: columns that tell regimes apart (default: :func:`group_columns`, e.g. ``loop.real_fraction``);
    the mean's interval [``lo``, ``hi``]: ``method="t"``: Student-t mean +- t_{(1+level)/2, n-1} sd / sqrt(n);
    ``"bootstrap"``: percentile interval of ``n_boot`` bootstrap means (fixed ``seed``); ``"auto"`` (as
    summary.json): bootstrap when every value is >= 0 (so the interval never goes below 0), else t. The median's
    interval is the distribution-free order-statistic one (:func:`collapse.summaries.median_interval`); q25 and
    q75 are the quartiles. Non-finite values (diverged replicates, skipped metrics) are left out; ``n`` counts
    the rest.
    """
    from collapse.summaries import bootstrap_interval, median_interval, t_interval as t_bounds

    if method not in ("t", "bootstrap", "auto"):
        raise ValueError(f"method={method!r}: must be 't', 'bootstrap' or 'auto'")
    by = group_columns(df) if by is None else ([by] if isinstance(by, str) else list(by))
    missing = [b for b in by if b not in df.columns]
    if missing:
        raise KeyError(f"by={missing[0]!r} is not a column; columns: {', '.join(df.columns)}")
    metrics = _check_metrics(df, metrics)
    rows = []
    keys = [*by, "generation"]
    stats = ("mean", "lo", "hi", "sd", "n", "median", "median_lo", "median_hi", "q25", "q75")
    for key, part in df.groupby(keys, sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        for m in metrics:
            v = part[m].to_numpy(np.float64)
            v = v[np.isfinite(v)]
            n = int(v.size)
            row = dict(zip(keys, key))
            row.update({k: np.nan for k in stats}, metric=m, n=n)
            if n:
                q25, med, q75 = np.quantile(v, [0.25, 0.5, 0.75])
                row.update(mean=float(v.mean()), median=float(med), q25=float(q25), q75=float(q75),
                           sd=float(v.std(ddof=1)) if n > 1 else np.nan)
            if n > 1:
                boot = method == "bootstrap" or (method == "auto" and bool((v >= 0).all()))
                lo, hi = bootstrap_interval(v, level, n_boot, seed) if boot else t_bounds(v, level)
                mlo, mhi = median_interval(v, level)
                row.update(lo=lo, hi=hi, median_lo=mlo, median_hi=mhi)
            rows.append(row)
    out = pd.DataFrame(rows, columns=[*keys, "metric", *stats])
    out.attrs = {"method": method, "level": level, "by": by}
    return out


def _config_for(df: pd.DataFrame, config, group: dict) -> dict:
    """The config of one group: the given (or the table's) config with the group's override values set."""
    import copy

    if config is None:
        configs = df.attrs.get("configs") or {}
        job = group.get("job")
        tests = [(df[k] == v).to_numpy() for k, v in group.items() if k in df.columns]
        if job is None and configs and "job" in df.columns and tests:  # the job whose rows hold this group's values
            rows = np.logical_and.reduce(tests)
            jobs = df.loc[rows, "job"].astype(str).unique()
            job = jobs[0] if len(jobs) else None
        if job is not None and str(job) in configs:
            config = configs[str(job)]
        else:
            config = df.attrs.get("config") or (next(iter(configs.values())) if configs else None)
    if config is None:
        raise ValueError("no config: pass config=..., or a table from load_run / load_sweep (it carries its config)")
    if hasattr(config, "items") and not isinstance(config, dict):
        from omegaconf import OmegaConf
        config = OmegaConf.to_container(config, resolve=True)
    cfg = copy.deepcopy(config)
    for key, value in group.items():
        if key == "job":
            continue
        node, parts = cfg, key.removeprefix("config.").split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        if isinstance(node.get(parts[-1]), dict):
            continue  # a group choice such as model=gmm: the job's own config already has it
        node[parts[-1]] = value
    return cfg


def compare_theory(df: pd.DataFrame, config=None, by=None, metrics=None, level: float = 0.95) -> pd.DataFrame:
    """:func:`aggregate` of ``df`` with a ``theory`` column: the closed form of :func:`collapse.theory.theory_curves`
    for that metric, group and generation, NaN where no closed form applies. ``config``: the run's config (default:
    the one ``load_run`` / ``load_sweep`` attached; each group's swept values are set on it)."""
    from collapse.theory import theory_curves

    agg = df if "metric" in df.columns and "mean" in df.columns else aggregate(df, by=by, metrics=metrics, level=level)
    by = agg.attrs.get("by", []) if by is None else ([by] if isinstance(by, str) else list(by))
    source = df if "metric" not in df.columns else agg
    theory = np.full(len(agg), np.nan)
    groups = agg.groupby(by, sort=False, dropna=False).indices if by else {(): np.arange(len(agg))}
    for key, idx in groups.items():
        key = key if isinstance(key, tuple) else (key,)
        cfg = _config_for(source, config, dict(zip(by, key)))
        sub = agg.iloc[idx]
        curves = theory_curves(cfg, int(sub["generation"].max()) + 1)
        for i, (g, m) in zip(idx, zip(sub["generation"].to_numpy(), sub["metric"].to_numpy())):
            if m in curves:
                theory[i] = curves[m][int(g)]
    out = agg.copy()
    out["theory"] = theory
    out.attrs = dict(agg.attrs)
    return out
