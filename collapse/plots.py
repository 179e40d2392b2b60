"""Paper-ready figures from runs: every function takes a run directory (or a DataFrame) and returns a Figure.

Style: one consistent look (:func:`paper_style`), single-column (3.4 x 2.5 in) and double-column (7.0 x 2.6 in)
sizes, :func:`save` writes PDF and PNG. Curves show the replicate mean with its 95% t-interval as a band and
the closed form of :mod:`collapse.theory` dashed where one applies.

- :func:`metric_curve`: a metric against generation; ``by`` draws several regimes (sweep points) on one axis;
- :func:`phase_diagram`: a heat map of a metric over a swept key x generation (or two swept keys);
- :func:`survival`: log-log survival function of the model's draws per generation against the truth;
- :func:`rank_frequency`: rank-frequency per generation for discrete and text sources;
- :func:`densities`: histogram of the draws per generation against the true density (1-D sources);
- :func:`scatter`: 2-D scatter of the draws per generation with the true modes (2-D toys);
- :func:`sample_grid`: the saved image grids (or scatters) of a run, one panel per generation.
"""
from __future__ import annotations

import contextlib
import json
import os
from collections import Counter
from pathlib import Path
from typing import Iterable, Optional, Sequence

import matplotlib
import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np
import pandas as pd

from collapse.analysis import aggregate, compare_theory, group_columns, load_sweep, metric_columns
from collapse.runs import NotARunError

SIZES = {"single": (3.4, 2.5), "double": (7.0, 2.6)}
STYLE = {
    "font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8, "legend.fontsize": 7, "xtick.labelsize": 7,
    "ytick.labelsize": 7, "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True,
    "grid.alpha": 0.25, "grid.linewidth": 0.5, "lines.linewidth": 1.2, "savefig.dpi": 200,
    "savefig.bbox": "tight", "figure.dpi": 100, "pdf.fonttype": 42, "legend.frameon": False,
}


@contextlib.contextmanager
def paper_style():
    """The figures' matplotlib style (small serif-free fonts for a two-column paper, light grid)."""
    with plt.rc_context(STYLE):
        yield


def _figure(size: str | tuple, ncols: int = 1):
    w, h = SIZES[size] if isinstance(size, str) else size
    with paper_style():
        fig, axes = plt.subplots(1, ncols, figsize=(w, h), squeeze=False)
    return fig, axes[0]


def save(fig, path: str | os.PathLike, formats: Iterable[str] = ("pdf", "png")) -> list[Path]:
    """Write ``fig`` as ``<path>.pdf`` and ``<path>.png`` (the suffix of ``path`` is ignored); returns the files."""
    stem = Path(path).with_suffix("")
    stem.parent.mkdir(parents=True, exist_ok=True)
    out = []
    with paper_style():
        for fmt in formats:
            f = stem.with_suffix(f".{fmt}")
            fig.savefig(f)
            out.append(f)
    return out


# ----- inputs --------------------------------------------------------------------------------------------------
def table(data) -> pd.DataFrame:
    """A metrics table from a run directory, a sweep directory or a DataFrame (returned as is)."""
    if isinstance(data, pd.DataFrame):
        return data
    return load_sweep(data)


def _run_dir(run) -> Path:
    p = Path(run)
    if not (p / "summary.json").is_file():
        raise NotARunError(f"not a finished run directory: {p} (no summary.json)")
    return p


def _check_metric(df: pd.DataFrame, metric: str) -> None:
    if metric not in df.columns:
        raise KeyError(f"metric {metric!r} is not in this run; available: {', '.join(metric_columns(df)) or 'none'}")


def _label(by: list[str], key) -> str:
    key = key if isinstance(key, tuple) else (key,)
    return ", ".join(f"{b.removeprefix('config.').split('.')[-1]}={_fmt(v)}" for b, v in zip(by, key))


def _fmt(v) -> str:
    return f"{v:g}" if isinstance(v, (float, np.floating)) else str(v)


# ----- curves --------------------------------------------------------------------------------------------------
BAND_LABEL = {"median": "interquartile range", "mean": "95% interval of the mean"}


def metric_curve(data, metric: str, by=None, theory: bool = True, size="single", logy: Optional[bool] = None,
                 stat: str = "median", ax=None, reference: bool = True):
    """``metric`` against generation, one line per group (``by``: columns telling regimes apart; default every
    swept key of a sweep, none for a single run). ``stat="median"`` (default: the typical chain) draws the
    replicate median with the interquartile band; ``stat="mean"`` the mean with its 95% interval (bootstrap for
    non-negative metrics, as summary.json). The closed form (an expected value) is dashed, the real-vs-real
    reference of a sample-based metric (``summary.json`` ``reference``) dotted. ``logy``: log axis (default: the
    metric table's choice, for multiplicative quantities, when every value drawn is positive). The y label
    and unit come from :mod:`collapse.metrics.table`."""
    from collapse.metrics.table import axis_label, info

    if stat not in BAND_LABEL:
        raise ValueError(f"stat={stat!r}: must be 'median' or 'mean'")
    df = table(data)
    _check_metric(df, metric)
    by = group_columns(df) if by is None else ([by] if isinstance(by, str) else list(by))
    agg = aggregate(df, by=by, metrics=[metric], method="auto" if stat == "mean" else "t", n_boot=400)
    if theory:
        with contextlib.suppress(ValueError):
            agg = _with_theory(df, agg, by, metric)
    lo_col, hi_col = ("q25", "q75") if stat == "median" else ("lo", "hi")
    if logy is None:
        shown = agg[[stat, lo_col]].to_numpy(np.float64)
        shown = shown[np.isfinite(shown)]
        logy = info(metric).log and shown.size > 0 and bool((agg[stat].dropna() > 0).all())
    fig, (axis,) = _figure(size) if ax is None else (ax.figure, [ax])
    groups = agg.groupby(by, sort=True) if by else [((), agg)]
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    drew_theory = named_band = False
    with paper_style():
        for i, (key, part) in enumerate(groups):
            c = colors[i % len(colors)]
            part = part[np.isfinite(part[stat].to_numpy(np.float64))]  # metrics of some generations only: join them
            g = part["generation"].to_numpy()
            axis.plot(g, part[stat].to_numpy(), color=c, label=_label(by, key) if by else stat,
                      marker="o" if 0 < len(g) <= 12 else None, ms=2.5)
            lo, hi = part[lo_col].to_numpy(np.float64), part[hi_col].to_numpy(np.float64)
            if logy:  # a band edge <= 0 cannot be drawn on a log axis: leave those generations out of the band
                lo = np.where(lo > 0, lo, np.nan)
            wide = bool(np.any(np.isfinite(lo) & np.isfinite(hi) & (hi > lo)))  # one replicate: no band to name
            axis.fill_between(g, lo, hi, color=c, alpha=0.2, lw=0,
                              label=BAND_LABEL[stat] if wide and not named_band else None)
            named_band = named_band or wide
            if "theory" in part and np.isfinite(part["theory"]).any():
                th = part[np.isfinite(part["theory"].to_numpy(np.float64))]
                single = len(th) < 2  # one point (e.g. support after one fit): a marker, never an empty line
                axis.plot(th["generation"], th["theory"], color=c, ls="none" if single else "--", lw=1.0,
                          marker="x" if single else None, ms=4,
                          label=None if drew_theory else "theory (expected value)")
                drew_theory = True
        if reference:
            _reference_line(axis, df, metric)
        axis.set_xlabel("generation")
        axis.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))  # generations are whole
        axis.set_ylabel(axis_label(metric))
        if logy:
            axis.set_yscale("log")
            log_ticks(axis)
        handles, labels = axis.get_legend_handles_labels()
        if handles:  # the regimes first, then what the styles mean (band, theory, reference)
            styles = (*BAND_LABEL.values(), "theory (expected value)", "real vs real")
            order = sorted(range(len(labels)), key=lambda i: (labels[i] in styles, i))
            axis.legend([handles[i] for i in order], [labels[i] for i in order], title=None)
    return fig


def _with_theory(df: pd.DataFrame, agg: pd.DataFrame, by: list, metric: str) -> pd.DataFrame:
    """``agg`` (any interval method) with the ``theory`` column of :func:`compare_theory`."""
    th = compare_theory(df, by=by, metrics=[metric])
    out = agg.copy()
    out["theory"] = th["theory"].to_numpy()
    return out


def _reference_line(axis, df: pd.DataFrame, metric: str) -> None:
    """The real-vs-real value of ``metric`` (``summary.json`` ``reference``), dotted, if the run has one."""
    summaries = [df.attrs.get("summary")] + list((df.attrs.get("summaries") or {}).values())
    ref = next((s["reference"][metric] for s in summaries if s and metric in (s.get("reference") or {})
                and s["reference"][metric] is not None), None)
    if ref is not None and np.isfinite(ref):
        axis.axhline(ref, color="0.3", ls=":", lw=1.0, label="real vs real")


def log_ticks(axis, which: str = "y") -> None:
    """Enough labelled ticks on a log axis: decades when it spans several, else 1-2-5 (or every integer)
    multiples, so a narrow range never shows a single tick."""
    ax = axis.yaxis if which == "y" else axis.xaxis
    lo, hi = axis.get_ylim() if which == "y" else axis.get_xlim()
    decades = np.log10(hi / lo) if lo > 0 and hi > lo else 0.0
    if decades >= 3:
        return
    if decades < 0.5:  # under half a decade: evenly spaced plain numbers (a 1-2-5 grid would give one tick)
        ax.set_major_locator(matplotlib.ticker.MaxNLocator(nbins=4))
        ax.set_major_formatter(matplotlib.ticker.StrMethodFormatter("{x:.3g}"))
    else:
        subs = (1.0, 2.0, 5.0) if decades >= 1 else tuple(float(k) for k in range(1, 10))
        ax.set_major_locator(matplotlib.ticker.LogLocator(base=10, subs=subs))
        ax.set_major_formatter(matplotlib.ticker.LogFormatterSciNotation(labelOnlyBase=False,
                                                                         minor_thresholds=(np.inf, np.inf)))
    ax.set_minor_formatter(matplotlib.ticker.NullFormatter())


def panel(data, metrics: Sequence[str] = ("reward_mean", "var_ratio", "tail_mass", "accept_rate"), by=None,
          ncols: int = 2, logy: Optional[Sequence[str]] = None, stat: str = "median"):
    """Several metrics side by side (one :func:`metric_curve` per axis, shared regimes and colours), e.g. a
    curation comparison: what each rule buys (``reward_mean``) against what it costs (diversity, tails, the
    share of candidates it throws away). Only the first axis carries the legend. ``logy``: the metrics drawn on a
    log axis (default: the metric table's choice); ``stat`` as in :func:`metric_curve`. Size: 7.0 in wide,
    2.3 in per row."""
    df = table(data)
    for m in metrics:
        _check_metric(df, m)
    rows = -(-len(metrics) // ncols)
    with paper_style():
        fig, axes = plt.subplots(rows, ncols, figsize=(SIZES["double"][0], 2.3 * rows), squeeze=False)
    for i, (m, axis) in enumerate(zip(metrics, axes.ravel())):
        metric_curve(df, m, by=by, ax=axis, logy=None if logy is None else m in logy, stat=stat)
        if i and axis.get_legend() is not None:
            axis.get_legend().remove()
    for axis in axes.ravel()[len(metrics):]:
        axis.set_visible(False)
    with paper_style():
        fig.tight_layout()
    return fig


def regimes(data, metric: str, by, **kw):
    """Several regimes on one axis: :func:`metric_curve` with ``by`` (e.g. ``"loop.real_fraction"``)."""
    return metric_curve(data, metric, by=by, **kw)


def phase_diagram(data, metric: str, x: Optional[str] = None, y: str = "generation", stat: str = "mean",
                  size="single", cmap: str = "viridis", center: Optional[float] = None, annotate: bool = False):
    """Heat map of the replicate ``stat`` of ``metric`` over ``x`` (a swept key; default the first) and ``y``
    (``generation`` or another swept key, then at the last generation). ``center``: a diverging map (red below,
    blue above) centred on this value, e.g. generation 0's, so that improvement and decline read at a glance;
    ``annotate``: each cell's value written in it."""
    from collapse.metrics.table import axis_label, info

    df = table(data)
    _check_metric(df, metric)
    keys = group_columns(df)
    x = x or (keys[0] if keys else None)
    if x is None or x not in df.columns:
        raise KeyError(f"x={x!r}: a phase diagram needs a swept key; swept keys here: {', '.join(keys) or 'none'}")
    if y != "generation" and y not in df.columns:
        raise KeyError(f"y={y!r} is not a column; swept keys here: {', '.join(keys) or 'none'}")
    part = df if y == "generation" else df[df["generation"] == df["generation"].max()]
    agg = aggregate(part, by=[x] if y == "generation" else [x, y], metrics=[metric])
    grid = agg.pivot_table(index=y, columns=x, values=stat)
    fig, (ax,) = _figure(size)
    with paper_style():
        xs, ys = grid.columns.to_numpy(), grid.index.to_numpy()
        values = grid.to_numpy()
        finite = values[np.isfinite(values)]
        norm = matplotlib.colors.LogNorm() if info(metric).log and finite.size and (finite > 0).all() else None
        if center is not None and finite.size:
            span = max(float(np.max(np.abs(finite - center))), 1e-12)
            norm, cmap = matplotlib.colors.TwoSlopeNorm(center, center - span, center + span), "RdBu"
        im = ax.imshow(values, aspect="auto", origin="lower", cmap=cmap, interpolation="nearest", norm=norm,
                       extent=(-0.5, len(xs) - 0.5, -0.5, len(ys) - 0.5))
        if annotate:
            for (i, j), v in np.ndenumerate(values):
                if np.isfinite(v):
                    shade = im.norm(v) if norm is not None else (v - finite.min()) / max(np.ptp(finite), 1e-12)
                    ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6,
                            color="white" if abs(float(shade) - 0.5) > 0.3 else "black")
        ax.set_xticks(range(len(xs)), [_fmt(v) for v in xs])
        step = max(1, len(ys) // 6)
        ax.set_yticks(range(0, len(ys), step), [_fmt(v) for v in ys[::step]])
        ax.set_xlabel(x)
        ax.set_ylabel(y)
        ax.grid(False)
        fig.colorbar(im, ax=ax, label=f"{axis_label(metric)}, {stat}")
    return fig


# ----- the model's draws -----------------------------------------------------------------------------------------
def _draws(run) -> tuple[np.ndarray, np.ndarray, dict]:
    p = _run_dir(run)
    f = p / "samples.npz"
    if not f.is_file():
        raise FileNotFoundError(f"{p} has no samples.npz (model draws are kept for classical families when "
                                f"metrics.draws > 0); found: {', '.join(sorted(x.name for x in p.iterdir()))}")
    with np.load(f) as z:
        gens, draws = z["generation"], z["draws"]
    from omegaconf import OmegaConf
    cfg = OmegaConf.to_container(OmegaConf.load(p / "config.yaml"), resolve=True)
    return gens, draws, cfg


def _pick(gens: np.ndarray, generations) -> list[int]:
    if generations is None:
        idx = np.unique(np.linspace(0, len(gens) - 1, min(4, len(gens))).round().astype(int))
        return [int(gens[i]) for i in idx]
    missing = [g for g in generations if g not in set(gens.tolist())]
    if missing:
        raise KeyError(f"generation {missing[0]} has no draws; generations with draws: {gens.tolist()}")
    return list(generations)


def truth_draws(cfg: dict, n: int = 100_000) -> np.ndarray:
    """``n`` draws of replicate 0's true source (its truth key ``split(fold_in(key(seed), 0), 3)[0]``)."""
    import jax
    from omegaconf import OmegaConf

    from collapse import config as C
    from collapse.api import precision_context

    c = OmegaConf.create(cfg)
    with precision_context(c):
        source = C.build_source(c)
        k_truth = jax.random.split(jax.random.fold_in(jax.random.key(int(c.seed)), 0), 3)[0]
        truth = {**source.init(k_truth), **dict(source.data or {})}
        return np.asarray(source.sample(jax.random.key(12345), truth, n))


def _colors(n: int):
    return plt.get_cmap("viridis")(np.linspace(0.0, 0.85, max(n, 1)))


def survival(run, generations=None, size="single"):
    """Log-log survival function P(|x - m| > t) of the model's draws at a few generations (replicate 0, from
    ``samples.npz``) against the true source (black): tails shrink as collapse sets in. ``m`` = the true mean;
    several dimensions use the Euclidean norm."""
    gens, draws, cfg = _draws(run)
    if draws.dtype.kind in "iu":
        raise ValueError("survival() is for continuous sources; use rank_frequency() for discrete ones")
    real = truth_draws(cfg)
    center = real.mean(0)
    fig, (ax,) = _figure(size)
    chosen = _pick(gens, generations)
    with paper_style():
        for c, g in zip(_colors(len(chosen)), chosen):
            _surv(ax, draws[list(gens).index(g)], center, color=c, label=f"generation {g}")
        _surv(ax, real, center, color="black", label="truth", ls="--")
        ax.set_xscale("log")
        ax.set_xlim(left=float(np.quantile(np.linalg.norm(real.reshape(len(real), -1) - center, axis=1), 0.2)))
        ax.set_yscale("log")
        log_ticks(ax, "x")  # a distance range of under a decade still gets labelled ticks
        ax.set_xlabel(r"$t$ (distance from the true mean)")
        ax.set_ylabel(r"$P(\|x - m\| > t)$")
        ax.legend()
    return fig


def _surv(ax, x, center, **kw):
    r = np.sort(np.linalg.norm(np.reshape(x, (len(x), -1)) - center, axis=1))
    s = 1.0 - np.arange(1, len(r) + 1) / len(r)
    keep = (r > 0) & (s > 0)
    ax.plot(r[keep], s[keep], **kw)


def densities(run, generations=None, size="single", bins: int = 40):
    """Histogram (density) of replicate 0's draws at a few generations against the truth (1-D sources)."""
    gens, draws, cfg = _draws(run)
    x = draws.reshape(draws.shape[0], draws.shape[1], -1)
    if x.shape[2] != 1 or draws.dtype.kind in "iu":
        raise ValueError(f"densities() is for 1-D continuous sources; this run's draws have shape {draws.shape[1:]}")
    real = truth_draws(cfg).ravel()
    chosen = _pick(gens, generations)
    lo, hi = np.quantile(real, [0.001, 0.999])
    edges = np.linspace(lo - 0.5 * (hi - lo), hi + 0.5 * (hi - lo), bins + 1)
    fig, (ax,) = _figure(size)
    with paper_style():
        ax.hist(real, bins=edges, density=True, histtype="step", color="black", ls="--", label="truth")
        for c, g in zip(_colors(len(chosen)), chosen):
            ax.hist(x[list(gens).index(g), :, 0], bins=edges, density=True, histtype="step", color=c,
                    label=f"generation {g}")
        ax.set_xlabel("x")
        ax.set_ylabel("density")
        ax.legend()
    return fig


def scatter(run, generations=None, size="double"):
    """2-D scatter of replicate 0's draws, one panel per chosen generation, with the true modes (toys) or the
    true source's draws (grey)."""
    gens, draws, cfg = _draws(run)
    if draws.ndim != 3 or draws.shape[2] != 2:
        raise ValueError(f"scatter() is for 2-D sources; this run's draws have shape {draws.shape[1:]}")
    real = truth_draws(cfg, 2000)
    chosen = _pick(gens, generations)
    fig, axes = _figure(size, ncols=len(chosen))
    lim = 1.2 * float(np.abs(real).max())
    with paper_style():
        for ax, g in zip(axes, chosen):
            ax.scatter(real[:, 0], real[:, 1], s=1, color="0.8", label="truth")
            x = draws[list(gens).index(g)]
            ax.scatter(x[:, 0], x[:, 1], s=1, color="C0", label="model")
            ax.set_title(f"generation {g}")
            ax.set_xlim(-lim, lim)
            ax.set_ylim(-lim, lim)
            ax.set_aspect("equal")
        axes[0].legend(markerscale=5)
    return fig


def rank_frequency(run, generations=None, size="single"):
    """Rank-frequency (log-log) at a few generations: for discrete sources the fitted model's exact category
    probabilities (``samples.npz`` ``probs``, at scale 1; draw frequencies for older runs without them) against
    the true probabilities (dashed), for text runs the token frequencies of the kept generated segments
    (``samples.jsonl``: characters or words as the run's level)."""
    p = _run_dir(run)
    fig, (ax,) = _figure(size)
    exact = False
    if (p / "samples.jsonl").is_file():
        counts, truth = _text_counts(p), None
    else:
        gens, draws, cfg = _draws(p)
        if draws.dtype.kind not in "iu":
            raise ValueError("rank_frequency() is for discrete and text sources; use survival() for continuous ones")
        with np.load(p / "samples.npz") as z:
            probs = z["probs"] if "probs" in z.files else None
        if probs is not None:  # the fitted model's exact probabilities: every surviving category, no draw noise
            counts = {int(g): np.asarray(q, np.float64) for g, q in zip(gens, probs)}
            exact = True
        else:
            counts = {int(g): np.bincount(d[d >= 0]) for g, d in zip(gens, draws)}
        from collapse.theory import zipf_probs
        src = cfg["source"]
        truth = zipf_probs(int(src["categories"]), float(src["exponent"]))
    gens = np.asarray(sorted(counts))
    chosen = _pick(gens, generations)
    with paper_style():
        for c, g in zip(_colors(len(chosen)), chosen):
            f = np.sort(np.asarray(counts[g], dtype=float))[::-1]
            f = f[f > 0] / f.sum()
            ax.plot(np.arange(1, len(f) + 1), f, color=c, label=f"generation {g}")
        if truth is not None:
            t = np.sort(truth)[::-1]
            ax.plot(np.arange(1, len(t) + 1), t, color="black", ls="--", label="truth")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("rank (most probable first)")
        ax.set_ylabel("model probability" if exact else "frequency in generated text" if truth is None
                      else "frequency in the model's draws")
        ax.legend()
    return fig


def _text_counts(p: Path) -> dict[int, np.ndarray]:
    from omegaconf import OmegaConf
    src = OmegaConf.load(p / "config.yaml").source
    level = src.get("level", "word")  # a source without a level (markov: tokens read "t12 t7 ...") is word-level
    texts: dict[int, Counter] = {}
    for line in (p / "samples.jsonl").read_text(encoding="utf-8").splitlines():
        x = json.loads(line)
        units = x["text"].split() if level == "word" else list(x["text"])
        texts.setdefault(int(x["generation"]), Counter()).update(units)
    return {g: np.asarray(list(c.values())) for g, c in texts.items()}


def sample_grid(run, generations=None, size="double"):
    """The run's saved sample pictures (``samples/generation_<g>.png``: image grids or 2-D scatters of replicate
    0), one panel per chosen generation."""
    p = _run_dir(run)
    files = sorted((p / "samples").glob("generation_*.png")) if (p / "samples").is_dir() else []
    if not files:
        raise FileNotFoundError(f"{p} has no sample pictures (samples/generation_*.png: image and 2-D runs)")
    gens = np.asarray([int(f.stem.split("_")[1]) for f in files])
    chosen = _pick(gens, generations)
    fig, axes = _figure(size, ncols=len(chosen))
    with paper_style():
        for ax, g in zip(axes, chosen):
            ax.imshow(plt.imread(files[list(gens).index(g)]))
            ax.set_axis_off()
    return fig
