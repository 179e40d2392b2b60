"""``source=student_t``: a multivariate Student-t with ``df`` degrees of freedom (heavy tails)."""
from __future__ import annotations

from collapse import checks
from collapse.components import SourceSpec
from collapse.run_settings import dtype_of
from collapse.sources import continuous


def check(cfg) -> None:
    checks.integer(cfg, "source.dim")
    checks.number(cfg, "source.df", 0.0, lo_open=True, allowed="must be a number > 0")


def build(cfg):
    s = cfg.source
    return continuous.student_t(s.dim, float(s.df), float(cfg.metrics.tail_level), dtype_of(cfg))


SOURCE = SourceSpec("student_t", "continuous", check, build)
