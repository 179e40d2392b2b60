"""``source=gmm``: an equal-weight mixture of ``components`` Gaussians ``separation`` apart."""
from __future__ import annotations

from collapse import checks
from collapse.components import SourceSpec
from collapse.run_settings import dtype_of
from collapse.sources import continuous


def check(cfg) -> None:
    checks.integer(cfg, "source.dim")
    checks.integer(cfg, "source.components")
    checks.number(cfg, "source.separation", 0.0, allowed="must be a number >= 0")


def build(cfg):
    s = cfg.source
    return continuous.gmm(s.dim, s.components, float(s.separation), float(cfg.metrics.tail_level), dtype_of(cfg))


SOURCE = SourceSpec("gmm", "continuous", check, build)
