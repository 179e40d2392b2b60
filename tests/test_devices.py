"""The replicate axis is sharded over every device: 4 CPU devices give the numbers of 1 device, for every family,
with the default metrics, and never hang.

Each 4-device run is a subprocess (the device count is fixed when JAX starts) with a timeout, so a deadlock fails
the test instead of stalling the suite. The runs hold at least 2 rows per device: a batch of one row per device
does not exercise the batched kernels (LAPACK under ``vmap``) whose blocking waits once deadlocked 4 devices on 2
cores. Float32 runs are compared at float32 tolerances: a device's batch is smaller than one device's, so XLA may
vectorise a reduction differently (one rounding in the last bits), which small differences of near-equal terms
(``kl_true``) magnify in relative terms."""
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import collapse
from conftest import assert_float32_close, sim
from regression.cases import CASES, TINY

ARGS = ("precision=float64", "generations=6", "replicates=10", "loop.samples=50", "metrics.sample_based=true", "metrics.eval_samples=32",
        "metrics.sample_replicates=3", "metrics.sample_every=2")

SCRIPT = """
import sys, jax, collapse
assert len(jax.devices()) == 4, jax.devices()
res = collapse.simulate(*sys.argv[2:])
res.metrics.to_parquet(sys.argv[1])
"""
FOUR_DEVICE_TIMEOUT_S = 300  # the slowest case below takes ~30 s on 2 cores


def _on_four_devices(tmp_path, args) -> pd.DataFrame:
    out = tmp_path / "four.parquet"
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    try:
        p = subprocess.run([sys.executable, "-c", SCRIPT, str(out), "quiet=true", *args], env=env, capture_output=True,
                           text=True, timeout=FOUR_DEVICE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"a run on 4 devices did not finish in {FOUR_DEVICE_TIMEOUT_S} s (hung): {' '.join(args)}")
    assert p.returncode == 0, p.stderr
    return pd.read_parquet(out)


def test_four_devices_equal_one_device(tmp_path):
    four = _on_four_devices(tmp_path, ARGS)
    one = sim(*ARGS).metrics
    assert list(four.columns) == list(one.columns) and len(four) == len(one) == 10 * 6
    np.testing.assert_array_equal(four[["replicate", "generation"]], one[["replicate", "generation"]])
    np.testing.assert_allclose(four.drop(columns=["replicate", "generation"]).to_numpy(),
                               one.drop(columns=["replicate", "generation"]).to_numpy(), rtol=1e-9, atol=1e-12, equal_nan=True)


def test_the_default_metrics_on_four_devices_finish_and_equal_one_device(tmp_path):
    # The command that hung before (every thread asleep in a batched LAPACK eigvalsh of the vendi score): the
    # default metrics, 20 sample-metric replicates = 5 per device, 64 replicates.
    args = ("source=gaussian", "model=gaussian", "replicates=64", "generations=10", "seed=3")
    four = _on_four_devices(tmp_path, args)
    one = collapse.simulate("quiet=true", *args).metrics
    assert len(one) == 64 * 10 and one["vendi"].notna().sum() == 20 * 2  # generations 0 and 9 of 20 replicates
    assert_float32_close(four, one)


def test_vectorised_sweep_on_four_devices_equals_one_device(tmp_path):
    # 3 points x 5 replicates = 15 rows: padded to 16 over 4 devices, the padding row dropped
    args = ("precision=float64", "generations=5", "replicates=5", "metrics.sample_based=false",
            "sweep.loop.real_fraction=[0,0.2,0.5]")
    four = _on_four_devices(tmp_path, args)
    one = sim(*args).metrics
    assert list(four.columns) == list(one.columns) and len(four) == len(one) == 3 * 5 * 5
    pd.testing.assert_frame_equal(four, one, check_exact=False, rtol=1e-9, atol=1e-12)


# One run per family (and per program shape that loops: curation with a trained detector, decoding of a text task,
# an ecosystem), 8 replicates with sample metrics on all of them: 2 rows per device in both replicate groups.
FAMILY_CASES = {name: CASES[name] for name in (
    "gaussian_stats", "gaussian_samples_fresh", "gmm_em", "kde_student_t", "zipf_categorical", "linear_fixed",
    "markov_ngram", "digits_vae", "ring_diffusion", "curation_importance_detector")}
FAMILY_CASES.update({
    "poisson": ("generations=4", "source=poisson", "model=poisson", "loop.samples=20"),
    "task_answers_verifier": ("generations=3", "source=task", "model=answers", "source.problems=8", "source.answers=5",
                              "curation=best_of", "curation.score=verifier"),
    "arithmetic_transformer": ("generations=2", "source=arithmetic", "model=transformer", "source.digits=1",
                               "metrics.heldout=20", "loop.samples=120", "model.steps=5", "model.layers=1",
                               "model.d_model=16", "model.heads=2", "model.batch=8"),
    "ecosystem": ("generations=4", "loop.samples=20", "loop.models=3", "loop.mixing=0.5"),
})
TWO_PER_DEVICE = ("replicates=8", "metrics.sample_replicates=8")


@pytest.mark.parametrize("case", sorted(FAMILY_CASES))
def test_every_family_on_four_devices_equals_one_device(tmp_path, case):
    dropped = ("replicates=", "metrics.sample_replicates=", *(("metrics.heldout=",) if case.startswith("arith") else ()))
    args = (*[a for a in TINY if not a.startswith(dropped)], *FAMILY_CASES[case], *TWO_PER_DEVICE)
    four = _on_four_devices(tmp_path, args)
    one = collapse.simulate(*args).metrics
    assert one["replicate"].nunique() == 8
    assert_float32_close(four, one)
