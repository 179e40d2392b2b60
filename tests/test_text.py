"""Text families and sources: hand-computed n-gram tables, type loss without smoothing, a Transformer that
overfits, KV-cached sampling equal to the full forward pass, prompts, the corpus split, and runs from the CLI."""
import json
import math
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import collapse
from collapse.analysis import load_run
from collapse.cli import main as cli_main
from collapse.families.ngram import ngram
from collapse.families.transformer import TinyGPT, shift_right, transformer
from collapse.text import markov as mk
from collapse.text.corpus import build_corpus, detokenize, split_tokens
from collapse.text.decoding import Decoding

TOY = jnp.array([[0, 1, 0, 1, 2]], jnp.int32)  # V = 3: bigrams (0,1) x2, (1,0), (1,2)
ONE = jnp.ones(1, bool)


def table(fam, data=TOY):
    return np.exp(np.asarray(fam.fit(jax.random.key(0), data, jnp.ones(data.shape[0], bool), None)["logp"]))


def test_ngram_add_k_table_and_perplexity_equal_a_hand_computation():
    fam = ngram(3, 2, "add_k", k=1.0, segment=5)
    p = table(fam)
    # p(w|h) = (c(h,w) + 1) / (c(h) + 3): c(0)=2, c(1)=2, c(2)=0
    np.testing.assert_allclose(p, [[1 / 5, 3 / 5, 1 / 5], [2 / 5, 1 / 5, 2 / 5], [1 / 3, 1 / 3, 1 / 3]], rtol=1e-6)
    params = fam.fit(jax.random.key(0), TOY, ONE, None)
    np.testing.assert_allclose(np.exp(params["logstart"]), [0.5, 0.5, 0.0], atol=1e-7)
    lp = np.asarray(fam.log_prob(params, jnp.array([[0, 1, 2, 2, 0]])))
    assert np.isnan(lp[0, 0])  # position 0 has no context
    expected = np.log([3 / 5, 2 / 5, 1 / 3, 1 / 3])
    np.testing.assert_allclose(lp[0, 1:], expected, rtol=1e-6)
    ppl = math.exp(-expected.mean())
    assert abs(math.exp(-np.nanmean(lp)) - ppl) < 1e-4 * ppl


def test_ngram_unsmoothed_and_interpolated_tables():
    p = table(ngram(3, 2, "none", segment=5))
    # maximum likelihood rows; the unseen context 2 falls back to the unigram c1/N = (2, 2, 1)/5
    np.testing.assert_allclose(p, [[0, 1, 0], [0.5, 0, 0.5], [0.4, 0.4, 0.2]], atol=1e-7)
    q = table(ngram(3, 2, "interpolated", lam=0.5, segment=5))
    p1 = 0.5 * np.array([0.4, 0.4, 0.2]) + 0.5 / 3  # unigram level: lam ML_1 + (1 - lam) uniform
    np.testing.assert_allclose(q[0], 0.5 * np.array([0, 1, 0]) + 0.5 * p1, rtol=1e-6)
    np.testing.assert_allclose(q[1], 0.5 * np.array([0.5, 0, 0.5]) + 0.5 * p1, rtol=1e-6)
    np.testing.assert_allclose(q[2], p1, rtol=1e-6)  # unseen context: all weight to the lower order
    np.testing.assert_allclose(q.sum(1), 1.0, rtol=1e-6)


def test_ngram_samples_follow_the_table():
    """Transition frequencies of sampled segments match p(w|h) (chi-square, fixed seed)."""
    fam = ngram(3, 2, "add_k", k=1.0, segment=64)
    params = fam.fit(jax.random.key(0), TOY, ONE, None)
    x = np.asarray(jax.jit(lambda k: fam.sample(k, params, 400, 1.0, None))(jax.random.key(1)))
    p = np.exp(np.asarray(params["logp"]))
    counts = np.zeros((3, 3))
    np.add.at(counts, (x[:, :-1].ravel(), x[:, 1:].ravel()), 1)
    from scipy import stats
    for h in range(3):
        n = counts[h].sum()
        chi2 = ((counts[h] - n * p[h]) ** 2 / (n * p[h])).sum()
        assert chi2 < stats.chi2.ppf(1 - 1e-4, 2), (h, counts[h], p[h])
    assert np.all(np.isin(x[:, 0], [0, 1]))  # start contexts only where c(h) > 0


def test_unsmoothed_ngram_chain_loses_types_it_never_regains():
    V, L = 32, 16
    T = mk.make_transitions(0, V, 1, 1.0)
    pi = mk.stationary(T, 1)
    fam = ngram(V, 2, "none", segment=L)
    data = mk.sample_sequences(jax.random.key(0), jnp.asarray(T, jnp.float32), jnp.asarray(pi, jnp.float32), 1, 8, L)

    @jax.jit
    def generation(key, data):
        params = fam.fit(key, data, jnp.ones(data.shape[0], bool), None)
        return fam.sample(jax.random.fold_in(key, 1), params, data.shape[0], 1.0, None)

    present = [set(np.unique(np.asarray(data)).tolist())]
    for g in range(40):
        data = generation(jax.random.key(g + 1), data)
        present.append(set(np.unique(np.asarray(data)).tolist()))
    for before, after in zip(present, present[1:]):
        assert after <= before  # a type absent from the training data can never be generated again
    assert len(present[-1]) < len(present[0])


def test_exact_kl_rate_matches_its_monte_carlo_definition():
    """kl_true of an n-gram on the markov source (exact) = E[log T(x|h) - log Q(x|h)] under the truth."""
    V = 6
    T = mk.make_transitions(3, V, 1, 1.0)
    pi = mk.stationary(T, 1)
    Tj, pij = jnp.asarray(T, jnp.float32), jnp.asarray(pi, jnp.float32)
    fam = ngram(V, 2, "add_k", k=0.5, segment=32)
    train = mk.sample_sequences(jax.random.key(1), Tj, pij, 1, 4, 32)
    params = fam.fit(jax.random.key(2), train, jnp.ones(4, bool), None)
    exact = float(mk.kl_rate(Tj, pij, jnp.exp(params["logp"])))
    test = mk.sample_sequences(jax.random.key(3), Tj, pij, 1, 2000, 32)
    diff = np.asarray(mk.log_prob_tokens(Tj, 1, test) - fam.log_prob(params, test))[:, 1:]
    per_seq = diff.mean(1)
    se = per_seq.std(ddof=1) / math.sqrt(len(per_seq))
    assert abs(per_seq.mean() - exact) < 4 * se, (per_seq.mean(), exact, se)


def test_transformer_overfits_a_tiny_corpus():
    V, L = 8, 16
    rows = [[(o + t) % V for t in range(L)] for o in (0, 2, 4, 6)]  # a cycle: each token fixes the next
    data = jnp.array(rows, jnp.int32)
    fam = transformer(V, L, layers=1, d_model=32, heads=2, context=L, steps=300, batch=8, lr=3e-3, warmup=20)
    params = jax.jit(lambda k: fam.fit(k, data, jnp.ones(4, bool), None))(jax.random.key(0))
    # only the first token of a segment is uncertain (4 offsets): ideal loss = log(4) / 16 = 0.087 nats
    assert float(params["loss"]) < 0.3, float(params["loss"])  # chance level is log 8 = 2.08
    x = np.asarray(fam.sample(jax.random.key(1), params, 16, 1.0, None))
    follows = (x[:, 1:] - x[:, :-1]) % V == 1
    assert follows.mean() > 0.95


def test_kv_cached_decoding_equals_the_full_forward_pass():
    V, L = 11, 12
    net = TinyGPT(V, 16, 2, 32, 4)
    variables = net.init(jax.random.key(0), jnp.zeros((1, L), jnp.int32))
    tokens = jax.random.randint(jax.random.key(1), (3, L), 0, V)
    inputs = shift_right(tokens, V)
    full = net.apply(variables, inputs)
    cache = [(jnp.zeros((3, 4, 16, 8)), jnp.zeros((3, 4, 16, 8))) for _ in range(2)]
    for t in range(L):
        logits, cache = net.apply(variables, inputs[:, t], t, cache, method=TinyGPT.step)
        np.testing.assert_allclose(logits, full[:, t], atol=2e-5)


def test_prompted_segments_start_with_the_prompt_and_controls_apply():
    fam = ngram(3, 2, "add_k", k=1.0, segment=10, prompt=4, decoding=Decoding(temperature=0.0))
    params = fam.fit(jax.random.key(0), TOY, ONE, None)
    prompts = jnp.array([[2, 2, 1, 0], [0, 0, 0, 1]], jnp.int32)
    x = np.asarray(fam.sample(jax.random.key(1), params, 2, 1.0, prompts))
    np.testing.assert_array_equal(x[:, :4], prompts)
    # greedy: argmax p(.|0) = 1 and argmax p(.|1) = 0 (ties toward the lower index) -> alternation 1, 0, ...
    np.testing.assert_array_equal(x[0, 4:], [1, 0, 1, 0, 1, 0])
    np.testing.assert_array_equal(x[1, 4:], [0, 1, 0, 1, 0, 1])
    tr = transformer(3, 10, layers=1, d_model=16, heads=2, context=10, steps=2, batch=2, prompt=4,
                     decoding=Decoding(top_k=1))
    tp = tr.fit(jax.random.key(0), jnp.tile(TOY, (1, 2)), ONE, None)
    y = np.asarray(tr.sample(jax.random.key(2), tp, 2, 1.0, prompts))
    np.testing.assert_array_equal(y[:, :4], prompts)
    assert y.shape == (2, 10) and y.min() >= 0 and y.max() < 3


def test_corpus_split_is_disjoint_ordered_and_tokenises_both_levels(tmp_path):
    f = tmp_path / "t.txt"
    f.write_text("the cat sat on the mat. " * 200, encoding="utf-8")
    c = build_corpus(str(f), "word", 4, 8, 0.1, 10, seed=0)
    assert c.vocab[-1] == "<unk>" and c.vocab_size == 4 and c.unk == 3
    assert c.vocab[0] == "the"  # most frequent first
    n = len(c.heldout) + len(c.train0) + len(c.fresh)
    assert n == (7 * 200) // 8 and len(c.train0) == 10
    assert c.real_counts[c.unk] == 0
    cc = build_corpus(str(f), "char", 100, 8, 0.1, 10, seed=0)
    assert cc.unk == -1 and "".join(split_tokens("ab c", "char")) == "ab c"
    text = detokenize(cc.train0[0], cc.vocab, "char")
    assert len(text) == 8 and text in "the cat sat on the mat. " * 3
    again = build_corpus(str(f), "char", 100, 8, 0.1, 10, seed=0)
    np.testing.assert_array_equal(again.fresh, cc.fresh)  # the split is a function of the seed


def test_fresh_real_text_is_read_in_order_and_never_reused():
    from collapse.api import prepare
    from collapse.config import compose

    cfg = compose(["source=text", "source.corpus=stdlib", "model=ngram", "loop.samples=640", "loop.real_fraction=0.5",
                   "generations=4"])
    source, family, spec, _ = prepare(cfg)
    assert spec.samples == 10 and spec.n_real == 5
    data = {k: jnp.asarray(v) for k, v in source.data.items()}
    blocks = [np.asarray(source.real_batch(data, jnp.int32(g), 5)) for g in (1, 2, 3)]
    np.testing.assert_array_equal(np.concatenate(blocks), np.asarray(source.data["fresh"][:15]))
    np.testing.assert_array_equal(np.asarray(source.real_batch(data, 0, 10)), source.data["train0"])


def test_three_generation_char_run_on_real_text_from_the_cli(tmp_path):
    args = ["source=text", "source.corpus=kjv", "model=ngram", "generations=3", "replicates=2", "loop.samples=8192",
            "loop.real_fraction=0.25", "metrics.heldout=64", "metrics.eval_samples=32", "name=kjv", "quiet=true"]
    p = subprocess.run([str(Path(sys.executable).parent / "collapse"), *args], cwd=tmp_path, capture_output=True,
                       text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    out = p.stdout
    (run,) = [s.parent for s in (tmp_path / "runs" / "kjv").rglob("summary.json")]
    df = load_run(run)
    assert len(df) == 2 * 3
    metrics = [c for c in df.columns if c not in ("replicate", "generation", "kl_true")]
    assert np.isfinite(df[metrics].to_numpy()).all(), df
    assert df["kl_true"].isna().all()  # no known truth for a real corpus
    s = json.loads((run / "summary.json").read_text())
    assert s["data"]["segments_fresh_used"] == 2 * 32 and s["data"]["vocab_size"] > 50
    lines = [json.loads(x) for x in (run / "samples.jsonl").read_text().splitlines()]
    assert {x["generation"] for x in lines} == {0, 1, 2} and all(len(x["text"]) == 64 for x in lines)
    assert "ppl_real" in out and "sample of generation 2" in out


@pytest.mark.parametrize("args,key", [
    (["source.corpus=/no/such/file.txt"], "source.corpus"),
    (["source.corpus=EMPTY"], "source.corpus"),
    (["source.corpus=LATIN1"], "source.corpus"),
    (["source.corpus=stdlib", "model=transformer", "model.context=128", "loop.samples=100"], "model.context"),
    (["source.corpus=stdlib", "model=transformer", "model.context=32"], "model.context"),
    (["source.corpus=stdlib", "sampling.top_p=0"], "sampling.top_p"),
    (["source.corpus=stdlib", "sampling.top_p=1.5"], "sampling.top_p"),
    (["source.corpus=stdlib", "sampling.temperature=-1"], "sampling.temperature"),
    (["source.corpus=stdlib", "source.vocab_size=1"], "source.vocab_size"),
    (["source.corpus=stdlib", "sampling.scale=2"], "sampling.scale"),
    (["source.corpus=stdlib", "loop.real_fraction=1", "generations=1000"], "loop.real_fraction"),
    (["source.corpus=stdlib", "source.level=byte"], "source.level"),
    (["source.corpus=stdlib", "model.order=9"], "model.order"),
    (["source.corpus=stdlib", "sampling.prompt=real_prefix", "sampling.prompt_length=64"], "sampling.prompt_length"),
    (["source.corpus=stdlib", "loop.samples=10"], "loop.samples"),
    (["source.corpus=stdlib", "sampling.top_k=5000"], "sampling.top_k"),
    (["source.corpus=stdlib", "model=gaussian"], "model"),
])
def test_bad_text_input_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys, args, key):
    (tmp_path / "empty.txt").write_text("  \n", encoding="utf-8")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9 na\xefve".encode("latin-1"))
    fix = {"EMPTY": str(tmp_path / "empty.txt"), "LATIN1": str(tmp_path / "latin1.txt")}
    args = [a.split("=")[0] + "=" + fix.get(a.split("=", 1)[1], a.split("=", 1)[1]) for a in args]
    model = [] if any(a.startswith("model=") for a in args) else ["model=ngram"]
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        cli_main(["source=text", *model, *args])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("collapse: error: ") and key in err[0], err
    assert not (tmp_path / "runs").exists()


def test_markov_ngram_run_reports_exact_kl_and_entropy_rate():
    res = collapse.simulate("source=markov", "model=ngram", "model.order=2", "model.smoothing=add_k", "model.k=0.5",
                            "source.vocab=8", "generations=4", "replicates=3", "loop.samples=1024",
                            "metrics.heldout=20", "metrics.eval_samples=16")
    df = res.metrics
    assert np.isfinite(df["kl_true"]).all() and (df["kl_true"] > 0).all()
    T = mk.make_transitions(res.config.seed, 8, 1, 1.0)
    assert abs(res.summary["data"]["entropy_rate"] - mk.entropy_rate(T, mk.stationary(T, 1))) < 1e-12


def test_transformer_chain_fine_tunes_generation_0_inside_one_program():
    """model.init=gen0 on the markov source: every generation restarts from the generation-0 weights; all text
    metrics finite, kl_true from the held-out Monte-Carlo definition, sampling with a real prefix."""
    res = collapse.simulate("source=markov", "model=transformer", "model.init=gen0", "generations=3", "replicates=2",
                            "model.steps=20", "model.layers=1", "model.d_model=16", "model.heads=2",
                            "source.segment=16", "model.context=16", "loop.samples=256", "metrics.heldout=16",
                            "metrics.eval_samples=10", "sampling.prompt=real_prefix", "sampling.prompt_length=4",
                            "sampling.top_p=0.9")
    df = res.metrics
    assert len(df) == 6 and np.isfinite(df.drop(columns=["replicate", "generation"]).to_numpy()).all(), df
    assert (df["kl_true"] > 0).all()
    assert all(len(x["text"].split()) == 16 for x in res.samples)
