"""Pretrained language models in the Hugging Face layout, in Flax NNX, without PyTorch.

A model folder holds ``config.json``, one or more ``*.safetensors`` files and ``tokenizer.json`` (what
``transformers``' ``save_pretrained`` and the Hub write). The modules here, one job each:

- :mod:`collapse.lm.hf_config`: ``config.json`` -> :class:`~collapse.lm.hf_config.LMConfig` (architecture and sizes),
  refusing what is not implemented by name;
- :mod:`collapse.lm.layers`: the shared pieces (linear layers in the Hugging Face weight layout, LayerNorm, RMSNorm,
  rotary embeddings, causal attention with a key-value cache);
- :mod:`collapse.lm.gpt2`, :mod:`collapse.lm.llama` and :mod:`collapse.lm.opt`: the decoder families (GPT-2; the
  Llama family: Llama, Qwen2, SmolLM, TinyLlama; OPT);
- :mod:`collapse.lm.weights`: ``*.safetensors`` <-> the model's parameters, with one-line errors for missing or unknown
  keys and shape mismatches, and writing a folder back in the same layout;
- :mod:`collapse.lm.tokenizer`: the checkpoint's own ``tokenizer.json`` through the ``tokenizers`` library.

Every parameter keeps its Hugging Face name and array layout (``h.0.attn.c_attn.weight`` is the NNX path
``h/0/attn/c_attn/weight`` with the same shape), so loading and exporting are a rename, never a transpose.
"""
from collapse.lm.hf_config import CheckpointError, LMConfig, read_config
from collapse.lm.weights import build_model, load_model, save_model

__all__ = ["CheckpointError", "LMConfig", "read_config", "build_model", "load_model", "save_model"]
