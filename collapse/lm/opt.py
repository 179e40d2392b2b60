"""OPT (``OPTForCausalLM``: Zhang et al. 2022; Shumailov et al. 2024 fine-tune OPT-125m) in Flax NNX, parameters
named and shaped as Hugging Face's.

x_0 = embed_tokens[ids] + embed_positions[positions + 2] (learned positions with OPT's offset of 2); each layer
(pre-LayerNorm, as every OPT but 350m): a = x + out_proj(attn(self_attn_layer_norm(x))),
x' = a + fc2(relu(fc1(final_layer_norm(a)))); logits = final_layer_norm(x_L) embed_tokens^T (the head tied to the
token embedding unless ``tie_word_embeddings`` is false). Attention: causal, ``num_attention_heads`` heads of
hidden_size / heads, scores / sqrt(head_dim), biases on q, k, v and out (``enable_bias``).
"""
from __future__ import annotations

import jax.numpy as jnp
from flax import nnx

from collapse.lm.hf_config import LMConfig
from collapse.lm.layers import ACT, DecoderLM, Embedding, LayerNorm, Linear, LoraSpec, lora_of, self_attention

POSITION_OFFSET = 2  # OPT's learned position table has 2 rows before position 0


class _Attention(nnx.Module):
    def __init__(self, c: LMConfig, dtype, rngs, lora):
        self.heads, self.dh = c.num_heads, c.head_dim
        lin = dict(bias=c.qkv_bias, layout="out_in", dtype=dtype, rngs=rngs, lora=lora)
        self.q_proj = Linear(c.hidden_size, c.hidden_size, **lin)
        self.k_proj = Linear(c.hidden_size, c.hidden_size, **lin)
        self.v_proj = Linear(c.hidden_size, c.hidden_size, **lin)
        self.out_proj = Linear(c.hidden_size, c.hidden_size, **lin)

    def __call__(self, x, positions, cache_kv=None, start=0):
        B, T, d = x.shape
        q, k, v = (p(x).reshape(B, T, self.heads, self.dh) for p in (self.q_proj, self.k_proj, self.v_proj))
        y, cache_kv = self_attention(q, k, v, positions, cache_kv, start)
        return self.out_proj(y.reshape(B, T, d)), cache_kv


class _Layer(nnx.Module):
    def __init__(self, c: LMConfig, dtype, rngs, lora: LoraSpec | None):
        self.act = ACT[c.activation]
        self.self_attn_layer_norm = LayerNorm(c.hidden_size, c.norm_eps, dtype=dtype)
        self.self_attn = _Attention(c, dtype, rngs, lora_of(lora, "attention"))
        self.final_layer_norm = LayerNorm(c.hidden_size, c.norm_eps, dtype=dtype)
        mlp = dict(bias=c.mlp_bias, layout="out_in", dtype=dtype, rngs=rngs, lora=lora_of(lora, "mlp"))
        self.fc1 = Linear(c.hidden_size, c.intermediate_size, **mlp)
        self.fc2 = Linear(c.intermediate_size, c.hidden_size, **mlp)

    def __call__(self, x, positions, cache_kv=None, start=0):
        a, cache_kv = self.self_attn(self.self_attn_layer_norm(x), positions, cache_kv, start)
        x = x + a
        return x + self.fc2(self.act(self.fc1(self.final_layer_norm(x)))), cache_kv


class _Decoder(nnx.Module):
    def __init__(self, c: LMConfig, dtype, rngs, lora):
        self.embed_tokens = Embedding(c.vocab_size, c.hidden_size, dtype=dtype, rngs=rngs)
        self.embed_positions = Embedding(c.max_positions + POSITION_OFFSET, c.hidden_size, dtype=dtype, rngs=rngs)
        self.layers = nnx.List([_Layer(c, dtype, rngs, lora) for _ in range(c.num_layers)])
        self.final_layer_norm = LayerNorm(c.hidden_size, c.norm_eps, dtype=dtype)


class _Model(nnx.Module):
    def __init__(self, c: LMConfig, dtype, rngs, lora):
        self.decoder = _Decoder(c, dtype, rngs, lora)


class OPT(DecoderLM):
    """``OPT(config, dtype=..., compute_dtype=..., rngs=...)``: ``model(ids)`` -> logits (B, T, V) (float32);
    ``model.extend(ids, start, cache)`` -> (logits, cache) with a key-value cache from :meth:`init_cache`."""

    def __init__(self, config: LMConfig, *, dtype=jnp.float32, compute_dtype=None, rngs: nnx.Rngs,
                 lora: LoraSpec | None = None):
        self.config = config
        self.compute_dtype = compute_dtype or dtype
        self.model = _Model(config, dtype, rngs, lora)
        self.lm_head = None if config.tie_embeddings else Linear(config.hidden_size, config.vocab_size, bias=False,
                                                                  layout="out_in", dtype=dtype, rngs=rngs)

    def _run(self, ids, start, cache):
        dec = self.model.decoder
        positions = start + jnp.arange(ids.shape[1])
        x = dec.embed_tokens(ids, self.compute_dtype) + dec.embed_positions(positions + POSITION_OFFSET,
                                                                            self.compute_dtype)[None]
        new = []
        for i, layer in enumerate(dec.layers):
            x, kv = layer(x, positions, None if cache is None else cache[i], start)
            new.append(kv)
        x = dec.final_layer_norm(x)
        logits = dec.embed_tokens.attend(x) if self.lm_head is None else self.lm_head(x)
        return logits.astype(jnp.float32), (None if cache is None else new)
