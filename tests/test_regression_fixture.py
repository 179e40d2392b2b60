"""The restructuring guard: ~20 tiny configs spanning every family, source kind, regime, curation rule and a
vectorised sweep must give the metrics tables recorded in ``tests/regression/tables`` (by
``tests/regression/record.py``, before the plug-in restructuring). Bitwise on the machine and library versions
that recorded them (``fingerprint.json``); elsewhere within float32 rounding carried over a few generations."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import collapse

HERE = Path(__file__).resolve().parent / "regression"
sys.path.insert(0, str(HERE))
from cases import CASES, overrides  # noqa: E402
from fingerprint import fingerprint  # noqa: E402

SAME_MACHINE = json.loads((HERE / "tables" / "fingerprint.json").read_text()) == fingerprint()


@pytest.mark.parametrize("name", sorted(CASES))
def test_metrics_table_unchanged(name):
    want = pd.read_parquet(HERE / "tables" / f"{name}.parquet")
    got = collapse.simulate(*overrides(name)).metrics
    assert list(got.columns) == list(want.columns), name
    assert got.dtypes.to_dict() == want.dtypes.to_dict(), name
    if SAME_MACHINE:
        pd.testing.assert_frame_equal(got, want, check_exact=True)
        return
    for col in want.columns:  # another CPU or library version: rounding may differ, nothing else
        w = want[col].to_numpy(np.float64)
        # float32 rounding carried over generations is relative to the column's scale: a value near 0 (a mean error
        # of 1e-4 in a column reaching 0.3) differs by rounding of the larger terms it was computed from
        scale = float(np.nanmax(np.abs(w))) if np.isfinite(w).any() else 0.0
        np.testing.assert_allclose(got[col].to_numpy(np.float64), w, rtol=1e-3, atol=max(1e-6, 1e-4 * scale),
                                   equal_nan=True, err_msg=f"{name}: {col}")
