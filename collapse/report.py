"""``collapse report <run_or_sweep_dir>``: the standard figures and a short Markdown summary, written into
``<dir>/report/`` (``report.md`` plus one PDF and one PNG per figure).

A single run gets a curve per headline metric (replicate median and interquartile band, closed form dashed,
real-vs-real reference dotted) and pictures
of its draws (survival function and density for continuous sources, scatter for 2-D ones, rank-frequency for
discrete and text sources, sample grids for images). A sweep (Hydra multirun folder or vectorised sweep) gets
one curve per headline metric with a line per point, and a phase diagram over the first numeric swept key.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

MAX_CURVES = 6


class ReportError(ValueError):
    """The folder cannot be reported on (one line: what was found)."""


def kind_of(path: Path) -> str:
    """``run``, ``vectorised`` (a run whose table has a column per swept key) or ``multirun``."""
    if (path / "summary.json").is_file():
        return "vectorised" if "points" in json.loads((path / "summary.json").read_text()) else "run"
    if path.is_dir() and any((p / "summary.json").is_file() for p in path.iterdir() if p.is_dir()):
        return "multirun"
    found = ", ".join(sorted(p.name for p in path.iterdir())) if path.is_dir() else "no such folder"
    raise ReportError(f"{path}: not a finished run or sweep folder (no summary.json here or in its job folders; "
                      f"found: {found or 'nothing'})")


def _headline(df: pd.DataFrame, kind: str | None = None) -> list[str]:
    from collapse.analysis import metric_columns
    from collapse.metrics.table import headline

    have = [m for m in metric_columns(df) if np.isfinite(df[m].to_numpy(np.float64)).any()]
    first = headline(kind, have)
    picked = (first + [m for m in have if m not in first])[:MAX_CURVES]
    return picked + [m for m in ("accept_rate", "reward_mean") if m in have and m not in picked]  # curation's cost


def _interval(row, value: str, lo: str, hi: str) -> str:
    if not np.isfinite(row[value]):
        return "-"
    ci = f" [{row[lo]:.4g}, {row[hi]:.4g}]" if np.isfinite(row[lo]) else ""
    return f"{row[value]:.4g}{ci}"


def final_table(df: pd.DataFrame, metrics: list[str], summaries: dict | None = None) -> str:
    """Markdown table of the last generation: one row per regime (sweep point) and metric: the median with its
    order-statistic interval first (the typical chain), the mean with its 95% interval (bootstrap for
    non-negative metrics, else Student-t), the number of finite replicates, the closed form, and notes (a
    heavy-tailed replicate distribution; a closed form outside the mean's interval)."""
    from collapse.analysis import compare_theory, group_columns
    from collapse.summaries import is_heavy_tailed, theory_check, top_share

    by = group_columns(df)
    last = int(df["generation"].max())
    part = df[df["generation"] == last]
    part.attrs = df.attrs
    try:
        agg = compare_theory(part, by=by, metrics=metrics)
    except ValueError:
        from collapse.analysis import aggregate
        agg = aggregate(part, by=by, metrics=metrics)
        agg["theory"] = np.nan
    from collapse.analysis import aggregate
    auto = aggregate(part, by=by, metrics=metrics, method="auto")
    agg[["lo", "hi"]] = auto[["lo", "hi"]].to_numpy()
    head = [*by, "metric", f"median [95% interval], generation {last}", "mean [95% interval]", "replicates",
            "theory", "notes"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    groups = part.groupby(by, sort=True, dropna=False) if by else [((), part)]
    values = {(k if isinstance(k, tuple) else (k,)): g for k, g in groups}
    for _, r in agg.iterrows():
        theory = f"{r['theory']:.4g}" if np.isfinite(r["theory"]) else "-"
        v = values[tuple(r[b] for b in by)][r["metric"]].to_numpy(np.float64)
        v = v[np.isfinite(v)]
        heavy = is_heavy_tailed(top_share(v), v.size)
        notes = []
        if heavy:
            notes.append(f"heavy-tailed (1% of chains carry {top_share(v):.0%} of the spread)")
        miss = theory_check({"lo": r["lo"] if np.isfinite(r["lo"]) else None, "hi": r["hi"],
                             "heavy_tailed": heavy}, float(r["theory"]) if np.isfinite(r["theory"]) else None)
        if miss:
            notes.append(f"theory {miss['side']} the mean's interval" + (": carried by rare chains" if heavy else ""))
        vals = [str(r[b]) for b in by] + [r["metric"], _interval(r, "median", "median_lo", "median_hi"),
                                           _interval(r, "mean", "lo", "hi"), str(int(r["n"])), theory,
                                           "; ".join(notes) or "-"]
        lines.append("| " + " | ".join(vals) + " |")
    return "\n".join(lines)


def _run_figures(path: Path, source_kind: str, dim: int) -> list[tuple[str, object]]:
    """(name, figure factory) of the pictures of a single run's draws that apply to it."""
    from collapse import plots
    out = []
    if (path / "samples.npz").is_file():
        if source_kind == "continuous":
            out.append(("tails_survival", lambda: plots.survival(path)))
            if dim == 1:
                out.append(("density", lambda: plots.densities(path)))
            if dim == 2:
                out.append(("scatter", lambda: plots.scatter(path)))
        if source_kind == "discrete":
            out.append(("rank_frequency", lambda: plots.rank_frequency(path)))
    if (path / "samples.jsonl").is_file():
        out.append(("rank_frequency", lambda: plots.rank_frequency(path)))
    if (path / "samples").is_dir() and source_kind == "image":
        out.append(("samples", lambda: plots.sample_grid(path)))
    return out


def write_report(path: str | Path) -> Path:
    """Write ``<path>/report/`` (figures and ``report.md``); returns that folder."""
    import matplotlib.pyplot as plt

    from collapse import config as C, plots
    from collapse.analysis import group_columns, load_sweep

    path = Path(path)
    kind = kind_of(path)
    df = load_sweep(path)
    cfg0 = df.attrs.get("config") or next(iter((df.attrs.get("configs") or {}).values()), {})
    metrics = _headline(df, C.source_kind(cfg0))
    if not metrics:
        raise ReportError(f"{path}: the run has no finite metric to plot")
    out = path / "report"
    figures: list[str] = []

    def emit(name: str, make) -> None:
        fig = make()
        plots.save(fig, out / name)
        plt.close(fig)
        figures.append(name)

    by = group_columns(df)
    for m in metrics:
        emit(f"curve_{m}", lambda m=m: plots.metric_curve(df, m, by=by))
    numeric = [b for b in by if pd.api.types.is_numeric_dtype(df[b]) and df[b].nunique() > 1]
    if numeric:
        emit(f"phase_{metrics[0]}", lambda: plots.phase_diagram(df, metrics[0], x=numeric[0], stat="median"))
    cfg = df.attrs.get("config") or next(iter((df.attrs.get("configs") or {}).values()), {})
    src = (cfg or {}).get("source", {}) or {}
    if kind == "run":
        source_kind = C.source_kind(cfg)
        for name, make in _run_figures(path, source_kind, int(src.get("dim", 2) or 2)):
            emit(name, make)
    s = json.loads((path / "summary.json").read_text()) if (path / "summary.json").is_file() else {}
    lines = [f"# Report: {path.name}", ""]
    what = {"run": "single run", "vectorised": "vectorised sweep", "multirun": "multirun sweep"}[kind]
    if cfg:
        loop = cfg.get("loop", {})
        lines.append(f"{what}: model={cfg.get('model', {}).get('name')} on source={src.get('name')}, "
                     f"{cfg.get('replicates')} replicates x {cfg.get('generations')} generations, "
                     f"loop.synthetic={loop.get('synthetic')}, loop.real={loop.get('real')}, "
                     f"loop.real_fraction={loop.get('real_fraction')}, loop.samples={loop.get('samples')}"
                     + (f"; swept: {', '.join(by)}" if by else "") + ".")
    if s.get("wall_time_s") is not None:
        lines.append(f"Wall time {s['wall_time_s']:.1f} s (compile {s.get('compile_s', 0):.1f} s).")
    if df.attrs.get("unfinished"):
        lines.append(f"Unfinished jobs (left out): {', '.join(df.attrs['unfinished'])}.")
    lines += ["", "## Final generation", "",
              "Over replicates: the median with its distribution-free 95% interval (the typical chain), the mean "
              "with its 95% interval (percentile bootstrap for non-negative metrics, else Student-t), the number of "
              "finite replicates, the closed form of `collapse.theory` where one applies (an expected value: "
              "compare it with the mean), and notes. Curves show the median with its interquartile band; "
              "`collapse.plots.metric_curve(..., stat=\"mean\")` draws the mean.", "",
              final_table(df, metrics), "", "## Figures", ""]
    lines += [f"![{name}]({name}.png)  \n`{name}.pdf`" for name in figures]
    events = s.get("events") or []
    if events:
        lines += ["", "## Events", ""] + [f"- {json.dumps(e)}" for e in events[:20]]
    (out / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


def main(argv: list[str] | None = None) -> None:
    """``collapse report <dir>`` / ``collapse-report <dir>``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    import os

    import matplotlib
    if not os.environ.get("MPLBACKEND"):
        matplotlib.use("Agg")  # a command writes files: no windows, no display needed
    if len(argv) != 1 or argv[0].startswith("-"):
        print("usage: collapse report <run_or_sweep_dir>   (writes <dir>/report/report.md and figures)",
              file=sys.stderr)
        raise SystemExit(2)
    try:
        out = write_report(argv[0])
    except (ReportError, FileNotFoundError, KeyError, ValueError) as exc:
        msg = exc.args[0] if exc.args else str(exc)
        print(f"collapse report: error: {msg}", file=sys.stderr)
        raise SystemExit(2)
    n = len(list(out.glob("*.pdf")))
    print(f"collapse report: wrote {n} figures (PDF and PNG) and report.md into {out}")


if __name__ == "__main__":
    main()
