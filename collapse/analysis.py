"""Loading runs back for analysis (``load_run``); aggregation and sweeps arrive with later issues."""
from __future__ import annotations

from collapse.runs import NotARunError, load_run, t_interval

__all__ = ["load_run", "NotARunError", "t_interval"]
