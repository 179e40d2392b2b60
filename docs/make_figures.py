"""Regenerate the README's figures from fresh runs: ``.venv/bin/python docs/make_figures.py [--quick]``.

docs/curation_gaussian.png: ``collapse experiment=curation_gaussian`` (every curation rule on one fully synthetic
Gaussian chain), drawn with :func:`collapse.plots.panel`.

docs/task_verifier.png: ``collapse experiment=task_verifier`` (verified self-training over the verifier's
false-positive rate x the human share), drawn with :func:`collapse.plots.phase_diagram` centred on generation 0's
accuracy, the theory's boundary fpr = 1 - fnr marked.

docs/arithmetic_verifier.png: ``collapse experiment=arithmetic_verifier`` (a Transformer's verified self-training on
2-digit addition under three scores): greedy held-out accuracy and answer diversity per chain, and the learned
verifier's measured error rates (:func:`arithmetic_panels`). ``--skip-arithmetic`` leaves it (5 minutes).
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
    print("wrote", *out)


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
