"""``source=linear``: y = x^T w + noise with isotropic Gaussian inputs, on a fixed or a fresh design."""
from __future__ import annotations

from collapse import checks, components
from collapse.components import SourceSpec
from collapse.errors import ConfigError
from collapse.run_settings import dtype_of
from collapse.sources import supervised


def check(cfg) -> None:
    """source.dim, noise_var, design; fills ``source.design_size`` (= loop.samples: the batch is the design)."""
    checks.integer(cfg, "source.dim")
    samples = cfg.loop.samples
    if checks.get(cfg, "source.design_size") is None:
        cfg.source.design_size = samples
    t = checks.integer(cfg, "source.design_size")
    d = cfg.source.dim
    if t != samples:
        raise ConfigError("source.design_size", t, f"must equal loop.samples={samples} (the batch is the design)")
    if t < d + 2:
        raise ConfigError("source.design_size", t, f"must be >= source.dim + 2 = {d + 2}")
    checks.number(cfg, "source.noise_var", 0.0, lo_open=True, allowed="must be a number > 0")
    design = checks.choice(cfg, "source.design", ("fixed", "fresh"))
    if design == "fixed" and components.find("curation", cfg.curation).curates:
        raise ConfigError("source.design", "fixed", f"places every synthetic row at a fixed design point, so "
                          f"curation={cfg.curation.name} has no extra candidates to choose from; use source.design=fresh")


def build(cfg):
    s = cfg.source
    return supervised.linear(s.dim, s.design_size, float(s.noise_var), s.design, dtype_of(cfg))


SOURCE = SourceSpec("linear", "supervised", check, build)
