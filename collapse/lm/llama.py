"""The Llama family (``LlamaForCausalLM``, ``Qwen2ForCausalLM``; SmolLM and TinyLlama are Llamas) in Flax NNX,
parameters named and shaped as Hugging Face's.

x_0 = embed_tokens[ids]; each layer: a = x + o_proj(attn(input_layernorm(x))),
x' = a + down_proj(silu(gate_proj(y)) * up_proj(y)) with y = post_attention_layernorm(a) (SwiGLU);
logits = lm_head(norm(x_L)) (or x embed_tokens^T when ``tie_word_embeddings``). Attention: rotary embeddings on
q and k, ``num_key_value_heads`` key/value heads each shared by num_attention_heads / num_key_value_heads query
heads (grouped-query attention), scores / sqrt(head_dim). Qwen2 has biases on q, k and v.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from collapse.lm.hf_config import LMConfig
from collapse.lm.layers import (DecoderLM, Embedding, Linear, LoraSpec, RMSNorm, apply_rope, lora_of,
                                rope_frequencies, self_attention)


class _Attention(nnx.Module):
    def __init__(self, c: LMConfig, dtype, rngs, lora):
        self.heads, self.kv_heads, self.dh = c.num_heads, c.num_kv_heads, c.head_dim
        lin = dict(layout="out_in", dtype=dtype, rngs=rngs, lora=lora)
        self.q_proj = Linear(c.hidden_size, c.num_heads * c.head_dim, bias=c.qkv_bias, **lin)
        self.k_proj = Linear(c.hidden_size, c.num_kv_heads * c.head_dim, bias=c.qkv_bias, **lin)
        self.v_proj = Linear(c.hidden_size, c.num_kv_heads * c.head_dim, bias=c.qkv_bias, **lin)
        self.o_proj = Linear(c.num_heads * c.head_dim, c.hidden_size, bias=c.o_bias, **lin)

    def __call__(self, x, positions, inv_freq, cache_kv=None, start=0):
        B, T, _ = x.shape
        q = apply_rope(self.q_proj(x).reshape(B, T, self.heads, self.dh), positions, inv_freq)
        k = apply_rope(self.k_proj(x).reshape(B, T, self.kv_heads, self.dh), positions, inv_freq)
        v = self.v_proj(x).reshape(B, T, self.kv_heads, self.dh)
        y, cache_kv = self_attention(q, k, v, positions, cache_kv, start)
        return self.o_proj(y.reshape(B, T, self.heads * self.dh)), cache_kv


class _MLP(nnx.Module):
    def __init__(self, c: LMConfig, dtype, rngs, lora):
        lin = dict(bias=c.mlp_bias, layout="out_in", dtype=dtype, rngs=rngs, lora=lora)
        self.gate_proj = Linear(c.hidden_size, c.intermediate_size, **lin)
        self.up_proj = Linear(c.hidden_size, c.intermediate_size, **lin)
        self.down_proj = Linear(c.intermediate_size, c.hidden_size, **lin)

    def __call__(self, x):
        return self.down_proj(jax.nn.silu(self.gate_proj(x)) * self.up_proj(x))


class _Layer(nnx.Module):
    def __init__(self, c: LMConfig, dtype, rngs, lora: LoraSpec | None):
        self.input_layernorm = RMSNorm(c.hidden_size, c.norm_eps, dtype=dtype)
        self.self_attn = _Attention(c, dtype, rngs, lora_of(lora, "attention"))
        self.post_attention_layernorm = RMSNorm(c.hidden_size, c.norm_eps, dtype=dtype)
        self.mlp = _MLP(c, dtype, rngs, lora_of(lora, "mlp"))

    def __call__(self, x, positions, inv_freq, cache_kv=None, start=0):
        a, cache_kv = self.self_attn(self.input_layernorm(x), positions, inv_freq, cache_kv, start)
        x = x + a
        return x + self.mlp(self.post_attention_layernorm(x)), cache_kv


class _Backbone(nnx.Module):
    def __init__(self, c: LMConfig, dtype, rngs, lora):
        self.embed_tokens = Embedding(c.vocab_size, c.hidden_size, dtype=dtype, rngs=rngs)
        self.layers = nnx.List([_Layer(c, dtype, rngs, lora) for _ in range(c.num_layers)])
        self.norm = RMSNorm(c.hidden_size, c.norm_eps, dtype=dtype)


class Llama(DecoderLM):
    """``Llama(config, dtype=..., compute_dtype=..., rngs=...)``: ``model(ids)`` -> logits (B, T, V) (float32);
    ``model.extend(ids, start, cache)`` -> (logits, cache) with a key-value cache from :meth:`init_cache`."""

    def __init__(self, config: LMConfig, *, dtype=jnp.float32, compute_dtype=None, rngs: nnx.Rngs,
                 lora: LoraSpec | None = None):
        self.config = config
        self.compute_dtype = compute_dtype or dtype
        self.model = _Backbone(config, dtype, rngs, lora)
        self.lm_head = None if config.tie_embeddings else Linear(config.hidden_size, config.vocab_size, bias=False,
                                                                  layout="out_in", dtype=dtype, rngs=rngs)

    def _run(self, ids, start, cache):
        m = self.model
        positions = start + jnp.arange(ids.shape[1])
        inv_freq = rope_frequencies(self.config.head_dim, self.config.rope)
        x = m.embed_tokens(ids, self.compute_dtype)
        new = []
        for i, layer in enumerate(m.layers):
            x, kv = layer(x, positions, inv_freq, None if cache is None else cache[i], start)
            new.append(kv)
        x = m.norm(x)
        logits = m.embed_tokens.attend(x) if self.lm_head is None else self.lm_head(x)
        return logits.astype(jnp.float32), (None if cache is None else new)
