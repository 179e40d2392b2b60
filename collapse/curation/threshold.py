"""``curation=threshold``: draw ``oversample`` x n candidates and keep the first n whose score is at least the
``quantile`` of the candidates' scores (a verifier / filter)."""
from __future__ import annotations

from functools import partial

from collapse import checks
from collapse.components import RuleSpec
from collapse.curation import select as sel
from collapse.errors import ConfigError


def check(cfg) -> None:
    """oversample >= 1, quantile in [0, 1), and enough passing candidates: oversample (1 - quantile) >= 1."""
    over = checks.number(cfg, "curation.oversample", 1.0, allowed="must be a number >= 1 (candidates per kept point)")
    q = checks.number(cfg, "curation.quantile", 0.0, 1.0, hi_open=True)
    if over * (1.0 - q) < 1.0 - 1e-9:
        raise ConfigError("curation.oversample", over, f"keeps only the {1 - q:.0%} of candidates at or above "
                          f"curation.quantile={q}, fewer than the batch needs; must be >= 1 / (1 - quantile) = "
                          f"{1 / (1 - q):.4g}")


def build(c):
    return (partial(sel.threshold_candidates, oversample=float(c.oversample)),
            partial(sel.threshold, quantile=float(c.quantile)), None)


RULE = RuleSpec("threshold", check, build)
