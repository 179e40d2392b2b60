"""Finite image sources: loading, the one-time held-out / generation-0 / fresh split, and the ``image`` Source.

A batch of images is an ``(n, D)`` float array of flattened images (row-major, D = H * W) with values in
[0, 1]; ``loop.samples`` counts images.

Data
- :func:`load_digits_data`: scikit-learn's 8 x 8 handwritten digits (1797 images, 10 classes; shipped with the
  package, no download), pixel / 16.
- :func:`load_idx_data`: IDX files (the MNIST format, optionally gzipped): big-endian header
  ``00 00 <type> <ndim>``, ndim uint32 sizes, then the data; unsigned-byte images are divided by 255.
- :func:`load_array_data`: a ``.npy`` array or a ``.npz`` archive (keys ``x`` or ``images``, optional ``y`` or
  ``labels``), read with ``allow_pickle=False``; uint8 images are divided by 255, float images must already lie
  in [0, 1].
Every loader returns ``(x float32 (n, D), y int32 (n,) or None, (H, W))``. Images may be given as
(n, H, W), (n, H, W, 1) or (n, D) with D a perfect square (then H = W = sqrt(D)). Labels are non-negative
integers; ``classes`` = max label + 1.

Split (mirrors the text corpus, :mod:`collapse.text.corpus`): the images are shuffled once with numpy
``default_rng(seed)``; the first ``max(1, round(heldout_share * n))`` are held out (metrics only, never trained
on), the next ``train_units`` are generation 0's real batch, and the rest is the fresh pool that
``loop.real=fresh`` reads in order, never reusing an image.

Shared data of :func:`image_source` (``Source.data``): ``train0`` (T, D), ``fresh`` (F, D), ``heldout`` (the
first ``heldout`` held-out images), and with labels ``heldout_labels`` (int32) and ``real_class_hist``
(classes,) float32, the class shares of the labels outside the held-out split.
"""
from __future__ import annotations

import gzip
import math
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import jax.numpy as jnp
import numpy as np

from collapse.sources.base import Source, ordered_real_batch

# IDX type code -> big-endian numpy dtype
IDX_DTYPES = {0x08: np.dtype(">u1"), 0x09: np.dtype(">i1"), 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
              0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
_GZIP_MAGIC = b"\x1f\x8b"


class ImageDataError(ValueError):
    """Image data that cannot be used: (key, value, what is allowed)."""

    def __init__(self, key: str, value, allowed: str):
        self.key, self.value, self.allowed = key, value, allowed
        super().__init__(f"{key}={value!r}: {allowed}")


# ---------------------------------------------------------------------------------------------- loaders

def load_digits_data() -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """scikit-learn's digits: x float32 (1797, 64) = pixel / 16 in [0, 1], y int32 (1797,) in 0..9, (8, 8)."""
    try:
        from sklearn.datasets import load_digits
    except ModuleNotFoundError:
        raise ImageDataError("source.dataset", "digits", "needs scikit-learn: pip install scikit-learn") from None
    d = load_digits()
    x = (np.asarray(d.data, dtype=np.float64) / 16.0).astype(np.float32)
    return x, np.asarray(d.target, dtype=np.int32), (8, 8)


def read_idx(path, key: str = "source.path") -> np.ndarray:
    """The array of an IDX file (native byte order; gzip data, e.g. ``*.gz``, is decompressed transparently).

    Raises :class:`ImageDataError` (``key``, path, reason) for a missing file, a gzip file that cannot be
    decompressed, or a malformed file: fewer than 4 header bytes, first two bytes not zero, an unknown type
    code, zero dimensions, a truncated size list, or a data length that differs from the product of the sizes.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise ImageDataError(key, str(path), "no such file; give the path of an IDX file (optionally gzipped)")
    raw = p.read_bytes()
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise ImageDataError(key, str(path), f"is a damaged gzip file ({exc})") from None
    elif p.suffix.lower() == ".gz":
        raise ImageDataError(key, str(path), "ends in .gz but is not gzip data")
    if len(raw) < 4:
        raise ImageDataError(key, str(path), f"is not an IDX file: {len(raw)} bytes, shorter than the 4-byte magic")
    if raw[0] != 0 or raw[1] != 0:
        raise ImageDataError(key, str(path), f"is not an IDX file: magic number {raw[:4].hex()} does not start "
                             "with two zero bytes")
    code, ndim = raw[2], raw[3]
    if code not in IDX_DTYPES:
        raise ImageDataError(key, str(path), f"has unknown IDX type code 0x{code:02X}; allowed: "
                             + ", ".join(f"0x{c:02X}" for c in IDX_DTYPES))
    if ndim == 0:
        raise ImageDataError(key, str(path), "has an IDX header with 0 dimensions")
    head = 4 + 4 * ndim
    if len(raw) < head:
        raise ImageDataError(key, str(path), f"is truncated: the header names {ndim} dimensions but the file "
                             f"has {len(raw)} bytes")
    dims = struct.unpack(f">{ndim}I", raw[4:head])
    dt = IDX_DTYPES[code]
    need = math.prod(dims) * dt.itemsize
    if len(raw) - head != need:
        raise ImageDataError(key, str(path), f"holds {len(raw) - head} data bytes but its header {dims} of "
                             f"{dt.name} needs {need}")
    return np.frombuffer(raw, dtype=dt, count=math.prod(dims), offset=head).reshape(dims).astype(dt.newbyteorder("="))


def load_idx_data(images_path, labels_path=None) -> tuple[np.ndarray, Optional[np.ndarray], tuple[int, int]]:
    """Images (and labels) from IDX files: x float32 (n, H*W) in [0, 1] (ubyte / 255; float data must lie in
    [0, 1]), y int32 (n,) or None, (H, W). Image file errors name ``source.images``, label file errors
    ``source.labels``."""
    x, shape = _as_images(read_idx(images_path, "source.images"), "source.images", str(images_path))
    y = None
    if labels_path is not None:
        y = _as_labels(read_idx(labels_path, "source.labels"), len(x), "source.labels", str(labels_path))
    return x, y, shape


def load_array_data(path) -> tuple[np.ndarray, Optional[np.ndarray], tuple[int, int]]:
    """Images (and labels) from ``.npy`` or ``.npz`` (keys ``x`` or ``images``, optional ``y`` or ``labels``;
    ``x`` wins over ``images``, ``y`` over ``labels``), loaded with ``allow_pickle=False``.

    Returns x float32 (n, H*W) in [0, 1], y int32 (n,) or None, (H, W). Raises :class:`ImageDataError`
    naming ``source.path`` for a missing file, an extension other than .npy/.npz, an unreadable file, object
    (or other non-numeric) arrays, a wrong shape, non-finite values, values outside [0, 1] after scaling,
    fewer than 3 images, or labels that are not non-negative integers of one per image.
    """
    key, value = "source.path", str(path)
    p = Path(path).expanduser()
    if not p.is_file():
        raise ImageDataError(key, value, "no such file; give the path of a .npy or .npz file")
    ext = p.suffix.lower()
    if ext not in (".npy", ".npz"):
        raise ImageDataError(key, value, f"has unsupported extension {p.suffix!r}; allowed: .npy, .npz "
                             "(or an IDX file through the idx loader)")
    labels = None
    try:
        if ext == ".npy":
            images = np.load(p, allow_pickle=False)
        else:
            with np.load(p, allow_pickle=False) as z:
                names = list(z.files)
                xk = next((k for k in ("x", "images") if k in names), None)
                if xk is None:
                    raise ImageDataError(key, value, f"has no array named 'x' or 'images' (found {names})")
                images = z[xk]
                yk = next((k for k in ("y", "labels") if k in names), None)
                labels = z[yk] if yk is not None else None
    except ImageDataError:
        raise
    except ValueError as exc:
        if "object arrays" in str(exc).lower():
            raise ImageDataError(key, value, "holds an object array, which is not loaded (allow_pickle=False); "
                                 "save a numeric array") from None
        if "pickled" in str(exc).lower():
            raise ImageDataError(key, value, f"cannot be read as a numpy {ext} file: it has no numpy header "
                                 "(pickled data is not loaded)") from None
        raise ImageDataError(key, value, f"cannot be read as a numpy {ext} file ({exc})") from None
    except (OSError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        raise ImageDataError(key, value, f"cannot be read as a numpy {ext} file ({exc})") from None
    x, shape = _as_images(images, key, value)
    y = _as_labels(labels, len(x), key, value) if labels is not None else None
    return x, y, shape


def _as_images(a: np.ndarray, key: str, value) -> tuple[np.ndarray, tuple[int, int]]:
    """(n, D) float32 in [0, 1] and (H, W) from (n, H, W), (n, H, W, 1) or (n, D = H^2) images."""
    a = np.asarray(a)
    if a.dtype.kind == "O":
        raise ImageDataError(key, value, "holds an object array; save a numeric array")
    if a.dtype.kind not in "biuf":
        raise ImageDataError(key, value, f"holds {a.dtype} values; images must be numeric (uint8 or float)")
    if a.ndim == 4 and a.shape[3] == 1:
        a = a[..., 0]
    if a.ndim == 3:
        shape = (int(a.shape[1]), int(a.shape[2]))
    elif a.ndim == 2:
        side = math.isqrt(a.shape[1])
        if side * side != a.shape[1] or side == 0:
            raise ImageDataError(key, value, f"holds flat images of {a.shape[1]} pixels, not a perfect square; "
                                 "save them as (n, H, W)")
        shape = (side, side)
    else:
        raise ImageDataError(key, value, f"has shape {a.shape}; allowed: (n, H, W), (n, H, W, 1) or (n, D) with "
                             "D a perfect square")
    n = int(a.shape[0])
    if n < 3:
        raise ImageDataError(key, value, f"holds {n} image(s); need at least 3 (held-out, training, fresh)")
    if shape[0] * shape[1] == 0:
        raise ImageDataError(key, value, f"holds empty images of shape {shape}")
    if a.dtype == np.uint8:
        x = a.astype(np.float32) / np.float32(255.0)
    else:
        x = np.asarray(a, dtype=np.float64)
        if not np.all(np.isfinite(x)):
            raise ImageDataError(key, value, f"holds {int(np.sum(~np.isfinite(x)))} non-finite values (NaN or inf)")
    lo, hi = float(x.min()), float(x.max())
    if lo < 0.0 or hi > 1.0:
        raise ImageDataError(key, value, f"has values in [{lo:g}, {hi:g}] ({a.dtype}); allowed: uint8 (divided by "
                             "255) or float values already in [0, 1]")
    return x.reshape(n, shape[0] * shape[1]).astype(np.float32), shape


def _as_labels(y: np.ndarray, n: int, key: str, value) -> np.ndarray:
    y = np.asarray(y)
    if y.dtype.kind not in "biu":
        raise ImageDataError(key, value, f"holds labels of dtype {y.dtype}; labels must be integers")
    if y.ndim != 1 or len(y) != n:
        raise ImageDataError(key, value, f"holds labels of shape {y.shape} for {n} images; need one label per "
                             f"image, shape ({n},)")
    if len(y) and int(y.min()) < 0:
        raise ImageDataError(key, value, f"holds negative label {int(y.min())}; labels must be >= 0")
    return y.astype(np.int32)


# ---------------------------------------------------------------------------------------------- split

@dataclass(frozen=True)
class ImageData:
    """A data set of flattened images (float32 (n_i, D) in [0, 1]) split once (see the module docstring)."""

    heldout: np.ndarray
    train0: np.ndarray
    fresh: np.ndarray
    y_heldout: Optional[np.ndarray]
    y_train0: Optional[np.ndarray]
    y_fresh: Optional[np.ndarray]
    shape: tuple[int, int]
    classes: int  # max label + 1; 0 without labels

    @property
    def total(self) -> int:
        return len(self.heldout) + len(self.train0) + len(self.fresh)


def split_images(x: np.ndarray, y: Optional[np.ndarray], heldout_share: float, train_units: int, seed: int,
                 shape: Optional[tuple[int, int]] = None) -> ImageData:
    """Shuffle once with ``default_rng(seed)`` and split into held-out / generation 0 / fresh pool.

    ``shape`` (H, W) defaults to (sqrt(D), sqrt(D)) for square images. Raises :class:`ImageDataError`
    naming ``loop.samples`` when ``train_units`` exceeds the images outside the held-out share.
    """
    x = np.asarray(x)
    n, D = x.shape
    if shape is None:
        side = math.isqrt(D)
        if side * side != D:
            raise ImageDataError("source.shape", None, f"images of {D} pixels are not square; pass shape=(H, W)")
        shape = (side, side)
    shape = (int(shape[0]), int(shape[1]))
    if shape[0] * shape[1] != D:
        raise ImageDataError("source.shape", shape, f"does not match images of {D} pixels")
    if y is not None and len(y) != n:
        raise ImageDataError("source.labels", len(y), f"labels for {n} images")
    perm = np.random.default_rng(seed).permutation(n)
    x = x[perm]
    y = None if y is None else np.asarray(y, dtype=np.int32)[perm]
    n_held = max(1, int(round(heldout_share * n)))
    rest = n - n_held
    if train_units > rest:
        raise ImageDataError("loop.samples", train_units, f"needs {train_units} training images but the data set "
                             f"has {rest} outside the held-out share ({n} images, {n_held} held out): at most {rest}")
    a, b = n_held, n_held + train_units

    def part(v, lo, hi):
        return None if v is None else v[lo:hi]

    classes = int(y.max()) + 1 if y is not None and n else 0
    return ImageData(x[:a], x[a:b], x[b:], part(y, 0, a), part(y, a, b), part(y, b, n), shape, classes)


# ---------------------------------------------------------------------------------------------- source

def image_source(data: ImageData, heldout: int, dtype=jnp.float32, name: str = "images") -> Source:
    """A finite image source over a split data set. ``heldout``: held-out images used by metrics (the first
    ones of the held-out split; fewer when the split holds fewer); ``name``: the Source's name."""
    dt = np.dtype(dtype)
    H, W = data.shape
    shared = {"train0": data.train0.astype(dt), "fresh": data.fresh.astype(dt),
              "heldout": data.heldout[:heldout].astype(dt)}
    if data.y_heldout is not None:
        shared["heldout_labels"] = data.y_heldout[:heldout].astype(np.int32)
        real = np.concatenate([data.y_train0, data.y_fresh])
        counts = np.bincount(real, minlength=data.classes).astype(np.float64)
        shared["real_class_hist"] = (counts / max(1.0, counts.sum())).astype(np.float32)

    def init(key):
        return {}

    def sample(key, truth, n):
        raise TypeError("the image source is finite: real batches come from real_batch")

    return Source(name, "image", H * W, init, sample, log_prob=None, data=shared, real_batch=ordered_real_batch,
                  info={"shape": (H, W), "classes": data.classes, "images_total": data.total,
                        "images_heldout": len(data.heldout), "images_train0": len(data.train0),
                        "images_fresh": len(data.fresh)})


def check_image_keys(cfg) -> None:
    """source.heldout_share, the key every finite image source owns."""
    from collapse import checks

    checks.number(cfg, "source.heldout_share", 0.0, 1.0, lo_open=True, hi_open=True)


def build_image_source(cfg, load) -> Source:
    """A finite image source from ``load() -> (x, y, shape)``, split once from ``seed``, with a feature classifier
    when it has labels; refuses a fresh pool too small for the run."""
    import dataclasses

    from collapse.engine import n_real_points
    from collapse.errors import ConfigError
    from collapse.run_settings import dtype_of

    s = cfg.source
    try:
        x, y, _shape = load()
        data = split_images(x, y, float(s.heldout_share), cfg.loop.samples, cfg.seed)
    except ImageDataError as exc:
        raise ConfigError(exc.key, exc.value, exc.allowed) from None
    n_real = n_real_points(cfg.loop.real_fraction, cfg.loop.samples)
    need = (cfg.generations - 1) * n_real if cfg.loop.real == "fresh" else 0
    if need > len(data.fresh):
        raise ConfigError("loop.real_fraction", cfg.loop.real_fraction,
                          f"fresh real images are exhausted: generations - 1 = {cfg.generations - 1} batches x {n_real} "
                          f"real images = {need}, but the fresh pool of source={s.name} holds {len(data.fresh)}; lower "
                          "generations, loop.real_fraction or loop.samples, or use loop.real=fixed")
    src = image_source(data, int(cfg.metrics.heldout), dtype_of(cfg), name=s.name)
    if data.classes > 1:
        clf = feature_classifier(s.name, data, cfg.seed)
        src = dataclasses.replace(src, data={**src.data, "classifier": clf.params},
                                  info={**src.info, "classifier_accuracy": clf.accuracy, "classifier": clf})
    return src


def feature_classifier(name: str, data: ImageData, seed: int):
    """The source's feature classifier: trained once per (source, split) in this process and cached."""
    key = (name, data.heldout.shape, data.train0.shape, data.fresh.shape, seed,
           float(data.heldout.sum()), float(data.train0[:10].sum()))
    if key not in _CLASSIFIERS:
        from collapse.metrics.features import train_classifier
        parts = [(data.train0, data.y_train0), (data.fresh, data.y_fresh)]
        x = np.concatenate([p[0] for p in parts if len(p[0])])
        y = np.concatenate([p[1] for p in parts if len(p[0])])
        _CLASSIFIERS[key] = train_classifier(x, y, data.heldout, data.y_heldout, data.classes, seed=seed)
    return _CLASSIFIERS[key]


_CLASSIFIERS: dict = {}
