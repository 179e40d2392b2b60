"""Image metrics (collapse.metrics.images) and the feature classifier (collapse.metrics.features).

Seeds are fixed; tolerances come from the sample sizes (stated where they are used)."""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from collapse.metrics import features as F
from collapse.metrics import images as I

KNN_K, DC_K = 3, 5


def _normal(seed, n, d, scale=1.0, shift=0.0):
    return (scale * np.random.default_rng(seed).standard_normal((n, d)) + shift).astype(np.float32)


def _ring(K=8, r=5.0):
    t = 2 * np.pi * np.arange(K) / K
    return np.stack([r * np.cos(t), r * np.sin(t)], 1).astype(np.float32)


def _ring_samples(seed, per_mode, std, K=8):
    modes = _ring(K)
    z = np.random.default_rng(seed).standard_normal((K, per_mode, 2)).astype(np.float32)
    return modes, (modes[:, None, :] + std * z)  # (K, per_mode, 2)


# ------------------------------------------------------------------------------ k-NN metrics via the wrapper


def test_identical_sets():
    x = _normal(0, 200, 3)
    m = I.neural_sample_metrics(x, x, KNN_K, DC_K)
    assert set(m) == set(I.NEURAL_KEYS)
    # Every fake point sits on a real point (distance 0): inside its ball, and vice versa.
    assert float(m["precision"]) == 1.0 and float(m["recall"]) == 1.0 and float(m["coverage"]) == 1.0
    # Each real k-NN ball holds its centre plus its k neighbours (no ties in continuous data), so
    # density = (k + 1) / k exactly when fake == real (-> 1 for large k).
    np.testing.assert_allclose(float(m["density"]), (DC_K + 1) / DC_K, rtol=1e-6)
    assert abs(float(m["frechet"])) < 1e-5


def test_disjoint_far_sets():
    real = _normal(1, 200, 3)
    fake = _normal(2, 200, 3, shift=1000.0)
    m = I.neural_sample_metrics(real, fake, KNN_K, DC_K)
    for key in ("precision", "recall", "density", "coverage"):
        assert float(m[key]) == 0.0, key
    np.testing.assert_allclose(float(m["frechet"]), 3 * 1000.0**2, rtol=1e-3)


def test_shrunk_copy_high_precision_low_recall():
    # fake = 0.3 real: every fake point lies in the dense core of the real cloud, which the real k-NN balls
    # cover, so precision stays high. The fake k-NN balls are 0.3x as large and the fake cloud ends near
    # radius 0.3 * 3.5 ~ 1, so real points further out (P(|z| > 1.2) = exp(-0.72) ~ 0.5 for a 2-D standard
    # normal) lie in no fake ball: recall falls to about one half.
    real = _normal(3, 500, 2)
    m = I.neural_sample_metrics(real, 0.3 * real, 5, 5)
    assert float(m["precision"]) > 0.9
    assert float(m["recall"]) < 0.6
    # Fewer distinct "kinds" of samples at the real bandwidth.
    assert float(m["vendi"]) < float(I.neural_sample_metrics(real, real, 5, 5)["vendi"])


# ------------------------------------------------------------------------------ moments and Frechet


def test_sample_moments_unbiased():
    x = _normal(4, 50, 3)
    mean, cov = I.sample_moments(x)
    np.testing.assert_allclose(np.asarray(mean), x.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(cov), np.cov(x.T, ddof=1), rtol=1e-4, atol=1e-6)


def test_frechet_identical_and_exact_shift():
    x = _normal(5, 300, 4)
    assert abs(float(I.frechet_samples(x, x))) < 1e-5
    # A pure translation of the same points leaves the covariance unchanged: the distance is ||delta||^2
    # up to float32 round-off.
    delta = np.array([1.0, -2.0, 0.5, 0.0], np.float32)
    np.testing.assert_allclose(float(I.frechet_samples(x, x + delta)), float(delta @ delta), rtol=1e-4)


def test_frechet_independent_shift_within_sampling_error():
    # x ~ N(0, I_2), y ~ N(delta, I_2), n each. FD = ||m_x - m_y||^2 + (covariance term) with
    # m_x - m_y = delta + e, e ~ N(0, (2/n) I): the mean term is ||delta||^2 + 2 delta.e + ||e||^2, sd of the
    # linear part 2 |delta| sqrt(2/n), E||e||^2 = 2d/n; the covariance term is >= 0 with mean about
    # (1/4) E||S_x - S_y||_F^2 = 3/(n - 1) in 2-D. Tolerance: 4 sd + 5x the bias terms.
    n, d = 4000, 2
    x = _normal(6, n, d)
    y0 = _normal(7, n, d)
    u = np.array([0.6, 0.8], np.float32)  # unit direction
    for t in (1.0, 3.0):
        fd = float(I.frechet_samples(x, y0 + t * u))
        tol = 4 * 2 * t * math.sqrt(2 / n) + 5 * (2 * d / n + 3 / (n - 1))
        assert abs(fd - t * t) < tol, (t, fd, tol)
    # Monotone in |delta| along a ray (same base samples: only the mean term changes).
    ts = [0.0, 0.5, 1.0, 2.0, 4.0]
    fds = [float(I.frechet_samples(x, y0 + t * u)) for t in ts]
    assert all(a < b for a, b in zip(fds, fds[1:])), fds
    assert fds[0] < 5 * (2 * d / n + 3 / (n - 1))  # same distribution: only sampling noise


def test_frechet_singular_covariance_is_finite():
    # A dead (constant) feature in both sets: the covariances are singular; the shared ridge keeps the
    # Cholesky factor finite and the dead coordinate adds nothing.
    x = _normal(8, 300, 2)
    y = _normal(9, 300, 2, scale=0.5, shift=1.0)
    zeros = np.zeros((300, 1), np.float32)
    full = float(I.frechet_samples(np.hstack([x, zeros]), np.hstack([y, zeros])))
    np.testing.assert_allclose(full, float(I.frechet_samples(x, y)), rtol=1e-3)
    # Fewer samples than dimensions (rank-deficient) still gives a finite, non-negative number.
    v = float(I.frechet_samples(_normal(10, 5, 8), _normal(11, 5, 8)))
    assert np.isfinite(v) and v >= 0.0


# ------------------------------------------------------------------------------ mode coverage


def test_mode_coverage_ring():
    std = 0.1
    modes, s = _ring_samples(12, 50, std)  # 8 modes x 50 samples
    allm = I.mode_coverage(s.reshape(-1, 2), modes, std)
    assert float(allm["mode_coverage"]) == 1.0
    # P(||z|| > 3) = exp(-9/2) = 0.011 for a 2-D standard normal: binomial(400, 0.989), sd 0.0052; 4 sd.
    assert abs(float(allm["mode_quality"]) - (1 - math.exp(-4.5))) < 4 * 0.0052

    removed = I.mode_coverage(s[1:].reshape(-1, 2), modes, std)  # mode 0 has no samples
    assert float(removed["mode_coverage"]) == 7 / 8
    moved = s.copy()
    moved[0] = moved[1]  # mode 0's samples now sit on mode 1
    m = I.mode_coverage(moved.reshape(-1, 2), modes, std)
    assert float(m["mode_coverage"]) == 7 / 8
    np.testing.assert_allclose(float(m["mode_quality"]), float(allm["mode_quality"]) - np.mean(
        np.linalg.norm(s[0] - modes[0], axis=-1) <= 3 * std) / 8 + np.mean(
        np.linalg.norm(s[1] - modes[1], axis=-1) <= 3 * std) / 8, atol=1e-6)

    far = I.mode_coverage(s.reshape(-1, 2) + 100.0, modes, std)
    assert float(far["mode_quality"]) == 0.0 and float(far["mode_coverage"]) == 0.0


def test_mode_coverage_exact_counts_and_per_mode_std():
    modes = _ring(4)
    # Mode 0: 1 sample at 0.2 (inside 3 * 0.1), 1 at 0.4 (outside); modes 1-3: 66 samples each, on the mode.
    off = np.array([[0.2, 0.0], [0.0, 0.4]], np.float32)
    x = np.concatenate([modes[0] + off] + [np.repeat(modes[k:k + 1], 66, 0) for k in (1, 2, 3)])
    n = x.shape[0]  # 200
    m = I.mode_coverage(x, modes, 0.1, min_share=0.01)  # mode 0 holds 1/200 = 0.5% < 1%
    assert float(m["mode_coverage"]) == 3 / 4
    np.testing.assert_allclose(float(m["mode_quality"]), (n - 1) / n, rtol=1e-6)
    assert float(I.mode_coverage(x, modes, 0.1, min_share=0.004)["mode_coverage"]) == 1.0
    # Per-mode std: a wider mode 0 (radius 0.6) takes both of its samples ...
    m = I.mode_coverage(x, modes, np.array([0.2, 0.1, 0.1, 0.1], np.float32), min_share=0.004)
    assert float(m["mode_coverage"]) == 1.0 and float(m["mode_quality"]) == 1.0
    # ... a narrower one (radius 0.15) neither, so mode 0 is missed at any threshold.
    m = I.mode_coverage(x, modes, np.array([0.05, 0.1, 0.1, 0.1], np.float32), min_share=0.004)
    assert float(m["mode_coverage"]) == 3 / 4
    np.testing.assert_allclose(float(m["mode_quality"]), (n - 2) / n, rtol=1e-6)


# ------------------------------------------------------------------------------ class histogram


def test_class_tv_hand_example():
    labels = jnp.array([0, 0, 1, 2])  # h_gen = (1/2, 1/4, 1/4)
    real = jnp.array([1, 1, 2])  # counts -> (1/4, 1/4, 1/2)
    np.testing.assert_allclose(float(I.class_tv(labels, real, 3)), 0.5 * (0.25 + 0.0 + 0.25), rtol=1e-6)
    np.testing.assert_allclose(float(I.class_tv(labels, jnp.array([0.5, 0.25, 0.25]), 3)), 0.0, atol=1e-7)
    np.testing.assert_allclose(float(I.class_tv(jnp.zeros(5, jnp.int32), jnp.array([0.0, 1.0, 0.0]), 3)), 1.0)
    with pytest.raises(ValueError):
        I.class_tv(labels, jnp.ones(4), 3)


# ------------------------------------------------------------------------------ classifier


def _blobs(seed, n_per, classes=3, d=16):
    rng = np.random.default_rng(seed)
    centres = 3.0 * np.eye(classes, d)
    x = np.concatenate([c + rng.standard_normal((n_per, d)) for c in centres]).astype(np.float32)
    y = np.repeat(np.arange(classes), n_per).astype(np.int32)
    return x, y


@pytest.fixture(scope="module")
def small_clf():
    xtr, ytr = _blobs(20, 60)
    xte, yte = _blobs(21, 30)
    return F.train_classifier(xtr, ytr, xte, yte, 3, hidden=32, feature_dim=8, steps=200, batch=32, lr=1e-2)


def test_features_predict_shapes(small_clf):
    # Well-separated blobs (centre distance 3 sqrt(2) ~ 4.2 sd): a linear rule alone gets ~98%.
    assert small_clf.accuracy > 0.9
    assert small_clf.classes == 3 and small_clf.feature_dim == 8
    x, _ = _blobs(22, 5)
    f = F.features(small_clf.params, x)
    assert f.shape == (15, 8) and f.dtype == jnp.float32 and bool(jnp.all(f >= 0))
    p = F.predict(small_clf.params, x)
    assert p.shape == (15,) and p.dtype == jnp.int32 and bool(jnp.all((p >= 0) & (p < 3)))
    # Image-shaped input is flattened.
    np.testing.assert_array_equal(np.asarray(F.features(small_clf.params, x.reshape(15, 4, 4))), np.asarray(f))


def test_save_load_round_trip(small_clf, tmp_path):
    path = tmp_path / "clf.npz"
    F.save_classifier(small_clf, path)
    with np.load(path, allow_pickle=False) as z:
        assert "params/hidden/kernel" in z.files and all(z[k].dtype != object for k in z.files)
    clf = F.load_classifier(path)
    assert (clf.accuracy, clf.classes, clf.feature_dim) == (small_clf.accuracy, 3, 8)
    x, _ = _blobs(23, 5)
    np.testing.assert_array_equal(np.asarray(F.features(clf.params, x)), np.asarray(F.features(small_clf.params, x)))
    np.testing.assert_array_equal(np.asarray(F.predict(clf.params, x)), np.asarray(F.predict(small_clf.params, x)))


def test_train_classifier_digits():
    datasets = pytest.importorskip("sklearn.datasets", reason="scikit-learn (which ships the digits) not installed")
    d = datasets.load_digits()
    x, y = (d.data / 16.0).astype(np.float32), d.target.astype(np.int32)
    perm = np.random.default_rng(0).permutation(len(x))
    tr, te = perm[:1347], perm[1347:]  # sklearn's default 75/25 split sizes
    clf = F.train_classifier(x[tr], y[tr], x[te], y[te], 10)
    assert clf.accuracy > 0.9, clf.accuracy
    assert F.features(clf.params, x[:7]).shape == (7, 64)


# ------------------------------------------------------------------------------ jit and vmap


def test_jit_and_vmap_over_replicates(small_clf):
    R = 3
    rng = np.random.default_rng(30)
    real = rng.standard_normal((R, 60, 3)).astype(np.float32)
    fake = (rng.standard_normal((R, 50, 3)) * np.array([1.0, 0.5, 2.0])[:, None, None]).astype(np.float32)
    modes = _ring(8)
    ring = np.stack([_ring_samples(31 + r, 10, 0.1)[1].reshape(-1, 2) for r in range(R)])
    ring[1, :10] = ring[1, 10:20]  # replicate 1 misses mode 0
    labels = rng.integers(0, 4, (R, 40)).astype(np.int32)
    real_hist = np.array([0.1, 0.2, 0.3, 0.4], np.float32)
    images = rng.random((R, 6, 4, 4)).astype(np.float32)

    fns = {
        "moments": (lambda a, b, m, l, im: I.sample_moments(a)),
        "frechet": (lambda a, b, m, l, im: I.frechet_samples(a, b)),
        "modes": (lambda a, b, m, l, im: I.mode_coverage(m, modes, 0.1)),
        "tv": (lambda a, b, m, l, im: I.class_tv(l, real_hist, 4)),
        "neural": (lambda a, b, m, l, im: I.neural_sample_metrics(a, b, KNN_K, DC_K)),
        "features": (lambda a, b, m, l, im: F.features(small_clf.params, im)),
        "predict": (lambda a, b, m, l, im: F.predict(small_clf.params, im)),
    }
    args = (real, fake, ring, labels, images)
    for name, fn in fns.items():
        batched = jax.jit(jax.vmap(fn))(*args)
        for r in range(R):
            single = jax.jit(fn)(*(a[r] for a in args))
            jax.tree_util.tree_map(
                lambda b, s: np.testing.assert_allclose(np.asarray(b[r]), np.asarray(s), rtol=2e-5, atol=1e-5,
                                                        err_msg=f"{name}[{r}]"), batched, single)
    cov = jax.vmap(lambda m: I.mode_coverage(m, modes, 0.1))(ring)["mode_coverage"]
    np.testing.assert_array_equal(np.asarray(cov), [1.0, 7 / 8, 1.0])
