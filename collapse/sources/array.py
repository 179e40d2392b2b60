"""``source=array``: images (and optional labels) from a ``.npy`` / ``.npz`` file."""
from __future__ import annotations

from collapse import checks
from collapse.components import SourceSpec
from collapse.sources import images as im


def check(cfg) -> None:
    im.check_image_keys(cfg)
    checks.path(cfg, "source.path")


SOURCE = SourceSpec("array", "image", check,
                    lambda cfg: im.build_image_source(cfg, lambda: im.load_array_data(cfg.source.path)))
