"""``curation=importance``: draw ``oversample`` x n candidates and resample n of them with weights
exp(score / temperature) (multinomial or systematic resampling)."""
from __future__ import annotations

from functools import partial

from collapse import checks
from collapse.components import RuleSpec
from collapse.curation import select as sel


def check(cfg) -> None:
    checks.number(cfg, "curation.oversample", 1.0, allowed="must be a number >= 1 (candidates per kept point)")
    checks.number(cfg, "curation.temperature", 0.0, lo_open=True, allowed="must be a number > 0")
    checks.choice(cfg, "curation.resampling", ("multinomial", "systematic"))


def build(c):
    return (partial(sel.threshold_candidates, oversample=float(c.oversample)),
            partial(sel.importance, temperature=float(c.temperature), resampling=str(c.resampling)), None)


RULE = RuleSpec("importance", check, build)
