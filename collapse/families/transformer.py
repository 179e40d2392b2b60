"""A small decoder-only Transformer language model (Flax linen), trained with AdamW (Optax) each generation.

Architecture (pre-LayerNorm GPT): token embedding of V + 1 ids (id V = BOS) plus a learned position
embedding of ``context`` positions; ``layers`` blocks of causal multi-head self-attention (``heads`` heads of
d_model / heads) and a 4 d_model GELU MLP, each with a residual connection; final LayerNorm; a linear head to
V logits. A segment x_0..x_{L-1} is read as inputs (BOS, x_0, ..., x_{L-2}) predicting x_0..x_{L-1}, so every
position is scored and sampling needs no start distribution.

Training (``fit``): ``steps`` AdamW steps (gradient clipped to global norm 1) on ``batch`` segments drawn
uniformly with replacement from the training set's rows (the mask), mean cross-entropy per token, learning
rate warmed up linearly from 0 to ``lr`` over ``warmup`` steps then cosine-decayed to lr / 10. Start point
(``init``): ``scratch`` (fresh initialisation every generation), ``warm_start`` (the previous generation's
weights), ``gen0`` (the generation-0 model, fine-tuned anew each generation as in Shumailov et al. 2024).
Generation 0 always starts from scratch. The whole loop runs inside the compiled program (``lax.scan``), so
replicates train together under ``vmap``.

Sampling: token by token with a key-value cache (one attention row per step, no recomputation), through the
decoding controls; with a prompt of P tokens, the first P positions are the prompt (fed, not sampled).
Params: ``{"net": flax variables, "loss": mean training loss of the last 10% of steps}``.
"""
from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
from collapse import checks
from collapse.components import FamilySpec, SourceSpec
from collapse.errors import ConfigError
from collapse.run_settings import decoding_of, dtype_of, prompt_length
from collapse.families.base import Family
from collapse.families.training import adamw, tail_mean, train
from collapse.text.decoding import Decoding, sample_segments


class _Block(nn.Module):
    d_model: int
    heads: int
    dtype: object

    def setup(self):
        dt = dict(dtype=self.dtype, param_dtype=self.dtype)
        self.ln1 = nn.LayerNorm(**dt)
        self.qkv = nn.Dense(3 * self.d_model, **dt)
        self.proj = nn.Dense(self.d_model, **dt)
        self.ln2 = nn.LayerNorm(**dt)
        self.up = nn.Dense(4 * self.d_model, **dt)
        self.down = nn.Dense(self.d_model, **dt)

    def _split(self, x):
        """(..., 3 d) -> q, k, v each (..., heads, d / heads)."""
        q, k, v = jnp.split(self.qkv(self.ln1(x)), 3, axis=-1)
        shape = x.shape[:-1] + (self.heads, self.d_model // self.heads)
        return q.reshape(shape), k.reshape(shape), v.reshape(shape)

    def _mlp(self, x):
        return x + self.down(nn.gelu(self.up(self.ln2(x))))

    def __call__(self, x):
        """Full causal pass over x (B, T, d)."""
        q, k, v = self._split(x)
        T = x.shape[1]
        att = jnp.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(q.shape[-1])
        att = jnp.where(jnp.tril(jnp.ones((T, T), bool)), att, -jnp.inf)
        y = jnp.einsum("bhqk,bkhd->bqhd", jax.nn.softmax(att, -1), v).reshape(x.shape)
        return self._mlp(x + self.proj(y))

    def step(self, x, pos, cache_k, cache_v):
        """One position: x (B, d) at ``pos``; caches (B, heads, C, dh), head-first so that attention reads
        them without a transpose -> (y, cache_k, cache_v)."""
        q, k, v = self._split(x)
        cache_k = jax.lax.dynamic_update_slice_in_dim(cache_k, k[:, :, None], pos, 2)
        cache_v = jax.lax.dynamic_update_slice_in_dim(cache_v, v[:, :, None], pos, 2)
        att = jnp.einsum("bhd,bhkd->bhk", q, cache_k) / math.sqrt(q.shape[-1])
        att = jnp.where(jnp.arange(cache_k.shape[2]) <= pos, att, -jnp.inf)
        y = jnp.einsum("bhk,bhkd->bhd", jax.nn.softmax(att, -1), cache_v).reshape(x.shape)
        return self._mlp(x + self.proj(y)), cache_k, cache_v


class TinyGPT(nn.Module):
    vocab: int
    context: int
    layers: int
    d_model: int
    heads: int
    dtype: object = jnp.float32

    def setup(self):
        dt = dict(dtype=self.dtype, param_dtype=self.dtype)
        self.embed = nn.Embed(self.vocab + 1, self.d_model, **dt)
        self.pos = self.param("pos", nn.initializers.normal(0.02), (self.context, self.d_model), self.dtype)
        self.blocks = [_Block(self.d_model, self.heads, self.dtype) for _ in range(self.layers)]
        self.ln_f = nn.LayerNorm(**dt)
        self.head = nn.Dense(self.vocab, **dt)

    def __call__(self, inputs):
        """inputs (B, T) ids (BOS = vocab) -> logits (B, T, V)."""
        x = self.embed(inputs) + self.pos[: inputs.shape[1]]
        for blk in self.blocks:
            x = blk(x)
        return self.head(self.ln_f(x))

    def step(self, token, pos, cache):
        """token (B,) at position ``pos`` -> (logits (B, V), cache); cache: list of (k, v) per layer."""
        x = self.embed(token) + self.pos[pos]
        new = []
        for blk, (ck, cv) in zip(self.blocks, cache):
            x, ck, cv = blk.step(x, pos, ck, cv)
            new.append((ck, cv))
        return self.head(self.ln_f(x)), new


def shift_right(tokens, bos: int):
    """(B, L) segments -> (B, L) inputs (BOS, x_0, ..., x_{L-2})."""
    return jnp.concatenate([jnp.full(tokens.shape[:-1] + (1,), bos, tokens.dtype), tokens[..., :-1]], -1)


def transformer(vocab: int, segment: int, layers: int = 2, d_model: int = 64, heads: int = 4, context: int = 64,
                steps: int = 200, batch: int = 32, lr: float = 3e-3, warmup: int = 20, weight_decay: float = 0.01,
                init: str = "scratch", decoding: Decoding = Decoding(), prompt: int = 0, dtype=jnp.float32) -> Family:
    """The ``transformer`` family (see the module docstring)."""
    V, L = vocab, segment
    net = TinyGPT(V, context, layers, d_model, heads, dtype)
    opt = adamw(lr, steps, warmup, weight_decay)

    def fresh(key):
        return net.init(key, jnp.zeros((1, L), jnp.int32))

    def init_params(truth=None):
        return {"net": fresh(jax.random.key(0)), "loss": jnp.zeros((), dtype)}

    def token_logp(variables, tokens):
        logits = net.apply(variables, shift_right(tokens, V))
        return jnp.take_along_axis(jax.nn.log_softmax(logits, -1), tokens[..., None], -1)[..., 0]

    def fit(key, data, mask, prev):
        k_init, k_steps = jax.random.split(key)
        start = fresh(k_init) if (prev is None or init == "scratch") else prev["net"]
        variables, losses = train(lambda v, x, k: -jnp.mean(token_logp(v, x)), start, data, mask, k_steps, steps,
                                  batch, opt)
        return {"net": variables, "loss": tail_mean(losses).astype(dtype)}

    def decode(key, params, m, prompts, controls: Decoding):
        variables = params["net"]
        dh = d_model // heads
        cache = [(jnp.zeros((m, heads, context, dh), dtype), jnp.zeros((m, heads, context, dh), dtype))
                 for _ in range(layers)]
        return sample_segments(key, lambda tok, pos, c: net.apply(variables, tok, pos, c, method=TinyGPT.step),
                               cache, m, L, V, V, prompts, controls)

    def sample(key, params, m, scale, prompts):
        return decode(key, params, m, prompts, decoding)

    def log_prob(params, tokens):
        return token_logp(params["net"], tokens)

    return Family("transformer", ("text",), init_params, fit, sample, log_prob,
                  warm_from="gen0" if init == "gen0" else "previous", trains=True, decode=decode, weights=True)


def check(cfg, source: SourceSpec) -> None:
    """Layers, heads dividing d_model, a context covering one segment and one batch, and the training keys."""
    checks.integer(cfg, "model.layers")
    heads = checks.integer(cfg, "model.heads")
    d = checks.integer(cfg, "model.d_model")
    if d % heads:
        raise ConfigError("model.d_model", d, f"must be a multiple of model.heads={heads}")
    seg = cfg.source.segment
    checks.integer(cfg, "model.context", lo=seg, allowed=f"must be an integer >= source.segment={seg} (the sequence "
                   "length)")
    checks.integer(cfg, "model.steps")
    checks.integer(cfg, "model.batch")
    checks.number(cfg, "model.lr", 0.0, lo_open=True, allowed="must be a number > 0")
    checks.integer(cfg, "model.warmup", lo=0)
    checks.number(cfg, "model.weight_decay", 0.0, allowed="must be a number >= 0")
    checks.choice(cfg, "model.init", ("scratch", "warm_start", "gen0"))
    if cfg.model.context > cfg.loop.samples:
        raise ConfigError("model.context", cfg.model.context, f"is longer than the data: loop.samples="
                          f"{cfg.loop.samples} tokens per batch")


def build(cfg, source) -> Family:
    m = cfg.model
    return transformer(source.dim, source.segment, layers=m.layers, d_model=m.d_model, heads=m.heads,
                       context=m.context, steps=m.steps, batch=m.batch, lr=float(m.lr), warmup=m.warmup,
                       weight_decay=float(m.weight_decay), init=m.init, decoding=decoding_of(cfg),
                       prompt=prompt_length(cfg), dtype=dtype_of(cfg))


FAMILY = FamilySpec("transformer", fits=("text",), check=check, build=build)
