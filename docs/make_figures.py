"""Regenerate the README's figures from fresh runs: ``.venv/bin/python docs/make_figures.py [--quick]``.

docs/curation_gaussian.png: ``collapse experiment=curation_gaussian`` (every curation rule on one fully synthetic
Gaussian chain), drawn with :func:`collapse.plots.panel`.

docs/task_verifier.png: ``collapse experiment=task_verifier`` (verified self-training over the verifier's
false-positive rate x the human share), drawn with :func:`collapse.plots.phase_diagram` centred on generation 0's
accuracy, the theory's boundary fpr = 1 - fnr marked.
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


if __name__ == "__main__":
    main()
