"""Shared helpers: run small experiments and compare them with closed forms within Monte-Carlo error."""
from __future__ import annotations

import os
import shutil
import tempfile

import numpy as np
import pytest
from omegaconf import OmegaConf

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # transformers (the parity tests) never reaches for the Hub


def _suite_compile_cache() -> str | None:
    """Point collapse's persistent compilation cache at a folder of this test session only.

    The controller (or a run without xdist) makes a new empty folder before anything imports collapse; its
    xdist workers and every subprocess a test starts (CLI runs, notebook kernels, launchers) inherit
    ``COLLAPSE_CACHE_DIR``, so a program compiled by one test is loaded, not recompiled, by the next that
    builds the same program. The suite therefore starts cold whatever the machine's own cache holds (its
    time is the cold time) and leaves nothing behind (:func:`pytest_unconfigure` removes the folder).
    ``COLLAPSE_TEST_CACHE_DIR=<folder>`` keeps a cache between sessions instead (a developer's warm runs).
    Returns the folder this process owns, if any."""
    keep = os.environ.get("COLLAPSE_TEST_CACHE_DIR")
    if keep:
        os.environ["COLLAPSE_CACHE_DIR"] = keep
        return None
    shared = os.environ.get("COLLAPSE_SUITE_CACHE_DIR")  # set by the controller, inherited by its workers
    if shared and os.path.isdir(shared):
        os.environ["COLLAPSE_CACHE_DIR"] = shared
        return None
    folder = tempfile.mkdtemp(prefix="collapse-test-cache-")
    os.environ["COLLAPSE_CACHE_DIR"] = os.environ["COLLAPSE_SUITE_CACHE_DIR"] = folder
    return folder


_OWNED_CACHE = _suite_compile_cache()
# token ids of corpora under model tokenizers (model=pretrained) go to the suite's folder too, never ~/.cache
os.environ.setdefault("COLLAPSE_TOKEN_CACHE_DIR", os.path.join(os.environ["COLLAPSE_CACHE_DIR"], "tokens"))


def pytest_unconfigure(config):
    if _OWNED_CACHE:
        shutil.rmtree(_OWNED_CACHE, ignore_errors=True)


import collapse  # noqa: E402
from collapse.theory import theory_curves  # noqa: E402

# Small sizes used across tests: sample-based metrics off unless a test needs them, and no kept model draws
# (samples.npz), which a run of >= 64 replicates would draw in a program of their own (one more compile).
FAST = ("metrics.sample_based=false", "metrics.draws=0", "quiet=true")


def assert_refused(tmp_path, args, message: str, generations: int = 3) -> None:
    """The command line refuses ``args`` with one line containing ``message``, exit 2, and no run folder."""
    import subprocess
    import sys
    from pathlib import Path

    cli = str(Path(sys.executable).with_name("collapse"))
    p = subprocess.run([cli, *args, f"generations={generations}", "replicates=2", "quiet=true"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], p.stderr
    assert not (tmp_path / "runs").exists()


def assert_resume_matches(tmp_path, monkeypatch, args, crash_after: int = 2):
    """A run killed after its ``crash_after``-th checkpoint save and resumed with ``collapse resume=...`` writes the
    same metrics as an uninterrupted run; returns the resumed frame."""
    import subprocess
    import sys
    from pathlib import Path

    import pandas as pd

    from collapse import config as C
    from collapse.api import run

    full = run(C.compose(args), run_dir=tmp_path / "full")
    crash_after_saves(monkeypatch, crash_after)
    with pytest.raises(KeyboardInterrupt):
        run(C.compose(args), run_dir=tmp_path / "killed")
    monkeypatch.undo()
    cli = str(Path(sys.executable).with_name("collapse"))
    p = subprocess.run([cli, f"resume={tmp_path / 'killed'}"], cwd=tmp_path, capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == 0 and "resuming from the checkpoint" in p.stderr, p.stderr
    resumed = pd.read_parquet(tmp_path / "killed" / "metrics.parquet")
    pd.testing.assert_frame_equal(resumed, full.metrics, check_dtype=False)
    return resumed


def crash_after_saves(monkeypatch, n: int) -> None:
    """Make the process "die" (KeyboardInterrupt) right after its n-th durable checkpoint save; undo it with
    ``monkeypatch.undo()`` or let the test end."""
    from collapse.checkpoint import Checkpointer

    save, calls = Checkpointer.save, {"n": 0}

    def crashing(self, *a, **kw):
        save(self, *a, **kw)
        calls["n"] += 1
        if calls["n"] == n:
            raise KeyboardInterrupt

    monkeypatch.setattr(Checkpointer, "save", crashing)


def assert_float32_close(four, one) -> None:
    """Equal ids; every metric equal to float32 rounding: |a - b| <= 1e-4 |b| + 1e-5 max|column| (NaN = NaN)."""
    assert list(four.columns) == list(one.columns) and len(four) == len(one)
    np.testing.assert_array_equal(four[["replicate", "generation"]], one[["replicate", "generation"]])
    for name in one.columns.drop(["replicate", "generation"]):
        a, b = four[name].to_numpy(float), one[name].to_numpy(float)
        scale = np.nanmax(np.abs(b)) if np.isfinite(b).any() else 1.0
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * scale, equal_nan=True, err_msg=name)


def sim(*overrides: str):
    return collapse.simulate(*FAST, *overrides)


def by_generation(df, metric):
    """(generations, replicates) matrix of one metric."""
    return df.pivot(index="generation", columns="replicate", values=metric).to_numpy()


def assert_matches_theory(res, metric: str, z: float = 4.0, generations=None):
    """Replicate mean within z standard errors of the closed form at every (or the given) generation."""
    cfg = OmegaConf.to_container(res.config, resolve=True)
    curve = theory_curves(cfg, cfg["generations"])
    assert metric in curve, f"no closed form for {metric}: {sorted(curve)}"
    m = by_generation(res.metrics, metric)
    gens = res.metrics["generation"].unique()
    for i, g in enumerate(gens):
        if generations is not None and g not in generations:
            continue
        vals = m[i]
        mean, se = vals.mean(), vals.std(ddof=1) / np.sqrt(len(vals))
        expected = curve[metric][g]
        assert abs(mean - expected) <= z * se + 1e-9, (
            f"{metric} at generation {g}: simulated {mean:.5g} +- {se:.2g} (SE), theory {expected:.5g}")


@pytest.fixture
def tmp_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path
