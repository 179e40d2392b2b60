"""The float32 precision guard: say when a run's arithmetic, not its chains, produced a value.

A fully synthetic Gaussian chain shrinks its variance geometrically; after a few thousand generations in float32
the variance reaches the bottom of the format (smallest normal 1.2e-38) and becomes 0, its KL overflows to inf,
and the summaries of those replicates describe rounding. For a continuous source, a replicate is *affected* when
a metric watched by :mod:`collapse.metrics.table` (``guard``) takes, at any kept generation, a value that exact
arithmetic cannot give: ``positive`` metrics a zero, an infinity, or a magnitude below ``TINY`` = 1e-30 or above
``HUGE`` = 1e30; ``finite`` metrics an infinity or a magnitude above ``HUGE``. Float64 runs are not watched
(their range, 1e-308, lasts ~100 times as many generations of the same chain).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from collapse.metrics.table import info

TINY = 1e-30
HUGE = 1e30
SUGGESTION = "precision=float64"


def out_of_range(values: np.ndarray, kind: str) -> np.ndarray:
    """Boolean mask of values exact arithmetic cannot give, for a metric of guard ``kind`` (NaN: not measured)."""
    v = np.asarray(values, np.float64)
    a = np.abs(v)
    bad = np.isinf(v) | (a > HUGE)
    if kind == "positive":
        bad |= a < TINY
    return bad & ~np.isnan(v)


def check(df: pd.DataFrame, precision: str, source_kind: str) -> dict:
    """``{"checked", "replicates", "of", "first_generation", "metrics", "suggestion"}``: how many replicates of
    the run's table reached the edge of float32 (``checked`` False where the guard does not apply)."""
    if precision != "float32" or source_kind != "continuous" or df.empty:
        return {"checked": False}
    watched = [c for c in df.columns if info(c).guard]
    affected = np.zeros(len(df), bool)
    per_metric = {}
    for m in watched:
        bad = out_of_range(df[m].to_numpy(), info(m).guard)
        if bad.any():
            per_metric[m] = int(df.loc[bad, "replicate"].nunique())
            affected |= bad
    out = {"checked": True, "replicates": int(df.loc[affected, "replicate"].nunique()),
           "of": int(df["replicate"].nunique())}
    if affected.any():
        out.update(first_generation=int(df.loc[affected, "generation"].min()), metrics=per_metric,
                   suggestion=SUGGESTION)
    return out


def message(guard: dict) -> str | None:
    """The one line a run prints when replicates were affected (None otherwise)."""
    if not guard.get("replicates"):
        return None
    what = ", ".join(f"{m} ({n})" for m, n in guard["metrics"].items())
    return (f"float32 ran out of range in {guard['replicates']} of {guard['of']} replicates from generation "
            f"{guard['first_generation']} on ({what}): their values there are rounding, not collapse; "
            f"rerun with {guard['suggestion']}")
