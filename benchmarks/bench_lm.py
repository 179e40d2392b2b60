"""Benchmark: model=pretrained (collapse's GPT-2 in Flax NNX) against Hugging Face ``transformers``' GPT-2 in
PyTorch eager, fine-tuning and KV-cached sampling on the same checkpoint, in one process.

The checkpoint: a random GPT-2 written by collapse in the Hugging Face layout (defaults: 4 layers, d 128, 4 heads,
2048 ids, 128 positions: the size ``collapse-pretrain`` makes), loaded by both sides from the same folder; the
logits of both are compared first (full pass, 1e-4). Both sides use the CPU threads this process may use
(XLA's pool; ``torch.set_num_threads``).

- Training: ``steps`` AdamW steps of ``batch`` segments of ``segment`` tokens (mean token cross-entropy after a
  BOS token, gradient clipped to norm 1, the same warm-up + cosine schedule). collapse: the family's ``fit``
  jitted once (compile reported separately). PyTorch: an eager loop with ``torch.optim.AdamW`` (foreach) and
  ``clip_grad_norm_``, rows drawn at random from the same data.
- Sampling: ``m`` segments of ``segment`` tokens from BOS, temperature 1, no top-k / top-p. collapse: the family's
  ``sample`` jitted (KV cache, ``lax.scan``). PyTorch: ``model.generate(do_sample=True, top_k=0,
  max_new_tokens=segment, use_cache=True)`` under ``torch.inference_mode()``.

Repeats alternate the two sides; best of ``--repeats``. Printed: tokens/s each side and the ratio collapse /
PyTorch (targets: training >= 1.0x, sampling >= 1.5x), and the peak RSS after each phase.

Usage: python benchmarks/bench_lm.py [--steps S] [--batch B] [--segment L] [--m M] [--repeats n] [--quick]
"""
from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import mem, print_memory, start

TARGETS = {"training": 1.0, "sampling": 1.5}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for name, default in (("steps", 20), ("batch", 16), ("segment", 128), ("m", 32), ("layers", 4), ("d-model", 128),
                          ("heads", 4), ("vocab", 2048), ("repeats", 3)):
        p.add_argument(f"--{name}", type=int, default=default)
    p.add_argument("--quick", action="store_true", help="fewer steps and repeats")
    a = p.parse_args()
    if a.quick:
        a.steps, a.repeats, a.m = 5, 2, 8
    jax, _ = start(None, "model=pretrained: collapse (JAX, Flax NNX) vs transformers (PyTorch eager), GPT-2",
                   "PyTorch runs eagerly on the same threads.", a.repeats)
    import jax.numpy as jnp

    try:
        import torch
        import transformers
    except ImportError:
        print("baseline skipped: PyTorch and transformers are not installed (pip install -e '.[parity]'); nothing "
              "to compare")
        return

    from collapse.families.pretrained import pretrained
    from collapse.lm import hf_config, load_model, save_model
    from collapse.lm.weights import build_model

    threads = len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    print(f"torch {torch.__version__} ({threads} threads), transformers {transformers.__version__}")
    folder = Path(tempfile.mkdtemp(prefix="collapse-bench-lm-"))
    raw = {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": a.vocab, "n_embd": a.d_model,
           "n_layer": a.layers, "n_head": a.heads, "n_positions": a.segment, "bos_token_id": 0, "eos_token_id": 0}
    save_model(build_model(hf_config.parse_config(raw), seed=0), folder)
    hf = transformers.GPT2LMHeadModel.from_pretrained(folder, attn_implementation="sdpa")
    ours, _ = load_model(folder)
    ids = np.random.default_rng(0).integers(0, a.vocab, (2, 32))
    with torch.no_grad():
        theirs = hf(torch.tensor(ids)).logits.numpy()
    diff = float(np.abs(np.asarray(ours(jnp.asarray(ids))) - theirs).max())
    print(f"equivalence: max |logit difference| {diff:.2e} (tolerance 1e-4): {'ok' if diff <= 1e-4 else 'FAILED'}")
    mem("checkpoint loaded (both sides)")

    rows = np.random.default_rng(1).integers(0, a.vocab, (512, a.segment)).astype(np.int32)
    fam = pretrained(folder, a.vocab, a.segment, steps=a.steps, batch=a.batch, lr=1e-4, warmup=2)
    data, mask = jnp.asarray(rows), jnp.ones(len(rows), bool)
    fit = jax.jit(lambda k: fam.fit(k, data, mask, None))
    t0 = time.perf_counter()
    fit_c = fit.lower(jax.random.key(0)).compile()
    compile_fit = time.perf_counter() - t0
    params = fit_c(jax.random.key(0))
    jax.block_until_ready(params)
    sample = jax.jit(lambda k, p: fam.sample(k, p, a.m, 1.0, None))
    t0 = time.perf_counter()
    sample_c = sample.lower(jax.random.key(1), params).compile()
    compile_sample = time.perf_counter() - t0
    mem("collapse compiled")

    def torch_train():
        model = transformers.GPT2LMHeadModel.from_pretrained(folder, attn_implementation="sdpa")
        model.train()
        for mod in model.modules():  # no dropout: collapse fine-tunes deterministically
            if isinstance(mod, torch.nn.Dropout):
                mod.p = 0.0
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.0, foreach=True)
        warm = 2
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: (s / warm) if s < warm else
                                                  0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (s - warm) /
                                                                                  max(1, a.steps - warm))))
        g = torch.Generator().manual_seed(0)
        data_t = torch.tensor(rows, dtype=torch.long)
        t = time.perf_counter()
        for _ in range(a.steps):
            x = data_t[torch.randint(0, len(rows), (a.batch,), generator=g)]
            inputs = torch.cat([torch.zeros((a.batch, 1), dtype=torch.long), x[:, :-1]], 1)
            logits = model(inputs).logits
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, a.vocab), x.reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
        return time.perf_counter() - t

    def torch_sample():
        with torch.inference_mode():
            start_ids = torch.zeros((a.m, 1), dtype=torch.long)
            t = time.perf_counter()
            out = hf.generate(start_ids, attention_mask=torch.ones_like(start_ids), do_sample=True, top_k=0,
                              max_new_tokens=a.segment, min_new_tokens=a.segment, use_cache=True, pad_token_id=0)
            dt = time.perf_counter() - t
        assert out.shape == (a.m, a.segment + 1)
        return dt

    def ours_train():
        t = time.perf_counter()
        jax.block_until_ready(fit_c(jax.random.key(0)))
        return time.perf_counter() - t

    def ours_sample():
        t = time.perf_counter()
        jax.block_until_ready(sample_c(jax.random.key(1), params))
        return time.perf_counter() - t

    hf.eval()
    times = {k: [] for k in ("torch_train", "ours_train", "torch_sample", "ours_sample")}
    for _ in range(a.repeats):
        times["torch_train"].append(torch_train())
        times["ours_train"].append(ours_train())
    mem("training repeats")
    for _ in range(a.repeats):
        times["torch_sample"].append(torch_sample())
        times["ours_sample"].append(ours_sample())
    mem("sampling repeats")
    train_tokens, sample_tokens = a.steps * a.batch * a.segment, a.m * a.segment
    print(f"\nconfig: GPT-2 {a.layers} layers, d {a.d_model}, {a.heads} heads, vocab {a.vocab}; training {a.steps} steps "
          f"x {a.batch} x {a.segment} tokens; sampling {a.m} x {a.segment} tokens; best of {a.repeats}")
    print(f"collapse compile: fit {compile_fit:.1f} s, sample {compile_sample:.1f} s (not in the timings)")
    print(f"{'':10s} {'collapse tok/s':>15s} {'PyTorch tok/s':>15s} {'ratio':>8s} {'target':>8s}")
    for what, key, tokens in (("training", "train", train_tokens), ("sampling", "sample", sample_tokens)):
        ours_tps, theirs_tps = tokens / min(times[f"ours_{key}"]), tokens / min(times[f"torch_{key}"])
        ratio = ours_tps / theirs_tps
        print(f"{what:10s} {ours_tps:15.0f} {theirs_tps:15.0f} {ratio:7.2f}x {TARGETS[what]:7.1f}x "
              f"{'met' if ratio >= TARGETS[what] else 'not met'}")
    print_memory()


if __name__ == "__main__":
    main()
