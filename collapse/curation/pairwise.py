"""``curation=pairwise``: draw two candidates per kept point and keep one by a Bradley-Terry preference
P(a over b) = sigmoid((s_a - s_b) / temperature)."""
from __future__ import annotations

from functools import partial

from collapse import checks
from collapse.components import RuleSpec
from collapse.curation import select as sel


def check(cfg) -> None:
    checks.number(cfg, "curation.temperature", 0.0, lo_open=True, allowed="must be a number > 0")


def build(c):
    return (lambda n: 2 * n), partial(sel.pairwise, temperature=float(c.temperature)), sel.take_pairs


RULE = RuleSpec("pairwise", check, build)
