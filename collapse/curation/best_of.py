"""``curation=best_of``: draw k candidates per kept point and keep the best-scored of each k."""
from __future__ import annotations

from functools import partial

from collapse import checks
from collapse.components import RuleSpec
from collapse.curation import select as sel


def check(cfg) -> None:
    checks.integer(cfg, "curation.k", allowed="must be an integer >= 1 (candidates per kept point)")


def build(c):
    k = int(c.k)
    return (lambda n: k * n), partial(sel.best_of, k=k), None


RULE = RuleSpec("best_of", check, build)
