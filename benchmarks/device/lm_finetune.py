"""Device check: model=pretrained fine-tuning throughput and model FLOP utilisation (MFU) of GPT-2 small on one
accelerator, and how many replicates fit on it.

The model: a random GPT-2 small (124 M parameters: 12 layers, d 768, 12 heads, 50257 ids, 1024 positions)
written by collapse in the Hugging Face layout into a temporary folder and loaded by the family as any
checkpoint. For each replicate count R (``--replicates``) the family's ``fit`` (``model.steps`` AdamW steps of
``--batch`` segments of ``--segment`` tokens, full fine-tuning, float32 weights) runs under ``vmap`` over R
replicates, jitted once (compile reported apart), best of ``--repeats`` timed runs:

  tokens/s = R x steps x batch x segment / seconds
  MFU      = tokens/s x (6 N + 12 layers x segment x d) / peak FLOP/s

(N the parameters without the embeddings' lookups counted as matrix products: the standard 6 N per token for
the forward and backward pass of the matrix products, plus attention's 12 layers T d.) ``--peak-tflops``: the
device's dense bfloat16 peak (default 989: an H100/H200 SXM); the precision is ``--precision`` (bfloat16:
``model.precision=bfloat16``). The largest R whose estimate (:mod:`collapse.lm.memory`) fits 90% of the device's
memory is printed beside the measured counts.

Writes ``--out`` (default ``$OUT`` or ``.``): ``lm_finetune.json`` and ``lm_finetune.md`` (a Markdown table).
``--tiny`` runs a 2-layer d-64 model at R = 1, 2 for a CPU check of the script itself.

Usage: python benchmarks/device/lm_finetune.py [--replicates 1 4 16] [--steps 10] [--batch 8] [--segment 512]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

GPT2_SMALL = {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": 50257, "n_embd": 768,
              "n_layer": 12, "n_head": 12, "n_positions": 1024, "bos_token_id": 50256, "eos_token_id": 50256}
TINY = {**GPT2_SMALL, "vocab_size": 512, "n_embd": 64, "n_layer": 2, "n_head": 4, "n_positions": 128,
        "bos_token_id": 0, "eos_token_id": 0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--replicates", type=int, nargs="*", default=[1, 4, 16])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--segment", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--precision", default="bfloat16", choices=["float32", "bfloat16"])
    ap.add_argument("--peak-tflops", type=float, default=989.0)
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    ap.add_argument("--tiny", action="store_true", help="a 2-layer d-64 model at R = 1, 2 (a CPU check)")
    a = ap.parse_args()
    raw = TINY if a.tiny else GPT2_SMALL
    if a.tiny:
        a.replicates, a.segment, a.steps, a.repeats = [1, 2], 64, 3, 1

    import jax
    import jax.numpy as jnp
    import numpy as np

    from collapse.families.pretrained import pretrained
    from collapse.lm import hf_config, memory, save_model
    from collapse.lm.weights import build_model

    config = hf_config.parse_config(raw)
    dev = jax.devices()[0]
    print(f"device: {dev.device_kind} ({dev.platform}), jax {jax.__version__}, {platform.machine()}", flush=True)
    folder = Path(tempfile.mkdtemp(prefix="gpt2-small-"))
    save_model(build_model(config, seed=0), folder)
    n_params = memory.parameter_count(config)
    flops_per_token = 6 * n_params + 12 * config.num_layers * a.segment * config.hidden_size
    limit, what = memory.device_limit_bytes()
    est = memory.estimate(config, batch=a.batch, segment=a.segment, samples_per_generation=0, lora_rank=0,
                          lora_targets=("attention",), init="pretrained",
                          compute_bytes=2 if a.precision == "bfloat16" else 4)
    fits = int((0.9 * limit - est.shared) // est.per_replicate)
    print(f"GPT-2: {n_params:,} parameters; {flops_per_token / 1e9:.2f} GFLOP per trained token; estimate "
          f"{memory.gib(est.per_replicate)} per replicate + {memory.gib(est.shared)}: about {fits} replicates fit "
          f"in 90% of {what} ({memory.gib(limit)})", flush=True)
    fam = pretrained(folder, config.vocab_size, a.segment, steps=a.steps, batch=a.batch, lr=1e-4, warmup=2,
                     precision=a.precision)
    rng = np.random.default_rng(0)
    data = jnp.asarray(rng.integers(0, config.vocab_size, (max(64, a.batch * 4), a.segment)), jnp.int32)
    mask = jnp.ones(data.shape[0], bool)
    rows = []
    for R in a.replicates:
        fit = jax.jit(jax.vmap(lambda k: fam.fit(k, data, mask, None)["loss"]))
        keys = jax.random.split(jax.random.key(0), R)
        try:
            t0 = time.perf_counter()
            compiled = fit.lower(keys).compile()
            compile_s = time.perf_counter() - t0
            best = float("inf")
            for _ in range(a.repeats):
                t0 = time.perf_counter()
                loss = jax.block_until_ready(compiled(keys))
                best = min(best, time.perf_counter() - t0)
        except Exception as exc:  # an out-of-memory at this R is a result, not a failure of the script
            print(f"  R={R}: failed ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})", flush=True)
            rows.append({"replicates": R, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"})
            continue
        tokens = R * a.steps * a.batch * a.segment
        tps = tokens / best
        mfu = tps * flops_per_token / (a.peak_tflops * 1e12)
        peak = (dev.memory_stats() or {}).get("peak_bytes_in_use") if dev.platform != "cpu" else None
        row = {"replicates": R, "compile_s": compile_s, "seconds": best, "tokens_per_s": tps, "mfu": mfu,
               "final_loss_mean": float(np.mean(loss)), "peak_bytes": peak}
        rows.append(row)
        print(f"  R={R}: {tps:,.0f} tokens/s, MFU {100 * mfu:.1f}% (compile {compile_s:.1f} s, {best:.2f} s for "
              f"{a.steps} steps)" + (f", peak {memory.gib(peak)}" if peak else ""), flush=True)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {"device": dev.device_kind, "platform": dev.platform, "jax": jax.__version__, "parameters": n_params,
              "precision": a.precision, "steps": a.steps, "batch": a.batch, "segment": a.segment,
              "peak_tflops": a.peak_tflops, "estimated_replicates_fit": fits, "rows": rows}
    (out / "lm_finetune.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [f"GPT-2 ({n_params / 1e6:.1f} M parameters) full fine-tuning on {dev.device_kind}, {a.precision} compute, "
             f"batch {a.batch} x {a.segment} tokens per replicate; estimate: {fits} replicates fit", "",
             "| replicates | tokens/s | MFU | compile s | peak memory |", "|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['replicates']} | {r['error']} | | | |")
        else:
            lines.append(f"| {r['replicates']} | {r['tokens_per_s']:,.0f} | {100 * r['mfu']:.1f}% | "
                         f"{r['compile_s']:.1f} | {memory.gib(r['peak_bytes']) if r['peak_bytes'] else 'n/a'} |")
    (out / "lm_finetune.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
