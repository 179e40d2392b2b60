"""The pieces of the pretrained decoders, with parameters in the Hugging Face names and array layouts.

- :class:`Linear`: ``layout="out_in"`` is PyTorch's ``nn.Linear`` (weight (out, in), y = x W^T + b, the Llama
  family); ``layout="in_out"`` is GPT-2's ``Conv1D`` (weight (in, out), y = x W + b).
- :class:`Embedding`: weight (rows, d); ``attend`` reads it as a tied output head (logits = x W^T).
- :class:`LayerNorm`: (x - mean) / sqrt(var + eps) * weight + bias, var the biased variance over features.
- :class:`RMSNorm`: x / sqrt(mean(x^2) + eps) in float32, cast back to x's dtype, times weight (as Llama).
- :func:`rope_frequencies` / :func:`apply_rope`: rotary embeddings in the "rotate half" convention:
  inv_freq_i = theta^(-2i / head_dim), angles = position x inv_freq repeated over both halves,
  q' = q cos + rotate_half(q) sin with rotate_half(x1, x2) = (-x2, x1).
- :func:`attend`: causal grouped-query attention, softmax(q k^T / sqrt(head_dim)) v in float32, each of the
  ``num_kv_heads`` key/value heads shared by ``num_heads / num_kv_heads`` query heads.
- :class:`KVCache` handling: per layer (k, v) of shape (B, kv_heads, C, head_dim); :func:`write_cache` stores the
  keys and values of T new positions from ``start``; queries at positions p attend cache slots <= p.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp
from flax import nnx

ACT = {
    "gelu_new": lambda x: jax.nn.gelu(x, approximate=True),
    "gelu_pytorch_tanh": lambda x: jax.nn.gelu(x, approximate=True),
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),
    "relu": jax.nn.relu,
    "silu": jax.nn.silu,
}


def _normal(rngs: nnx.Rngs, shape, dtype, std: float = 0.02):
    return std * jax.random.normal(rngs.params(), shape, dtype)


@dataclass(frozen=True)
class LoraSpec:
    """Low-rank adapters: ``rank`` r, ``alpha`` (the update is scaled by alpha / r) and ``targets``: the projections
    that get them, ``attention`` (q, k, v, o; GPT-2's c_attn and c_proj) and / or ``mlp``."""

    rank: int
    alpha: float
    targets: tuple[str, ...] = ("attention",)


def lora_of(spec: LoraSpec | None, part: str) -> tuple[int, float] | None:
    return (spec.rank, spec.alpha) if spec is not None and part in spec.targets else None


class LoraParam(nnx.Param):
    """A low-rank adapter matrix (``lora_a`` (in, r), ``lora_b`` (r, out)): not a Hugging Face tensor."""


class Linear(nnx.Module):
    """``lora``: (rank r, alpha) adds y += (alpha / r) (x A) B with adapters A (in, r) ~ N(0, 1 / in) and B (r, out) = 0
    (LoRA, Hu et al. 2021): the layer starts as the pretrained one and only A, B need training."""

    def __init__(self, n_in: int, n_out: int, *, bias: bool, layout: str, dtype, rngs: nnx.Rngs,
                 lora: tuple[int, float] | None = None):
        self.layout = layout
        shape = (n_out, n_in) if layout == "out_in" else (n_in, n_out)
        self.weight = nnx.Param(_normal(rngs, shape, dtype))
        self.bias = nnx.Param(jnp.zeros((n_out,), dtype)) if bias else None
        self.lora_scale = None
        if lora:
            rank, alpha = lora
            self.lora_scale = alpha / rank
            self.lora_a = LoraParam(_normal(rngs, (n_in, rank), dtype, 1.0 / math.sqrt(n_in)))
            self.lora_b = LoraParam(jnp.zeros((rank, n_out), dtype))

    def __call__(self, x):
        w = self.weight[...].astype(x.dtype)
        y = x @ (w.T if self.layout == "out_in" else w)
        if self.lora_scale is not None:
            y = y + self.lora_scale * ((x @ self.lora_a[...].astype(x.dtype)) @ self.lora_b[...].astype(x.dtype))
        return y if self.bias is None else y + self.bias[...].astype(x.dtype)

    def merged_weight(self):
        """The weight with the adapters folded in, in the Hugging Face layout."""
        w = self.weight[...]
        if self.lora_scale is None:
            return w
        delta = self.lora_scale * (self.lora_a[...] @ self.lora_b[...])  # (in, out)
        return w + (delta.T if self.layout == "out_in" else delta)


class Embedding(nnx.Module):
    def __init__(self, rows: int, d: int, *, dtype, rngs: nnx.Rngs):
        self.weight = nnx.Param(_normal(rngs, (rows, d), dtype))

    def __call__(self, ids, dtype):
        return jnp.take(self.weight[...], ids, axis=0).astype(dtype)

    def attend(self, x):
        return x @ self.weight[...].astype(x.dtype).T


class LayerNorm(nnx.Module):
    def __init__(self, d: int, eps: float, *, dtype):
        self.eps = eps
        self.weight = nnx.Param(jnp.ones((d,), dtype))
        self.bias = nnx.Param(jnp.zeros((d,), dtype))

    def __call__(self, x):
        xf = x.astype(jnp.float32)
        mean = xf.mean(-1, keepdims=True)
        var = jnp.square(xf - mean).mean(-1, keepdims=True)
        y = (xf - mean) * jax.lax.rsqrt(var + self.eps)
        return (y * self.weight[...].astype(jnp.float32) + self.bias[...].astype(jnp.float32)).astype(x.dtype)


class RMSNorm(nnx.Module):
    def __init__(self, d: int, eps: float, *, dtype):
        self.eps = eps
        self.weight = nnx.Param(jnp.ones((d,), dtype))

    def __call__(self, x):
        xf = x.astype(jnp.float32)
        y = xf * jax.lax.rsqrt(jnp.mean(jnp.square(xf), -1, keepdims=True) + self.eps)
        return self.weight[...].astype(x.dtype) * y.astype(x.dtype)


def rope_frequencies(head_dim: int, rope: dict) -> jax.Array:
    """inv_freq (head_dim / 2,) float32 for ``rope`` = {"type": default | linear | llama3, "theta", ...}.

    linear: inv_freq / factor. llama3 (Llama 3.1): wavelengths 2 pi / inv_freq above
    original_max / low_freq_factor are divided by ``factor``, below original_max / high_freq_factor kept, and in
    between interpolated with s = (original_max / wavelength - low) / (high - low):
    (1 - s) inv_freq / factor + s inv_freq."""
    inv = 1.0 / (rope["theta"] ** (jnp.arange(0, head_dim, 2, dtype=jnp.float32) / head_dim))
    if rope["type"] == "linear":
        inv = inv / rope["factor"]
    elif rope["type"] == "llama3":
        factor, low, high = rope["factor"], rope["low_freq_factor"], rope["high_freq_factor"]
        old = rope["original_max_position_embeddings"]
        wavelen = 2 * math.pi / inv
        scaled = jnp.where(wavelen > old / low, inv / factor, inv)
        smooth = (old / wavelen - low) / (high - low)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = (wavelen >= old / high) & (wavelen <= old / low)
        inv = jnp.where(medium, smoothed, scaled)
    return inv


def apply_rope(x, positions, inv_freq):
    """x (B, T, heads, head_dim) rotated at ``positions`` (T,) int."""
    angles = positions.astype(jnp.float32)[:, None] * inv_freq[None, :]
    emb = jnp.concatenate([angles, angles], -1)
    cos, sin = jnp.cos(emb).astype(x.dtype)[None, :, None], jnp.sin(emb).astype(x.dtype)[None, :, None]
    half = x.shape[-1] // 2
    rotated = jnp.concatenate([-x[..., half:], x[..., :half]], -1)
    return x * cos + rotated * sin


def attend(q, k, v, q_pos, k_pos):
    """Causal attention. q (B, T, H, dh); k, v (B, KV, S, dh) head-first; q_pos (T,), k_pos (S,) positions
    (key slots with k_pos > q_pos are masked) -> (B, T, H, dh) in q's dtype."""
    B, T, H, dh = q.shape
    KV = k.shape[1]
    qg = q.reshape(B, T, KV, H // KV, dh)
    scores = jnp.einsum("btgrd,bgsd->bgrts", qg, k).astype(jnp.float32) / math.sqrt(dh)
    mask = k_pos[None, :] <= q_pos[:, None]
    scores = jnp.where(mask, scores, jnp.finfo(jnp.float32).min)
    probs = jax.nn.softmax(scores, -1).astype(v.dtype)
    out = jnp.einsum("bgrts,bgsd->btgrd", probs, v)
    return out.reshape(B, T, H, dh)


def heads_first(x):
    """(B, T, heads, dh) -> (B, heads, T, dh)."""
    return jnp.swapaxes(x, 1, 2)


def write_cache(cache_kv, k, v, start):
    """Store k, v (B, T, KV, dh) at positions start..start+T-1 of a layer's cache ((B, KV, C, dh) twice)."""
    ck, cv = cache_kv
    ck = jax.lax.dynamic_update_slice_in_dim(ck, heads_first(k).astype(ck.dtype), start, 2)
    cv = jax.lax.dynamic_update_slice_in_dim(cv, heads_first(v).astype(cv.dtype), start, 2)
    return ck, cv


def self_attention(q, k, v, positions, cache_kv=None, start=0):
    """Causal self-attention of T new positions (q (B, T, H, dh), k and v (B, T, KV, dh)): among themselves, or,
    with a layer's cache, over every cached slot after writing k and v at ``start`` -> (y (B, T, H, dh), cache)."""
    if cache_kv is None:
        return attend(q, heads_first(k), heads_first(v), positions, positions), None
    cache_kv = write_cache(cache_kv, k, v, start)
    slots = jnp.arange(cache_kv[0].shape[2])
    return attend(q, cache_kv[0].astype(q.dtype), cache_kv[1].astype(q.dtype), positions, slots), cache_kv


class DecoderLM(nnx.Module):
    """What both decoders offer, given ``_run(ids, start, cache) -> (logits, cache)``: ``model(ids)`` -> logits
    (B, T, V) float32 of a full causal pass; ``model.extend(ids, start, cache)`` -> (logits, cache) for ids at
    positions start..; ``model.init_cache(batch, length)`` -> an empty cache."""

    config: object
    compute_dtype: object

    def __call__(self, ids):
        return self._run(ids, 0, None)[0]

    def extend(self, ids, start, cache):
        return self._run(ids, start, cache)

    def init_cache(self, batch: int, length: int):
        c = self.config
        return empty_cache(c.num_layers, batch, c.num_kv_heads, length, c.head_dim, self.compute_dtype)


def empty_cache(layers: int, batch: int, kv_heads: int, length: int, head_dim: int, dtype):
    """A zeroed key-value cache of ``length`` positions: a list of (k, v) per layer."""
    shape = (batch, kv_heads, length, head_dim)
    return [(jnp.zeros(shape, dtype), jnp.zeros(shape, dtype)) for _ in range(layers)]
