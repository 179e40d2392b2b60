"""Regenerate the README's figures from fresh runs: ``.venv/bin/python docs/make_figures.py [--quick]``.

docs/curation_gaussian.png: ``collapse experiment=curation_gaussian`` (every curation rule on one fully synthetic
Gaussian chain), drawn with :func:`collapse.plots.panel`.
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
    print("wrote", *out)


if __name__ == "__main__":
    main()
