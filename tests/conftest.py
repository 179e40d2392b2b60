"""Shared helpers: run small experiments and compare them with closed forms within Monte-Carlo error."""
from __future__ import annotations

import os

import numpy as np
import pytest
from omegaconf import OmegaConf

os.environ.setdefault("WANDB_MODE", "offline")

import collapse  # noqa: E402
from collapse.theory import theory_curves  # noqa: E402

# Small sizes used across tests: sample-based metrics off unless a test needs them.
FAST = ("metrics.sample_based=false", "quiet=true")


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
