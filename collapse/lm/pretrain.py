"""``collapse-pretrain``: train a small base language model on a corpus on the CPU and write it in the Hugging Face
layout, so the whole Shumailov et al. pipeline runs offline (pre-train once, then ``model=pretrained``).

Steps: a byte-level BPE tokenizer of ``--vocab`` ids trained on the corpus (:func:`collapse.lm.tokenizer.train_bpe`);
the corpus tokenized with it and split like ``source=text`` into segments of ``--context`` tokens, held-out
(``--heldout-share``, only measured) and training; a randomly initialised GPT-2 (or Llama) of the given
sizes trained for ``--steps`` AdamW steps (the neural families' schedule) on segments of ``--context`` tokens read
after ``<|endoftext|>``; every ``--log-every`` steps the training loss and the held-out perplexity are printed.
The folder gets ``config.json``, ``model.safetensors``, ``tokenizer.json`` and ``pretrain.json`` (the command's
settings, the loss curve and the final held-out perplexity). A later ``model=pretrained`` run splits the text
again with its own segment length and seed, so its held-out segments may hold text this command trained on:
pre-train on another corpus (or file) when the fine-tuning run's held-out text must be unseen.

Example: ``collapse-pretrain --corpus kjv --out models/kjv-gpt2`` (the defaults: 4 layers, d 128, 4 heads,
2048 ids, 128-token context, 1500 steps of 16 segments).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

ARCHS = ("gpt2", "llama")


def _config(arch: str, vocab: int, layers: int, d: int, heads: int, context: int, end_id: int) -> dict:
    if arch == "gpt2":
        return {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": vocab, "n_embd": d,
                "n_layer": layers, "n_head": heads, "n_positions": context, "bos_token_id": end_id,
                "eos_token_id": end_id}
    return {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": vocab, "hidden_size": d,
            "num_hidden_layers": layers, "num_attention_heads": heads, "num_key_value_heads": heads,
            "intermediate_size": 4 * d, "max_position_embeddings": context, "bos_token_id": end_id,
            "eos_token_id": end_id, "tie_word_embeddings": True}


def pretrain(corpus: str, out: str | Path, *, arch: str = "gpt2", vocab: int = 2048, layers: int = 4, d_model: int = 128,
             heads: int = 4, context: int = 128, steps: int = 1500, batch: int = 16, lr: float = 3e-3,
             warmup: int = 100, weight_decay: float = 0.01, seed: int = 0, log_every: int = 100,
             heldout_share: float = 0.1, echo=print) -> dict:
    """Train and write the base model (see the module docstring); returns what ``pretrain.json`` holds."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from collapse.families.training import adamw, train_more
    from collapse.families.transformer import shift_right
    from collapse.lm.functional import flat_params, pure_lm
    from collapse.lm.hf_config import parse_config
    from collapse.lm.tokenizer import train_bpe
    from collapse.lm.weights import build_model, save_model
    from collapse.text.corpus import build_corpus, load_text

    out = Path(out).expanduser()
    t0 = time.perf_counter()
    text = load_text(corpus)
    tok = train_bpe([text], vocab, out / "tokenizer.json")
    end_id = tok.token_id("<|endoftext|>")
    split = build_corpus(corpus, "char", 2, context, heldout_share, 1, seed, tokenizer=str(out / "tokenizer.json"))
    train_rows = np.concatenate([split.train0, split.fresh])
    heldout = jnp.asarray(split.heldout[:256])
    echo(f"collapse-pretrain: {corpus}: {split.tokens_total} tokens under a {tok.vocab_size}-id BPE tokenizer "
         f"({time.perf_counter() - t0:.1f} s); {len(train_rows)} training and {len(split.heldout)} held-out segments "
         f"of {context} tokens")
    config = parse_config(_config(arch, tok.vocab_size, layers, d_model, heads, context, end_id))
    lm = pure_lm(config)
    params = flat_params(build_model(config, seed=seed))
    n_params = sum(int(np.prod(v.shape)) for v in params.values())
    opt = adamw(lr, steps, warmup, weight_decay)

    def token_nll(p, x, key=None):
        logp = jax.nn.log_softmax(lm.logits(p, shift_right(x, end_id)), -1)
        return -jnp.mean(jnp.take_along_axis(logp, x[..., None], -1))

    data = jnp.asarray(train_rows)
    mask = jnp.ones(len(train_rows), bool)
    chunk = max(1, min(log_every, steps))
    # one compiled chunk of optimizer steps; the schedule runs over all ``steps`` (the step count is carried)
    run_chunk = jax.jit(lambda p, s, k: train_more(token_nll, p, s, data, mask, k, chunk, batch, opt))
    heldout_nll = jax.jit(token_nll)
    state = opt.init(params)
    curve = []
    done = 0
    key = jax.random.key(seed)
    echo(f"  {arch}: {layers} layers, d {d_model}, {heads} heads: {n_params:,} parameters; {steps} steps of {batch} "
         f"segments")
    while done < steps:
        key, k = jax.random.split(key)
        params, state, losses = run_chunk(params, state, k)
        done += chunk
        ppl = math.exp(float(heldout_nll(params, heldout)))
        curve.append({"step": done, "loss": float(jnp.mean(losses)), "heldout_ppl": ppl})
        echo(f"  step {done}/{steps}  loss {curve[-1]['loss']:.3f}  held-out ppl {ppl:.2f}  "
             f"({time.perf_counter() - t0:.0f} s)")
    model = lm.bind(params)
    save_model(model, out)
    info = {"corpus": corpus, "arch": arch, "vocab": tok.vocab_size, "layers": layers, "d_model": d_model,
            "heads": heads, "context": context, "steps": steps, "batch": batch, "lr": lr, "warmup": warmup,
            "weight_decay": weight_decay, "seed": seed, "parameters": n_params, "curve": curve,
            "heldout_ppl": curve[-1]["heldout_ppl"], "seconds": time.perf_counter() - t0}
    (out / "pretrain.json").write_text(json.dumps(info, indent=1) + "\n")
    echo(f"  wrote {out} (held-out ppl {info['heldout_ppl']:.2f}, {info['seconds']:.0f} s)")
    return info


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="collapse-pretrain", description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", default="kjv", help="kjv | stdlib | a UTF-8 text file (default kjv)")
    ap.add_argument("--out", required=True, help="the model folder to write")
    ap.add_argument("--arch", default="gpt2", choices=ARCHS)
    for name, default in (("vocab", 2048), ("layers", 4), ("d-model", 128), ("heads", 4), ("context", 128),
                          ("steps", 1500), ("batch", 16), ("warmup", 100), ("seed", 0), ("log-every", 100)):
        ap.add_argument(f"--{name}", type=int, default=default)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--heldout-share", type=float, default=0.1)
    a = ap.parse_args(argv)
    problems = [(k, v, "must be >= 257 (256 bytes + <|endoftext|>)") for k, v in [("--vocab", a.vocab)] if v < 257]
    problems += [(k, v, "must be an integer >= 1") for k, v in [("--layers", a.layers), ("--heads", a.heads),
                 ("--context", a.context), ("--steps", a.steps), ("--batch", a.batch), ("--log-every", a.log_every)]
                 if v < 1]
    if a.d_model % a.heads:
        problems.append(("--d-model", a.d_model, f"must be a multiple of --heads={a.heads}"))
    if problems:
        k, v, what = problems[0]
        print(f"collapse-pretrain: error: {k}={v}: {what}", file=sys.stderr)
        return 2
    out = Path(a.out).expanduser()
    if (out / "model.safetensors").exists():
        print(f"collapse-pretrain: error: --out={a.out}: already holds a model; choose another folder",
              file=sys.stderr)
        return 2
    from collapse.text.corpus import CorpusError

    try:
        pretrain(a.corpus, out, arch=a.arch, vocab=a.vocab, layers=a.layers, d_model=a.d_model, heads=a.heads,
                 context=a.context, steps=a.steps, batch=a.batch, lr=a.lr, warmup=a.warmup,
                 weight_decay=a.weight_decay, seed=a.seed, log_every=a.log_every, heldout_share=a.heldout_share)
    except CorpusError as exc:
        print(f"collapse-pretrain: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
