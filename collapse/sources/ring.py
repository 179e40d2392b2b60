"""``source=ring``: ``modes`` Gaussians of std ``std`` evenly spaced on a circle of ``radius`` (a 2-D benchmark)."""
from __future__ import annotations

from collapse import checks
from collapse.components import SourceSpec
from collapse.run_settings import dtype_of
from collapse.sources import toy


def check(cfg) -> None:
    checks.integer(cfg, "source.modes")
    checks.number(cfg, "source.radius", 0.0, lo_open=True, allowed="must be a number > 0")
    checks.number(cfg, "source.std", 0.0, lo_open=True, allowed="must be a number > 0")


def build(cfg):
    s = cfg.source
    return toy.ring(s.modes, float(s.radius), float(s.std), float(cfg.metrics.tail_level), dtype_of(cfg))


SOURCE = SourceSpec("ring", "continuous", check, build, traits=("toy_2d",))
