"""Memory estimate of a pretrained-LM run, checked before anything is compiled.

Per replicate, in bytes (b = bytes per float of the run's precision, P = parameters of the checkpoint, T = trained
parameters: P for full fine-tuning, the adapters for LoRA):

- weights: P b once (the checkpoint, shared by every replicate) + T b (the replicate's current model) + T b again
  with ``init=gen0`` (its generation-0 model) + T b per generation of ``export.generations`` (kept to the end);
- training: 4 T b (the start point, the gradient, Adam's two moments; 5 T b with gradient accumulation, whose
  running sum is a second gradient) + activations kept for the backward pass,
  B L (16 d + 2 H L) a per layer (B = ``model.batch`` segments of L tokens, a microbatch under gradient
  accumulation; d features, H heads; a bytes per activation: 2 under ``model.precision=bfloat16``, else b)
  + 3 B L V 4 for the float32 logits and their softmax (V the vocabulary);
- sampling: the key-value cache m L layers 2 kv_heads head_dim a for the m = floor(loop.samples / L) segments of
  a generation, plus m V (4 + 1) for the float32 logits and the repetition mask.

Replicates run together under ``vmap``, so the run needs weights(P) + R x (the rest); with ``engine.rows_at_once``
= k < R, P b + R x model + k x (training + sampling). This is an estimate (XLA may fuse buffers away or keep
temporaries); the guard refuses a run above 90% of the limit.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import jax

from collapse.lm.hf_config import LMConfig


def parameter_count(c: LMConfig) -> int:
    """Parameters of a checkpoint of ``c`` (the Hugging Face tensors, a tied head counted once)."""
    d, L, V = c.hidden_size, c.num_layers, c.vocab_size
    if c.arch == "gpt2":
        per_layer = 4 * d + (d * 3 * d + 3 * d) + (d * d + d) + 2 * (d * c.intermediate_size) + c.intermediate_size + d
        return V * d + c.max_positions * d + L * per_layer + 2 * d
    if c.arch == "opt":
        b = 1 if c.qkv_bias else 0
        per_layer = 4 * (d * d + b * d) + 4 * d + 2 * d * c.intermediate_size + b * (c.intermediate_size + d)
        return V * d + (c.max_positions + 2) * d + L * per_layer + 2 * d + (0 if c.tie_embeddings else V * d)
    q, kv = c.num_heads * c.head_dim, c.num_kv_heads * c.head_dim
    attn = d * q + 2 * d * kv + q * d + (q + 2 * kv if c.qkv_bias else 0) + (d if c.o_bias else 0)
    mlp = 3 * d * c.intermediate_size + ((2 * c.intermediate_size + d) if c.mlp_bias else 0)
    return V * d + L * (attn + mlp + 2 * d) + d + (0 if c.tie_embeddings else V * d)


def lora_count(c: LMConfig, rank: int, targets: tuple[str, ...]) -> int:
    """Adapter parameters: rank (in + out) per adapted projection."""
    d, I = c.hidden_size, c.intermediate_size
    if c.arch == "gpt2":
        shapes = ([(d, 3 * d), (d, d)] if "attention" in targets else []) + ([(d, I), (I, d)] if "mlp" in targets else [])
    elif c.arch == "opt":
        shapes = ([(d, d)] * 4 if "attention" in targets else []) + ([(d, I), (I, d)] if "mlp" in targets else [])
    else:
        q, kv = c.num_heads * c.head_dim, c.num_kv_heads * c.head_dim
        shapes = ([(d, q), (d, kv), (d, kv), (q, d)] if "attention" in targets else []) + \
                 ([(d, I), (d, I), (I, d)] if "mlp" in targets else [])
    return c.num_layers * sum(rank * (a + b) for a, b in shapes)


HELD = ("model", "kept models")  # parts every replicate holds for the whole run


@dataclass(frozen=True)
class MemoryEstimate:
    shared: int  # bytes held once (the checkpoint)
    parts: dict  # {name: bytes per replicate}

    @property
    def held(self) -> int:
        """Bytes every replicate holds for the whole run (its model, its generation-0 model, kept models)."""
        return sum(v for k, v in self.parts.items() if k in HELD)

    @property
    def working(self) -> int:
        """Bytes a replicate needs while it trains and samples (optimizer, activations, sampling cache)."""
        return sum(v for k, v in self.parts.items() if k not in HELD)

    @property
    def per_replicate(self) -> int:
        return self.held + self.working

    def total(self, replicates: int, at_once: int | None = None) -> int:
        """Bytes for ``replicates``, of which ``at_once`` (default all) train and sample together."""
        k = replicates if at_once is None else min(at_once, replicates)
        return self.shared + replicates * self.held + k * self.working


def estimate(c: LMConfig, *, batch: int, segment: int, samples_per_generation: int, lora_rank: int,
             lora_targets: tuple[str, ...], init: str, bytes_per_float: int = 4,
             compute_bytes: int | None = None, kept_models: int = 0, accumulate: int = 1) -> MemoryEstimate:
    """``bytes_per_float``: the weights' and optimizer's float; ``compute_bytes``: the activations' and cache's
    (2 under ``model.precision=bfloat16``; default the same); ``kept_models``: generations kept for
    ``export.generations`` (T b each); ``accumulate`` > 1 holds a second gradient (the running sum) in training."""
    b, L = bytes_per_float, segment
    a = compute_bytes or b
    P = parameter_count(c)
    T = lora_count(c, lora_rank, lora_targets) if lora_rank > 0 else P
    parts = {
        "model": T * b * (2 if init == "gen0" else 1),
        "kept models": kept_models * T * b,
        "optimizer": (4 + (accumulate > 1)) * T * b,
        "activations": c.num_layers * batch * L * (16 * c.hidden_size + 2 * c.num_heads * L) * a
        + 3 * batch * L * c.vocab_size * 4,  # logits and their softmax: float32
        "sampling": samples_per_generation * L * c.num_layers * 2 * c.num_kv_heads * c.head_dim * a
        + samples_per_generation * c.vocab_size * (4 + 1),
    }
    return MemoryEstimate(P * b, parts)


def device_limit_bytes() -> tuple[int, str]:
    """(bytes, what they are) of the default device: an accelerator's allocator limit, else the host's available
    memory (``MemAvailable`` of /proc/meminfo, else physical memory)."""
    dev = jax.devices()[0]
    stats = dev.memory_stats() if dev.platform != "cpu" else None
    if stats and stats.get("bytes_limit"):
        return int(stats["bytes_limit"]), f"{dev.device_kind} memory"
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024, "available host memory"
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"), "host memory"


def gib(n: float) -> str:
    """Bytes for people: GiB from 1 GiB up, else MiB."""
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"
