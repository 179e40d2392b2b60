"""Pictures of generated samples for the run directory: an image grid, or a 2-D scatter, per generation (PNG bytes)."""
from __future__ import annotations

import io
import math

import numpy as np


def _figure(width: float, height: float):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt, plt.figure(figsize=(width, height), dpi=100)


def _png(plt, fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def image_grid_png(images: np.ndarray, shape: tuple[int, int], title: str) -> bytes:
    """A near-square grid of (n, H*W) grey images with values in [0, 1]."""
    n = len(images)
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    H, W = shape
    canvas = np.zeros((rows * (H + 1) + 1, cols * (W + 1) + 1))  # white separators (gray_r)
    for i, img in enumerate(np.clip(images, 0, 1)):
        r, c = divmod(i, cols)
        canvas[1 + r * (H + 1): 1 + r * (H + 1) + H, 1 + c * (W + 1): 1 + c * (W + 1) + W] = img.reshape(H, W)
    plt, fig = _figure(3.2, 3.5)
    ax = fig.add_axes([0.02, 0.02, 0.96, 0.86])
    ax.imshow(canvas, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    fig.suptitle(title, fontsize=9)
    return _png(plt, fig)


def scatter_png(points: np.ndarray, title: str, modes: np.ndarray | None = None, limit: float | None = None) -> bytes:
    """Generated 2-D points (and the true modes as crosses)."""
    plt, fig = _figure(3.5, 3.5)
    ax = fig.add_subplot(111)
    ax.scatter(points[:, 0], points[:, 1], s=2, alpha=0.5, color="tab:blue", label="generated")
    if modes is not None:
        ax.scatter(modes[:, 0], modes[:, 1], marker="x", color="tab:red", s=30, label="true modes")
    if limit is not None:
        ax.set_xlim(-limit, limit)
        ax.set_ylim(-limit, limit)
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return _png(plt, fig)
