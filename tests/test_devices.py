"""The replicate axis is sharded over every device: 4 CPU devices give the numbers of 1 device (float64, so that
the comparison is not blurred by float32 cancellation in small metrics such as kl_true: per-device batches of a
different size may sum in a different order)."""
import os
import subprocess
import sys

import numpy as np
import pandas as pd

from conftest import sim

ARGS = ("precision=float64", "generations=6", "replicates=10", "loop.samples=50", "metrics.sample_based=true", "metrics.eval_samples=32",
        "metrics.sample_replicates=3", "metrics.sample_every=2")

SCRIPT = """
import sys, jax, collapse
assert len(jax.devices()) == 4, jax.devices()
res = collapse.simulate(*sys.argv[2:])
res.metrics.to_parquet(sys.argv[1])
"""


def _on_four_devices(tmp_path, args) -> pd.DataFrame:
    out = tmp_path / "four.parquet"
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    p = subprocess.run([sys.executable, "-c", SCRIPT, str(out), "quiet=true", *args], env=env, capture_output=True,
                       text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    return pd.read_parquet(out)


def test_four_devices_equal_one_device(tmp_path):
    four = _on_four_devices(tmp_path, ARGS)
    one = sim(*ARGS).metrics
    assert list(four.columns) == list(one.columns) and len(four) == len(one) == 10 * 6
    np.testing.assert_array_equal(four[["replicate", "generation"]], one[["replicate", "generation"]])
    np.testing.assert_allclose(four.drop(columns=["replicate", "generation"]).to_numpy(),
                               one.drop(columns=["replicate", "generation"]).to_numpy(), rtol=1e-9, atol=1e-12, equal_nan=True)


def test_vectorised_sweep_on_four_devices_equals_one_device(tmp_path):
    # 3 points x 5 replicates = 15 rows: padded to 16 over 4 devices, the padding row dropped
    args = ("precision=float64", "generations=5", "replicates=5", "metrics.sample_based=false",
            "sweep.loop.real_fraction=[0,0.2,0.5]")
    four = _on_four_devices(tmp_path, args)
    one = sim(*args).metrics
    assert list(four.columns) == list(one.columns) and len(four) == len(one) == 3 * 5 * 5
    pd.testing.assert_frame_equal(four, one, check_exact=False, rtol=1e-9, atol=1e-12)
