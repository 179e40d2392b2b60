"""model=pretrained: a Hugging Face checkpoint fine-tuned generation after generation on its own text.

The checkpoints are tiny random GPT-2 and Llama models that collapse writes in the Hugging Face layout (the
parity tests show ``transformers`` loads such a folder with the same logits), with a byte-level BPE tokenizer
trained here on the King James Bible; no PyTorch is needed.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from collapse.lm import hf_config, save_model
from collapse.lm.tokenizer import load_tokenizer, train_bpe
from collapse.lm.weights import build_model

CLI = str(Path(sys.executable).parent / "collapse")
TOKENS = 400
GPT2 = {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": TOKENS, "n_embd": 32, "n_layer": 2,
        "n_head": 4, "n_positions": 64, "bos_token_id": 0, "eos_token_id": 0}
OPT = {"architectures": ["OPTForCausalLM"], "model_type": "opt", "vocab_size": TOKENS, "hidden_size": 32,
       "num_hidden_layers": 2, "num_attention_heads": 4, "ffn_dim": 48, "max_position_embeddings": 64,
       "word_embed_proj_dim": 32, "do_layer_norm_before": True, "bos_token_id": 0, "eos_token_id": 0}
LLAMA = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": TOKENS + 16, "hidden_size": 32,
         "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 48,
         "max_position_embeddings": 64, "bos_token_id": 0, "eos_token_id": 0}
RUN = ["source=text", "source.corpus=kjv", "model=pretrained", "source.segment=32", "loop.samples=1024",
       "model.steps=8", "model.batch=4", "model.lr=1e-3", "metrics.sample_based=false", "quiet=true"]


def _kjv_head() -> str:
    from collapse.text.corpus import load_text

    return load_text("kjv")[:200_000]


def _checkpoint(folder: Path, raw: dict, tokens: int = TOKENS) -> Path:
    train_bpe([_kjv_head()], tokens, folder / "tokenizer.json")
    save_model(build_model(hf_config.parse_config(raw), seed=3), folder)
    return folder


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory) -> Path:
    return _checkpoint(tmp_path_factory.mktemp("gpt2"), GPT2)


@pytest.fixture(scope="module")
def llama(tmp_path_factory) -> Path:
    return _checkpoint(tmp_path_factory.mktemp("llama"), LLAMA)


def _cli(args, cwd):
    return subprocess.run([CLI, *args], cwd=cwd, capture_output=True, text=True, timeout=600)


def test_a_three_generation_chain_on_kjv_from_the_cli(gpt2, tmp_path):
    p = _cli([*RUN, f"model.path={gpt2}", "generations=3", "replicates=2", "name=lm"], tmp_path)
    assert p.returncode == 0, p.stderr
    (run,) = [s.parent for s in (tmp_path / "runs" / "lm").rglob("summary.json")]
    df = pd.read_parquet(run / "metrics.parquet")
    assert sorted(set(df["generation"])) == [0, 1, 2] and sorted(set(df["replicate"])) == [0, 1]
    text_metrics = ["ppl_real", "token_entropy", "distinct_4", "vocab_coverage", "rare_mass", "zipf_slope", "repetition",
                    "ppl_gen0_q50"]
    assert all(np.isfinite(df[m]).all() for m in text_metrics), df[text_metrics]
    tok = load_tokenizer(gpt2)
    samples = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]
    assert {s["generation"] for s in samples} == {0, 1, 2} and all(s["text"] for s in samples)
    # the samples are the tokenizer's own decoding: re-encoding gives segments of the run's length
    assert all(len(tok.encode(s["text"])) >= 16 for s in samples[:5])
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "finished"


def _family(folder: Path, **kw):
    from collapse.families.pretrained import pretrained

    return pretrained(folder, load_tokenizer(folder).vocab_size, 32, steps=6, batch=4, lr=1e-2, **kw)


def _data(folder: Path, n: int = 16) -> jnp.ndarray:
    ids = np.asarray(load_tokenizer(folder).encode(_kjv_head()[:20_000]), np.int32)
    return jnp.asarray(ids[: n * 32].reshape(n, 32))


def test_lora_trains_the_adapters_only_and_full_fine_tuning_every_weight(llama):
    from collapse.lm import load_model
    from collapse.lm.functional import flat_params

    base = flat_params(load_model(llama)[0])
    data, mask = _data(llama), jnp.ones(16, bool)
    lora = _family(llama, lora_rank=4, lora_targets=("attention",))
    params = jax.jit(lambda k: lora.fit(k, data, mask, None))(jax.random.key(0))
    assert sorted(params["w"]) and all(k.endswith(("lora_a", "lora_b")) for k in params["w"])
    assert {k.rsplit(".", 2)[-2] for k in params["w"]} == {"q_proj", "k_proj", "v_proj", "o_proj"}
    assert all(float(jnp.abs(v).max()) > 0 for k, v in params["w"].items() if k.endswith("lora_b"))  # trained
    full = _family(llama)
    fitted = jax.jit(lambda k: full.fit(k, data, mask, None))(jax.random.key(0))["w"]
    assert sorted(fitted) == sorted(base)
    changed = [k for k in base if not np.array_equal(np.asarray(fitted[k]), np.asarray(base[k]))]
    assert len(changed) == len(base), sorted(set(base) - set(changed))


def test_opt_runs_a_two_generation_chain_with_adapters_on_every_projection(tmp_path):
    """OPT (Shumailov et al.'s architecture; logits against transformers in test_lm_parity.py) as a family: LoRA on
    attention and MLP adapts q/k/v/out_proj, fc1 and fc2, and a 2-generation chain has finite text metrics."""
    import collapse

    folder = _checkpoint(tmp_path / "opt", OPT)
    data, mask = _data(folder), jnp.ones(16, bool)
    lora = _family(folder, lora_rank=2, lora_targets=("attention", "mlp"))
    params = jax.jit(lambda k: lora.fit(k, data, mask, None))(jax.random.key(0))
    assert {k.rsplit(".", 2)[-2] for k in params["w"]} == {"q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"}
    res = collapse.simulate(*RUN, f"model.path={folder}", "generations=2", "replicates=1", "model.lora.rank=2")
    assert len(res.metrics) == 2 and np.isfinite(res.metrics[["ppl_real", "distinct_4", "rare_mass"]]).all().all()


def test_init_pretrained_starts_every_generation_from_the_checkpoint_and_warm_start_does_not(gpt2):
    data, mask, key = _data(gpt2), jnp.ones(16, bool), jax.random.key(1)
    fam = _family(gpt2, init="pretrained")
    gen0 = jax.jit(lambda k: fam.fit(k, data, mask, None))(key)
    again = jax.jit(lambda k, p: fam.fit(k, data, mask, p))(key, gen0)  # prev is ignored
    assert all(np.array_equal(np.asarray(again["w"][k]), np.asarray(gen0["w"][k])) for k in gen0["w"])
    warm = _family(gpt2, init="warm_start")
    cont = jax.jit(lambda k, p: warm.fit(k, data, mask, p))(key, gen0)
    assert any(not np.array_equal(np.asarray(cont["w"][k]), np.asarray(gen0["w"][k])) for k in gen0["w"])
    assert fam.warm_from == "previous" and _family(gpt2, init="gen0").warm_from == "gen0"


def test_the_llama_family_runs_in_process_with_lora_and_a_real_prefix(llama):
    import collapse

    res = collapse.simulate(*RUN, f"model.path={llama}", "generations=2", "replicates=2", "model.lora.rank=2",
                            "model.accumulate=2", "model.precision=bfloat16", "sampling.prompt=real_prefix", "sampling.prompt_length=4", "sampling.temperature=0.8",
                            "sampling.top_k=50")
    df = res.metrics
    assert len(df) == 4 and np.isfinite(df["ppl_real"]).all()
    first = [s for s in res.samples if s["generation"] == 1]
    assert first and all(s["text"] for s in first)


def test_bfloat16_compute_keeps_float32_weights_and_stays_near_the_float32_fit(gpt2):
    """model.precision=bfloat16 trains float32 weights through bfloat16 products: the fit's loss is within bfloat16
    rounding of float32's (relative 3%) but not identical (the bfloat16 path ran); auto on CPU is float32 exactly."""
    data, mask, key = _data(gpt2), jnp.ones(16, bool), jax.random.key(1)
    fits = {p: jax.jit(lambda k, f=_family(gpt2, precision=p): f.fit(k, data, mask, None))(key)
            for p in ("float32", "bfloat16", "auto")}
    assert all(v.dtype == jnp.float32 for v in fits["bfloat16"]["w"].values())
    l32, l16 = float(fits["float32"]["loss"]), float(fits["bfloat16"]["loss"])
    assert l16 != l32 and abs(l16 - l32) < 0.03 * l32, (l16, l32)
    assert all(np.array_equal(fits["auto"]["w"][k], fits["float32"]["w"][k]) for k in fits["float32"]["w"])
    fam16 = _family(gpt2, precision="bfloat16")
    lp16 = np.asarray(fam16.log_prob(fits["bfloat16"], data[:4]))
    lp32 = np.asarray(_family(gpt2).log_prob(fits["bfloat16"], data[:4]))
    assert lp16.dtype == np.float32 and 0 < np.abs(lp16 - lp32).mean() < 0.05


def test_text_is_tokenized_by_the_checkpoints_tokenizer_and_cached(gpt2, tmp_path, monkeypatch):
    from collapse.text import corpus as C

    monkeypatch.setenv("COLLAPSE_TOKEN_CACHE_DIR", str(tmp_path / "tokens"))
    C._encode_with.cache_clear()
    tok_path = str(gpt2 / "tokenizer.json")
    corpus = C.build_corpus("stdlib", "char", 10, 32, 0.1, 8, seed=0, tokenizer=tok_path)
    tok = load_tokenizer(gpt2)
    assert corpus.level == "tokenizer" and corpus.vocab_size == tok.vocab_size == TOKENS and corpus.unk == -1
    assert corpus.tokens_total == len(tok.encode(C.load_text("stdlib")))
    (cached,) = (tmp_path / "tokens").glob("*.npy")
    assert tok.fingerprint[:20] in cached.name
    C._encode_with.cache_clear()
    again = C.build_corpus("stdlib", "char", 10, 32, 0.1, 8, seed=0, tokenizer=tok_path)
    assert np.array_equal(again.train0, corpus.train0)
    assert C.detokenize(corpus.heldout[0], corpus.vocab, corpus.level, tok_path) == tok.decode(corpus.heldout[0])


def test_bad_model_folders_are_one_line_naming_model_path(gpt2, tmp_path):
    bigger = _checkpoint(tmp_path / "mismatch", {**GPT2, "vocab_size": 300}, tokens=TOKENS)
    cases = [
        ([f"model.path={tmp_path / 'nowhere'}"], "is not a folder"),
        ([], "model.path=None: must be a Hugging Face model folder"),
        ([f"model.path={bigger}"], "has 400 token ids but the model's vocab_size is 300"),
        ([f"model.path={gpt2}", "source=markov"], "model='pretrained': cannot fit source=markov"),  # (no corpus)
        ([f"model.path={gpt2}", "source.segment=80"], "must be <= the model's 64 positions"),
        ([f"model.path={gpt2}", "model.memory_limit_gb=0.001"], "replicates=1: model=pretrained needs about"),
        ([f"model.path={gpt2}", "model.precision=float16"], "model.precision='float16': must be one of"),
        ([f"model.path={gpt2}", "model.accumulate=0"], "model.accumulate=0: must be an integer >= 1"),
        ([f"model.path={gpt2}", "engine.rows_at_once=0"], "engine.rows_at_once=0: must be auto or an integer >= 1"),
    ]
    for extra, message in cases:
        base = [a for a in RUN if not a.startswith("source.corpus")] if "source=markov" in extra else RUN
        base = [a for a in base if a != "source=text"] if "source=markov" in extra else base
        p = _cli([*base, *extra, "generations=2", "replicates=1"], tmp_path)
        assert p.returncode == 2, (extra, p.stderr)
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], (extra, p.stderr)
        assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").rglob("summary.json"))


def test_replicates_that_do_not_fit_together_run_two_at_a_time_with_the_same_numbers(gpt2, capsys):
    """With a memory limit that fits 2 of 4 replicates' training at once (and not 3), engine.rows_at_once=auto runs 2
    at a time in the same program: the same sampled texts and, to float rounding, the same metrics as 4 together."""
    import collapse
    from collapse.lm.memory import estimate

    c = hf_config.read_config(gpt2)
    est = estimate(c, batch=4, segment=32, samples_per_generation=1024 // 32, lora_rank=0, lora_targets=("attention",),
                   init="pretrained")
    limit = (est.total(4, 2) + est.total(4, 3)) / 2 / 0.9 / 2**30
    args = (*RUN, f"model.path={gpt2}", "generations=2", "replicates=4")
    together = collapse.simulate(*args)
    capsys.readouterr()
    blocks = collapse.simulate(*args, f"model.memory_limit_gb={limit}", "quiet=false")
    assert "2 of 4 rows at a time (engine.rows_at_once)" in capsys.readouterr().err
    assert [s["text"] for s in blocks.samples] == [s["text"] for s in together.samples]
    for col in ("ppl_real", "token_entropy", "distinct_4", "rare_mass", "ppl_gen0_q50"):
        np.testing.assert_allclose(blocks.metrics[col], together.metrics[col], rtol=1e-5, err_msg=col)
    with pytest.raises(Exception, match="replicates=4: model=pretrained needs about"):
        collapse.simulate(*args, f"model.memory_limit_gb={est.total(4, 1) / 0.9 / 2**30 * 0.99}")


def test_the_memory_estimate_counts_the_parameters_of_each_architecture_exactly(tmp_path):
    from collapse.lm.functional import pure_lm
    from collapse.lm.layers import LoraSpec
    from collapse.lm.memory import lora_count, parameter_count
    from collapse.lm.weights import key_of

    qwen = {**LLAMA, "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "tie_word_embeddings": True}
    for raw in (GPT2, LLAMA, qwen, OPT, {**OPT, "tie_word_embeddings": False, "enable_bias": False}):
        c = hf_config.parse_config(raw)
        lm = pure_lm(c, lora=LoraSpec(3, 8.0, ("attention", "mlp")))
        sizes = {key_of(p): int(np.prod(v.shape)) for p, v in lm.template}
        base = sum(n for k, n in sizes.items() if "lora" not in k)
        adapters = sum(n for k, n in sizes.items() if "lora" in k)
        assert parameter_count(c) == base, raw["model_type"]
        assert lora_count(c, 3, ("attention", "mlp")) == adapters, raw["model_type"]


def test_collapse_pretrain_trains_a_base_model_that_loads_and_beats_its_start(tmp_path):
    from collapse.lm import load_model

    out = tmp_path / "base"
    exe = str(Path(sys.executable).parent / "collapse-pretrain")
    args = ["--corpus", "stdlib", "--out", str(out), "--vocab", "300", "--layers", "1", "--d-model", "32", "--heads",
            "2", "--context", "32", "--steps", "60", "--batch", "8", "--log-every", "20"]
    p = subprocess.run([exe, *args], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    assert "step 60/60" in p.stdout and "held-out ppl" in p.stdout
    info = json.loads((out / "pretrain.json").read_text())
    assert [c["step"] for c in info["curve"]] == [20, 40, 60]
    assert info["heldout_ppl"] < 0.5 * 300  # a uniform model's perplexity is the vocabulary size, 300
    assert info["curve"][-1]["heldout_ppl"] < info["curve"][0]["heldout_ppl"]
    model, config = load_model(out)
    assert config.vocab_size == 300 and config.max_positions == 32
    assert load_tokenizer(out).vocab_size == 300
    again = subprocess.run([exe, *args], capture_output=True, text=True, timeout=600)
    assert again.returncode == 2 and "already holds a model" in again.stderr
    bad = subprocess.run([exe, "--out", str(tmp_path / "b"), "--vocab", "100"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.strip() == ("collapse-pretrain: error: --vocab=100: must be >= 257 "
                                                          "(256 bytes + <|endoftext|>)")


def test_a_lora_model_is_exported_with_its_adapters_folded_into_the_weights(llama, tmp_path):
    """save_model of an adapted model writes only Hugging Face keys, and the written model computes the adapted
    model's logits."""
    from collapse.lm import load_model
    from collapse.lm.functional import flat_params, pure_lm
    from collapse.lm.layers import LoraSpec

    base, config = load_model(llama)
    lm = pure_lm(config, lora=LoraSpec(2, 4.0, ("attention", "mlp")))
    adapters = {k: 0.1 * jax.random.normal(jax.random.fold_in(jax.random.key(0), i), v.shape)
                for i, (k, v) in enumerate(lm.init_lora(jax.random.key(1)).items())}
    adapted = lm.bind({**flat_params(base), **adapters})
    ids = jnp.asarray(_data(llama, 2)[:, :16])
    assert not np.allclose(np.asarray(adapted(ids)), np.asarray(base(ids)), atol=1e-3)  # the adapters matter
    save_model(adapted, tmp_path / "merged")
    again, _ = load_model(tmp_path / "merged")  # (an adapter key would be refused as unknown)
    np.testing.assert_allclose(np.asarray(again(ids)), np.asarray(adapted(ids)), atol=1e-5, rtol=0)


def test_exported_generations_load_in_transformers_with_the_perplexity_the_run_measured(gpt2, tmp_path):
    """export.generations=[0,-1] writes each kept generation's fine-tuned model in the Hugging Face layout; loaded by
    transformers' own PyTorch GPT-2, each gives on the run's held-out segments the ppl_real the run recorded for
    that generation and replicate (so it is that model), and generation 0 and 2 differ."""
    torch = pytest.importorskip("torch", reason="needs the parity extra: pip install -e '.[parity]'")
    transformers = pytest.importorskip("transformers", reason="needs the parity extra: pip install -e '.[parity]'")
    from omegaconf import OmegaConf

    from collapse import config as C

    p = _cli([*RUN, f"model.path={gpt2}", "generations=3", "replicates=2", "export.generations=[0,-1]",
              "export.replicates=2", "name=ex"], tmp_path)
    assert p.returncode == 0, p.stderr
    (run,) = [s.parent for s in (tmp_path / "runs" / "ex").rglob("summary.json")]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["models"] == [f"models/gen{g}/replicate{r}" for g in (0, 2) for r in (0, 1)]
    df = pd.read_parquet(run / "metrics.parquet").set_index(["generation", "replicate"])
    held = np.asarray(C.build_source(OmegaConf.load(run / "config.yaml")).data["heldout"])
    inputs = torch.tensor(np.concatenate([np.zeros((len(held), 1), held.dtype), held[:, :-1]], 1), dtype=torch.long)
    ppl = {}
    for g in (0, 2):
        for r in (0, 1):
            folder = run / f"models/gen{g}/replicate{r}"
            assert load_tokenizer(folder).vocab_size == TOKENS
            model = transformers.AutoModelForCausalLM.from_pretrained(folder).eval()
            with torch.no_grad():
                logits = model(inputs).logits
            nll = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                    torch.tensor(held, dtype=torch.long).reshape(-1))
            ppl[g, r] = float(torch.exp(nll))
            np.testing.assert_allclose(ppl[g, r], df.loc[(g, r), "ppl_real"], rtol=1e-4, err_msg=str((g, r)))
    assert abs(ppl[0, 0] - ppl[2, 0]) > 1e-3 * ppl[0, 0]
