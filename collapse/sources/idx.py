"""``source=idx``: images (and optional labels) from IDX files, the MNIST / Fashion-MNIST format."""
from __future__ import annotations

from collapse import checks
from collapse.components import SourceSpec
from collapse.sources import images as im


def check(cfg) -> None:
    im.check_image_keys(cfg)
    checks.path(cfg, "source.images")
    checks.path(cfg, "source.labels", optional=True)


SOURCE = SourceSpec("idx", "image", check,
                    lambda cfg: im.build_image_source(cfg, lambda: im.load_idx_data(cfg.source.images,
                                                                                    cfg.source.labels)))
