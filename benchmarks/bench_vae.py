"""Benchmark: seconds per generation of collapse's default VAE config against an equivalent PyTorch eager chain.

One generation = what collapse's engine does per generation of the default VAE config (``source=digits
model=vae``: scikit-learn's 8x8 digits, 512 images per generation, fully synthetic ``replace`` loop):
draw the 512 training images (generation 0: the real ``train0`` split; later: 512 draws from the previous
model), fit a fresh MLP VAE (64 -> 256 -> 256 -> 2 x 8 encoder, 8 -> 256 -> 256 -> 64 decoder, Bernoulli
likelihood = BCE on grey levels, negative ELBO with one reparameterised draw) by 1000 AdamW steps on batches of
128 rows drawn with replacement (clip to global norm 1, linear warm-up over 50 steps from 0 to lr 1e-3, then
cosine decay to lr / 10, weight decay 0), then the per-generation metrics of
``collapse.metrics.compute.build_neural_metrics``: 256 model draws -> the feature classifier's 64 penultimate
features of the draws and of the held-out digits (180 images) -> frechet, precision / recall (k = 3),
density / coverage (k = 5), vendi (RBF kernel, bandwidth = median real pairwise distance), class_tv (predicted
class histogram vs the real one), nll_real (held-out negative ELBO), train_loss, plus a finite-parameter check.

collapse: ``collapse.simulate("source=digits", "model=vae", "generations=G", "replicates=R", "quiet=true")``;
the time per generation is ``summary["run_s"] / G`` (``run_s`` excludes compilation; ``compile_s`` is reported
separately, cold for the first call of each R: the compilation cache starts empty). R replicates run together
in one compiled program (``vmap``), so "collapse s/gen" is the time of one generation of all R replicates.

PyTorch baseline (written here, eager, float32; as a competent user would write it): the same VAE
(Flax's initialisers: lecun-normal truncated kernels, zero biases), torch.optim.AdamW (betas 0.9/0.999,
eps 1e-8, weight decay 0) with the learning rate set per step from the same schedule (checked value by value
against optax), torch.nn.utils.clip_grad_norm_(1.0), F.binary_cross_entropy_with_logits; the row indices and
latent noise of all steps are drawn up front in two calls; the implementation (foreach vs fused AdamW) and
the thread count (all cores of this process vs 1) are chosen by a short timed trial, fastest used. Metrics
under torch.inference_mode(): collapse's trained feature classifier copied into a torch MLP; every quantity
of the held-out side that does not change between generations (real features, their k-NN radii, median
distance, mean, covariance and its eigendecomposition, the held-out noise of nll_real) is computed once, not
per generation; per generation: torch.cdist, torch.kthvalue for the k-NN radii, Frechet in float64 via
torch.linalg.eigh / eigvalsh (tr (S_r^1/2 S_f S_r^1/2)^1/2, with collapse's ridge), vendi via
torch.linalg.eigvalsh, class histogram by torch.bincount, held-out negative ELBO. R replicates = R chains one
after another (what peers do): measured for R in --replicates-list up to --torch-max-r (default 4); for larger
R the PyTorch time is R x the best measured per-replicate time (R = 1 runs and measured R chains), and the
table says so.

Equivalence checks (printed): collapse's initial VAE weights copied into the PyTorch model -> per-example
ELBO and decoder outputs on the same noise; the PyTorch metric code against collapse's metric functions on
the same 256 images (fresh real digits); the schedule against optax; parameter counts (collapse's VAENet also
carries a 64-entry ``log_sigma`` used only by the Gaussian likelihood, zero gradient here); after the timed
runs, the last generation's train_loss / nll_real / frechet of both chains side by side (different random
streams: they agree statistically, not bit for bit).

Order: PyTorch trial, then for R = 1 the two sides alternate --repeats times (collapse first: its first call
includes the cold compile; best run of each side reported); for larger R each side runs once. With
--breakdown (default on) the script also times collapse's pieces alone (the jitted fit, the jitted metric
function, and the row draws of the training loop alone) to show what limits it.

Load: each timed run records the share of the machine's CPU time that other processes used meanwhile
(/proc/stat busy time minus this process's own CPU time); runs above 10% are marked DISTURBED, the tables show
the share as "other CPU", and a closing warning says the numbers are not reliable (PyTorch's fixed OpenMP team
slows down several-fold when another process takes a core; XLA much less).

Memory: peak RSS of the process (getrusage ru_maxrss, a high-water mark, so each value covers every phase
before it) and current RSS (VmRSS) after each phase.

Usage: python benchmarks/bench_vae.py [--quick] [--generations G] [--replicates-list 1,4,16] [--repeats n]
       [--torch-max-r R] [--no-breakdown] [--pin CPU]
"""
from __future__ import annotations

import math
import os
import shutil
import sys
import time

import numpy as np

from _common import machine_busy, mem, print_memory, parse as parse_args, parser, schedule_fn, start

TARGET = 1.5  # PyTorch s/gen / collapse s/gen, one replicate


def parse():
    p = parser(__doc__, replicates=1, generations=3, samples=512)
    p.add_argument("--replicates-list", default="1,4,16", help="R values of the scaling table (comma separated)")
    p.add_argument("--torch-max-r", type=int, default=4,
                   help="PyTorch runs R chains one after another up to this R; larger R are extrapolated")
    p.add_argument("--steps", type=int, default=1000, help="AdamW steps per generation (config default 1000)")
    p.add_argument("--eval-samples", type=int, default=256, help="metrics.eval_samples (config default 256)")
    p.add_argument("--trial-steps", type=int, default=100, help="steps per timed PyTorch variant trial")
    p.add_argument("--no-breakdown", action="store_true", help="skip timing collapse's pieces alone")
    a = parse_args(p)
    a.rlist = sorted({int(r) for r in a.replicates_list.split(",")})
    if a.quick:
        a.steps = max(20, a.steps // 10)
        a.rlist = [r for r in a.rlist if r <= 4] or [1]
        a.repeats = min(a.repeats, 2)
        a.trial_steps = max(10, a.trial_steps // 5)
    if 1 not in a.rlist:
        a.rlist = [1] + a.rlist
    return a


# ------------------------------------------------------------------------------------------ helpers




def cpu_snapshot():
    """(total ticks, idle ticks of all CPUs, ticks used by this process) for :func:`foreign_share`."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
    except OSError:
        v = [0] * 8
    t = os.times()
    return sum(v[:8]), v[3] + v[4], (t.user + t.system) * os.sysconf("SC_CLK_TCK")


def foreign_share(a, b):
    """Share of the machine's CPU time used by other processes between two :func:`cpu_snapshot` calls."""
    total = b[0] - a[0]
    busy = total - (b[1] - a[1])
    return max(0.0, busy - (b[2] - a[2])) / max(1, total)


NOISY = 0.10  # other processes' CPU share above which a timed run is flagged


def fmt_list(xs, f="%.2f"):
    return "[" + ", ".join(f % x for x in xs) + "]"


# ------------------------------------------------------------------------------------------ PyTorch model


def torch_vae(torch, D, latent, hidden):
    """The PyTorch model: collapse's VAENet (Bernoulli likelihood) with Flax's initialisers."""
    nn, F = torch.nn, torch.nn.functional

    class VAE(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc = nn.ModuleList([nn.Linear(D, hidden), nn.Linear(hidden, hidden), nn.Linear(hidden, 2 * latent)])
            self.dec = nn.ModuleList([nn.Linear(latent, hidden), nn.Linear(hidden, hidden), nn.Linear(hidden, D)])
            with torch.no_grad():  # Flax Dense: kernel lecun normal (truncated at 2 sd), bias 0
                for mod in self.modules():
                    if isinstance(mod, nn.Linear):
                        sd = 1.0 / math.sqrt(mod.in_features) / 0.87962566103423978
                        nn.init.trunc_normal_(mod.weight, std=sd, a=-2 * sd, b=2 * sd)
                        nn.init.zeros_(mod.bias)

        def encode(self, x):
            h = F.relu(self.enc[1](F.relu(self.enc[0](x))))
            mu, logvar = self.enc[2](h).chunk(2, -1)
            return mu, logvar.clamp(-12.0, 8.0)

        def decode(self, z):
            return self.dec[2](F.relu(self.dec[1](F.relu(self.dec[0](z)))))

        def elbo(self, x, eps):
            """Per-example ELBO (nats) with the given standard-normal noise eps (n, latent)."""
            mu, logvar = self.encode(x)
            z = mu + torch.exp(0.5 * logvar) * eps
            rec = -F.binary_cross_entropy_with_logits(self.decode(z), x, reduction="none").sum(-1)
            kl = 0.5 * (logvar.exp() + mu * mu - 1.0 - logvar).sum(-1)
            return rec - kl

    return VAE()


def torch_load_vae(torch, model, variables):
    p = variables["params"]
    with torch.no_grad():
        for side in ("enc", "dec"):
            for i, lin in enumerate(getattr(model, side)):
                lin.weight.copy_(torch.from_numpy(np.asarray(p[f"{side}_{i}"]["kernel"], np.float32).T.copy()))
                lin.bias.copy_(torch.from_numpy(np.asarray(p[f"{side}_{i}"]["bias"], np.float32).copy()))


def torch_classifier(torch, params):
    """collapse's feature classifier (MLP D -> hidden relu -> features relu -> classes) as torch Linears."""
    nn = torch.nn
    p = params["params"]

    def lin(name):
        k = np.asarray(p[name]["kernel"], np.float32)
        m = nn.Linear(k.shape[0], k.shape[1])
        with torch.no_grad():
            m.weight.copy_(torch.from_numpy(k.T.copy()))
            m.bias.copy_(torch.from_numpy(np.asarray(p[name]["bias"], np.float32).copy()))
        return m.requires_grad_(False)

    class Clf(nn.Module):
        def __init__(self):
            super().__init__()
            self.hidden, self.feature, self.head = lin("hidden"), lin("feature"), lin("head")

        def features(self, x):
            return torch.relu(self.feature(torch.relu(self.hidden(x))))

    return Clf()


def torch_train(torch, model, data, steps, batch, latent, sched, gen, optim):
    """``steps`` AdamW steps; returns the mean loss of the last 10% of steps (collapse's train_loss)."""
    params = list(model.parameters())
    opt = torch.optim.AdamW(params, lr=sched(0), betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                            **{optim: True})
    group = opt.param_groups[0]
    idx = torch.randint(0, data.shape[0], (steps, batch), generator=gen)
    noise = torch.randn(steps, batch, latent, generator=gen)
    tail = max(1, int(steps * 0.1))
    acc = torch.zeros(())
    for t in range(steps):
        xb = data[idx[t]]
        loss = -model.elbo(xb, noise[t]).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0, foreach=True)
        group["lr"] = sched(t)
        opt.step()
        if t >= steps - tail:
            acc += loss.detach()
    return float(acc) / tail


class TorchMetrics:
    """collapse's neural metrics in eager PyTorch; the held-out side is computed once."""

    def __init__(self, torch, clf, heldout, real_hist, eps_heldout, eval_n, knn_k, dc_k):
        self.t, self.clf, self.knn_k, self.dc_k, self.eval_n = torch, clf, knn_k, dc_k, eval_n
        self.heldout, self.eps_heldout = heldout, eps_heldout
        self.real_hist = real_hist
        with torch.inference_mode():
            fr = clf.features(heldout[:eval_n])
            self.c = fr.mean(0)
            self.frc = fr - self.c
            d_rr = torch.cdist(self.frc, self.frc)
            self.r_pr, self.r_dc = self.knn(d_rr, knn_k), self.knn(d_rr, dc_k)
            n = d_rr.shape[0]
            iu = torch.triu_indices(n, n, 1)
            self.bw = torch.quantile(d_rr[iu[0], iu[1]], 0.5)  # median, mean of the two middle values
            f64 = fr.double()
            self.mu_r = f64.mean(0)
            self.S_r = torch.cov(f64.T)
            self.w_r, self.V_r = torch.linalg.eigh(self.S_r)
            d = fr.shape[1]
            self.ridge = 10.0 * d * float(np.finfo(np.float32).eps)
            self.eye = torch.eye(d, dtype=torch.float64)

    def knn(self, d, k):
        d = d.clone()
        d.fill_diagonal_(float("inf"))
        return torch_kth(self.t, d, k)

    def features_metrics(self, ff, pred):
        """All sample metrics of the fake features ``ff`` (E, d) and predicted labels."""
        torch = self.t
        E = ff.shape[0]
        ffc = ff - self.c
        d_ff = torch.cdist(ffc, ffc)
        d_rf = torch.cdist(self.frc, ffc)  # (H, E)
        r_fake = self.knn(d_ff, self.knn_k)
        out = {}
        out["precision"] = (d_rf <= self.r_pr[:, None]).any(0).float().mean()
        out["recall"] = (d_rf <= r_fake[None, :]).any(1).float().mean()
        in_dc = d_rf <= self.r_dc[:, None]
        out["density"] = in_dc.sum() / (self.dc_k * E)
        out["coverage"] = in_dc.any(1).float().mean()
        K = torch.exp(-(d_ff * d_ff) / (2.0 * self.bw * self.bw))
        lam = torch.linalg.eigvalsh(K / E)
        lam = torch.where(lam > torch.finfo(lam.dtype).eps * lam.abs().max(), lam, 0.0)
        pos = lam > 0
        out["vendi"] = torch.exp(-torch.where(pos, lam * torch.log(torch.where(pos, lam, 1.0)), 0.0).sum())
        f64 = ff.double()
        mu_f, S_f = f64.mean(0), torch.cov(f64.T)
        d = S_f.shape[0]
        eps = self.ridge * (torch.trace(S_f) + torch.trace(self.S_r)) / (2 * d)
        half_r = (self.V_r * torch.sqrt((self.w_r + eps).clamp(min=0.0))) @ self.V_r.T  # (S_r + eps I)^1/2
        cross = torch.linalg.eigvalsh(half_r @ (S_f + eps * self.eye) @ half_r).clamp(min=0.0).sqrt().sum()
        fr = (((mu_f - self.mu_r) ** 2).sum() + torch.trace(S_f) + torch.trace(self.S_r) + 2 * d * eps - 2 * cross)
        out["frechet"] = fr.clamp(min=0.0)
        hist = torch.bincount(pred, minlength=self.real_hist.shape[0]).to(self.real_hist.dtype) / E
        out["class_tv"] = 0.5 * (hist - self.real_hist).abs().sum()
        return out

    def __call__(self, model, gen, latent, train_loss):
        torch = self.t
        with torch.inference_mode():
            fake = torch.sigmoid(model.decode(torch.randn(self.eval_n, latent, generator=gen)))
            ff = self.clf.features(fake)
            out = self.features_metrics(ff, self.clf.head(ff).argmax(1))
            out["nll_real"] = -model.elbo(self.heldout, self.eps_heldout).mean()
            ok = all(bool(torch.isfinite(p).all()) for p in model.parameters())
            out = {k: float(v) if ok else float("nan") for k, v in out.items()}
            out["train_loss"] = train_loss
            out["_samples"] = fake[:16].clone()
        return out


def torch_kth(torch, d, k):
    return torch.kthvalue(d, k, dim=1).values


def torch_chain(torch, G, train0, n_samples, steps, batch, latent, hidden, sched, gen, optim, metrics, timing=None):
    """One replicate: G generations of fit (fresh weights) -> sample the next batch -> metrics.
    ``timing`` (dict of lists) collects the seconds of each phase. Returns the last generation's metrics."""
    data, out = train0, None
    D = train0.shape[1]
    for g in range(G):
        t0 = time.perf_counter()
        model = torch_vae(torch, D, latent, hidden)
        loss = torch_train(torch, model, data, steps, batch, latent, sched, gen, optim)
        t1 = time.perf_counter()
        with torch.no_grad():  # the next generation's training images: 512 draws of this model
            data = torch.sigmoid(model.decode(torch.randn(n_samples, latent, generator=gen)))
        t2 = time.perf_counter()
        out = metrics(model, gen, latent, loss)
        t3 = time.perf_counter()
        if timing is not None:
            for k, v in (("fit", t1 - t0), ("sample", t2 - t1), ("metrics", t3 - t2)):
                timing.setdefault(k, []).append(v)
    return out


# ------------------------------------------------------------------------------------------ main


def main():
    a = parse()
    G, S, M = a.generations, a.steps, a.samples
    title = (f"bench_vae: collapse's default VAE config (source=digits model=vae: {M} images/generation, latent 8, "
             f"hidden 256, {S} AdamW steps x batch 128, metrics on {a.eval_samples} draws) vs PyTorch eager; "
             f"{G} generations per run, replicates {a.rlist}{'  (--quick)' if a.quick else ''}")
    jax, collapse = start(a.pin, title, "the PyTorch baseline picks its thread count by a timed trial;", a.repeats)
    import jax.numpy as jnp
    import optax
    from collapse import config as C
    from collapse.families.vae import VAENet
    from collapse.metrics import images as imm
    from collapse.metrics.features import features as clf_features, predict as clf_predict

    threads = len(os.sched_getaffinity(0))
    try:
        import torch
    except ImportError:
        torch = None
        print("PyTorch is not installed: the baseline is SKIPPED (collapse side only). Install the CPU-only wheel "
              "(extra `bench` of pyproject.toml) with\n  .venv/bin/pip install 'torch==2.13.0+cpu'")
    if torch is not None:
        torch.set_num_threads(threads)
        print(f"torch {torch.__version__}: {threads} threads available, interop {torch.get_num_interop_threads()}, "
              f"MKL {torch.backends.mkl.is_available()}, oneDNN {torch.backends.mkldnn.is_available()}")
    mem(f"start (jax, collapse{', torch' if torch is not None else ''} imported)")
    busy = machine_busy()
    if busy > 0.25:
        print(f"WARNING: {100 * busy:.0f}% of the machine's CPU time was busy in the second before the run: other "
              "processes compete for the cores; timings of both sides suffer (PyTorch's fixed OpenMP team most).")
    print("-" * 88)

    base = ["source=digits", "model=vae", f"seed={a.seed}", "quiet=true"]
    if S != 1000:
        base.append(f"model.steps={S}")
    if M != 512:
        base.append(f"loop.samples={M}")
    if a.eval_samples != 256:
        base.append(f"metrics.eval_samples={a.eval_samples}")

    # ------------------------------------------------------------------ the config, its data and classifier
    t0 = time.perf_counter()
    cfg = C.compose(base + [f"generations={G}", "replicates=1"])
    source = C.build_source(cfg)  # trains the feature classifier once (cached for simulate: not in run_s)
    m = cfg.model
    latent, hidden, batch, lr, warmup = int(m.latent), int(m.hidden), int(m.batch), float(m.lr), int(m.warmup)
    knn_k, dc_k, eval_n = int(cfg.metrics.knn_k), int(cfg.metrics.dc_k), int(cfg.metrics.eval_samples)
    data = source.data
    train0, heldout, fresh = (np.array(data[k], np.float32) for k in ("train0", "heldout", "fresh"))  # writable
    clf = data["classifier"]
    D = train0.shape[1]
    print(f"data: train0 {train0.shape}, held-out {heldout.shape} (metrics compare {eval_n} draws with "
          f"{min(eval_n, len(heldout))} held-out images), classifier accuracy "
          f"{source.info['classifier_accuracy']:.3f} (trained in {time.perf_counter() - t0:.1f} s, "
          "outside all timings)")
    mem("after source + classifier")

    # ------------------------------------------------------------------ equivalence checks
    sched = schedule_fn(lr, warmup, S)
    warm = min(warmup, S - 1)
    ox = optax.warmup_cosine_decay_schedule(0.0, lr, warm, max(S, warm + 1), lr / 10)
    sch_err = max(abs(float(ox(t)) - sched(t)) for t in range(S))
    metrics_t = None
    if torch is not None:
        net = VAENet(D, latent, hidden, False)
        key = jax.random.key(a.seed)
        v0 = net.init(key, jnp.zeros((1, D)), jax.random.key(0))
        tm = torch_vae(torch, D, latent, hidden)
        torch_load_vae(torch, tm, v0)
        xb = jnp.asarray(train0[:64])
        k_eps = jax.random.key(123)
        eps = np.array(jax.random.normal(k_eps, (64, latent)))
        ref_elbo = np.asarray(net.apply(v0, xb, k_eps))
        z = np.array(jax.random.normal(jax.random.key(7), (64, latent)))
        ref_dec = np.asarray(net.apply(v0, jnp.asarray(z), method=VAENet.decode))
        with torch.no_grad():
            t_elbo = tm.elbo(torch.from_numpy(train0[:64]), torch.from_numpy(eps)).numpy()
            t_dec = tm.decode(torch.from_numpy(z)).numpy()
        e_elbo = float(np.max(np.abs(t_elbo - ref_elbo) / np.maximum(1.0, np.abs(ref_elbo))))
        e_dec = float(np.max(np.abs(t_dec - ref_dec)))
        n_flax = sum(x.size for x in jax.tree.leaves(v0))
        n_torch = sum(p.numel() for p in tm.parameters())
        ok_model = e_elbo < 1e-4 and e_dec < 1e-4 and n_flax - D == n_torch
        print(f"equivalence (model): same weights -> max rel |ELBO difference| {e_elbo:.1e}, max |decoder logit "
              f"difference| {e_dec:.1e}; parameters {n_flax} (collapse, incl. {D} unused log_sigma) vs {n_torch} "
              f"(PyTorch): {'OK' if ok_model else 'MISMATCH'}")
        print(f"schedule: max |optax - baseline| over {S} steps = {sch_err:.1e}")

        # metrics: the PyTorch code against collapse's functions on the same 256 images (fresh real digits)
        clf_t = torch_classifier(torch, clf)
        eps_h = np.array(jax.random.normal(jax.random.key(0), (len(heldout), latent)))  # VAE log_prob's key
        metrics_t = TorchMetrics(torch, clf_t, torch.from_numpy(heldout), torch.from_numpy(
            np.asarray(data["real_class_hist"], np.float32)), torch.from_numpy(eps_h), eval_n, knn_k, dc_k)
        probe = fresh[:eval_n]
        fr_j = clf_features(clf, jnp.asarray(heldout[:eval_n]))
        ff_j = clf_features(clf, jnp.asarray(probe))
        ref = {k: float(v) for k, v in imm.neural_sample_metrics(fr_j, ff_j, knn_k, dc_k).items()}
        ref["class_tv"] = float(imm.class_tv(clf_predict(clf, jnp.asarray(probe)), data["real_class_hist"],
                                             int(source.info["classes"])))
        with torch.inference_mode():
            ff_t = clf_t.features(torch.from_numpy(probe))
            got = {k: float(v) for k, v in metrics_t.features_metrics(ff_t, clf_t.head(ff_t).argmax(1)).items()}
            nll_t = float(-tm.elbo(torch.from_numpy(heldout), torch.from_numpy(eps_h)).mean())
        ref_nll = float(-jnp.mean(net.apply(v0, jnp.asarray(heldout), jax.random.key(0))))
        ref["nll_real"], got["nll_real"] = ref_nll, nll_t
        rel = {k: abs(got[k] - ref[k]) / max(1e-6, abs(ref[k])) for k in ref}
        ok_m = all(rel[k] < (2e-2 if k == "frechet" else 1e-3) for k in rel)
        print("equivalence (metrics, 256 fresh real digits vs held-out; collapse / PyTorch): "
              + ", ".join(f"{k} {ref[k]:.4g}/{got[k]:.4g}" for k in ref) + f": {'OK' if ok_m else 'MISMATCH'}")
        del tm

    # ------------------------------------------------------------------ PyTorch variant trial
    optim = "foreach"
    tthreads = threads
    if torch is not None:
        train0_t = torch.from_numpy(train0)
        gen = torch.Generator().manual_seed(a.seed)
        variants = {}
        combos = [(o, th) for th in sorted({threads, 1}, reverse=True) for o in ("foreach", "fused")]
        tsched = schedule_fn(lr, warmup, a.trial_steps)
        for _ in range(2):
            for o, th in combos:
                torch.set_num_threads(th)
                torch_train(torch, torch_vae(torch, D, latent, hidden), train0_t, 10, batch, latent, tsched, gen, o)
                t0 = time.perf_counter()
                torch_train(torch, torch_vae(torch, D, latent, hidden), train0_t, a.trial_steps, batch, latent,
                            tsched, gen, o)
                t = (time.perf_counter() - t0) / a.trial_steps
                variants[(o, th)] = min(t, variants.get((o, th), t))
        optim, tthreads = min(variants, key=variants.get)
        torch.set_num_threads(tthreads)
        print(f"PyTorch training trial (ms/step, best of 2 x {a.trial_steps} steps): "
              + ", ".join(f"{o} AdamW {th} thread{'s' if th > 1 else ''} {1e3 * v:.3f}"
                          for (o, th), v in variants.items())
              + f" -> using {optim} AdamW, {tthreads} thread(s)", flush=True)
        mem("after PyTorch trial")

    def run_torch(R, timing=None):
        c0, t0 = cpu_snapshot(), time.perf_counter()
        last = [torch_chain(torch, G, train0_t, M, S, batch, latent, hidden, sched, gen, optim, metrics_t, timing)
                for _ in range(R)]
        return time.perf_counter() - t0, last, foreign_share(c0, cpu_snapshot())

    def run_collapse(R):
        c0, t0 = cpu_snapshot(), time.perf_counter()
        r = collapse.simulate(*base, f"generations={G}", f"replicates={R}")
        wall = time.perf_counter() - t0
        s = r.summary
        last = r.metrics[r.metrics["generation"] == G - 1]
        return dict(run=s["run_s"], compile=s["compile_s"], wall=wall, last=last,
                    other=foreign_share(c0, cpu_snapshot()))

    def other(x):
        return f"other processes {100 * x:.0f}% CPU" + ("  <- DISTURBED" if x > NOISY else "")

    # ------------------------------------------------------------------ R = 1, alternating
    print("-" * 88)
    res = {}  # R -> dict(c=[collapse runs], t=[torch seconds], ...)
    c1, t1, t1_other, t_last, timing = [], [], [], None, {}
    for i in range(a.repeats):
        c = run_collapse(1)
        c1.append(c)
        print(f"  R=1 collapse run {i + 1}/{a.repeats}: run_s {c['run']:.2f} s ({c['run'] / G:.3f} s/gen), compile_s "
              f"{c['compile']:.2f} s{' (cold)' if i == 0 else ' (cache)'}, wall {c['wall']:.2f} s; {other(c['other'])}",
              flush=True)
        if i == 0:
            mem("after collapse R=1 (cold compile + run 1)")
        if torch is not None:
            ts, last, o = run_torch(1, timing)
            t1.append(ts)
            t1_other.append(o)
            t_last = last
            print(f"  R=1 PyTorch  run {i + 1}/{a.repeats}: {ts:.2f} s ({ts / G:.3f} s/gen); {other(o)}", flush=True)
            if i == 0:
                mem("after PyTorch R=1 run 1")
    bc = min(range(len(c1)), key=lambda i: c1[i]["run"])
    bt = min(range(len(t1)), key=lambda i: t1[i]) if t1 else None
    res[1] = dict(c=c1[bc]["run"], compile=c1[0]["compile"], compile_cached=[x["compile"] for x in c1[1:]],
                  t=t1[bt] if t1 else None, t_kind="measured", c_last=c1[-1]["last"], t_last=t_last,
                  other=max([c1[bc]["other"]] + ([t1_other[bt]] if t1 else [])))
    disturbed = [x["other"] for x in c1] + t1_other
    per_rep = min(t1) if t1 else None

    # ------------------------------------------------------------------ larger R, once each
    for R in [r for r in a.rlist if r > 1]:
        tr, kind, last, o = None, None, None, 0.0
        if torch is not None:
            if R <= a.torch_max_r:
                tr, last, o = run_torch(R)
                kind = "measured"
                per_rep = min(per_rep, tr / R)
                disturbed.append(o)
                print(f"  R={R} PyTorch  ({R} chains one after another): {tr:.2f} s ({tr / G:.3f} s/gen, "
                      f"{tr / G / R:.3f} s/gen per replicate); {other(o)}", flush=True)
                mem(f"after PyTorch R={R}")
            else:
                kind = "extrapolated"
        c = run_collapse(R)
        print(f"  R={R} collapse: run_s {c['run']:.2f} s ({c['run'] / G:.3f} s/gen for all {R}), compile_s "
              f"{c['compile']:.2f} s (cold), wall {c['wall']:.2f} s; {other(c['other'])}", flush=True)
        mem(f"after collapse R={R} (compile + run)")
        disturbed.append(c["other"])
        res[R] = dict(c=c["run"], compile=c["compile"], t=tr, t_kind=kind, c_last=c["last"], t_last=last,
                      other=max(o, c["other"]))
    for R, r in res.items():
        if r["t_kind"] == "extrapolated":
            r["t"] = R * per_rep

    # ------------------------------------------------------------------ collapse's pieces alone
    pieces = None
    if not a.no_breakdown:
        from collapse.metrics.compute import build_metrics
        fam = C.build_family(cfg, source)
        mf = build_metrics(source, fam, cfg.metrics, 1.0, jnp.float32)
        dj = jax.tree_util.tree_map(jnp.asarray, dict(data))
        x0, mask = dj["train0"], jnp.ones(M, bool)
        fit_c = jax.jit(lambda k: fam.fit(k, x0, mask, None)).lower(jax.random.key(0)).compile()
        params = jax.block_until_ready(fit_c(jax.random.key(1)))
        met_c = jax.jit(lambda k, p: mf.param_fn(k, p, dj, dj["heldout"])).lower(jax.random.key(0), params).compile()
        jax.block_until_ready(met_c(jax.random.key(0), params))
        row_logits = jnp.zeros(M)

        def rows_only(key):
            def step(c, k):
                return c + jnp.sum(jax.random.categorical(jax.random.split(k)[0], row_logits, shape=(batch,))), None
            return jax.lax.scan(step, 0, jax.random.split(key, S))[0]
        rows_c = jax.jit(rows_only).lower(jax.random.key(0)).compile()
        jax.block_until_ready(rows_c(jax.random.key(0)))
        tf, tmx, trw = [], [], []
        for i in range(2):
            t0 = time.perf_counter()
            jax.block_until_ready(fit_c(jax.random.key(2 + i)))
            tf.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            jax.block_until_ready(met_c(jax.random.key(2 + i), params))
            tmx.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            jax.block_until_ready(rows_c(jax.random.key(2 + i)))
            trw.append(time.perf_counter() - t0)
        pieces = dict(fit=min(tf), metrics=min(tmx), rows=min(trw))
        mem("after collapse breakdown")

    # ------------------------------------------------------------------ report
    print("-" * 88)
    r1 = res[1]
    c_gen = r1["c"] / G
    print(f"one generation (fit {S} steps + sample {M} + metrics), one replicate, best of {a.repeats}:")
    verdict = None
    if r1["t"] is not None:
        t_gen = r1["t"] / G
        ratio = t_gen / c_gen
        verdict = ratio >= TARGET
        print(f"  collapse {c_gen:.3f} s/gen   PyTorch {t_gen:.3f} s/gen   ratio PyTorch / collapse {ratio:.2f}x   "
              f"target >= {TARGET}x: {'MET' if verdict else 'NOT MET'}")
        print(f"  runs (s per {G} generations): collapse {fmt_list([x['run'] for x in c1])}, PyTorch {fmt_list(t1)} "
              f"({optim} AdamW, {tthreads} thread(s))")
        ph = {k: min(v) for k, v in timing.items()}
        print(f"  PyTorch per generation by phase (best): fit {ph['fit']:.3f} s ({1e3 * ph['fit'] / S:.2f} ms/step), "
              f"sample {M} {1e3 * ph['sample']:.1f} ms, metrics {1e3 * ph['metrics']:.1f} ms")
    else:
        print(f"  collapse {c_gen:.3f} s/gen   PyTorch skipped")
    if pieces is not None:
        print(f"  collapse pieces alone (jitted, best of 2): fit {pieces['fit']:.3f} s ({1e3 * pieces['fit'] / S:.2f} "
              f"ms/step), of which the row draws (jax.random.categorical, {batch} of {M} rows per step) alone take "
              f"{pieces['rows']:.3f} s; metrics {1e3 * pieces['metrics']:.1f} ms")
    print(f"  collapse compile_s (not in the times): {r1['compile']:.2f} s cold"
          + (f", {fmt_list(r1['compile_cached'])} s from the cache" if r1["compile_cached"] else ""))

    print("scaling with replicates (s per generation of all R replicates; collapse: one compiled program, "
          "PyTorch: R chains one after another):")
    print(f"  {'R':>3s} {'collapse s/gen':>15s} {'per replicate':>14s} {'compile_s':>10s} {'PyTorch s/gen':>14s} "
          f"{'ratio':>7s} {'other CPU':>9s}  PyTorch")
    for R, r in sorted(res.items()):
        cg = r["c"] / G
        tg = r["t"] / G if r["t"] is not None else None
        print(f"  {R:3d} {cg:15.3f} {cg / R:14.3f} {r['compile']:10.2f} "
              + (f"{tg:14.3f} {tg / cg:6.2f}x " if tg is not None else f"{'skipped':>14s} {'n/a':>7s} ")
              + f"{100 * r['other']:8.0f}%  " + (r["t_kind"] or "")
              + (f" (R x {per_rep / G:.3f} s/gen per replicate)" if r["t_kind"] == "extrapolated" else ""))

    print(f"last generation (g = {G - 1}), mean over replicates of the largest measured R on each side "
          "(sanity check: same chain, different random streams):")
    cl = res[max(res)]["c_last"]
    keys = ("train_loss", "nll_real", "frechet", "recall", "class_tv")
    tl = None
    for R in sorted(res, reverse=True):
        if res[R]["t_last"]:
            tl = res[R]["t_last"]
            break
    for k in keys:
        cv = cl[k].to_numpy()
        line = f"  {k:10s} collapse {np.nanmean(cv):9.4f} (R={len(cv)})"
        if tl:
            tv = np.array([x[k] for x in tl])
            line += f"   PyTorch {np.nanmean(tv):9.4f} (R={len(tv)})"
        print(line)

    print_memory(44)
    worst = max(disturbed) if disturbed else 0.0
    if worst > NOISY:
        print(f"WARNING: other processes used up to {100 * worst:.0f}% of the machine's CPU time during timed runs "
              f"(runs marked DISTURBED; 'other CPU' = the larger share of the two runs in a row): those timings and "
              f"ratios are not reliable, rerun on a quiet machine.")
    if verdict is None:
        print("target: not evaluated (PyTorch missing, baseline skipped)")
    else:
        print(f"target >= {TARGET}x (PyTorch s/gen / collapse s/gen, R = 1): {'MET' if verdict else 'NOT MET'}")
    print("=" * 88)
    shutil.rmtree(os.environ["COLLAPSE_CACHE_DIR"], ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
