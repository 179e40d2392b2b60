"""``source=zipf``: a categorical distribution over ``categories`` with p_k proportional to k^-exponent."""
from __future__ import annotations

from collapse import checks
from collapse.components import SourceSpec
from collapse.run_settings import dtype_of
from collapse.sources import discrete


def check(cfg) -> None:
    checks.integer(cfg, "source.categories", lo=2)
    checks.number(cfg, "source.exponent", 0.0, allowed="must be a number >= 0")


def build(cfg):
    return discrete.zipf(cfg.source.categories, float(cfg.source.exponent), dtype_of(cfg))


SOURCE = SourceSpec("zipf", "discrete", check, build)
