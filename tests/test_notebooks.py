"""The notebooks in notebooks/ run end to end and are committed without outputs.

Each notebook is executed by a Jupyter kernel of this very interpreter (a kernelspec written to a temporary
folder at the front of JUPYTER_PATH, so a user-level ``python3`` kernel of another Python cannot be picked),
with ``COLLAPSE_NOTEBOOK_QUICK=1`` (small sizes: each notebook's first code cell reads it) and a temporary working
directory (its ``runs/`` lands there).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="needs the dev extra: pip install -e '.[dev]'")

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
EXPECTED = ["01_gaussian_collapse.ipynb", "02_tails.ipynb", "03_language.ipynb", "04_images.ipynb",
            "05_sweeps.ipynb", "06_curation.ipynb", "07_self_improvement.ipynb"]
CELL_TIMEOUT_S = 300


def test_the_seven_notebooks():
    assert [p.name for p in NOTEBOOKS] == EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, f"{path.name} has no code cell"
    for i, cell in enumerate(code):
        assert cell.outputs == [], f"{path.name}: code cell {i} has outputs (clear them before committing)"
        assert cell.execution_count is None, f"{path.name}: code cell {i} has an execution count"
    assert "COLLAPSE_NOTEBOOK_QUICK" in code[0].source, f"{path.name}: the first code cell must read the quick switch"


def test_committed_notebooks_are_what_the_generator_writes(tmp_path):
    """notebooks/_make.py is their source: an edit made to an .ipynb alone would be lost at the next rebuild."""
    import subprocess

    subprocess.run([sys.executable, str(NOTEBOOK_DIR / "_make.py"), str(tmp_path)], check=True)
    for path in NOTEBOOKS:
        made = nbformat.read(tmp_path / path.name, as_version=4)
        committed = nbformat.read(path, as_version=4)
        assert [(c.cell_type, c.source) for c in made.cells] == [(c.cell_type, c.source) for c in committed.cells], (
            f"{path.name} differs from what notebooks/_make.py writes: edit _make.py and rerun it")


@pytest.fixture(scope="session")
def kernel_path(tmp_path_factory) -> Path:
    """A JUPYTER_PATH entry holding a ``python3`` kernelspec that runs this interpreter."""
    root = tmp_path_factory.mktemp("jupyter")
    spec = root / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (collapse tests)", "language": "python"}))
    return root


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path, tmp_path, monkeypatch, kernel_path):
    pytest.importorskip("ipykernel", reason="needs the dev extra: pip install -e '.[dev]'")
    nbclient = pytest.importorskip("nbclient", reason="needs the dev extra: pip install -e '.[dev]'")
    monkeypatch.setenv("COLLAPSE_NOTEBOOK_QUICK", "1")
    monkeypatch.setenv("JUPYTER_PATH", str(kernel_path))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel picks its inline backend
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError (with the cell and its traceback) at the first failing cell

    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    errors = [f"{o.ename}: {o.evalue}" for o in outputs if o.output_type == "error"]
    assert not errors, f"{path.name}: error outputs: {errors}"
    figures = [o for o in outputs if "image/png" in o.get("data", {})]
    assert figures, f"{path.name}: no figure (image/png output) was produced"
    assert (tmp_path / "runs").is_dir(), f"{path.name}: its runs/ did not land in the working directory"
