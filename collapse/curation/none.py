"""``curation=none``: keep every drawn point (only ``reward_mean`` and ``accept_rate`` = 1 are reported, so an
uncurated chain sits on the same plots as curated ones)."""
from __future__ import annotations

from collapse.components import RuleSpec

RULE = RuleSpec("none", check=lambda cfg: None, build=None, curates=False)
