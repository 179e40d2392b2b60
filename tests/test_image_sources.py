"""2-D toy sources (ring, grid) and finite image sources: exact moments and densities against closed forms and
sampling error, the tail quantile, IDX / numpy loading and every loader error, digits, the split and the
in-order fresh pool."""
import gzip
import math
import struct

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats as sps

from collapse.sources import images as im
from collapse.sources import toy
from collapse.sources.images import ImageDataError

KEY = jax.random.key(0)


def _draw(src, n, seed=1):
    truth = src.init(KEY)
    x = np.asarray(jax.jit(src.sample, static_argnums=2)(jax.random.key(seed), truth, n), np.float64)
    return truth, x


# --------------------------------------------------------------------------------------------- toy sources

def test_toy_truth_holds_closed_form_moments_modes_and_info():
    r = toy.ring()
    t = {k: np.asarray(v, np.float64) for k, v in r.init(KEY).items()}
    assert (r.kind, r.dim, r.info, r.log_prob is not None) == ("continuous", 2, {"modes": 8}, True)
    assert t["modes"].shape == (8, 2) and t["mode_std"].shape == () and t["tail_q"].shape == ()
    np.testing.assert_allclose(np.hypot(t["modes"][:, 0], t["modes"][:, 1]), 2.0, rtol=1e-6)
    np.testing.assert_allclose(t["modes"][2], [0.0, 2.0], atol=1e-6)  # angle 2 pi * 2 / 8
    np.testing.assert_allclose(t["mean"], 0.0, atol=1e-7)
    np.testing.assert_allclose(t["cov"], (2.0**2 / 2 + 0.05**2) * np.eye(2), rtol=1e-6, atol=1e-7)
    assert float(t["mode_std"]) == pytest.approx(0.05)

    g = toy.grid()
    t = {k: np.asarray(v, np.float64) for k, v in g.init(KEY).items()}
    assert g.info == {"modes": 25} and t["modes"].shape == (25, 2)
    assert sorted(set(t["modes"][:, 0].round(6))) == [-2.0, -1.0, 0.0, 1.0, 2.0]
    np.testing.assert_allclose(t["cov"], (0.05**2 + 1.0 * (25 - 1) / 12) * np.eye(2), rtol=1e-6)
    t4 = toy.grid(side=4, spacing=0.5, std=0.2).init(KEY)  # even side: modes at +-0.25, +-0.75
    assert sorted(set(np.asarray(t4["modes"])[:, 1].round(6))) == [-0.75, -0.25, 0.25, 0.75]
    np.testing.assert_allclose(t4["cov"], (0.2**2 + 0.25 * 15 / 12) * np.eye(2), rtol=1e-6)
    t2 = toy.ring(modes=2, radius=1.0, std=0.1).init(KEY)  # two modes: all spread on the x axis
    np.testing.assert_allclose(t2["cov"], np.diag([1.0 + 0.01, 0.01]), rtol=1e-6, atol=1e-8)
    assert toy.ring(dtype=jnp.float32).init(KEY)["cov"].dtype == jnp.float32


@pytest.mark.parametrize("src", [toy.ring(), toy.grid(), toy.ring(modes=3, radius=0.5, std=0.4),
                                 toy.grid(side=2, spacing=0.3, std=0.25)], ids=["ring", "grid", "ring3", "grid2"])
def test_toy_sample_moments_and_mode_shares_match_the_truth(src):
    """Sample mean / covariance within 4 standard errors of the exact moments; component shares equal."""
    truth, x = _draw(src, 200_000)
    n = len(x)
    mean, cov = np.asarray(truth["mean"], np.float64), np.asarray(truth["cov"], np.float64)
    assert np.all(np.abs(x.mean(0) - mean) <= 4 * np.sqrt(np.diag(cov) / n))
    z = x - mean
    for i in range(2):
        for j in range(2):
            prod = z[:, i] * z[:, j]
            assert abs(prod.mean() - cov[i, j]) <= 4 * prod.std() / math.sqrt(n) + 1e-7, (i, j)
    if float(truth["mode_std"]) < 0.1:  # well separated: the nearest mode is the component
        modes = np.asarray(truth["modes"], np.float64)
        nearest = np.argmin(((x[:, None] - modes[None]) ** 2).sum(-1), axis=1)
        counts = np.bincount(nearest, minlength=len(modes))
        assert sps.chisquare(counts).pvalue > 1e-4


@pytest.mark.parametrize("src", [toy.ring(), toy.grid(), toy.ring(modes=3, radius=0.5, std=0.4)],
                         ids=["ring", "grid", "ring3"])
def test_toy_log_prob_normalises_and_equals_the_mixture_density(src):
    truth = src.init(KEY)
    modes, s = np.asarray(truth["modes"], np.float64), float(truth["mode_std"])
    lo, hi = modes.min() - 10 * s, modes.max() + 10 * s
    h = s / 8  # midpoint rule: spectrally accurate for Gaussians at this spacing
    c = np.arange(lo + h / 2, hi, h)
    gx, gy = np.meshgrid(c, c, indexing="ij")
    pts = jnp.asarray(np.stack([gx.ravel(), gy.ravel()], 1), jnp.float32)
    lp = np.asarray(jax.jit(src.log_prob)(truth, pts), np.float64)
    assert abs(np.exp(lp).sum() * h * h - 1.0) < 1e-4
    x = np.random.default_rng(3).normal(scale=1.5, size=(50, 2))
    ref = sps.multivariate_normal(np.zeros(2), s * s * np.eye(2)).logpdf(x[:, None, :] - modes[None])
    ref = np.logaddexp.reduce(ref, axis=1) - math.log(len(modes))
    got = np.asarray(src.log_prob(truth, jnp.asarray(x, jnp.float32)), np.float64)
    np.testing.assert_allclose(got, ref, rtol=2e-5, atol=1e-4)  # float32 log-densities down to ~ -1e4


@pytest.mark.parametrize("src,alpha", [(toy.ring(), 0.01), (toy.grid(), 0.01),
                                       (toy.ring(modes=3, radius=0.5, std=0.4, alpha=0.1), 0.1)],
                         ids=["ring", "grid", "ring3-alpha0.1"])
def test_toy_tail_q_is_the_alpha_quantile_of_log_p(src, alpha):
    """P(log p(X) < tail_q) = alpha within sampling error (fresh JAX draws + the 10^6-draw estimate)."""
    assert toy.TAIL_DRAWS >= 10**6
    truth, x = _draw(src, 400_000, seed=7)
    lp = np.asarray(src.log_prob(truth, jnp.asarray(x, jnp.float32)))
    share = np.mean(lp < float(truth["tail_q"]))
    se = math.sqrt(alpha * (1 - alpha) / len(x) + alpha * (1 - alpha) / toy.TAIL_DRAWS)
    assert abs(share - alpha) <= 4 * se, (share, alpha, se)


def test_toy_tail_q_tends_to_the_chi2_closed_form_when_modes_are_separated():
    """Separated modes: log p = -log K - log(2 pi s^2) - r^2 / (2 s^2), r^2 / s^2 ~ chi2_2 = Exp(1/2), so
    q_alpha = -log K - log(2 pi s^2) + log alpha; the 10^6-draw estimate's SE is ~ sqrt((1-a)/(a N)) = 0.01."""
    for src, K in ((toy.ring(), 8), (toy.grid(), 25)):
        closed = -math.log(K) - math.log(2 * math.pi * 0.05**2) + math.log(0.01)
        assert float(src.init(KEY)["tail_q"]) == pytest.approx(closed, abs=0.04)


def test_toy_sources_run_under_vmap_over_replicates():
    src = toy.grid(side=3)
    truth = jax.vmap(src.init)(jax.random.split(KEY, 3))
    x = jax.vmap(lambda k, t: src.sample(k, t, 16))(jax.random.split(KEY, 3), truth)
    lp = jax.vmap(src.log_prob)(truth, x)
    assert x.shape == (3, 16, 2) and lp.shape == (3, 16) and bool(jnp.all(jnp.isfinite(lp)))


@pytest.mark.parametrize("bad", [dict(modes=0), dict(radius=0.0), dict(std=-1.0), dict(alpha=1.0)])
def test_toy_rejects_bad_parameters(bad):
    with pytest.raises(ValueError):
        toy.ring(**bad)


# --------------------------------------------------------------------------------------------- IDX files

def _idx_bytes(a: np.ndarray, code: int) -> bytes:
    be = a.astype(im.IDX_DTYPES[code])
    return bytes([0, 0, code, a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape) + be.tobytes()


def test_idx_round_trip_plain_and_gzipped(tmp_path):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, size=(5, 3, 4), dtype=np.uint8)
    labels = np.array([3, 0, 2, 2, 1], np.uint8)
    (tmp_path / "img.idx").write_bytes(_idx_bytes(imgs, 0x08))
    (tmp_path / "img.idx.gz").write_bytes(gzip.compress(_idx_bytes(imgs, 0x08)))
    (tmp_path / "lab.idx1-ubyte.gz").write_bytes(gzip.compress(_idx_bytes(labels, 0x08)))
    for name in ("img.idx", "img.idx.gz"):
        back = im.read_idx(tmp_path / name)
        assert back.dtype == np.uint8 and back.shape == (5, 3, 4)
        np.testing.assert_array_equal(back, imgs)
    for code, a in ((0x0D, rng.random((2, 3)).astype(np.float32)), (0x0E, rng.random(4)),
                    (0x0C, np.array([[-5, 70000]], np.int32)), (0x0B, np.array([-3, 300], np.int16)),
                    (0x09, np.array([-1, 5], np.int8))):
        (tmp_path / "t.idx").write_bytes(_idx_bytes(a, code))
        back = im.read_idx(tmp_path / "t.idx")
        assert back.dtype.isnative and back.dtype == a.dtype.newbyteorder("=")
        np.testing.assert_array_equal(back, a)
    x, y, shape = im.load_idx_data(tmp_path / "img.idx.gz", tmp_path / "lab.idx1-ubyte.gz")
    assert shape == (3, 4) and x.dtype == np.float32 and x.shape == (5, 12)
    np.testing.assert_allclose(x, imgs.reshape(5, 12) / 255.0, rtol=1e-6)
    assert y.dtype == np.int32 and list(y) == [3, 0, 2, 2, 1]
    assert im.load_idx_data(tmp_path / "img.idx")[1] is None


@pytest.mark.parametrize("content,why", [
    (b"\x00\x00", "shorter than"),
    (b"\x01\x00\x08\x01" + struct.pack(">I", 2) + b"\x00\x00", "two zero bytes"),
    (b"\x00\x00\x07\x01" + struct.pack(">I", 2) + b"\x00\x00", "unknown IDX type code 0x07"),
    (b"\x00\x00\x08\x00", "0 dimensions"),
    (b"\x00\x00\x08\x03" + struct.pack(">I", 2), "truncated"),
    (b"\x00\x00\x08\x01" + struct.pack(">I", 3) + b"\x00\x00", "needs 3"),
    (b"\x00\x00\x08\x01" + struct.pack(">I", 1) + b"\x00\x00", "needs 1"),
])
def test_idx_malformed_headers_raise(tmp_path, content, why):
    p = tmp_path / "bad.idx"
    p.write_bytes(content)
    with pytest.raises(ImageDataError, match=why) as e:
        im.read_idx(p)
    assert e.value.key == "source.path" and e.value.value == str(p)


def test_idx_missing_file_and_bad_gzip(tmp_path):
    with pytest.raises(ImageDataError, match="no such file"):
        im.read_idx(tmp_path / "nope.idx")
    (tmp_path / "a.gz").write_bytes(b"\x00\x00\x08\x01" + struct.pack(">I", 1) + b"\x07")
    with pytest.raises(ImageDataError, match="not gzip"):
        im.read_idx(tmp_path / "a.gz")
    (tmp_path / "b.gz").write_bytes(gzip.compress(b"\x00" * 100)[:15])
    with pytest.raises(ImageDataError, match="damaged gzip"):
        im.read_idx(tmp_path / "b.gz")
    imgs = np.zeros((4, 2, 2), np.uint8)
    (tmp_path / "i.idx").write_bytes(_idx_bytes(imgs, 0x08))
    (tmp_path / "l.idx").write_bytes(_idx_bytes(np.zeros(3, np.uint8), 0x08))
    with pytest.raises(ImageDataError, match=r"shape \(3,\) for 4 images") as e:
        im.load_idx_data(tmp_path / "i.idx", tmp_path / "l.idx")
    assert e.value.key == "source.labels"


# --------------------------------------------------------------------------------------------- numpy arrays

def test_array_loading_npy_and_npz_uint8_and_float(tmp_path):
    rng = np.random.default_rng(1)
    u8 = rng.integers(0, 256, size=(6, 4, 4), dtype=np.uint8)
    np.save(tmp_path / "u8.npy", u8)
    x, y, shape = im.load_array_data(tmp_path / "u8.npy")
    assert (shape, x.shape, x.dtype, y) == ((4, 4), (6, 16), np.float32, None)
    np.testing.assert_allclose(x, u8.reshape(6, 16) / 255.0, rtol=1e-6)
    f = rng.random((5, 3, 2, 1))
    np.save(tmp_path / "f.npy", f)
    x, _, shape = im.load_array_data(tmp_path / "f.npy")
    assert shape == (3, 2)
    np.testing.assert_allclose(x, f.reshape(5, 6), rtol=1e-6)
    flat = rng.random((4, 9)).astype(np.float32)
    np.savez(tmp_path / "a.npz", x=flat, y=np.array([0, 2, 1, 2]))
    x, y, shape = im.load_array_data(tmp_path / "a.npz")
    assert shape == (3, 3) and y.dtype == np.int32 and list(y) == [0, 2, 1, 2]
    np.testing.assert_array_equal(x, flat)
    np.savez_compressed(tmp_path / "b.npz", images=u8, labels=np.arange(6, dtype=np.uint8))
    x, y, shape = im.load_array_data(tmp_path / "b.npz")
    assert shape == (4, 4) and list(y) == list(range(6))
    np.testing.assert_allclose(x, u8.reshape(6, 16) / 255.0, rtol=1e-6)
    np.savez(tmp_path / "c.npz", images=flat)
    assert im.load_array_data(tmp_path / "c.npz")[1] is None


def _save(path, **arrays):
    if path.suffix == ".npy":
        np.save(path, arrays["x"], allow_pickle=True)
    else:
        np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("name,arrays,why", [
    ("obj.npy", dict(x=np.array([np.zeros(4), None], dtype=object)), "object array"),
    ("obj.npz", dict(x=np.array([np.zeros(4), None], dtype=object)), "object array"),
    ("nan.npy", dict(x=np.full((3, 2, 2), np.nan)), "non-finite"),
    ("inf.npz", dict(x=np.array([[0.0, np.inf, 0, 0]] * 3)), "non-finite"),
    ("big.npy", dict(x=np.full((3, 2, 2), 1.5)), r"values in \[1.5, 1.5\]"),
    ("neg.npy", dict(x=np.full((3, 2, 2), -0.1)), "values in"),
    ("int16.npy", dict(x=np.full((3, 2, 2), 200, np.int16)), "values in"),
    ("two.npy", dict(x=np.zeros((2, 4, 4), np.uint8)), "need at least 3"),
    ("labels.npz", dict(x=np.zeros((4, 2, 2)), y=np.arange(3)), "one label per image"),
    ("labels2.npz", dict(x=np.zeros((4, 2, 2)), y=np.zeros((4, 1), int)), "one label per image"),
    ("flabels.npz", dict(x=np.zeros((4, 2, 2)), y=np.zeros(4)), "must be integers"),
    ("nlabels.npz", dict(x=np.zeros((4, 2, 2)), y=-np.ones(4, int)), "negative"),
    ("square.npy", dict(x=np.zeros((4, 5))), "perfect square"),
    ("shape.npy", dict(x=np.zeros((4, 2, 2, 3))), "has shape"),
    ("strings.npy", dict(x=np.array([["a"] * 4] * 3)), "numeric"),
    ("nokey.npz", dict(pixels=np.zeros((4, 2, 2))), "no array named 'x' or 'images'"),
])
def test_array_loading_errors_name_source_path(tmp_path, name, arrays, why):
    p = _save(tmp_path / name, **arrays)
    with pytest.raises(ImageDataError, match=why) as e:
        im.load_array_data(p)
    assert e.value.key == "source.path" and e.value.value == str(p)


def test_array_loading_missing_file_and_extension(tmp_path):
    with pytest.raises(ImageDataError, match="no such file") as e:
        im.load_array_data(tmp_path / "none.npy")
    assert e.value.key == "source.path"
    (tmp_path / "x.txt").write_text("0 1")
    with pytest.raises(ImageDataError, match="unsupported extension '.txt'"):
        im.load_array_data(tmp_path / "x.txt")
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 not a zip")
    for junk in ("junk.npy", "junk.npz"):
        with pytest.raises(ImageDataError, match="cannot be read as a numpy"):
            im.load_array_data(tmp_path / junk)


def test_digits_load_with_the_documented_shape_and_range():
    pytest.importorskip("sklearn")
    x, y, shape = im.load_digits_data()
    assert shape == (8, 8) and x.shape == (1797, 64) and x.dtype == np.float32
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0
    np.testing.assert_array_equal(np.unique(x * 16), np.arange(17))  # pixel / 16 with pixels 0..16
    assert y.dtype == np.int32 and y.shape == (1797,) and sorted(set(y.tolist())) == list(range(10))
    data = im.split_images(x, y, 0.1, 500, seed=0)
    src = im.image_source(data, heldout=100, dtype=jnp.float32)
    assert src.info["classes"] == 10 and src.info["images_heldout"] == 180 and src.dim == 64
    assert src.data["heldout"].shape == (100, 64) and src.data["real_class_hist"].shape == (10,)


# --------------------------------------------------------------------------------------------- split + source

def _ids(n=50, side=2):
    """Images whose labels are their ids (each label names one image)."""
    x = np.repeat((np.arange(n, dtype=np.float32) / n)[:, None], side * side, axis=1)
    return x, np.arange(n, dtype=np.int32)


def test_split_is_disjoint_ordered_and_deterministic():
    x, y = _ids(50)
    d = im.split_images(x, y, 0.2, 15, seed=3)
    assert (len(d.heldout), len(d.train0), len(d.fresh)) == (10, 15, 25) and d.total == 50
    assert d.shape == (2, 2) and d.classes == 50
    order = np.random.default_rng(3).permutation(50)
    np.testing.assert_array_equal(np.concatenate([d.y_heldout, d.y_train0, d.y_fresh]), order)
    np.testing.assert_array_equal(np.concatenate([d.heldout, d.train0, d.fresh]), x[order])  # labels follow
    assert len(set(d.y_heldout) | set(d.y_train0) | set(d.y_fresh)) == 50
    again = im.split_images(x, y, 0.2, 15, seed=3)
    np.testing.assert_array_equal(again.y_fresh, d.y_fresh)
    assert not np.array_equal(im.split_images(x, y, 0.2, 15, seed=4).y_heldout, d.y_heldout)
    tiny = im.split_images(x[:3], None, 0.01, 1, seed=0)  # at least one held out; no labels
    assert (len(tiny.heldout), len(tiny.train0), len(tiny.fresh), tiny.classes, tiny.y_fresh) == (1, 1, 1, 0, None)
    with pytest.raises(ImageDataError, match="at most 40") as e:
        im.split_images(x, y, 0.2, 41, seed=3)
    assert e.value.key == "loop.samples" and e.value.value == 41
    rect = im.split_images(np.zeros((5, 6), np.float32), None, 0.2, 2, seed=0, shape=(2, 3))
    assert rect.shape == (2, 3)
    with pytest.raises(ImageDataError, match="not square"):
        im.split_images(np.zeros((5, 6), np.float32), None, 0.2, 2, seed=0)


def test_image_source_reads_fresh_images_in_order_and_never_reuses_one():
    x, y = _ids(60)
    y = y % 4  # 4 classes, but identify images through their pixel value
    d = im.split_images(x, y, 0.1, 5, seed=11)
    src = im.image_source(d, heldout=4, dtype=jnp.float32)
    assert (src.kind, src.dim, src.log_prob, src.name) == ("image", 4, None, "images")
    assert src.info == {"shape": (2, 2), "classes": 4, "images_total": 60, "images_heldout": 6,
                        "images_train0": 5, "images_fresh": 49}
    with pytest.raises(TypeError, match="finite"):
        src.sample(KEY, {}, 3)
    np.testing.assert_array_equal(src.data["heldout"], d.heldout[:4])
    np.testing.assert_array_equal(src.data["heldout_labels"], d.y_heldout[:4])
    hist = np.bincount(np.concatenate([d.y_train0, d.y_fresh]), minlength=4) / 54
    np.testing.assert_allclose(src.data["real_class_hist"], hist, rtol=1e-6)
    assert src.data["real_class_hist"].dtype == np.float32
    truth = {**src.init(KEY), **jax.tree_util.tree_map(jnp.asarray, src.data)}
    np.testing.assert_array_equal(src.real_batch(truth, 0, 5), d.train0)
    np.testing.assert_array_equal(src.real_batch(truth, 0, 3), d.train0[:3])
    # generations 1.. as a traced index (as inside lax.scan): consecutive blocks of the fresh pool
    rb = jax.jit(src.real_batch, static_argnums=2)
    batches = [np.asarray(rb(truth, jnp.int32(g), 7)) for g in range(1, 8)]
    seen = np.concatenate(batches)
    np.testing.assert_array_equal(seen, d.fresh)
    ids = np.round(seen[:, 0] * 60).astype(int)
    assert len(set(ids)) == 49 and not set(ids) & set(np.round(np.concatenate([d.train0, d.heldout])[:, 0] * 60))
    _, scanned = jax.lax.scan(lambda c, g: (c, src.real_batch(truth, g, 7)), 0, jnp.arange(1, 8))
    np.testing.assert_array_equal(np.asarray(scanned).reshape(-1, 4), d.fresh)
    no_labels = im.image_source(im.split_images(x, None, 0.1, 5, seed=11), heldout=2)
    assert "heldout_labels" not in no_labels.data and no_labels.info["classes"] == 0
