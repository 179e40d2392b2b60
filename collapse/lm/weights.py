"""Model folders <-> NNX models: ``*.safetensors`` read with the ``safetensors`` library (no PyTorch), and written
back in the layout ``transformers`` loads.

A parameter's Hugging Face key is its NNX path joined by dots (``transformer.h.0.attn.c_attn.weight``,
``model.layers.0.self_attn.q_proj.weight``). Accepted on reading and dropped: GPT-2 keys without the
``transformer.`` prefix (the original checkpoints), OPT keys without the ``model.`` prefix (``OPTModel``
checkpoints), GPT-2's causal-mask buffers (``attn.bias``,
``attn.masked_bias``), Llama's ``rotary_emb.inv_freq`` buffers, and ``lm_head.weight`` of a model whose head is
tied to its embedding. Every other difference between the files and the architecture (a missing key, a key the
architecture does not have, a shape) is a :class:`~collapse.lm.hf_config.CheckpointError` naming the file.
Tensors are cast to the model's parameter dtype (bfloat16 and float16 checkpoints load into float32).
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from collapse.lm.gpt2 import GPT2
from collapse.lm.hf_config import CheckpointError, LMConfig, read_config
from collapse.lm.layers import Linear, LoraParam, LoraSpec
from collapse.lm.llama import Llama
from collapse.lm.opt import OPT

MODELS: dict[str, Callable[..., nnx.Module]] = {"gpt2": GPT2, "llama": Llama, "opt": OPT}
_BUFFERS = re.compile(r"(^|\.)attn\.(bias|masked_bias)$|rotary_emb\.inv_freq$")
_GPT2_TOP = ("wte.", "wpe.", "h.", "ln_f.")


def build_model(config: LMConfig, *, dtype=jnp.float32, compute_dtype=None, seed: int = 0,
                lora: LoraSpec | None = None) -> nnx.Module:
    """A randomly initialised model of ``config`` (normal(0, 0.02) weights, unit norms, zero biases), with
    low-rank adapters where ``lora`` says."""
    return MODELS[config.arch](config, dtype=dtype, compute_dtype=compute_dtype, rngs=nnx.Rngs(seed), lora=lora)


def key_of(path) -> str:
    return ".".join(str(p) for p in path)


def parameter_keys(model: nnx.Module) -> dict[str, tuple]:
    """{Hugging Face key: shape} of a model (or of its abstract ``nnx.eval_shape`` version)."""
    return {key_of(p): tuple(v.shape) for p, v in nnx.to_flat_state(nnx.state(model, nnx.Param))}


def hf_tensors(model: nnx.Module) -> dict[str, jax.Array]:
    """{Hugging Face key: array} of a model, each LoRA-adapted weight with its adapters folded in
    (W + (alpha / r) A B in the weight's layout) and the adapters themselves left out."""
    out = {}
    for path, var in nnx.to_flat_state(nnx.state(model, nnx.Param)):
        if isinstance(var, LoraParam):
            continue
        if path[-1] == "weight":
            layer = model
            for part in path[:-1]:
                layer = layer[part] if isinstance(part, int) else getattr(layer, part)
            out[key_of(path)] = layer.merged_weight() if isinstance(layer, Linear) else var[...]
        else:
            out[key_of(path)] = var[...]
    return out


def _weight_files(folder: Path) -> list[Path]:
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            names = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (KeyError, json.JSONDecodeError, AttributeError) as exc:
            raise CheckpointError(index, f"is not a safetensors index ({exc!r}); expected a weight_map") from None
        files = [folder / n for n in names]
        for f in files:
            if not f.is_file():
                raise CheckpointError(f, f"not found (listed in {index.name})")
        return files
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise CheckpointError(folder, "holds no *.safetensors file (PyTorch .bin checkpoints are not read: save the "
                              "model with safe_serialization=True)")
    return files


def read_tensors(folder: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Path]]:
    """Every tensor of a folder's safetensors files as NumPy arrays (bfloat16 as ml_dtypes' bfloat16), and the file
    each key came from."""
    from safetensors import SafetensorError, safe_open

    tensors, origin = {}, {}
    for f in _weight_files(Path(folder)):
        try:
            with safe_open(str(f), framework="flax") as fh:
                for k in fh.keys():
                    tensors[k] = np.asarray(fh.get_tensor(k))
                    origin[k] = f
        except (SafetensorError, OSError) as exc:
            raise CheckpointError(f, f"cannot be read as safetensors ({exc})") from None
    return tensors, origin


def _normalise(config: LMConfig, tensors: dict, origin: dict) -> dict:
    """Drop buffers and a tied head; give original GPT-2 keys their ``transformer.`` prefix."""
    out = {}
    for k, v in tensors.items():
        if _BUFFERS.search(k) or (config.tie_embeddings and k == "lm_head.weight"):
            continue
        prefix = ("transformer." if config.arch == "gpt2" and k.startswith(_GPT2_TOP) else
                  "model." if config.arch == "opt" and k.startswith("decoder.") else "")
        if prefix:
            origin[prefix + k] = origin[k]
            k = prefix + k
        out[k] = v
    return out


def load_model(folder: str | Path, *, dtype=jnp.float32, compute_dtype=None) -> tuple[nnx.Module, LMConfig]:
    """(model, config) of a Hugging Face model folder; :class:`CheckpointError` on anything that does not fit."""
    folder = Path(folder)
    config = read_config(folder)
    abstract = nnx.eval_shape(lambda: build_model(config, dtype=dtype, compute_dtype=compute_dtype))
    graphdef, state = nnx.split(abstract)
    expected = parameter_keys(abstract)
    raw, origin = read_tensors(folder)
    tensors = _normalise(config, raw, origin)
    first_file = next(iter(origin.values()))
    missing = [k for k in expected if k not in tensors]
    if missing:
        raise CheckpointError(first_file, f"missing {len(missing)} of the {len(expected)} tensors a {config.arch} "
                              f"of {config.num_layers} layers has, e.g. {missing[0]!r}")
    unknown = sorted(k for k in tensors if k not in expected)
    if unknown:
        raise CheckpointError(origin[unknown[0]], f"{len(unknown)} tensors the {config.arch} architecture does not "
                              f"have, e.g. {unknown[0]!r} (config.json and the weights disagree)")
    for k, shape in expected.items():
        if tuple(tensors[k].shape) != shape:
            raise CheckpointError(origin[k], f"{k} has shape {tuple(tensors[k].shape)}, config.json implies {shape}")
    flat = nnx.to_flat_state(state)
    values = []
    for path, var in flat:
        k = key_of(path)
        values.append((path, var.replace(jnp.asarray(tensors[k]).astype(dtype)) if k in expected else var))
    state = nnx.from_flat_state(values)
    return nnx.merge(graphdef, state), config


def model_files(model: nnx.Module, tokenizer_file: str | Path | None = None, dtype=np.float32) -> dict[str, bytes]:
    """{file name: bytes} of a model folder in the Hugging Face layout: ``config.json``, ``model.safetensors``
    (tied heads not written twice, low-rank adapters folded into their weights) and ``tokenizer.json`` (a copy of
    ``tokenizer_file``, when given)."""
    from safetensors.numpy import save

    config: LMConfig = model.config
    tensors = {k: np.ascontiguousarray(np.asarray(v, dtype=dtype)) for k, v in hf_tensors(model).items()}
    raw = dict(config.raw)
    raw["torch_dtype"] = np.dtype(dtype).name
    files = {"config.json": (json.dumps(raw, indent=2) + "\n").encode(),
             "model.safetensors": save(tensors, metadata={"format": "pt"})}
    if tokenizer_file is not None:
        files["tokenizer.json"] = Path(tokenizer_file).read_bytes()
    return files


def save_model(model: nnx.Module, folder: str | Path, tokenizer_file: str | Path | None = None,
               dtype=np.float32) -> Path:
    """Write :func:`model_files` into ``folder``: what ``transformers``' ``AutoModelForCausalLM.from_pretrained``
    loads."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in model_files(model, tokenizer_file, dtype).items():
        (folder / name).write_bytes(data)
    return folder
