"""Generation 0 of the neural defaults is close to the real-vs-real reference, and the reference itself is right.

The reference (``summary["reference"]``, :mod:`collapse.metrics.reference`) is each sample metric computed
between two independent real sets of the run's sizes. Tolerances, per family (README "Images and 2-D toys",
"Text"), on the mean over the replicates of generation 0:

- diffusion (ring, digits): precision, recall, coverage (and mode_quality on the ring) within DIFFUSION_TOL;
- vae (digits): precision and coverage within VAE_TOL, class_tv at most VAE_TOL above its reference, and recall
  at least VAE_MIN_RECALL (decoder means are smooth images: a VAE's recall stays far below the reference);
- transformer (text, the text_transformer preset's data and steps): held-out perplexity below the default
  character trigram's on the same training text, token_entropy within TEXT_ENTROPY_TOL and distinct_4 within
  TEXT_DISTINCT_TOL of real text's.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.spatial import cKDTree

import collapse
from collapse.metrics.reference import MAX_PAIRS

DIFFUSION_TOL = 0.12
VAE_TOL = 0.1
VAE_MIN_RECALL = 0.45
TEXT_ENTROPY_TOL = 0.05
TEXT_DISTINCT_TOL = 0.15


def _gen0(res) -> dict:
    """Mean over replicates of every metric at generation 0."""
    df = res.metrics
    return df[df["generation"] == 0].drop(columns=["replicate", "generation"]).mean().to_dict()


def _close(res, names, tol):
    g0, ref = _gen0(res), res.summary["reference"]
    far = {n: (round(g0[n], 3), round(ref[n], 3)) for n in names if not abs(g0[n] - ref[n]) <= tol}
    assert not far, f"generation 0 vs reference farther than {tol}: {far}"
    return g0, ref


def test_diffusion_ring_gen0_near_reference():
    res = collapse.simulate("source=ring", "model=diffusion", "generations=1", "replicates=2")
    _close(res, ("precision", "recall", "coverage", "mode_quality"), DIFFUSION_TOL)


def test_diffusion_digits_gen0_near_reference():
    res = collapse.simulate("source=digits", "model=diffusion", "generations=1", "replicates=2")
    _close(res, ("precision", "recall", "coverage"), DIFFUSION_TOL)


def test_vae_digits_gen0_near_reference():
    res = collapse.simulate("source=digits", "model=vae", "generations=1", "replicates=2")
    g0, ref = _close(res, ("precision", "coverage"), VAE_TOL)
    assert g0["class_tv"] <= ref["class_tv"] + VAE_TOL
    assert g0["recall"] >= VAE_MIN_RECALL


def test_transformer_text_gen0_beats_trigram_and_matches_real_text():
    res = collapse.simulate("experiment=text_transformer", "generations=1", "replicates=1")
    samples = res.config.loop.samples
    tri = collapse.simulate("source=text", "model=ngram", f"loop.samples={samples}", "generations=1", "replicates=1")
    g0, ref = _gen0(res), res.summary["reference"]
    assert g0["ppl_real"] < _gen0(tri)["ppl_real"]
    assert abs(g0["token_entropy"] - ref["token_entropy"]) <= TEXT_ENTROPY_TOL
    assert abs(g0["distinct_4"] - ref["distinct_4"]) <= TEXT_DISTINCT_TOL


# ------------------------------------------------------------------------------ the reference itself


def _knn_radius(x: np.ndarray, k: int) -> np.ndarray:
    """Distance of each row to its k-th nearest other row (row itself excluded)."""
    return cKDTree(x).query(x, k + 1)[0][:, k]


def _precision_recall_np(real: np.ndarray, fake: np.ndarray, k: int) -> tuple[float, float]:
    """Kynkaanniemi et al.'s k-NN precision and recall, by k-d tree (independent of the JAX code)."""
    r_real, r_fake = _knn_radius(real, k), _knn_radius(fake, k)
    d = np.sqrt(((fake[:, None, :] - real[None, :, :]) ** 2).sum(-1))  # (E, H)
    precision = np.mean((d <= r_real[None, :]).any(1))
    recall = np.mean((d <= r_fake[:, None]).any(0))
    return float(precision), float(recall)


def test_reference_in_summary_and_near_its_expectation(tmp_path):
    n, k, dim = 256, 3, 3
    res = collapse.simulate("source=gaussian", f"source.dim={dim}", "generations=2", "replicates=4",
                            f"metrics.eval_samples={n}", f"metrics.knn_k={k}", run_dir=tmp_path / "run")
    summary = json.loads((res.run_dir / "summary.json").read_text())
    assert set(summary["reference"]) == {"precision", "recall", "density", "coverage", "vendi", "tail_index"}
    assert "real vs real" in summary["reference_method"]
    pairs = min(4, MAX_PAIRS)  # the run's replicates, capped
    rng = np.random.default_rng(1)
    draws = np.array([_precision_recall_np(rng.standard_normal((n, dim)), rng.standard_normal((n, dim)), k)
                      for _ in range(200)])
    mean, sd = draws.mean(0), draws.std(0, ddof=1)
    for i, name in enumerate(("precision", "recall")):
        # the run's value is a mean over `pairs` pairs: 4 standard errors of it, plus the NumPy mean's own error
        tol = 4 * sd[i] / np.sqrt(pairs) + 4 * sd[i] / np.sqrt(len(draws))
        assert abs(summary["reference"][name] - mean[i]) <= tol, (name, summary["reference"][name], mean[i], tol)
    assert 0.9 < summary["reference"]["density"] < 1.1  # E[density] = 1 for identical laws


def test_reference_of_a_sweep_and_none_without_sample_metrics():
    res = collapse.simulate("source=gaussian", "generations=2", "replicates=2", "sweep.loop.real_fraction=[0,0.5]")
    assert {"precision", "recall"} <= set(res.summary["reference"])
    res = collapse.simulate("source=zipf", "model=categorical", "generations=2", "replicates=2")
    assert "reference" not in res.summary
