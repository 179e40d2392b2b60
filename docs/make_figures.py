"""Regenerate the README's figures from fresh runs: ``.venv/bin/python docs/make_figures.py [--quick]``.

docs/curation_gaussian.png: ``collapse experiment=curation_gaussian`` (every curation rule on one fully synthetic
Gaussian chain), drawn with :func:`collapse.plots.panel`.

docs/task_verifier.png: ``collapse experiment=task_verifier`` (verified self-training over the verifier's
false-positive rate x the human share), drawn with :func:`collapse.plots.phase_diagram` centred on generation 0's
accuracy, the theory's boundary fpr = 1 - fnr marked.

docs/arithmetic_verifier.png: ``collapse experiment=arithmetic_verifier`` (a Transformer's verified self-training on
2-digit addition under three scores): greedy held-out accuracy and answer diversity per chain, and the learned
verifier's measured error rates (:func:`arithmetic_panels`). ``--skip-arithmetic`` leaves it (5 minutes).

docs/literature_loops.png: ``collapse experiment=golden_ratio_weighting`` (the stationary squared mean error against
the real weight w, beside theory.gaussian_weighted_stationary and the known-variance form) and
``collapse experiment=human_data_dwindles`` (var_ratio under a falling human share, beside the schedule's exact
recursion): :func:`literature_panels`.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny runs (checks the script, not the figure)")
    p.add_argument("--out", type=Path, default=HERE)
    p.add_argument("--skip-arithmetic", action="store_true", help="do not rerun experiment=arithmetic_verifier")
    a = p.parse_args()
    import matplotlib
    matplotlib.use("Agg")
    from collapse import plots
    from collapse.analysis import load_sweep

    size = ["generations=4", "replicates=4", "metrics.sample_based=false"] if a.quick else []
    with tempfile.TemporaryDirectory() as tmp:
        cli = str(Path(sys.executable).parent / "collapse")
        subprocess.run([cli, "experiment=curation_gaussian", *size, f"hydra.sweep.dir={tmp}/cur", "quiet=true"],
                       check=True, stdout=subprocess.DEVNULL)
        fig = plots.panel(load_sweep(f"{tmp}/cur"), by="curation")
        out = plots.save(fig, a.out / "curation_gaussian", formats=("png",))
        tsize = ["generations=4", "replicates=4"] if a.quick else []
        subprocess.run([cli, "experiment=task_verifier", *tsize, f"hydra.sweep.dir={tmp}/task", "quiet=true"],
                       check=True, stdout=subprocess.DEVNULL)
        out += task_phase(load_sweep(f"{tmp}/task"), a.out / "task_verifier")
        if not a.skip_arithmetic:
            asize = ["generations=2", "replicates=2", "model.steps=20"] if a.quick else []
            subprocess.run([cli, "experiment=arithmetic_verifier", *asize, f"hydra.sweep.dir={tmp}/arith",
                            "quiet=true"], check=True, stdout=subprocess.DEVNULL)
            out += arithmetic_panels(load_sweep(f"{tmp}/arith"), a.out / "arithmetic_verifier")
        lsize = ["generations=20", "replicates=50"] if a.quick else []
        runs = {}
        for preset in ("golden_ratio_weighting", "human_data_dwindles"):
            subprocess.run([cli, f"experiment={preset}", *lsize, f"hydra.run.dir={tmp}/{preset}", "quiet=true"],
                           check=True, stdout=subprocess.DEVNULL)
            runs[preset] = _load(Path(tmp) / preset)
        out += literature_panels(runs, a.out / "literature_loops")
    print("wrote", *out)


def _load(run_dir: Path):
    """(metrics table, config) of a run folder."""
    import pandas as pd
    from omegaconf import OmegaConf

    return pd.read_parquet(run_dir / "metrics.parquet"), OmegaConf.to_container(OmegaConf.load(run_dir / "config.yaml"))


def literature_panels(runs: dict, path: Path) -> list[Path]:
    """Two panels: (a) the last generation's squared mean error against loop.real_weight (mean +- 2 SE) with the
    exact stationary curve and the known-variance form, the golden ratio marked; (b) var_ratio (mean +- 2 SE, and
    the median) under the human_data_dwindles schedule beside its exact recursion, the human share on a second axis."""
    import matplotlib.pyplot as plt
    import numpy as np

    from collapse import plots, schedules, theory

    with plots.paper_style():
        fig, (ax, bx) = plt.subplots(1, 2, figsize=(7.0, 2.6), constrained_layout=True)
    df, cfg = runs["golden_ratio_weighting"]
    last = df[df["generation"] == df["generation"].max()]
    stats = last.groupby("loop.real_weight")["mean_err"].agg(["mean", "sem"]).sort_index()
    M = cfg["loop"]["samples"]
    a = theory.n_real_of(cfg["loop"]["real_fraction"], M)
    w = np.linspace(0.04, 1.0, 300)
    ax.plot(w, [theory.gaussian_weighted_stationary(M, a, v)[1] for v in w], color="black", lw=1,
            label="exact recursion (variance refit)")
    ax.plot(w, [theory.weighted_mean_err_known_var(a, M - a, v) for v in w], color="gray", lw=1, ls=":",
            label="variance known")
    ax.errorbar(stats.index, stats["mean"], yerr=2 * stats["sem"], fmt="o", ms=3, color="tab:blue", capsize=2,
                label=f"simulated, generation {int(last.generation.iloc[0])} (±2 SE)")
    ax.axvline(theory.optimal_real_weight(a, M - a), color="tab:orange", lw=1, ls="--", label="w* = 0.618")
    ax.set_yscale("log")
    ax.set_xlabel(f"real weight w ({a} real + {M - a} synthetic points a batch)")
    ax.set_ylabel("stationary squared mean error")
    ax.legend(fontsize=5.5)
    ax.set_title("(a) weighting the real data (He et al. 2025)", fontsize=8)

    df, cfg = runs["human_data_dwindles"]
    G = cfg["generations"]
    curve = theory.theory_curves(cfg, G)["var_ratio"]
    by = df.groupby("generation")["var_ratio"]
    g = np.asarray(sorted(df["generation"].unique()))
    mean, sem, med = by.mean().loc[g], by.sem().loc[g], by.median().loc[g]
    bx.fill_between(g, mean - 2 * sem, mean + 2 * sem, color="tab:blue", alpha=0.25, lw=0)
    bx.plot(g, mean, color="tab:blue", lw=1, label="simulated mean (±2 SE)")
    bx.plot(g, med, color="tab:blue", lw=1, ls="--", label="simulated median")
    bx.plot(np.arange(G), curve, color="black", lw=1, ls=":", label="exact recursion")
    bx.set_xlabel("generation")
    bx.set_ylabel("variance ratio")
    bx.set_ylim(0, 1.1)
    share = schedules.values("loop.real_fraction", cfg["loop"]["real_fraction"], G)
    sx = bx.twinx()
    sx.plot(np.arange(1, G), share[1:], color="tab:green", lw=1)
    sx.set_ylabel("human share of each batch", color="tab:green", fontsize=7)
    sx.set_ylim(0, 0.55)
    sx.tick_params(labelsize=6, colors="tab:green")
    bx.legend(fontsize=5.5, loc="lower left")
    bx.set_title("(b) human data dwindle (logistic schedule)", fontsize=8)
    return plots.save(fig, path, formats=("png",))


def task_phase(df, path: Path) -> list[Path]:
    """Final task accuracy over fpr x human share, red where it fell below generation 0's, blue where it rose."""
    import numpy as np

    from collapse import plots

    fpr, share = "curation.verifier.fpr", "loop.real_fraction"
    start = float(df[df["generation"] == 0]["task_accuracy"].mean())
    fig = plots.phase_diagram(df, "task_accuracy", x=fpr, y=share, center=start, annotate=True)
    ax = fig.axes[0]
    xs = np.sort(df[fpr].unique())
    fnr = 0.2  # the preset's curation.verifier.fnr
    boundary = np.interp(1 - fnr, xs, np.arange(len(xs)))
    ax.axvline(boundary, color="black", lw=1, ls="--")
    ax.set_xlabel("verifier false-positive rate (fnr = 0.2; dashed: fpr = 1 - fnr)")
    ax.set_ylabel("human share of each batch")
    ax.set_title(f"task accuracy at generation {int(df['generation'].max())} (generation 0: {start:.2f})", fontsize=8)
    return plots.save(fig, path, formats=("png",))


SCORES = {"verifier": ("exact checker", "tab:blue"), "learned_verifier": ("learned verifier", "tab:red"),
          "model_loglik": ("model's own likelihood", "tab:gray")}


def arithmetic_panels(df, path: Path) -> list[Path]:
    """Three panels over generations, one thin line per chain, coloured by curation.score: greedy accuracy on the
    held-out problems, answer diversity, and the measured fpr (solid) / fnr (dashed) of the two verifiers."""
    import matplotlib.pyplot as plt

    from collapse import plots

    with plots.paper_style():
        fig, axes = plt.subplots(1, 3, figsize=(7.0, 2.4), constrained_layout=True)
    for score, (label, color) in SCORES.items():
        part = df[df["curation.score"] == score]
        for r, chain in part.groupby("replicate"):
            chain = chain.sort_values("generation")
            first = r == part["replicate"].min()
            axes[0].plot(chain.generation, chain.task_accuracy_greedy, color=color, lw=1, marker="o", ms=2,
                         label=label if first else None)
            axes[1].plot(chain.generation, chain.answer_diversity, color=color, lw=1, marker="o", ms=2)
            if score != "model_loglik":
                later = chain[chain.generation > 0]
                axes[2].plot(later.generation, later.verifier_fpr, color=color, lw=1, marker="o", ms=2,
                             label=f"{label}: fpr" if first else None)
                axes[2].plot(later.generation, later.verifier_fnr, color=color, lw=1, ls="--", marker="o", ms=2,
                             label=f"{label}: fnr" if first else None)
    axes[0].set_ylabel("greedy accuracy, held-out problems")
    axes[1].set_ylabel("distinct answers of 8 draws")
    axes[2].set_ylabel("measured verifier error rate")
    axes[2].set_ylim(-0.03, 1.0)
    for ax in axes:
        ax.set_xlabel("generation")
        ax.xaxis.get_major_locator().set_params(integer=True)
    axes[0].legend(fontsize=6, loc="center right")
    axes[2].legend(fontsize=5.5, loc="upper right")
    fig.suptitle("Transformer on 2-digit addition: best-of-4 answers to random training problems, accumulated", fontsize=8)
    return plots.save(fig, path, formats=("png",))


if __name__ == "__main__":
    main()
