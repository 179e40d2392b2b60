"""Pretrained language models: collapse's Flax NNX GPT-2 and Llama-family models against Hugging Face
``transformers``' own PyTorch implementations on the same files.

Tiny random checkpoints are written by ``transformers`` itself (``save_pretrained``, safetensors), every
parameter perturbed away from its initial value (norm weights away from 1, biases away from 0) so that a wrong
layout, a missing bias or a swapped norm cannot hide; the tokenizer is a byte-level BPE trained here on
Python's pydoc topics. Logits must agree to 1e-4 (float32) with and without a key-value cache, and a folder
collapse exports must load in ``transformers`` with the same logits.
"""
from __future__ import annotations

import json
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="parity needs the parity extra: pip install -e '.[parity]'")
transformers = pytest.importorskip("transformers", reason="parity needs the parity extra: pip install -e '.[parity]'")

from collapse.lm import CheckpointError, load_model, save_model  # noqa: E402
from collapse.lm.tokenizer import check_vocab, load_tokenizer, train_bpe  # noqa: E402

TOL = 1e-4
VOCAB = 300


def _corpus() -> list[str]:
    from pydoc_data import topics

    return [topics.topics[k] for k in sorted(topics.topics)]


@pytest.fixture(scope="module")
def tokenizer_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    train_bpe(_corpus(), VOCAB, path)
    return path


def _perturbed(model, seed: int):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return model.eval()


CONFIGS = {
    "gpt2": lambda: transformers.GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=64,
                                            bos_token_id=0, eos_token_id=0),
    "llama_gqa": lambda: transformers.LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=48,
                                                  num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                                  max_position_embeddings=64, rope_theta=500.0),
    "llama_tied_llama3_rope": lambda: transformers.LlamaConfig(
        vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=1, max_position_embeddings=64, tie_word_embeddings=True,
        rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                      "original_max_position_embeddings": 16, "rope_theta": 10000.0}),
    "qwen2": lambda: transformers.Qwen2Config(vocab_size=VOCAB, hidden_size=32, intermediate_size=48,
                                              num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                              max_position_embeddings=64),
    "opt": lambda: transformers.OPTConfig(vocab_size=VOCAB, hidden_size=32, ffn_dim=48, num_hidden_layers=2,
                                          num_attention_heads=4, max_position_embeddings=64, word_embed_proj_dim=32,
                                          bos_token_id=2, eos_token_id=2, pad_token_id=1),
}


def _hf_model(kind: str):
    torch.manual_seed(0)
    return _perturbed(transformers.AutoModelForCausalLM.from_config(CONFIGS[kind](), attn_implementation="eager"),
                      seed=1)


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def checkpoint(request, tmp_path_factory, tokenizer_file):
    """(kind, folder, the transformers model) of one tiny random checkpoint in the Hugging Face layout."""
    kind = request.param
    folder = tmp_path_factory.mktemp(kind)
    hf = _hf_model(kind)
    hf.save_pretrained(folder, safe_serialization=True)
    (folder / "tokenizer.json").write_bytes(tokenizer_file.read_bytes())
    return kind, folder, hf


def _ids(seed: int = 0, shape=(2, 12)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, VOCAB, shape)


def _hf_logits(hf, ids) -> np.ndarray:
    with torch.no_grad():
        return hf(torch.tensor(ids)).logits.numpy()


def test_full_pass_logits_equal_transformers(checkpoint):
    kind, folder, hf = checkpoint
    model, config = load_model(folder)
    ids = _ids()
    ours = np.asarray(model(jnp.asarray(ids)))
    theirs = _hf_logits(hf, ids)
    assert ours.shape == theirs.shape == (2, 12, VOCAB)
    np.testing.assert_allclose(ours, theirs, atol=TOL, rtol=0, err_msg=kind)
    assert np.abs(theirs).max() > 0.1  # not a degenerate all-zero comparison


def test_kv_cached_decoding_equals_transformers_cached_decoding(checkpoint):
    """A 5-token prefill then one token at a time, against transformers with its own cache."""
    kind, folder, hf = checkpoint
    model, _ = load_model(folder)
    ids = _ids(1, (2, 10))
    cache = model.init_cache(2, 16)
    logits, cache = model.extend(jnp.asarray(ids[:, :5]), 0, cache)
    ours = [np.asarray(logits)]
    for t in range(5, 10):
        logits, cache = model.extend(jnp.asarray(ids[:, t:t + 1]), t, cache)
        ours.append(np.asarray(logits))
    with torch.no_grad():
        out = hf(torch.tensor(ids[:, :5]), use_cache=True)
        theirs, past = [out.logits.numpy()], out.cache
        for t in range(5, 10):
            out = hf(torch.tensor(ids[:, t:t + 1]), cache=past, use_cache=True)
            theirs.append(out.logits.numpy())
            past = out.cache
    np.testing.assert_allclose(np.concatenate(ours, 1), np.concatenate(theirs, 1), atol=TOL, rtol=0, err_msg=kind)
    np.testing.assert_allclose(np.concatenate(ours, 1), _hf_logits(hf, ids), atol=TOL, rtol=0)  # = the full pass


def test_an_exported_folder_loads_in_transformers_with_the_same_logits(checkpoint, tmp_path):
    kind, folder, _ = checkpoint
    model, _ = load_model(folder)
    out = save_model(model, tmp_path / "export", tokenizer_file=folder / "tokenizer.json")
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors", "tokenizer.json"]
    reloaded = transformers.AutoModelForCausalLM.from_pretrained(out, attn_implementation="eager").eval()
    ids = _ids(2)
    np.testing.assert_allclose(_hf_logits(reloaded, ids), np.asarray(model(jnp.asarray(ids))), atol=TOL, rtol=0)
    again, _ = load_model(out)
    assert np.array_equal(np.asarray(again(jnp.asarray(ids))), np.asarray(model(jnp.asarray(ids))))


def test_bfloat16_weights_load_into_float32(tmp_path, tokenizer_file):
    hf = _hf_model("llama_gqa").to(torch.bfloat16)
    hf.save_pretrained(tmp_path, safe_serialization=True)
    model, _ = load_model(tmp_path)
    w = model.model.layers[0].self_attn.q_proj.weight[...]
    assert w.dtype == jnp.float32
    assert np.array_equal(np.asarray(w), hf.model.layers[0].self_attn.q_proj.weight.float().detach().numpy())


def test_the_tokenizer_round_trips_text_and_matches_transformers(tokenizer_file):
    tok = load_tokenizer(tokenizer_file.parent)
    fast = transformers.PreTrainedTokenizerFast(tokenizer_file=str(tokenizer_file))
    text = "def f(x):\n    return x ** 2  # the square"
    assert tok.encode(text) == fast.encode(text, add_special_tokens=False)
    assert tok.decode(tok.encode(text)) == text
    assert tok.vocab_size == VOCAB and len(tok.fingerprint) == 64


# ----------------------------------------------------------------------------------------------- bad input
def _copy(folder: Path, dest: Path) -> Path:
    dest.mkdir()
    for f in folder.iterdir():
        (dest / f.name).write_bytes(f.read_bytes())
    return dest


@pytest.fixture(scope="module")
def gpt2_folder(tmp_path_factory, tokenizer_file) -> Path:
    folder = tmp_path_factory.mktemp("gpt2_bad_input")
    _hf_model("gpt2").save_pretrained(folder, safe_serialization=True)
    (folder / "tokenizer.json").write_bytes(tokenizer_file.read_bytes())
    return folder


def test_a_folder_that_is_not_a_model_is_named(tmp_path):
    with pytest.raises(CheckpointError, match="is not a folder"):
        load_model(tmp_path / "nowhere")
    with pytest.raises(CheckpointError, match=r"config.json: not found"):
        load_model(tmp_path)


def test_an_unsupported_architecture_is_named_with_what_is_supported(gpt2_folder, tmp_path):
    bad = _copy(gpt2_folder, tmp_path / "bert")
    raw = json.loads((bad / "config.json").read_text())
    raw["architectures"] = ["BertForMaskedLM"]
    (bad / "config.json").write_text(json.dumps(raw))
    with pytest.raises(CheckpointError, match=r"config.json: unsupported architecture 'BertForMaskedLM'; supported: "
                                              r"GPT2LMHeadModel, LlamaForCausalLM, Qwen2ForCausalLM"):
        load_model(bad)


def test_missing_unknown_and_misshapen_tensors_name_the_file_and_the_key(gpt2_folder, tmp_path):
    from safetensors.numpy import load_file, save_file

    tensors = load_file(str(gpt2_folder / "model.safetensors"))
    for name, change, pattern in [
        ("missing", lambda t: t.pop("transformer.h.1.mlp.c_fc.bias"), r"missing 1 of the 28 tensors a gpt2 of 2 layers "
                                                                     r"has, e\.g\. 'transformer\.h\.1\.mlp\.c_fc\.bias'"),
        ("unknown", lambda t: t.update({"transformer.h.2.ln_1.weight": np.ones(32, np.float32)}),
         r"1 tensors the gpt2 architecture does not have, e\.g\. 'transformer\.h\.2\.ln_1\.weight'"),
        ("shape", lambda t: t.update({"transformer.wpe.weight": np.ones((32, 32), np.float32)}),
         r"transformer\.wpe\.weight has shape \(32, 32\), config\.json implies \(64, 32\)"),
    ]:
        bad = _copy(gpt2_folder, tmp_path / name)
        t = dict(tensors)
        change(t)
        save_file(t, str(bad / "model.safetensors"), metadata={"format": "pt"})
        with pytest.raises(CheckpointError, match=r"model\.safetensors: " + pattern):
            load_model(bad)


def test_a_tokenizer_of_another_model_is_refused(gpt2_folder, tmp_path):
    from collapse.lm import read_config

    big = tmp_path / "big"
    train_bpe(_corpus(), VOCAB + 50, big / "tokenizer.json")
    tok = load_tokenizer(big)
    with pytest.raises(CheckpointError, match=r"has 350 token ids but the model's vocab_size is 300"):
        check_vocab(tok, read_config(gpt2_folder), gpt2_folder / "config.json")
    with pytest.raises(CheckpointError, match=r"tokenizer.json: not found"):
        load_tokenizer(tmp_path)
