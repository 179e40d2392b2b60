"""``model=pretrained``: a Hugging Face checkpoint (GPT-2, Llama, Qwen2, SmolLM, TinyLlama, OPT; see
:mod:`collapse.lm`) fine-tuned every generation on the text the previous generation wrote.

The run's text source is tokenized with the checkpoint's own ``tokenizer.json`` (``source=text``: kjv, stdlib or
any UTF-8 file), so every text metric counts the model's tokens. A segment x_0..x_{L-1} is read as inputs
(BOS, x_0, ..., x_{L-2}) predicting x_0..x_{L-1}; BOS is the checkpoint's ``bos_token_id`` (GPT-2's
``<|endoftext|>``), else its ``eos_token_id``. Probabilities are over the tokenizer's ids only (a checkpoint's
padded embedding rows beyond them are never produced): log p(x_t) = z_{x_t} - logsumexp(z_0..z_{V-1}), V the
tokenizer's vocabulary size.

Fine-tuning (``fit``): ``steps`` AdamW steps (the shared schedule of :mod:`collapse.families.training`: linear
warm-up, cosine decay to lr / 10, gradient clipped to norm 1) of mean token cross-entropy on ``batch`` x
``accumulate`` segments drawn uniformly from the generation's training set (``accumulate`` > 1: gradients of
``accumulate`` microbatches of ``batch`` segments averaged, activations held for one microbatch). Start point
(``model.init``): ``pretrained`` (the checkpoint's weights every generation: Shumailov et al. 2024), ``gen0`` (the generation-0 fine-tuned model every generation),
``warm_start`` (the previous generation's model). ``model.lora.rank`` = r > 0 trains low-rank adapters only
(alpha / r scaled, on the ``model.lora.targets`` projections; fresh adapters whenever the start point is the
checkpoint), and the frozen weights are shared by all replicates; r = 0 fine-tunes every weight. Replicates train
together under ``vmap`` when the memory estimate fits them, else as many at a time as fit, one block after another
in the same program (``engine.rows_at_once``).

Precision (``model.precision``): the weights, Adam's moments and the updates stay in the run's ``precision``
(float32); ``bfloat16`` computes every matrix product in bfloat16 (the activations and the key-value cache are
bfloat16; norms, attention softmax and the logits' softmax in float32); ``auto`` is bfloat16 on a GPU or TPU and
float32 on CPU.

Sampling: token by token with a key-value cache through the decoding controls (``sampling.*``); with
``sampling.prompt=real_prefix`` the first P tokens of each segment are a real prefix (fed, not sampled).
Params: ``{"w": trained arrays (all weights, or the adapters), "loss": mean training loss of the last 10% of steps}``.
"""
from __future__ import annotations

import math
from pathlib import Path

import jax
import jax.numpy as jnp
import optax

from collapse import checks
from collapse.components import FamilySpec, SourceSpec
from collapse.errors import ConfigError
from collapse.families.base import Family
from collapse.families.training import adamw, tail_mean, train
from collapse.families.transformer import shift_right
from collapse.run_settings import decoding_of, dtype_of
from collapse.text.decoding import Decoding, sample_segments

INITS = ("pretrained", "gen0", "warm_start")
PRECISIONS = ("auto", "float32", "bfloat16")


def compute_dtype_of(precision: str, dtype=jnp.float32):
    """The dtype of the forward and backward pass for ``model.precision``: bfloat16 (weights kept in ``dtype``,
    cast for each matrix product; norms, softmax and logits in float32), float32 (``dtype``), or auto: bfloat16
    on an accelerator, ``dtype`` on CPU (where bfloat16 matrix products are emulated and slower)."""
    if precision == "bfloat16" or (precision == "auto" and jax.default_backend() != "cpu"):
        return jnp.bfloat16
    return dtype


def pretrained(path: str | Path, vocab: int, segment: int, steps: int = 50, batch: int = 8, accumulate: int = 1,
               lr: float = 5e-5,
               warmup: int = 5, weight_decay: float = 0.0, init: str = "pretrained", lora_rank: int = 0,
               lora_alpha: float = 16.0, lora_targets: tuple[str, ...] = ("attention",),
               decoding: Decoding = Decoding(), dtype=jnp.float32, precision: str = "float32") -> Family:
    """The ``pretrained`` family of the checkpoint at ``path``; ``vocab``: the tokenizer's ids (<= the model's)."""
    from collapse.lm import load_model
    from collapse.lm.functional import flat_params, pure_lm
    from collapse.lm.layers import LoraSpec

    model, config = load_model(path, dtype=dtype)
    lora = LoraSpec(lora_rank, float(lora_alpha), tuple(lora_targets)) if lora_rank > 0 else None
    lm = pure_lm(config, dtype=dtype, compute_dtype=compute_dtype_of(precision, dtype), lora=lora)
    base = flat_params(model)  # the checkpoint's weights: shared by every replicate (not batched)
    del model
    bos = config.bos_token_id if config.bos_token_id is not None else config.eos_token_id
    bos = 0 if bos is None else int(bos)
    V, L = vocab, segment
    opt = adamw(lr, steps, warmup, weight_decay)

    def weights(w):
        return {**base, **w} if lora is not None else w

    def start_point(key):
        return lm.init_lora(key, dtype) if lora is not None else dict(base)

    def logits_of(w, inputs):
        return lm.logits(weights(w), inputs)[..., :V]

    def token_nll(w, tokens, key=None):
        """Mean cross-entropy per token (the training loss; Optax's integer-label form, ~20% faster to
        differentiate here than a log-softmax and a gather)."""
        logits = logits_of(w, shift_right(tokens, bos))
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, tokens))

    def token_logp(w, tokens):
        logp = jax.nn.log_softmax(logits_of(w, shift_right(tokens, bos)), -1)
        return jnp.take_along_axis(logp, tokens[..., None], -1)[..., 0]

    def init_params(truth=None):
        return {"w": start_point(jax.random.key(0)), "loss": jnp.zeros((), dtype)}

    def fit(key, data, mask, prev):
        k_init, k_steps = jax.random.split(key)
        start = start_point(k_init) if (prev is None or init == "pretrained") else prev["w"]
        w, losses = train(token_nll, start, data, mask, k_steps, steps, batch, opt, accumulate)
        return {"w": w, "loss": tail_mean(losses).astype(dtype)}

    def sample(key, params, m, scale, prompts):
        full = weights(params["w"])

        def step(tok, pos, cache):
            logits, cache = lm.extend(full, tok[:, None], pos, cache)
            return logits[:, 0, :V], cache

        return sample_segments(key, step, lm.init_cache(m, L), m, L, V, bos, prompts, decoding)

    def log_prob(params, tokens):
        return token_logp(params["w"], tokens)

    def export(params) -> dict[str, bytes]:
        """The fitted model in the Hugging Face layout (adapters folded in; float32) with the checkpoint's
        tokenizer."""
        from collapse.lm.weights import model_files

        full = {k: jnp.asarray(v, jnp.float32) for k, v in weights(params["w"]).items()}
        tok = Path(path) / "tokenizer.json"
        return model_files(lm.bind(full), tok if tok.is_file() else None)

    return Family("pretrained", ("text",), init_params, fit, sample, log_prob,
                  warm_from="gen0" if init == "gen0" else "previous", trains=True, export=export, weights=True)


def _read(cfg):
    """(LMConfig, tokenizer) of ``model.path``; any problem with the folder is a one-line ConfigError."""
    from collapse.lm import CheckpointError, read_config
    from collapse.lm.tokenizer import check_vocab, load_tokenizer

    path = cfg.model.get("path")
    if not isinstance(path, str) or not path:
        raise ConfigError("model.path", path, "must be a Hugging Face model folder (config.json, *.safetensors, "
                          "tokenizer.json); nothing is downloaded: point it at a model you have on disk")
    folder = Path(path).expanduser()
    try:
        config = read_config(folder)
        tok = load_tokenizer(folder)
        check_vocab(tok, config, folder / "config.json")
    except CheckpointError as exc:
        raise ConfigError("model.path", path, str(exc)) from None
    return config, tok


def check(cfg, source: SourceSpec) -> None:
    """The folder (config, tokenizer, their vocabularies), the segment within the model's positions, the training
    keys and the adapters."""
    config, _ = _read(cfg)  # (the source is real text: the spec fits the text source's trait "corpus" only)
    seg = cfg.source.segment
    if seg > config.max_positions:
        raise ConfigError("source.segment", seg, f"must be <= the model's {config.max_positions} positions "
                          f"({cfg.model.path}/config.json)")
    checks.integer(cfg, "model.steps")
    checks.integer(cfg, "model.batch")
    if cfg.model.get("accumulate") is not None:  # (None: a config saved before the key)
        checks.integer(cfg, "model.accumulate", allowed="must be an integer >= 1 (microbatches per optimizer step)")
    checks.number(cfg, "model.lr", 0.0, lo_open=True, allowed="must be a number > 0")
    checks.integer(cfg, "model.warmup", lo=0)
    checks.number(cfg, "model.weight_decay", 0.0, allowed="must be a number >= 0")
    checks.choice(cfg, "model.init", INITS)
    if cfg.model.get("precision") is not None:
        checks.choice(cfg, "model.precision", PRECISIONS)
    checks.integer(cfg, "model.lora.rank", lo=0, allowed="must be an integer >= 0 (0 = full fine-tuning)")
    checks.number(cfg, "model.lora.alpha", 0.0, lo_open=True, allowed="must be a number > 0")
    targets = list(cfg.model.lora.targets)
    if not targets or any(t not in ("attention", "mlp") for t in targets):
        raise ConfigError("model.lora.targets", targets, "must be a non-empty list of attention and/or mlp")
    check_memory(cfg, config)


def _memory(cfg, config):
    """(estimate, replicates per device, limit bytes, what the limit is) of a run (:mod:`collapse.lm.memory`)."""
    from collapse.config import export_generations
    from collapse.lm import memory

    m = cfg.model
    limit = m.get("memory_limit_gb", "auto")
    if limit == "auto":
        limit_bytes, what = memory.device_limit_bytes()
    else:
        checks.number(cfg, "model.memory_limit_gb", 0.0, lo_open=True, allowed="must be auto or a number of GiB > 0")
        limit_bytes, what = float(limit) * 2**30, "model.memory_limit_gb"
    seg = cfg.source.segment
    est = memory.estimate(config, batch=m.batch, segment=seg, samples_per_generation=cfg.loop.samples // seg,
                          lora_rank=m.lora.rank, lora_targets=tuple(m.lora.targets), init=m.init,
                          bytes_per_float=8 if cfg.precision == "float64" else 4,
                          compute_bytes=jnp.dtype(compute_dtype_of(m.get("precision", "auto"),
                                                                   dtype_of(cfg))).itemsize,
                          accumulate=m.get("accumulate", 1),
                          kept_models=len(export_generations(cfg)) if cfg.get("export") is not None else 0)
    return est, math.ceil(cfg.replicates / len(jax.devices())), limit_bytes, what


def fitting_rows(est, per_device: int, limit_bytes: float) -> int:
    """The most replicates per device that train and sample together within 90% of the limit, at most
    ``per_device`` (0: not even one): the largest k with shared + R held + k working <= 0.9 limit."""
    room = 0.9 * limit_bytes - est.shared - per_device * est.held
    return int(max(0, min(per_device, room // est.working)))


def check_memory(cfg, config) -> None:
    """Refuse, before compiling, a run whose estimated memory (:mod:`collapse.lm.memory`) exceeds 90% of
    ``model.memory_limit_gb`` (``auto``: the device's memory; replicates are split over the devices) even with
    as few replicates at once as ``engine.rows_at_once`` allows (``auto``: down to one)."""
    from collapse.lm import memory

    est, per_device, limit_bytes, what = _memory(cfg, config)
    fixed = cfg.engine.get("rows_at_once", "auto")
    at_once = 1 if fixed in ("auto", None) else min(math.ceil(int(fixed) / len(jax.devices())), per_device)
    need = est.total(per_device, at_once)
    if need > 0.9 * limit_bytes:
        parts = ", ".join(f"{k} {memory.gib(v)}" for k, v in est.parts.items())
        held = f"{per_device} x {memory.gib(est.held)} held + {at_once} at once x {memory.gib(est.working)}"
        raise ConfigError("replicates", cfg.replicates,
                          f"model=pretrained needs about {memory.gib(need)} per device ({memory.gib(est.shared)} "
                          f"checkpoint + {held}: {parts}) but {what} is {memory.gib(limit_bytes)}; lower "
                          "replicates, engine.rows_at_once, model.batch (raise model.accumulate) or loop.samples, "
                          "use model.lora.rank > 0, or set model.memory_limit_gb")


def rows_at_once(cfg) -> int | None:
    """``engine.rows_at_once=auto``: all replicates together when they fit, else as many as fit (per device)."""
    config, _ = _read(cfg)
    est, per_device, limit_bytes, _ = _memory(cfg, config)
    k = fitting_rows(est, per_device, limit_bytes)
    return None if k >= per_device else max(k, 1) * len(jax.devices())


def tokenizer_of(cfg) -> str:
    return str(Path(cfg.model.path).expanduser() / "tokenizer.json")


def build(cfg, source) -> Family:
    m = cfg.model
    return pretrained(Path(m.path).expanduser(), source.dim, source.segment, steps=m.steps, batch=m.batch,
                      accumulate=m.get("accumulate", 1),
                      lr=float(m.lr), warmup=m.warmup, weight_decay=float(m.weight_decay), init=m.init,
                      lora_rank=m.lora.rank, lora_alpha=float(m.lora.alpha), lora_targets=tuple(m.lora.targets),
                      decoding=decoding_of(cfg), dtype=dtype_of(cfg),
                      precision=m.get("precision", "auto"))


FAMILY = FamilySpec("pretrained", fits=("corpus",), check=check, build=build, tokenizer=tokenizer_of,
                    rows_at_once=rows_at_once)
