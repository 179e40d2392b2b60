"""Benchmark: the Gaussian-mixture (EM) fully synthetic loop, collapse vs. vectorised NumPy.

Chain (per replicate): the source is collapse's ``source=gmm`` (equal-weight mixture of K unit-covariance
Gaussians on a circle of radius 4 in d=2); generation 0 fits a K-component full-covariance GMM by EM to
N real points, every later generation draws N points from the previous fit and refits with ``em_steps``
EM iterations warm-started from the previous generation's mixture (loop.synthetic=replace).

collapse: ``collapse.simulate("source=gmm", "model=gmm", "source.dim=2", "source.components=5",
"model.components=5", "model.em_steps=20", "loop.samples=1000", "generations=100", "replicates=100",
"metrics.sample_based=false", "metrics.every=100", "quiet=true")`` (float32, samples path: a GMM has no
sufficient-statistic path).

NumPy baseline (single process, vectorised over replicates, PCG64): the same EM as collapse's
(full 2x2 covariances, covariance regulariser 1e-6 I, empty components keep their previous mean and
covariance, warm start, greedy k-means++ start at generation 0 with 2 + floor(log K) candidates per
centre and the pooled covariance), written for speed:
  * per generation the features F = [1, x0, x1, x0^2, x0 x1, x1^2] of the data are formed once;
  * E-step: the log-density of every component is a quadratic form in x, so all (R, K, N) log-joint
    values are one batched matmul coef (R, K, 6) @ F^T (R, 6, N), with closed-form 2x2 inverses and
    determinants; then a max-shifted softmax over K, in place;
  * M-step: one batched matmul resp (R, K, N) @ F (R, N, 6) gives N_k, the weighted sums and the
    weighted second moments at once, cov = E[x x^T] - m m^T (float64: no cancellation problem here).
The responsibilities are kept as (R, K, N) (the transpose of (R, N, K), so that reductions over K and
the matmuls run on contiguous rows). float64 and float32 are both timed; the faster is reported.

Sanity check: final (generation G-1) var_ratio = tr(S_model) / tr(S_true) and nll_real (mean negative
log-likelihood of 1000 held-out real points per replicate) from both, mean +- s.e. over replicates.

Usage: python benchmarks/bench_gmm.py [--replicates R] [--generations G] [--samples N] [--em-steps S]
       [--components K] [--repeats n] [--quick]
"""
from __future__ import annotations

import math
import os
import shutil
import sys
import time

import numpy as np

from _common import parse as parse_args, parser, start

LOG2PI = math.log(2 * math.pi)


def parse():
    p = parser(__doc__, replicates=100, generations=100, samples=1000)
    p.add_argument("--em-steps", type=int, default=20)
    p.add_argument("--components", type=int, default=5)
    p.add_argument("--separation", type=float, default=4.0)
    return parse_args(p)


# ------------------------------------------------------------------------------------------ NumPy EM


def truth_means(K, sep):
    ang = 2 * np.pi * np.arange(K) / K
    return np.stack([sep * np.cos(ang), sep * np.sin(ang)], 1)  # (K, 2), same as collapse (d = 2)


def truth_cov(K, sep):
    m = truth_means(K, sep)
    c = m - m.mean(0)
    return np.eye(2) + c.T @ c / K


def sample_truth(rng, R, N, K, sep, dt):
    m = truth_means(K, sep)
    idx = rng.integers(K, size=(R, N))
    return (m[idx] + rng.standard_normal((R, N, 2))).astype(dt)


class NumpyGMM:
    """Vectorised EM over replicates. Params: w (R, K), m0, m1 (R, K), c00, c01, c11 (R, K)."""

    def __init__(self, R, N, K, dt, reg=1e-6):
        self.R, self.N, self.K, self.dt, self.reg = R, N, K, dt, reg
        self.F = np.empty((R, N, 6), dt)  # features, (R, N, 6)
        self.FT = np.empty((R, 6, N), dt)  # and transposed (contiguous) for the E-step matmul
        self.lp = np.empty((R, K, N), dt)  # log-joint, then responsibilities (in place)
        self.mx = np.empty((R, 1, N), dt)
        self.coef = np.empty((R, K, 6), dt)
        self.S = np.empty((R, K, 6), dt)
        self.eps_n = np.finfo(dt).eps * N
        self.tiny = np.finfo(dt).tiny

    def set_data(self, x0, x1):
        F, FT = self.F, self.FT
        F[..., 0] = 1.0
        F[..., 1] = x0
        F[..., 2] = x1
        np.multiply(x0, x0, out=F[..., 3])
        np.multiply(x0, x1, out=F[..., 4])
        np.multiply(x1, x1, out=F[..., 5])
        FT[...] = F.transpose(0, 2, 1)

    def em_step(self, p):
        w, m0, m1, c00, c01, c11 = p
        det = c00 * c11 - c01 * c01
        inv = 1.0 / det
        P00, P01, P11 = c11 * inv, -c01 * inv, c00 * inv
        a0 = P00 * m0 + P01 * m1
        a1 = P01 * m0 + P11 * m1
        coef = self.coef
        coef[..., 0] = np.log(w) - 0.5 * np.log(det) - LOG2PI - 0.5 * (m0 * a0 + m1 * a1)
        coef[..., 1] = a0
        coef[..., 2] = a1
        coef[..., 3] = -0.5 * P00
        coef[..., 4] = -P01
        coef[..., 5] = -0.5 * P11
        lp, mx = self.lp, self.mx
        np.matmul(coef, self.FT, out=lp)  # E-step: (R, K, N) log w_k N(x_n | k)
        np.max(lp, axis=1, keepdims=True, out=mx)
        lp -= mx
        np.exp(lp, out=lp)
        np.sum(lp, axis=1, keepdims=True, out=mx)
        np.reciprocal(mx, out=mx)
        lp *= mx  # responsibilities
        S = np.matmul(lp, self.F, out=self.S)  # M-step: (R, K, 6) weighted moments
        nk = S[..., 0]
        empty = nk <= self.eps_n
        safe = np.where(empty, 1.0, nk)
        n0, n1 = S[..., 1] / safe, S[..., 2] / safe
        d00 = S[..., 3] / safe - n0 * n0 + self.reg
        d01 = S[..., 4] / safe - n0 * n1
        d11 = S[..., 5] / safe - n1 * n1 + self.reg
        pd = (d00 > 0) & (d00 * d11 - d01 * d01 > 0)
        keep = empty | ~pd
        nw = np.maximum(nk, self.tiny)
        nw /= nw.sum(1, keepdims=True)
        return (nw, np.where(empty, m0, n0), np.where(empty, m1, n1), np.where(keep, c00, d00),
                np.where(keep, c01, d01), np.where(keep, c11, d11))

    def kmeanspp(self, rng, x):
        """Greedy k-means++ means (2 + floor(log K) candidates per centre), pooled covariance, equal weights."""
        R, N, K, dt = self.R, self.N, self.K, self.dt
        T = 2 + int(math.log(K))
        r = np.arange(R)
        cen = np.empty((R, K, 2), dt)
        cen[:, 0] = x[r, rng.integers(N, size=R)]
        d2 = ((x - cen[:, :1]) ** 2).sum(-1)  # (R, N)
        for k in range(1, K):
            cum = np.cumsum(d2, 1)
            u = rng.random((R, T)) * cum[:, -1:]
            cand = np.minimum(np.stack([np.searchsorted(cum[i], u[i], side="right") for i in range(R)]), N - 1)
            cx = x[r[:, None], cand]  # (R, T, 2)
            cd2 = ((x[:, :, None, :] - cx[:, None]) ** 2).sum(-1)  # (R, N, T)
            new = np.minimum(d2[:, :, None], cd2)
            best = np.argmin(new.sum(1), 1)
            cen[:, k] = cx[r, best]
            d2 = new[r, :, best]
        mu = x.mean(1, keepdims=True)
        xc = x - mu
        cov = np.einsum("rni,rnj->rij", xc, xc) / N + self.reg * np.eye(2, dtype=dt)
        one = np.ones((R, K), dt)
        return (one / K, cen[..., 0].copy(), cen[..., 1].copy(), cov[:, None, 0, 0] * one,
                cov[:, None, 0, 1] * one, cov[:, None, 1, 1] * one)

    def sample(self, rng, p):
        w, m0, m1, c00, c01, c11 = p
        R, N, dt = self.R, self.N, self.dt
        cw = np.cumsum(w, 1)
        u = rng.random((R, N), dtype=dt) * cw[:, -1:]
        comp = (u[:, :, None] >= cw[:, None, :-1]).sum(-1)  # inverse CDF over K
        l00 = np.sqrt(c00)
        l10 = c01 / l00
        l11 = np.sqrt(np.maximum(c11 - l10 * l10, 0.0))
        z = rng.standard_normal((2, R, N), dtype=dt)
        t = lambda a: np.take_along_axis(a, comp, 1)  # noqa: E731
        x0 = t(m0) + t(l00) * z[0]
        x1 = t(m1) + t(l10) * z[0] + t(l11) * z[1]
        return x0, x1


def numpy_chain(R, N, K, steps, G, sep, dt, seed):
    rng = np.random.default_rng(seed)
    em = NumpyGMM(R, N, K, dt)
    x = sample_truth(rng, R, N, K, sep, dt)
    p = em.kmeanspp(rng, x)
    em.set_data(x[..., 0], x[..., 1])
    for _ in range(steps):
        p = em.em_step(p)
    for _ in range(1, G):
        em.set_data(*em.sample(rng, p))
        for _ in range(steps):
            p = em.em_step(p)
    return p


def numpy_metrics(p, K, sep, seed, heldout=1000):
    """var_ratio and nll_real (on `heldout` fresh truth points per replicate), float64."""
    w, m0, m1, c00, c01, c11 = (np.asarray(a, np.float64) for a in p)
    R = w.shape[0]
    mu0, mu1 = (w * m0).sum(1, keepdims=True), (w * m1).sum(1, keepdims=True)
    tr = (w * (c00 + c11 + (m0 - mu0) ** 2 + (m1 - mu1) ** 2)).sum(1)
    var_ratio = tr / np.trace(truth_cov(K, sep))
    x = sample_truth(np.random.default_rng(seed), R, heldout, K, sep, np.float64)
    det = c00 * c11 - c01 * c01
    d0 = x[:, :, None, 0] - m0[:, None]
    d1 = x[:, :, None, 1] - m1[:, None]
    maha = (c11[:, None] * d0 * d0 - 2 * c01[:, None] * d0 * d1 + c00[:, None] * d1 * d1) / det[:, None]
    lp = np.log(w)[:, None] - 0.5 * np.log(det)[:, None] - LOG2PI - 0.5 * maha
    mx = lp.max(-1, keepdims=True)
    ll = (mx[..., 0] + np.log(np.exp(lp - mx).sum(-1))).mean(1)
    return var_ratio, -ll


# ------------------------------------------------------------------------------------------ main


def mean_se(v):
    v = np.asarray(v, np.float64)
    return v.mean(), v.std(ddof=1) / math.sqrt(len(v))


def main():
    a = parse()
    R, G, N, K, S, n = a.replicates, a.generations, a.samples, a.components, a.em_steps, a.repeats

    jax, collapse = start(a.pin, f"bench_gmm: GMM-EM loop, d=2, K={K} components, N={N} samples, {S} EM steps, G={G} generations, "
          f"R={R} replicates{'  (--quick)' if a.quick else ''}",
                          "NumPy is single-threaded here (ufuncs, reductions, Generator draws); the two small batched matmuls per EM step go to BLAS with its default threading.", n)
    print("-" * 88)

    overrides = ("source=gmm", "model=gmm", "source.dim=2", f"source.components={K}", f"model.components={K}",
                 f"model.em_steps={S}", f"loop.samples={N}", f"generations={G}", f"replicates={R}",
                 "metrics.sample_based=false", f"metrics.every={G}", f"seed={a.seed}", "quiet=true")
    runs, compiles, df = [], [], None
    for _ in range(n):
        r = collapse.simulate(*overrides)
        runs.append(r.summary["run_s"])
        compiles.append(r.summary["compile_s"])
        df = r.metrics
        print(f"  collapse: run {r.summary['run_s']:.3f} s, compile {r.summary['compile_s']:.2f} s "
              f"(engine_path={r.summary['engine_path']})", flush=True)
    # the loop without most of the metric work: collapse's tail_mass of a GMM source is a plain Monte-Carlo mean
    # over metrics.tail_samples (40,000) model draws per replicate at generations 0 and G-1, which the NumPy loop
    # does not compute; with 1,000 draws it is ~40x cheaper (the loop itself unchanged)
    light = []
    for _ in range(n):
        r = collapse.simulate(*overrides, "metrics.tail_samples=1000")
        light.append(r.summary["run_s"])
    print(f"  collapse, metrics.tail_samples=1000: runs {['%.3f' % t for t in light]} s", flush=True)
    last = df[df["generation"] == G - 1]
    col = dict(var=last["var_ratio"].to_numpy(np.float64), nll=last["nll_real"].to_numpy(np.float64))

    cand = {}
    for dt in (np.float64, np.float32):
        ts, p = [], None
        for i in range(n):
            t0 = time.perf_counter()
            p = numpy_chain(R, N, K, S, G, a.separation, dt, a.seed + 1)
            ts.append(time.perf_counter() - t0)
        v, nll = numpy_metrics(p, K, a.separation, a.seed + 2)
        cand[dt.__name__] = dict(run=min(ts), var=v, nll=nll)
        print(f"  numpy EM {dt.__name__}: {['%.3f' % t for t in ts]} s", flush=True)
    best = min(cand, key=lambda k: cand[k]["run"])

    print("-" * 88)
    m_true = truth_means(K, a.separation)
    truth = tuple(np.asarray(q, np.float64)[None] for q in
                  (np.full(K, 1 / K), m_true[:, 0], m_true[:, 1], np.ones(K), np.zeros(K), np.ones(K)))
    h_true = float(numpy_metrics(truth, K, a.separation, 7, heldout=200_000)[1][0])
    print(f"sanity check at generation {G - 1}, mean +- s.e. over {R} replicates (the true mixture has "
          f"var_ratio 1, nll_real {h_true:.3f}):")
    rows = [("collapse (float32)", col)] + [(f"numpy EM {k}", v) for k, v in cand.items()]
    print(f"{'method':22s} {'var_ratio':>20s} {'nll_real':>20s}")
    for name, v in rows:
        vm, vs = mean_se(v["var"])
        nm, ns = mean_se(v["nll"])
        print(f"{name:22s} {vm:11.4f} +- {vs:6.4f} {nm:11.4f} +- {ns:6.4f}")
    ok = True
    for k, v in cand.items():
        for key in ("var", "nll"):
            (m1, s1), (m2, s2) = mean_se(col[key]), mean_se(v[key])
            z = (m1 - m2) / math.hypot(s1, s2)
            ok &= abs(z) < 4
            print(f"  collapse vs numpy {k}: {key:4s} difference {m1 - m2:+.4f}  z = {z:+.2f}")
    print(f"similar (|z| < 4 for both metrics): {'yes' if ok else 'NO'}")

    print("-" * 88)
    c_run = min(runs)
    print(f"{'method':22s} {'run s (best)':>13s} {'compile s':>10s} {'(cached)':>9s}  EM steps x replicates / s")
    print(f"{'collapse':22s} {c_run:13.3f} {compiles[0]:10.2f} {min(compiles[1:] or [np.nan]):9.2f}  "
          f"{G * S * R / c_run:,.0f}")
    for k, v in cand.items():
        tag = "  <- faster numpy, used for the ratio" if k == best else ""
        print(f"{'numpy EM ' + k:22s} {v['run']:13.3f} {'-':>10s} {'-':>9s}  {G * S * R / v['run']:,.0f}{tag}")
    print("compile s: first run, empty persistent cache (cold); (cached): best later repeat, a cache hit")
    print("-" * 88)
    ratio = cand[best]["run"] / c_run
    print(f"ratio numpy EM ({best}) / collapse run       : {ratio:8.2f}x")
    print(f"ratio numpy EM ({best}) / collapse cold total: {cand[best]['run'] / (c_run + compiles[0]):8.2f}x")
    print(f"ratio numpy EM ({best}) / collapse run with metrics.tail_samples=1000 (closer to loop only): "
          f"{cand[best]['run'] / min(light):8.2f}x")
    print("=" * 88)
    shutil.rmtree(os.environ["COLLAPSE_CACHE_DIR"], ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
