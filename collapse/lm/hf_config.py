"""``config.json`` of a Hugging Face model folder -> :class:`LMConfig`, the sizes and choices the models need.

Architectures (``architectures[0]`` of ``config.json``, else ``model_type``):

- ``GPT2LMHeadModel`` / ``gpt2``: learned positions, pre-LayerNorm blocks, fused ``c_attn`` (d -> 3d), a
  ``n_inner`` (default 4d) MLP with ``activation_function`` (``gelu_new`` = tanh approximation, ``gelu``, ``relu``),
  output head tied to the token embedding.
- ``LlamaForCausalLM`` / ``llama`` (also SmolLM, TinyLlama) and ``Qwen2ForCausalLM`` / ``qwen2``: RMSNorm, rotary
  position embeddings (``rope_type`` default, linear or llama3), grouped-query attention
  (``num_key_value_heads`` <= ``num_attention_heads``), SwiGLU MLP (``hidden_act`` silu); Qwen2 has q/k/v biases.
- ``OPTForCausalLM`` / ``opt`` (OPT-125m, 1.3b, 2.7b, ...): learned positions offset by 2, pre-LayerNorm layers,
  separate q/k/v/out projections, an ``ffn_dim`` MLP with ``activation_function`` (relu), biases (``enable_bias``),
  head tied to the token embedding. OPT-350m's layout (post-LayerNorm, ``word_embed_proj_dim`` != hidden_size) is
  refused by name.

Anything else (another architecture, a GPT-2 with cross-attention or layer-index scaling, a sliding window, partial
rotary, a RoPE type not listed) raises :class:`CheckpointError` naming the file and what is supported, so a model
is never run with a silently different computation.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

ARCHITECTURES = {"GPT2LMHeadModel": "gpt2", "LlamaForCausalLM": "llama", "Qwen2ForCausalLM": "llama",
                 "OPTForCausalLM": "opt"}
MODEL_TYPES = {"gpt2": "gpt2", "llama": "llama", "qwen2": "llama", "opt": "opt"}
ACTIVATIONS = ("gelu_new", "gelu_pytorch_tanh", "gelu", "relu", "silu")
ROPE_TYPES = ("default", "linear", "llama3")


class CheckpointError(ValueError):
    """A model folder that cannot be used: ``<file>: <what is wrong and what was expected>``."""

    def __init__(self, file: str | Path, what: str):
        self.file, self.what = str(file), what
        super().__init__(f"{file}: {what}")


@dataclass(frozen=True)
class LMConfig:
    """What the models read from ``config.json`` (sizes in tokens / features).

    ``arch``: ``gpt2`` | ``llama`` | ``opt``; ``model_type``: as written (``gpt2``, ``llama``, ``qwen2``, ``opt``);
    ``head_dim`` = ``hidden_size / num_heads`` unless the file sets it; ``rope``: {"type", "theta", and the
    scaling keys of that type}; ``qkv_bias`` / ``o_bias`` / ``mlp_bias``: which Llama-family projections have biases.
    ``raw``: the parsed file, written back unchanged on export.
    """

    arch: str
    model_type: str
    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    max_positions: int
    norm_eps: float
    activation: str
    tie_embeddings: bool
    qkv_bias: bool = False
    o_bias: bool = False
    mlp_bias: bool = False
    rope: dict = field(default_factory=dict, hash=False)
    bos_token_id: Optional[int] = None
    eos_token_id: Optional[int] = None
    raw: dict = field(default_factory=dict, compare=False, hash=False)


def read_config(folder: str | Path) -> LMConfig:
    """Parse ``<folder>/config.json``; :class:`CheckpointError` for a missing file or anything unsupported."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(folder, "is not a folder (expected a model folder with config.json, *.safetensors and "
                              "tokenizer.json)")
    path = folder / "config.json"
    if not path.is_file():
        raise CheckpointError(path, "not found (a Hugging Face model folder has config.json, *.safetensors and "
                              "tokenizer.json)")
    try:
        raw = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(path, f"is not valid JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise CheckpointError(path, "must hold a JSON object")
    return parse_config(raw, path)


def _arch_of(raw: dict, path) -> str:
    names = raw.get("architectures") or []
    if names:
        if names[0] in ARCHITECTURES:
            return ARCHITECTURES[names[0]]
        raise CheckpointError(path, f"unsupported architecture {names[0]!r}; supported: {', '.join(ARCHITECTURES)}")
    mt = raw.get("model_type")
    if mt in MODEL_TYPES:
        return MODEL_TYPES[mt]
    raise CheckpointError(path, f"unsupported model_type {mt!r} (and no architectures entry); supported: "
                          f"{', '.join(MODEL_TYPES)}")


def _int(raw: dict, key: str, path, default: Any = None) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise CheckpointError(path, f"{key}={value!r}: expected a positive integer")
    return value


def _refuse(raw: dict, path, key: str, allowed, what: str) -> None:
    if key in raw and raw[key] not in allowed:
        raise CheckpointError(path, f"{key}={raw[key]!r}: {what}")


def _token_id(value) -> Optional[int]:
    if isinstance(value, list):
        value = value[0] if value else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def parse_config(raw: dict, path: str | Path = "config.json") -> LMConfig:
    """The :class:`LMConfig` of a parsed ``config.json`` (``path``: named in errors)."""
    arch = _arch_of(raw, path)
    common = dict(model_type=str(raw.get("model_type", arch)), vocab_size=_int(raw, "vocab_size", path),
                  bos_token_id=_token_id(raw.get("bos_token_id")), eos_token_id=_token_id(raw.get("eos_token_id")),
                  raw=raw)
    if arch == "gpt2":
        return _gpt2(raw, path, common)
    if arch == "opt":
        return _opt(raw, path, common)
    return _llama(raw, path, common)


def _gpt2(raw: dict, path, common: dict) -> LMConfig:
    d, heads = _int(raw, "n_embd", path, 768), _int(raw, "n_head", path, 12)
    if d % heads:
        raise CheckpointError(path, f"n_embd={d} is not a multiple of n_head={heads}")
    inner = raw.get("n_inner")
    _refuse(raw, path, "add_cross_attention", (False,), "cross-attention is not supported (a decoder-only GPT-2)")
    _refuse(raw, path, "scale_attn_by_inverse_layer_idx", (False,), "only false is supported")
    _refuse(raw, path, "reorder_and_upcast_attn", (False,), "only false is supported")
    _refuse(raw, path, "scale_attn_weights", (True,), "only true (scores / sqrt(head_dim)) is supported")
    _refuse(raw, path, "tie_word_embeddings", (True,), "GPT-2's output head is tied to its token embedding")
    act = raw.get("activation_function", "gelu_new")
    if act not in ACTIVATIONS:
        raise CheckpointError(path, f"activation_function={act!r}: supported {', '.join(ACTIVATIONS)}")
    return LMConfig(arch="gpt2", hidden_size=d, num_layers=_int(raw, "n_layer", path, 12), num_heads=heads,
                    num_kv_heads=heads, head_dim=d // heads,
                    intermediate_size=4 * d if inner is None else _int(raw, "n_inner", path),
                    max_positions=_int(raw, "n_positions", path, 1024),
                    norm_eps=float(raw.get("layer_norm_epsilon", 1e-5)), activation=act, tie_embeddings=True,
                    qkv_bias=True, o_bias=True, mlp_bias=True, **common)


def _opt(raw: dict, path, common: dict) -> LMConfig:
    d, heads = _int(raw, "hidden_size", path, 768), _int(raw, "num_attention_heads", path, 12)
    if d % heads:
        raise CheckpointError(path, f"hidden_size={d} is not a multiple of num_attention_heads={heads}")
    _refuse(raw, path, "do_layer_norm_before", (True,), "only pre-LayerNorm OPT is supported (OPT-350m's "
            "post-LayerNorm layout is not)")
    proj = raw.get("word_embed_proj_dim", d)
    if proj != d:
        raise CheckpointError(path, f"word_embed_proj_dim={proj!r}: only hidden_size={d} is supported (OPT-350m's "
                              "projected embeddings are not)")
    _refuse(raw, path, "_remove_final_layer_norm", (False,), "only false is supported")
    _refuse(raw, path, "layer_norm_elementwise_affine", (True,), "only true is supported")
    act = raw.get("activation_function", "relu")
    if act not in ACTIVATIONS:
        raise CheckpointError(path, f"activation_function={act!r}: supported {', '.join(ACTIVATIONS)}")
    bias = bool(raw.get("enable_bias", True))
    return LMConfig(arch="opt", hidden_size=d, num_layers=_int(raw, "num_hidden_layers", path, 12), num_heads=heads,
                    num_kv_heads=heads, head_dim=d // heads, intermediate_size=_int(raw, "ffn_dim", path, 3072),
                    max_positions=_int(raw, "max_position_embeddings", path, 2048), norm_eps=1e-5, activation=act,
                    tie_embeddings=bool(raw.get("tie_word_embeddings", True)), qkv_bias=bias, o_bias=bias,
                    mlp_bias=bias, **common)


def _rope(raw: dict, path) -> dict:
    """{"type", "theta", ...} from ``rope_parameters`` (transformers >= 5) or ``rope_theta`` / ``rope_scaling``."""
    params = dict(raw.get("rope_parameters") or raw.get("rope_scaling") or {})
    kind = params.get("rope_type", params.get("type", "default"))
    if kind not in ROPE_TYPES:
        raise CheckpointError(path, f"rope_type={kind!r}: supported {', '.join(ROPE_TYPES)}")
    partial = params.get("partial_rotary_factor", raw.get("partial_rotary_factor", 1.0))
    if partial != 1.0:
        raise CheckpointError(path, f"partial_rotary_factor={partial!r}: only 1.0 (rotary on the whole head) is "
                              "supported")
    theta = float(params.get("rope_theta", raw.get("rope_theta", 10000.0)))
    out = {"type": kind, "theta": theta}
    if kind == "linear":
        out["factor"] = float(params["factor"])
    elif kind == "llama3":
        for key in ("factor", "low_freq_factor", "high_freq_factor"):
            if key not in params:
                raise CheckpointError(path, f"rope_type llama3 needs {key}")
            out[key] = float(params[key])
        out["original_max_position_embeddings"] = int(params.get("original_max_position_embeddings",
                                                                 raw.get("max_position_embeddings", 2048)))
    return out


def _llama(raw: dict, path, common: dict) -> LMConfig:
    d, heads = _int(raw, "hidden_size", path), _int(raw, "num_attention_heads", path)
    kv = _int(raw, "num_key_value_heads", path, heads)
    if heads % kv:
        raise CheckpointError(path, f"num_attention_heads={heads} is not a multiple of num_key_value_heads={kv}")
    head_dim = raw.get("head_dim") or (d // heads)
    if not raw.get("head_dim") and d % heads:
        raise CheckpointError(path, f"hidden_size={d} is not a multiple of num_attention_heads={heads}")
    act = raw.get("hidden_act", "silu")
    if act != "silu":
        raise CheckpointError(path, f"hidden_act={act!r}: the Llama family's SwiGLU needs silu")
    _refuse(raw, path, "pretraining_tp", (1, None), "only 1 is supported")
    _refuse(raw, path, "use_sliding_window", (False, None), "sliding-window attention is not supported")
    qwen = common["model_type"] == "qwen2" or (raw.get("architectures") or [""])[0].startswith("Qwen2")
    bias = bool(raw.get("attention_bias", False))
    return LMConfig(arch="llama", hidden_size=d, num_layers=_int(raw, "num_hidden_layers", path), num_heads=heads,
                    num_kv_heads=kv, head_dim=int(head_dim), intermediate_size=_int(raw, "intermediate_size", path),
                    max_positions=_int(raw, "max_position_embeddings", path, 2048),
                    norm_eps=float(raw.get("rms_norm_eps", 1e-6)), activation="silu",
                    tie_embeddings=bool(raw.get("tie_word_embeddings", False)), qkv_bias=qwen or bias,
                    o_bias=bias and not qwen, mlp_bias=bool(raw.get("mlp_bias", False)), rope=_rope(raw, path),
                    **common)
