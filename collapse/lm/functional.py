"""A decoder as pure functions of a flat parameter dict, for the compiled generation loop.

Parameters are ``{key: array}`` with the Hugging Face keys (``model.layers.0.self_attn.q_proj.weight``) and, for
low-rank adapters, ``<linear>.lora_a`` / ``<linear>.lora_b``: a plain pytree that ``vmap`` batches over replicates,
``grad`` differentiates and Optax updates. :meth:`PureLM.bind` rebuilds the NNX module around a dict inside a
traced function (the module's structure is static, only the arrays are traced).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from collapse.lm.hf_config import LMConfig
from collapse.lm.layers import LoraSpec, empty_cache
from collapse.lm.weights import build_model, key_of

Params = dict[str, jax.Array]


@dataclass(frozen=True, eq=False)
class PureLM:
    config: LMConfig
    graphdef: Any
    template: tuple  # ((path, abstract variable), ...)
    base_keys: tuple[str, ...]
    lora_keys: tuple[str, ...]
    compute_dtype: Any

    def bind(self, params: Params) -> nnx.Module:
        state = nnx.from_flat_state([(p, v.replace(params[key_of(p)])) for p, v in self.template])
        return nnx.merge(self.graphdef, state)

    def logits(self, params: Params, ids) -> jax.Array:
        """(B, T) ids -> (B, T, V) float32 logits of a full causal pass."""
        return self.bind(params)(ids)

    def extend(self, params: Params, ids, start, cache):
        return self.bind(params).extend(ids, start, cache)

    def init_cache(self, batch: int, length: int):
        c = self.config
        return empty_cache(c.num_layers, batch, c.num_kv_heads, length, c.head_dim, self.compute_dtype)

    def init_lora(self, key, dtype=jnp.float32) -> Params:
        """Fresh adapters: A ~ N(0, 1 / in), B = 0 (the adapted model equals the base model)."""
        out = {}
        shapes = {key_of(p): v for p, v in self.template}
        for i, k in enumerate(self.lora_keys):
            shape = shapes[k].shape
            if k.endswith("lora_a"):
                out[k] = jax.random.normal(jax.random.fold_in(key, i), shape, dtype) / jnp.sqrt(shape[0]).astype(dtype)
            else:
                out[k] = jnp.zeros(shape, dtype)
        return out


def pure_lm(config: LMConfig, *, dtype=jnp.float32, compute_dtype=None, lora: LoraSpec | None = None) -> PureLM:
    """The pure form of a model of ``config`` (nothing is initialised: shapes only)."""
    abstract = nnx.eval_shape(lambda: build_model(config, dtype=dtype, compute_dtype=compute_dtype, lora=lora))
    graphdef, state = nnx.split(abstract)
    template = tuple(nnx.to_flat_state(state))
    keys = [key_of(p) for p, _ in template]
    lora_keys = tuple(k for k in keys if k.rsplit(".", 1)[-1] in ("lora_a", "lora_b"))
    base = tuple(k for k in keys if k not in lora_keys)
    return PureLM(config, graphdef, template, base, lora_keys, compute_dtype or dtype)


def flat_params(model: nnx.Module) -> Params:
    """{key: array} of a concrete model's parameters (adapters included)."""
    return {key_of(p): v[...] for p, v in nnx.to_flat_state(nnx.state(model, nnx.Param))}
