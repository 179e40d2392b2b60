"""``source=grid``: a ``side`` x ``side`` grid of Gaussians ``spacing`` apart (a 2-D benchmark)."""
from __future__ import annotations

from collapse import checks
from collapse.components import SourceSpec
from collapse.run_settings import dtype_of
from collapse.sources import toy


def check(cfg) -> None:
    checks.integer(cfg, "source.side")
    checks.number(cfg, "source.spacing", 0.0, lo_open=True, allowed="must be a number > 0")
    checks.number(cfg, "source.std", 0.0, lo_open=True, allowed="must be a number > 0")


def build(cfg):
    s = cfg.source
    return toy.grid(s.side, float(s.spacing), float(s.std), float(cfg.metrics.tail_level), dtype_of(cfg))


SOURCE = SourceSpec("grid", "continuous", check, build, traits=("toy_2d",))
