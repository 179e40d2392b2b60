"""``source=markov``: a synthetic order-k Markov language with Zipf transitions (exact entropy rate and KL)."""
from __future__ import annotations

from collapse import checks, components
from collapse.components import SourceSpec
from collapse.errors import ConfigError
from collapse.run_settings import prompt_length
from collapse.sources import text as ts


def check(cfg) -> None:
    checks.integer(cfg, "source.vocab", lo=2)
    order = checks.integer(cfg, "source.order")
    checks.number(cfg, "source.exponent", 0.0, allowed="must be a number >= 0")
    if cfg.source.segment <= order:
        raise ConfigError("source.segment", cfg.source.segment, f"must be > source.order={order}")
    if cfg.source.vocab ** order > 2**22:
        raise ConfigError("source.order", order, f"source.vocab^order = {cfg.source.vocab ** order} contexts; "
                          "keep it <= 2^22")


def build(cfg):
    """The chain, with its exact truth for the model's context when the family declares a finite one."""
    s = cfg.source
    family = components.find("model", cfg.model)
    ctx = family.context(cfg) if family.context is not None else -1
    return ts.markov(s.vocab, s.order, float(s.exponent), s.segment, cfg.seed, ctx, prompt_length(cfg))


SOURCE = SourceSpec("markov", "text", check, build)
