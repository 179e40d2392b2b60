"""``source=gaussian``: N(mean, scale^2 I_dim), the closed-form workhorse (exact KL, sufficient statistics)."""
from __future__ import annotations

from collapse import checks
from collapse.components import SourceSpec
from collapse.run_settings import dtype_of
from collapse.sources import continuous


def check(cfg) -> None:
    checks.integer(cfg, "source.dim")
    checks.number(cfg, "source.mean", allowed="must be a finite number")
    checks.number(cfg, "source.scale", 0.0, lo_open=True, allowed="must be a number > 0")


def build(cfg):
    s = cfg.source
    return continuous.gaussian(s.dim, float(s.mean), float(s.scale), float(cfg.metrics.tail_level), dtype_of(cfg))


SOURCE = SourceSpec("gaussian", "continuous", check, build)
