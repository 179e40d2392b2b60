#!/usr/bin/env python3
"""Run the paper's experiments with collapse and write every number, table and figure that main.tex includes.

    python make_paper.py            # full size (a few minutes on a laptop CPU)
    python make_paper.py --quick    # tiny sizes (under a minute once JAX's compilation cache is warm)
    python make_paper.py --out DIR --runs DIR

Nothing in main.tex is typed by hand: simulated values (replicate mean with its 95% Student-t interval over
replicates), closed forms and experiment sizes are LaTeX macros in ``<out>/numbers.tex``; tables are
``<out>/table_*.tex`` (booktabs tabulars); figures ``<out>/fig_*.pdf`` (and .png) via ``collapse.plots.save``;
``<out>/section_*.tex`` holds parts whose presence depends on the mode. ``<out>/MANIFEST.txt`` lists every file
written. Runs go to ``<runs>/<mode>-<timestamp>/<experiment>/`` (collapse run directories). At the end the PDF
is built with ``latexmk -pdf main.tex`` if latexmk is installed; otherwise one line says it was not built.
"""
from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import math
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
try:
    import collapse  # noqa: F401
except ImportError:  # run with a Python that does not have collapse installed: use the checkout's package
    sys.path.insert(0, str(HERE.parent))
    import collapse  # noqa: F401

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import NullFormatter  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from collapse import plots, theory  # noqa: E402
from collapse.analysis import aggregate, load_run, load_sweep  # noqa: E402

TAIL_EVERY, TAIL_GENERATIONS = 10, (0, 20, 50, 90)  # model draws kept every 10 generations; these are plotted
ZIPF_DRAWS = 100_000  # model draws kept per sampled generation for the rank-frequency plot
# The Zipf chains run in float64: in float32, collapse.rand.multinomial (collapse 0.1.0) occasionally draws a category
# whose probability is exactly 0 (its float32 CDF, from jnp.cumsum, can step up at zero-probability categories), which
# breaks the absorbing zero of the fully synthetic categorical chain; in float64 that step is ~1e-17 and never hit.
FRACTIONS = (0.0, 0.05, 0.1, 0.2, 0.5)
FRACTION_NAMES = {0.0: "Zero", 0.05: "Five", 0.1: "Ten", 0.2: "Twenty", 0.5: "Fifty"}  # macro-safe names

# (replicates, generations) per experiment; None = skipped in that mode.
SIZES = {
    "quick": {"gauss": (200, 100), "unbiased": (500, 100), "linreg": (200, 20), "zipf": (20, 20),
              "fresh": (100, 60), "logdet": None, "task": (20, 10), "arithmetic": None},
    "full": {"gauss": (1000, 1000), "unbiased": (2000, 100), "linreg": (2000, 20), "zipf": (200, 100),
             "fresh": (1000, 300), "logdet": (500, 50), "task": (100, 30), "arithmetic": (3, 5)},
}
# verified self-training (experiment=task_verifier): the grid of verifier false-positive rates x human shares
TASK_GRID = {"quick": ((0.6, 0.95), (0.0, 0.25)), "full": ((0.0, 0.1, 0.3, 0.6, 0.8, 0.95), (0.0, 0.1, 0.25, 0.5))}
COMMON = ("metrics.sample_based=false", "quiet=true")
GENERATED_PATTERNS = ("numbers.tex", "table_*.tex", "section_*.tex", "fig_*.pdf", "fig_*.png", "MANIFEST.txt")


# ----------------------------------------------------------------------------------------------- formatting
def _sci(x: float, digits: int = 2) -> str:
    e = int(math.floor(math.log10(abs(x))))
    m = x / 10**e
    if round(abs(m), digits) >= 10:
        m, e = m / 10, e + 1
    return f"{m:.{digits}f}\\times10^{{{e}}}"


def _plain(x: float, decimals: int) -> bool:
    return x == 0 or (1e-3 <= abs(x) < 1e6 and round(abs(x), decimals) > 0)


def num(x: float, sig: int = 4) -> str:
    """A closed-form or plain value with ``sig`` significant digits (math-mode LaTeX)."""
    x = float(x)
    if not math.isfinite(x):
        raise ValueError(f"not a finite number: {x}")
    if float(x).is_integer() and abs(x) < 1e6:
        return str(int(x))
    dec = max(0, sig - 1 - int(math.floor(math.log10(abs(x)))))
    return f"{x:.{dec}f}" if _plain(x, dec) else _sci(x, sig - 1)


def sim(mean: float, lo: float, hi: float) -> str:
    """``mean [lo, hi]`` with two significant digits of the interval's half-width (math-mode LaTeX)."""
    vals = [float(mean), float(lo), float(hi)]
    if not all(math.isfinite(v) for v in vals):
        raise ValueError(f"simulated value without a finite interval: {vals}")
    hw = (hi - lo) / 2
    dec = 4 if hw <= 0 else min(8, max(0, 1 - int(math.floor(math.log10(hw)))))
    if all(_plain(v, dec) for v in vals):
        parts = [f"{v:.{dec}f}" for v in vals]
    else:
        parts = [_sci(v) if v != 0 else "0" for v in vals]
    return f"{parts[0]}\\;[{parts[1]},\\,{parts[2]}]"


class Numbers:
    """The macros of numbers.tex. Suffix convention (checked by tests/test_paper.py): ``...Sim`` = a simulated
    mean with its 95% interval; ``...Mode`` / ``...Version`` = words; anything else = one number."""

    def __init__(self):
        self.macros: dict[str, str] = {}

    def _set(self, name: str, body: str):
        if not name.isalpha() or not name[0].isupper():
            raise ValueError(f"macro name must be letters starting upper case: {name!r}")
        if name in self.macros:
            raise ValueError(f"macro defined twice: {name}")
        self.macros[name] = body

    def sim(self, name: str, st: dict):
        assert name.endswith("Sim"), name
        self._set(name, f"\\ensuremath{{{sim(st['mean'], st['lo'], st['hi'])}}}")

    def num(self, name: str, x, sig: int = 4):
        assert not name.endswith("Sim"), name
        self._set(name, f"\\ensuremath{{{num(x, sig)}}}")

    def text(self, name: str, s: str):
        assert name.endswith(("Mode", "Version")), name
        self._set(name, s.replace("_", "\\_"))

    def tex(self) -> str:
        lines = ["% Generated by paper/make_paper.py; do not edit.",
                 "% ...Sim: replicate mean and 95% Student-t interval over replicates."]
        lines += [f"\\newcommand{{\\{k}}}{{{v}}}" for k, v in self.macros.items()]
        return "\n".join(lines) + "\n"


def tabular(columns: str, header: list[str], rows: list[list[str]], header2: list[str] | None = None) -> str:
    out = [f"\\begin{{tabular}}{{{columns}}}", "\\toprule"]
    if header2:
        out.append(" & ".join(header2) + " \\\\")
    out += [" & ".join(header) + " \\\\", "\\midrule"]
    out += [" & ".join(r) + " \\\\" for r in rows]
    out += ["\\bottomrule", "\\end{tabular}"]
    return "\n".join(out) + "\n"


def m(s: str) -> str:
    return f"${s}$"


# ----------------------------------------------------------------------------------------------- statistics
def stat(df: pd.DataFrame, metric: str, generation: int, **where) -> dict:
    """Replicate mean, 95% t-interval, median, standard error and n of ``metric`` at ``generation`` (aggregate)."""
    part = df[df["generation"] == generation]
    for k, v in where.items():
        part = part[np.isclose(part[k], v)] if isinstance(v, float) else part[part[k] == v]
    a = aggregate(part, by=[], metrics=[metric]).iloc[0]
    if a["n"] < 2:
        raise RuntimeError(f"{metric} at generation {generation}: fewer than 2 finite replicates")
    return {"mean": a["mean"], "lo": a["lo"], "hi": a["hi"], "median": a["median"], "n": int(a["n"]),
            "se": a["sd"] / math.sqrt(a["n"])}


class Checks:
    """The summary table: every closed form next to the simulator's interval."""

    def __init__(self):
        self.rows = []

    def add(self, result: str, quantity: str, n: int, th: float, st: dict):
        z = (st["mean"] - th) / st["se"] if st["se"] > 0 else float("nan")
        inside = st["lo"] <= th <= st["hi"]
        self.rows.append((result, quantity, n, th, st, z, inside))

    def table(self) -> str:
        rows = [[r, q, m(str(n)), m(num(th)), m(sim(st["mean"], st["lo"], st["hi"])), m(f"{z:+.2f}"),
                 "yes" if inside else "no"] for r, q, n, th, st, z, inside in self.rows]
        return tabular("llrrlrc", ["result", "quantity", m("n"), "closed form", "simulator mean [95\\% CI]",
                                   m("z"), "inside"], rows)


# ----------------------------------------------------------------------------------------------- experiments
def run(runs: Path, name: str, *overrides: str):
    t = time.time()
    res = collapse.simulate(*overrides, *COMMON, run_dir=runs / name)
    print(f"  {name:<10} {time.time() - t:6.1f} s  ({' '.join(overrides)})", flush=True)
    return res


def cfg_of(res) -> dict:
    return OmegaConf.to_container(res.config, resolve=True)


def figure(ncols: int, size=(7.0, 2.5)):
    with plots.paper_style():
        fig, axes = plt.subplots(1, ncols, figsize=size, squeeze=False)
    return fig, list(axes[0])


def add_median(ax, df, metric, label="median", **kw):
    agg = aggregate(df, by=[], metrics=[metric])
    with plots.paper_style():
        ax.plot(agg["generation"], agg["median"], ls=":", color="C3", label=label, **kw)
        ax.legend()


def fits_list(G: int, candidates=(1, 10, 100, 1000)) -> list[int]:
    return [n for n in candidates if n <= G] + ([G] if G not in candidates else [])


class Paper:
    def __init__(self, mode: str, out: Path, runs: Path):
        self.mode, self.out, self.runs = mode, out, runs
        self.sizes = SIZES[mode]
        self.N = Numbers()
        self.checks = Checks()
        self.written: list[Path] = []

    # -- writing
    def write(self, name: str, text: str):
        p = self.out / name
        p.write_text(text, encoding="utf-8")
        self.written.append(p)

    def save(self, fig, stem: str):
        self.written += plots.save(fig, self.out / stem)
        plt.close(fig)

    # -- (1) Gaussian, fully synthetic, MLE
    def gauss(self):
        R, G = self.sizes["gauss"]
        res = run(self.runs, "gauss", "experiment=shumailov_gaussian", f"replicates={R}", f"generations={G}",
                  "metrics.every=1", f"metrics.sample_every={TAIL_EVERY}")
        df, cfg = load_run(res.run_dir), cfg_of(res)
        M = cfg["loop"]["samples"]
        N = self.N
        N.num("GaussM", M), N.num("GaussReps", R), N.num("GaussGens", G)
        rows = []
        for n in fits_list(G):
            g = n - 1
            v, e, w, ld = (stat(df, k, g) for k in ("var_ratio", "mean_err", "frechet", "logdet_ratio"))
            tv = float(theory.gaussian_var_ratio(g, M, "mle"))
            te = float(theory.gaussian_mean_err(g, M, 1, "mle"))
            tw = float(theory.gaussian_w2_1d(g, M, "mle"))
            tl = float(theory.gaussian_logdet_ratio(g, M, 1, "mle"))
            rows.append([m(str(n)), m(num(tv)), m(sim(v["mean"], v["lo"], v["hi"])), m(num(v["median"], 3)),
                         m(num(te)), m(sim(e["mean"], e["lo"], e["hi"])),
                         m(num(tw)), m(sim(w["mean"], w["lo"], w["hi"])),
                         m(num(tl)), m(sim(ld["mean"], ld["lo"], ld["hi"]))])
            if n in (10, 100) or n == G:
                self.checks.add("Gaussian MLE", "var\\_ratio", n, tv, v)
            if n == 100 or (n == G and G < 100):
                self.checks.add("Gaussian MLE", "mean\\_err", n, te, e)
            if n == G:
                self.checks.add("Gaussian MLE", "$W_2^2$", n, tw, w)
                self.checks.add("Gaussian MLE", "logdet\\_ratio", n, tl, ld)
        head = [m("n"), "closed", "sim. mean [95\\% CI]", "median", "closed", "sim. mean [95\\% CI]",
                "closed", "sim. mean [95\\% CI]", "closed", "sim. mean [95\\% CI]"]
        head2 = ["", "\\multicolumn{3}{c}{var\\_ratio}", "\\multicolumn{2}{c}{mean\\_err}",
                 "\\multicolumn{2}{c}{$W_2^2$ (frechet)}", "\\multicolumn{2}{c}{$\\log$ var\\_ratio}"]
        self.write("table_gauss.tex", tabular("r" + "rlr" + "rl" * 3, head, rows, head2))

        nh = 100 if G >= 100 else G
        N.num("GaussNmid", nh)
        N.num("GaussVarRatioTheory", theory.gaussian_var_ratio(nh - 1, M, "mle"))
        N.sim("GaussVarRatioSim", stat(df, "var_ratio", nh - 1))
        N.num("GaussVarRatioMedian", stat(df, "var_ratio", nh - 1)["median"], 3)
        N.num("GaussMeanErrTheory", theory.gaussian_mean_err(nh - 1, M, 1, "mle"))
        N.sim("GaussMeanErrSim", stat(df, "mean_err", nh - 1))
        N.num("GaussFrechetTheory", theory.gaussian_w2_1d(G - 1, M, "mle"))
        N.sim("GaussFrechetSim", stat(df, "frechet", G - 1))
        N.num("GaussLogVarTheory", theory.gaussian_logdet_ratio(G - 1, M, 1, "mle"))
        N.sim("GaussLogVarSim", stat(df, "logdet_ratio", G - 1))
        N.num("GaussTailMassMedian", stat(df, "tail_mass", G - 1)["median"], 2)

        fig, ax = figure(3)
        plots.metric_curve(df, "var_ratio", stat="mean", logy=True, ax=ax[0])
        add_median(ax[0], df, "var_ratio")
        plots.metric_curve(df, "mean_err", stat="mean", ax=ax[1])
        plots.metric_curve(df, "frechet", stat="mean", ax=ax[2])
        ax[2].set_ylabel("frechet ($W_2^2$)")
        fig.tight_layout()
        self.save(fig, "fig_gauss")
        tails = plots.survival(res.run_dir, generations=[g for g in TAIL_GENERATIONS if g < G])
        tails.axes[0].xaxis.set_minor_formatter(NullFormatter())  # log-axis minor labels overlap at this size
        self.save(tails, "fig_gauss_tails")

    # -- (2) unbiased estimator: a martingale that still collapses
    def unbiased(self):
        R, G = self.sizes["unbiased"]
        res = run(self.runs, "unbiased", "experiment=gaussian_unbiased", f"replicates={R}", f"generations={G}")
        df, cfg = load_run(res.run_dir), cfg_of(res)
        M, g = cfg["loop"]["samples"], G - 1
        N = self.N
        N.num("UnbM", M), N.num("UnbReps", R), N.num("UnbGens", G)
        v, e, w = (stat(df, k, g) for k in ("var_ratio", "mean_err", "frechet"))
        tv = float(theory.gaussian_var_ratio(g, M, "unbiased"))
        te = float(theory.gaussian_mean_err(g, M, 1, "unbiased"))
        tw = float(theory.gaussian_w2_1d(g, M, "unbiased"))
        N.num("UnbVarRatioTheory", tv), N.sim("UnbVarRatioSim", v), N.num("UnbVarRatioMedian", v["median"], 3)
        N.num("UnbMeanErrTheory", te), N.sim("UnbMeanErrSim", e)
        N.num("UnbFrechetTheory", tw), N.sim("UnbFrechetSim", w)
        shrunk = df.assign(below_half=(df["var_ratio"] < 0.5).astype(float))
        N.num("UnbHalf", 0.5, 1)
        N.sim("UnbShareBelowHalfSim", stat(shrunk, "below_half", g))
        self.checks.add("Gaussian unbiased", "var\\_ratio", G, tv, v)
        self.checks.add("Gaussian unbiased", "mean\\_err", G, te, e)
        self.checks.add("Gaussian unbiased", "$W_2^2$", G, tw, w)

        fig, ax = figure(2)
        plots.metric_curve(df, "var_ratio", stat="mean", ax=ax[0])
        add_median(ax[0], df, "var_ratio")
        plots.metric_curve(df, "mean_err", stat="mean", ax=ax[1])
        fig.tight_layout()
        self.save(fig, "fig_unbiased")

    # -- (3) linear regression: replace vs accumulate
    def linreg(self):
        R, G = self.sizes["linreg"]
        rep = run(self.runs, "replace", "experiment=gerstgrasser_replace", f"replicates={R}", f"generations={G}")
        acc = run(self.runs, "accumulate", "experiment=gerstgrasser_accumulate", f"replicates={R}",
                  f"generations={G}")
        cfg = cfg_of(rep)
        src = cfg["source"]
        d, s2 = src["dim"], src["noise_var"]
        T = src.get("design_size") or cfg["loop"]["samples"]
        N = self.N
        N.num("LinD", d), N.num("LinT", T), N.num("LinNoise", s2), N.num("LinReps", R), N.num("LinGens", G)
        dr, da = load_run(rep.run_dir), load_run(acc.run_dir)
        rows = []
        bound = theory.linreg_accumulate_bound(d, T, s2)
        for n in sorted({1, 2, 5, 10, G} & set(range(1, G + 1))):
            g = n - 1
            sr, sa = stat(dr, "test_error", g), stat(da, "test_error", g)
            tr = float(theory.linreg_test_error(g, d, T, s2, "replace"))
            ta = float(theory.linreg_test_error(g, d, T, s2, "accumulate"))
            rows.append([m(str(n)), m(num(tr)), m(sim(sr["mean"], sr["lo"], sr["hi"])),
                         m(num(ta)), m(sim(sa["mean"], sa["lo"], sa["hi"]))])
            if n == G:
                self.checks.add("Lin.\\ regression", "replace", n, tr, sr)
                self.checks.add("Lin.\\ regression", "accumulate", n, ta, sa)
                N.num("LinReplaceTheory", tr), N.sim("LinReplaceSim", sr)
                N.num("LinAccTheory", ta), N.sim("LinAccSim", sa)
        self.write("table_linreg.tex", tabular(
            "rrlrl", [m("n"), "closed", "sim. mean [95\\% CI]", "closed", "sim. mean [95\\% CI]"], rows,
            ["", "\\multicolumn{2}{c}{replace}", "\\multicolumn{2}{c}{accumulate}"]))
        N.num("LinBoundTheory", bound)
        accmax = da.groupby("generation")["test_error"].mean()
        N.num("LinAccMaxMean", accmax.max())
        N.num("LinRatioTheory", float(theory.linreg_test_error(G - 1, d, T, s2, "replace")) / bound, 3)

        both = pd.concat([dr.assign(job="replace"), da.assign(job="accumulate")], ignore_index=True)
        both.attrs = {"configs": {"replace": dr.attrs["config"], "accumulate": da.attrs["config"]}}
        fig = plots.metric_curve(both, "test_error", stat="mean", by="job", logy=True)
        ax = fig.axes[0]
        with plots.paper_style():
            ax.axhline(bound, color="0.3", lw=0.8, ls="-.", label=r"bound $\frac{\pi^2}{6}\,\sigma^2 d/(T-d-1)$")
            ax.legend(title="dashed: theory", loc="center right")
        self.save(fig, "fig_linreg")

    # -- (4) categorical / Zipf extinction
    def zipf(self):
        R, G = self.sizes["zipf"]
        res = run(self.runs, "zipf", "experiment=zipf_extinction", f"replicates={R}", f"generations={G}",
                  f"metrics.draws={ZIPF_DRAWS}", "precision=float64")
        df, cfg = load_run(res.run_dir), cfg_of(res)
        K, a, M = cfg["source"]["categories"], cfg["source"]["exponent"], cfg["loop"]["samples"]
        p0 = theory.zipf_probs(K, a)
        N = self.N
        N.num("ZipfK", K), N.num("ZipfExponent", a, 2), N.num("ZipfM", M), N.num("ZipfReps", R), N.num("ZipfGens", G)
        ts = theory.categorical_support_one_fit(p0, M)
        s0 = stat(df, "support", 0)
        N.num("ZipfSupportTheory", ts), N.sim("ZipfSupportSim", s0)
        N.sim("ZipfSupportFinalSim", stat(df, "support", G - 1))
        N.sim("ZipfExtinctMassSim", stat(df, "extinct_mass", G - 1))
        N.text("ZipfPrecisionMode", cfg["precision"])
        tm = stat(df, "tail_mass", G - 1)
        N.sim("ZipfTailMassSim", tm), N.num("ZipfTailMassMedian", tm["median"], 3)
        tg0 = float(theory.categorical_gini_simpson(0, p0, M))
        tg = float(theory.categorical_gini_simpson(G - 1, p0, M))
        gs = stat(df, "gini_simpson", G - 1)
        N.num("ZipfGiniTheory", tg), N.sim("ZipfGiniSim", gs)
        sup = df.pivot(index="generation", columns="replicate", values="support").sort_index().to_numpy()
        N.num("ZipfMonotoneChains", int(np.sum(np.all(np.diff(sup, axis=0) <= 0, axis=0))))
        self.checks.add("Zipf", "support", 1, ts, s0)
        self.checks.add("Zipf", "gini\\_simpson", 1, tg0, stat(df, "gini_simpson", 0))
        self.checks.add("Zipf", "gini\\_simpson", G, tg, gs)
        self.checks.add("Zipf", "tail\\_mass", G, 1.0, tm)  # E[p_n(T)] = p0(T): each p_{n,k} is a martingale
        rows = []
        for n in sorted({1, G // 2, G} - {0}):
            g = n - 1
            cells = [m(str(n))]
            for k in ("support", "extinct_mass", "tail_mass"):
                s = stat(df, k, g)
                cells.append(m(sim(s["mean"], s["lo"], s["hi"])))
            s = stat(df, "gini_simpson", g)
            cells += [m(num(theory.categorical_gini_simpson(g, p0, M))), m(sim(s["mean"], s["lo"], s["hi"]))]
            rows.append(cells)
        self.write("table_zipf.tex", tabular(
            "rlllrl", [m("n"), "support", "extinct\\_mass", "tail\\_mass", "closed", "sim. mean [95\\% CI]"],
            rows, ["", "", "", "", "\\multicolumn{2}{c}{gini\\_simpson}"]))

        fig, ax = figure(2)
        plots.metric_curve(df, "support", stat="mean", ax=ax[0])
        with plots.paper_style():
            ax[0].axhline(ts, color="0.3", ls="-.", lw=0.8, label="theory (one fit)")
            ax[0].legend()
        plots.metric_curve(df, "gini_simpson", stat="mean", ax=ax[1])
        fig.tight_layout()
        self.save(fig, "fig_zipf")
        self.save(plots.rank_frequency(res.run_dir), "fig_zipf_rank")

    # -- (5) fresh real data: a vectorised sweep over the real fraction
    def fresh(self):
        R, G = self.sizes["fresh"]
        values = ",".join(f"{f:g}" for f in FRACTIONS)
        res = run(self.runs, "fresh", f"sweep.loop.real_fraction=[{values}]", "loop.real=fresh",
                  "loop.synthetic=replace", f"replicates={R}", f"generations={G}")
        df, cfg = load_sweep(res.run_dir), cfg_of(res)
        M, g = cfg["loop"]["samples"], G - 1
        N = self.N
        N.num("FreshM", M), N.num("FreshReps", R), N.num("FreshGens", G)
        rows = []
        for f in FRACTIONS:
            a = theory.n_real_of(f, M)
            v = stat(df, "var_ratio", g, **{"loop.real_fraction": f})
            if a == 0:
                tv, xs = float(theory.gaussian_var_ratio(g, M, "mle")), 0.0
            else:
                tv = float(theory.gaussian_fresh_var_ratio(g, M, a, "mle"))
                xs = theory.gaussian_fresh_stationary(M, a, "mle")[0]
            self.checks.add("Fresh real data", f"var\\_ratio, $f={f:g}$", G, tv, v)
            rows.append([m(f"{f:g}"), m(str(a)), m(num(tv)), m(sim(v["mean"], v["lo"], v["hi"])),
                         m(num(v["median"], 3)), m(num(xs))])
            nm = FRACTION_NAMES[f]
            N.num(f"Fresh{nm}Fraction", f, 1)
            N.num(f"Fresh{nm}VarTheory", tv), N.sim(f"Fresh{nm}VarSim", v), N.num(f"Fresh{nm}Stationary", xs)
        self.write("table_fresh.tex", tabular(
            "rrrlrr", ["real fraction $f$", "$n_{\\mathrm{real}}$", "closed", "sim. mean [95\\% CI]", "median",
                       "stationary $x^*$"], rows, ["", "", "\\multicolumn{3}{c}{var\\_ratio at the last generation}", ""]))

        self.save(plots.regimes(df, "var_ratio", by="loop.real_fraction", logy=True, stat="mean"), "fig_fresh")
        self.save(plots.phase_diagram(df, "var_ratio", x="loop.real_fraction"), "fig_fresh_phase")

    # -- (6) optional: log-det drift in d = 10
    def logdet(self):
        size = self.sizes["logdet"]
        if size is None:
            self.write("section_logdet.tex",
                       "% Generated by paper/make_paper.py.\n"
                       "The $d$-dimensional log-determinant drift is run only at full size "
                       "(\\texttt{make -C paper}); this build is a quick one.\n")
            return
        R, G = size
        res = run(self.runs, "logdet", "experiment=gaussian_logdet", f"replicates={R}", f"generations={G}")
        df, cfg = load_run(res.run_dir), cfg_of(res)
        M, d = cfg["loop"]["samples"], cfg["source"]["dim"]
        N = self.N
        N.num("LogdetD", d), N.num("LogdetM", M), N.num("LogdetReps", R), N.num("LogdetGens", G)
        tl = float(theory.gaussian_logdet_ratio(G - 1, M, d, "mle"))
        s = stat(df, "logdet_ratio", G - 1)
        N.num("LogdetPerFitTheory", float(theory.gaussian_logdet_ratio(0, M, d, "mle")))
        N.sim("LogdetPerFitSim", {k: s[k] / G for k in ("mean", "lo", "hi")})
        N.num("LogdetTheory", tl), N.sim("LogdetSim", s)
        self.checks.add("Gaussian $d$-dim.", "logdet\\_ratio", G, tl, s)
        self.save(plots.metric_curve(df, "logdet_ratio", stat="mean"), "fig_logdet")
        self.write("section_logdet.tex", r"""% Generated by paper/make_paper.py.
In $d=\LogdetD$ dimensions ($M=\LogdetM$, \LogdetReps{} chains, \LogdetGens{} generations) the MLE chain's
log-determinant drifts by $\sum_{i=1}^{d}[\psi((M-i)/2)+\ln(2/M)] = \LogdetPerFitTheory$ per fit; the simulator
gives \LogdetPerFitSim{} per fit, and after $n=\LogdetGens$ fits \LogdetSim{} against the closed form
\LogdetTheory{} (Figure~\ref{fig:logdet}).

\begin{figure}[t]
  \centering
  \includegraphics[width=0.6\linewidth]{generated/fig_logdet.pdf}
  \caption{Log-determinant ratio of the fitted covariance to the truth's, $d=\LogdetD$, mean with 95\% band;
  dashed: closed form.}
  \label{fig:logdet}
\end{figure}
""")

    # -- (7) verified self-training: self-improvement or collapse
    def task(self):
        from collapse import config as C

        R, G = self.sizes["task"]
        fprs, shares = TASK_GRID[self.mode]
        cells, g = [], G - 1
        N = self.N
        for fpr in fprs:
            for share in shares:
                over = ("experiment=task_verifier", f"curation.verifier.fpr={fpr:g}", f"loop.real_fraction={share:g}",
                        f"replicates={R}", f"generations={G}")
                res = run(self.runs, f"task_{fpr:g}_{share:g}", *over)
                df = load_run(res.run_dir).assign(fpr=fpr, human_share=share)
                curve = theory.theory_curves(C.compose([*over, *COMMON]), G)["task_accuracy"]
                st = stat(df, "task_accuracy", g)
                self.checks.add("Verified self-training", f"task\_accuracy, fpr ${fpr:g}$, human ${share:g}$", G,
                                float(curve[g]), st)
                cells.append((fpr, share, df, st, float(curve[g])))
        cfg = cfg_of(res)
        grid = pd.concat([c[2] for c in cells], ignore_index=True)
        start = stat(grid, "task_accuracy", 0)
        N.num("TaskProblems", cfg["source"]["problems"]), N.num("TaskAnswers", cfg["source"]["answers"])
        N.num("TaskHuman", cfg["source"]["human_accuracy"], 2), N.num("TaskK", cfg["curation"]["k"])
        N.num("TaskFnr", cfg["curation"]["verifier"]["fnr"], 2)
        N.num("TaskPerProblem", cfg["loop"]["samples"] // cfg["source"]["problems"])
        N.num("TaskBoundary", 1 - cfg["curation"]["verifier"]["fnr"], 2)
        N.num("TaskReps", R), N.num("TaskGens", G), N.num("TaskLast", g), N.sim("TaskStartSim", start)
        pick = {(f, s_): (st, th, df) for f, s_, df, st, th in cells}
        boundary = 1 - cfg["curation"]["verifier"]["fnr"]
        # the weakest verifier below the boundary that still improves (a better one reaches accuracy 1 in every
        # chain: no interval to report), the strongest hallucinator above it
        lo_f, hi_f, held = max(f for f in fprs if f < boundary - 1e-9), max(fprs), max(shares)
        for name, key in (("Good", (lo_f, 0.0)), ("Bad", (hi_f, 0.0)), ("GoodHeld", (lo_f, held)),
                          ("BadHeld", (hi_f, held))):
            st, th, df = pick[key]
            N.sim(f"Task{name}Sim", st), N.num(f"Task{name}Theory", th)
        N.num("TaskGoodFpr", lo_f, 2), N.num("TaskBadFpr", hi_f, 2), N.num("TaskHeldShare", held, 2)
        N.sim("TaskBadLostSim", stat(pick[(hi_f, 0.0)][2], "lost_problems", g))
        N.sim("TaskGoodDiversitySim", stat(pick[(lo_f, 0.0)][2], "answer_diversity", g))
        N.sim("TaskStartDiversitySim", stat(grid, "answer_diversity", 0))
        fig = plots.phase_diagram(grid, "task_accuracy", x="fpr", y="human_share", center=start["mean"],
                                  annotate=True)
        fig.axes[0].set_xlabel("verifier false-positive rate")
        fig.axes[0].set_ylabel("human share of each batch")
        self.save(fig, "fig_task_phase")

    # -- (8) the same question on a text task: a Transformer learning to add
    ARITH_SCORES = {"verifier": "the exact checker", "learned_verifier": "a learned verifier",
                    "model_loglik": "the model's own likelihood"}

    def arithmetic(self):
        """experiment=arithmetic_verifier, one run per score; greedy held-out accuracy in the chains whose
        generation 0 learned the task (>= 0.3), the learned verifier's measured rates, one line per chain."""
        size = self.sizes["arithmetic"]
        if size is None:
            self.write("section_arithmetic.tex",
                       "% Generated by paper/make_paper.py.\n"
                       "The Transformer's text task runs only at full size (\\texttt{make -C paper}, about five "
                       "minutes more); this build is a quick one.\n")
            return
        R, G = size
        runs = {score: load_run(run(self.runs, f"arith_{score}", "experiment=arithmetic_verifier",
                                    "hydra.mode=RUN", f"curation.score={score}", f"replicates={R}",
                                    f"generations={G}").run_dir) for score in self.ARITH_SCORES}
        greedy = {k: df.pivot(index="generation", columns="replicate", values="task_accuracy_greedy")
                  for k, df in runs.items()}
        g0 = greedy["verifier"].iloc[0]
        learned = g0 >= 0.3
        fig, axes = figure(1, size=(3.4, 2.4))
        colors = {"verifier": "tab:blue", "learned_verifier": "tab:red", "model_loglik": "tab:gray"}
        for k, table in greedy.items():
            for i, r in enumerate(table.columns):
                axes[0].plot(table.index, table[r], color=colors[k], lw=1, marker="o", ms=2,
                             label=self.ARITH_SCORES[k] if i == 0 else None)
        axes[0].set_xlabel("generation")
        axes[0].xaxis.get_major_locator().set_params(integer=True)
        axes[0].set_ylabel("greedy accuracy, held-out problems")
        axes[0].legend(fontsize=6)
        self.save(fig, "fig_arithmetic")

        def span(k):
            t = greedy[k]
            return ", ".join(f"{t.iloc[0][r]:.3f}$\\to${t.iloc[-1][r]:.3f}" for r in t.columns[learned.to_numpy()])

        later = runs["learned_verifier"][runs["learned_verifier"].generation > 0]
        fpr, fnr = later["verifier_fpr"].mean(), later["verifier_fnr"].mean()
        failed = ", ".join(f"{v:.2f}" for v in g0[~learned])
        self.write("section_arithmetic.tex", f"""% Generated by paper/make_paper.py.
The same loop on a text task (\\texttt{{experiment=arithmetic\\_verifier}}): a two-layer Transformer learns two-digit
addition from 512 human-solved problems (answers written least significant digit first); every later generation
answers 512 problems drawn at random from the training problems four times, keeps one answer per problem by best-of-4 under a score, accumulates, and
fine-tunes the previous model. Greedy accuracy on 500 held-out problems, generation 0 to {G - 1}, in the
{int(learned.sum())} of {R} chains whose generation 0 learned the task{f" (the others: {failed})" if failed else ""}:
under {self.ARITH_SCORES["verifier"]} {span("verifier")}; under {self.ARITH_SCORES["learned_verifier"]}, a logistic
regression on token positions fit on 200 labelled answers a generation (measured false-positive rate {fpr:.2f},
false-negative rate {fnr:.2f}), {span("learned_verifier")}; under {self.ARITH_SCORES["model_loglik"]}
{span("model_loglik")} (Figure~\\ref{{fig:arith}}). A checker that can check makes the loop improve on problems it
never saw; one that cannot, or the model judging itself, does not.

\\begin{{figure}}[t]
  \\centering
  \\includegraphics[width=0.5\\linewidth]{{generated/fig_arithmetic.pdf}}
  \\caption{{Greedy held-out accuracy of a Transformer's verified self-training on two-digit addition, one line per
  chain and score.}}
  \\label{{fig:arith}}
\\end{{figure}}
""")

    # -- everything
    def build(self):
        t0 = time.time()
        self.gauss()
        self.unbiased()
        self.linreg()
        self.zipf()
        self.fresh()
        self.logdet()
        self.task()
        self.arithmetic()
        self.write("table_checks.tex", self.checks.table())
        N = self.N
        N.num("ChecksTotal", len(self.checks.rows))
        N.num("ChecksInside", sum(r[-1] for r in self.checks.rows))
        N.text("PaperMode", self.mode)
        N.text("CollapseVersion", collapse.__version__)
        import jax
        N.text("JaxVersion", jax.__version__)
        N.num("WallSeconds", round(time.time() - t0))
        self.write("numbers.tex", N.tex())
        self.manifest()

    def manifest(self):
        lines = [f"# Generated by paper/make_paper.py ({self.mode}) on {dt.datetime.now().isoformat(timespec='seconds')}",
                 f"# runs: {self.runs}", "# file  bytes  sha256"]
        for p in sorted(self.written):
            h = hashlib.sha256(p.read_bytes()).hexdigest()
            lines.append(f"{p.relative_to(self.out)}  {p.stat().st_size}  {h}")
        (self.out / "MANIFEST.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


# ----------------------------------------------------------------------------------------------- LaTeX
def build_pdf(out: Path) -> None:
    latexmk = shutil.which("latexmk")
    if latexmk is None:
        print("LaTeX is not installed (latexmk not found): the PDF was not built.")
        return
    default = (HERE / "generated").resolve()
    if out.resolve() == default:
        where = HERE
    else:  # main.tex reads generated/...: build in a folder next to the output that links to it
        where = out.parent / "latex_build"
        where.mkdir(exist_ok=True)
        for f in ("main.tex", "refs.bib"):
            shutil.copy2(HERE / f, where / f)
        link = where / "generated"
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(out.resolve(), target_is_directory=True)
    r = subprocess.run([latexmk, "-pdf", "-interaction=nonstopmode", "-halt-on-error", "main.tex"], cwd=where)
    print(f"PDF: {where / 'main.pdf'}" if r.returncode == 0 else f"latexmk failed (exit {r.returncode}); see "
          f"{where / 'main.log'}")
    if r.returncode:
        raise SystemExit(r.returncode)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes (a smoke test of the whole pipeline)")
    ap.add_argument("--out", type=Path, default=HERE / "generated", help="where numbers, tables, figures go")
    ap.add_argument("--runs", type=Path, default=HERE / "runs", help="parent folder of the run folder")
    args = ap.parse_args(argv)
    mode = "quick" if args.quick else "full"
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    for pat in GENERATED_PATTERNS:  # no stale file from an earlier build survives
        for p in out.glob(pat):
            p.unlink()
    runs = args.runs.resolve() / f"{mode}-{dt.datetime.now().strftime('%Y-%m-%d_%H-%M-%S-%f')}"
    runs.mkdir(parents=True)
    print(f"make_paper ({mode}): runs in {runs}, outputs in {out}", flush=True)
    t = time.time()
    paper = Paper(mode, out, runs)
    paper.build()
    inside = sum(r[-1] for r in paper.checks.rows)
    print(f"wrote {len(paper.written) + 1} files to {out} in {time.time() - t:.1f} s "
          f"({inside} of {len(paper.checks.rows)} closed forms inside the simulator's 95% interval)")
    build_pdf(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
