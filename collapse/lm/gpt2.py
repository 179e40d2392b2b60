"""GPT-2 (``GPT2LMHeadModel``) in Flax NNX, parameters named and shaped as Hugging Face's.

x_0 = wte[ids] + wpe[positions]; each block: a = x + c_proj(attn(ln_1(x))), x' = a + mlp(ln_2(a)) with
mlp(y) = c_proj(act(c_fc(y))); logits = ln_f(x_L) wte^T (the head is tied to the token embedding). Attention is
causal over ``n_head`` heads of n_embd / n_head, scores / sqrt(head_dim); no dropout (fine-tuning here is
deterministic given its keys).
"""
from __future__ import annotations

import jax.numpy as jnp
from flax import nnx

from collapse.lm.hf_config import LMConfig
from collapse.lm.layers import ACT, DecoderLM, Embedding, LayerNorm, Linear, LoraSpec, lora_of, self_attention


class _Attention(nnx.Module):
    def __init__(self, c: LMConfig, dtype, rngs, lora):
        self.heads, self.dh = c.num_heads, c.head_dim
        lin = dict(bias=True, layout="in_out", dtype=dtype, rngs=rngs, lora=lora)
        self.c_attn = Linear(c.hidden_size, 3 * c.hidden_size, **lin)
        self.c_proj = Linear(c.hidden_size, c.hidden_size, **lin)

    def __call__(self, x, positions, cache_kv=None, start=0):
        B, T, d = x.shape
        q, k, v = jnp.split(self.c_attn(x), 3, -1)
        q, k, v = (t.reshape(B, T, self.heads, self.dh) for t in (q, k, v))
        y, cache_kv = self_attention(q, k, v, positions, cache_kv, start)
        return self.c_proj(y.reshape(B, T, d)), cache_kv


class _MLP(nnx.Module):
    def __init__(self, c: LMConfig, dtype, rngs, lora):
        self.act = ACT[c.activation]
        lin = dict(bias=True, layout="in_out", dtype=dtype, rngs=rngs, lora=lora)
        self.c_fc = Linear(c.hidden_size, c.intermediate_size, **lin)
        self.c_proj = Linear(c.intermediate_size, c.hidden_size, **lin)

    def __call__(self, x):
        return self.c_proj(self.act(self.c_fc(x)))


class _Block(nnx.Module):
    def __init__(self, c: LMConfig, dtype, rngs, lora: LoraSpec | None):
        self.ln_1 = LayerNorm(c.hidden_size, c.norm_eps, dtype=dtype)
        self.attn = _Attention(c, dtype, rngs, lora_of(lora, "attention"))
        self.ln_2 = LayerNorm(c.hidden_size, c.norm_eps, dtype=dtype)
        self.mlp = _MLP(c, dtype, rngs, lora_of(lora, "mlp"))

    def __call__(self, x, positions, cache_kv=None, start=0):
        a, cache_kv = self.attn(self.ln_1(x), positions, cache_kv, start)
        x = x + a
        return x + self.mlp(self.ln_2(x)), cache_kv


class _Backbone(nnx.Module):
    def __init__(self, c: LMConfig, dtype, rngs, lora):
        self.wte = Embedding(c.vocab_size, c.hidden_size, dtype=dtype, rngs=rngs)
        self.wpe = Embedding(c.max_positions, c.hidden_size, dtype=dtype, rngs=rngs)
        self.h = nnx.List([_Block(c, dtype, rngs, lora) for _ in range(c.num_layers)])
        self.ln_f = LayerNorm(c.hidden_size, c.norm_eps, dtype=dtype)


class GPT2(DecoderLM):
    """``GPT2(config, dtype=..., compute_dtype=..., rngs=...)``: ``model(ids)`` -> logits (B, T, V) (float32);
    ``model.extend(ids, start, cache)`` -> (logits, cache) for ids at positions start.. with a key-value cache
    from :meth:`init_cache`."""

    def __init__(self, config: LMConfig, *, dtype=jnp.float32, compute_dtype=None, rngs: nnx.Rngs,
                 lora: LoraSpec | None = None):
        self.config = config
        self.compute_dtype = compute_dtype or dtype
        self.transformer = _Backbone(config, dtype, rngs, lora)

    def _run(self, ids, start, cache):
        tf = self.transformer
        positions = start + jnp.arange(ids.shape[1])
        x = tf.wte(ids, self.compute_dtype) + tf.wpe(positions, self.compute_dtype)[None]
        new = []
        for i, blk in enumerate(tf.h):
            x, kv = blk(x, positions, None if cache is None else cache[i], start)
            new.append(kv)
        logits = tf.wte.attend(tf.ln_f(x)).astype(jnp.float32)
        return logits, (None if cache is None else new)
