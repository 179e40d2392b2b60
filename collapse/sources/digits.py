"""``source=digits``: the 1,797 labelled 8 x 8 handwritten digits shipped inside scikit-learn
(:func:`collapse.sources.images.load_digits_data`)."""
from __future__ import annotations

from collapse.components import SourceSpec
from collapse.sources import images as im

SOURCE = SourceSpec("digits", "image", im.check_image_keys,
                    lambda cfg: im.build_image_source(cfg, im.load_digits_data))
