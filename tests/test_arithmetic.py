"""source=arithmetic: a text task with an exact checker, its metrics and its bad input.

The checker, the segment layout and the text task metrics are checked on hand-made cases; the human data against
``human_accuracy`` by a binomial test at 4 standard errors (seed fixed beforehand). That an exact verifier makes a
Transformer's held-out accuracy rise and a poor one, a learned one or the model's own likelihood does not is the
claims test of ``experiment=arithmetic_verifier`` (tests/test_presets.py), at that preset's size."""
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from collapse.sources import arithmetic as ar

CLI = str(Path(sys.executable).parent / "collapse")
Z = 4.0


def _tokens(text: str) -> list[int]:
    return [ar.VOCAB.index(ch) for ch in text]


def _check(src, *texts):
    return np.asarray(src.is_right({}, jnp.asarray([_tokens(t) for t in texts], jnp.int32))).tolist()


def test_segments_are_problem_then_answer_and_the_checker_is_exact():
    src = ar.arithmetic(2, ["+"], reverse=True, heldout=10)
    assert src.segment == 9 and src.info["prompt"] == 6 and src.dim == 14
    assert _check(src, "37+45=280", "37+45=820", "99+99=891", "00+00=000", "99+99=981") == [True, False, True, True,
                                                                                           False]
    plain = ar.arithmetic(2, ["+"], reverse=False, heldout=10)
    assert _check(plain, "37+45=082", "37+45=280") == [True, False]
    mixed = ar.arithmetic(2, ["+", "-", "*"], reverse=False, heldout=10)
    assert mixed.segment == 2 * 2 + 2 + 4  # the widest answer: 2 D digits of a product
    assert _check(mixed, "37+45=0082", "45-37=0008", "99*99=9801", "37*45=1665", "37*45=1666") == [True, True, True,
                                                                                                 True, False]
    one = ar.arithmetic(1, ["-"], heldout=5)
    assert one.segment == 5 and _check(one, "7-3=4", "7-3=5") == [True, False]
    held = np.asarray(src.data["heldout"])
    assert held.shape == (10, 9) and all(_check(src, *["".join(ar.VOCAB[t] for t in row) for row in held]))


def test_problems_split_into_held_out_and_training_and_subtraction_never_goes_negative():
    table = ar.all_problems(2, ["+", "-"])
    assert len(table) == 100 ** 1 * 100 + 100 * 101 // 2  # every + problem, and a >= b for -
    minus = table[table[:, 0] == 1]
    assert np.all(minus[:, 1] >= minus[:, 2])
    src = ar.arithmetic(2, ["+", "-"], heldout=300, problems=1000)
    train, held = np.asarray(src.data["train_problems"]), np.asarray(src.data["heldout"])
    held_rows = {(int(r[2] - ar.PLUS), int("".join(map(str, r[:2]))), int("".join(map(str, r[3:5])))) for r in held}
    assert len(train) == 1000 and len(held_rows) == 300
    assert not held_rows & {tuple(map(int, r)) for r in train}


def test_human_answers_are_right_with_human_accuracy_and_wrong_ones_are_other_answers():
    src = ar.arithmetic(2, ["+"], human_accuracy=0.3, heldout=100)
    truth = {**src.init(jax.random.key(0)), **src.data}
    seg = src.sample(jax.random.key(7), truth, 20000)
    right = np.asarray(src.is_right(truth, seg))
    se = np.sqrt(0.3 * 0.7 / len(right))
    assert abs(right.mean() - 0.3) < Z * se
    assert np.all(np.asarray(seg[:, 6:]) <= 9)  # answers are digits only
    prompts = src.covariates(jax.random.key(8), truth, 12)
    assert prompts.shape == (12, 6)
    blocked = ar.arithmetic(2, ["+"], heldout=100, attempts=4).covariates(jax.random.key(8), truth, 12)
    np.testing.assert_array_equal(blocked.reshape(3, 4, 6), np.repeat(np.asarray(blocked)[::4, None], 4, axis=1))


def test_text_task_metrics_equal_their_definitions_on_a_hand_made_model():
    """A stand-in for a text family: log_prob says q(right answer | problem) = 0.5 and 1.0 on two problems;
    decode answers the first problem right and the second wrong; sample answers the k draws of a problem with
    1 and 2 distinct answers."""
    from collapse.families.base import Family
    from collapse.metrics.builtin import text_answer_diversity, text_task_exact, text_task_greedy
    from collapse.metrics.registry import MetricContext

    src = ar.arithmetic(1, ["+"], heldout=2)
    held = jnp.asarray([_tokens("3+4=70"), _tokens("9+9=81")], jnp.int32)
    truth = {**src.data, "heldout": held}

    def log_prob(params, tokens):
        lp = jnp.zeros(tokens.shape)
        return lp.at[0, 4].set(jnp.log(0.5))  # only problem 0's first answer digit is uncertain

    def decode(key, params, n, prompts, controls):
        assert controls.temperature == 0.0
        return jnp.asarray([_tokens("3+4=70"), _tokens("9+9=18")], jnp.int32)

    def sample(key, params, n, scale, prompts):
        assert n == 4 and np.array_equal(np.asarray(prompts[:2]), np.asarray(held[[0, 0], :4]))
        return jnp.asarray([_tokens("3+4=70"), _tokens("3+4=70"), _tokens("9+9=81"), _tokens("9+9=11")], jnp.int32)

    fam = Family("hand", ("text",), lambda t: {}, None, sample, log_prob, decode=decode)
    ctx = MetricContext(jax.random.key(0), {}, truth, held, source=src, family=fam, cfg={"pass_k": 2}, scale=1.0,
                        dtype=jnp.float32)
    exact = {k: float(v) for k, v in text_task_exact(ctx).items()}
    assert exact == pytest.approx({"task_accuracy": 0.75, "pass_at_k": (0.75 + 1.0) / 2})
    assert float(text_task_greedy(ctx)) == pytest.approx(0.5)
    assert float(text_answer_diversity(ctx)) == pytest.approx(1.5)


@pytest.mark.parametrize("args,message", [
    (["source.digits=4"], "source.digits=4: must be an integer in [1, 3]"),
    (["source.operators=[/]"], "source.operators=['/']: must be a non-empty list of distinct operators from + - *"),
    (["source.segment=7"], "source.segment=7: must be auto or 9"),
    (["source.digits=1", "metrics.heldout=100"], "metrics.heldout=100: must be < the 100 problems"),
    (["source.problems=20000"], "source.problems=20000: must be <= the 9500 training problems"),
    (["source.human_accuracy=1.5"], "source.human_accuracy=1.5: must be a probability in [0, 1]"),
    (["sampling.prompt=real_prefix"], "sampling.prompt='real_prefix': must be none for source=arithmetic"),
    (["curation=best_of", "curation.k=4", "source.attempts=6", "curation.score=verifier"],
     "source.attempts=6: must be a multiple of curation.k=4"),
    (["curation=pairwise", "source.attempts=3", "curation.score=verifier"], "source.attempts=3: must be even"),
    (["curation=best_of", "curation.score=learned_verifier", "curation.verifier.labels=0"],
     "curation.verifier.labels=0: must be an integer >= 1"),
    (["model=ngram", "model.order=9"], "model.order=9: must be <= 7"),
    (["source=text", "model=ngram", "source.corpus=stdlib", "curation=best_of", "curation.score=learned_verifier"],
     "curation.score='learned_verifier': needs a source with checkable answers"),
])
def test_bad_arithmetic_input_is_one_line_exit_2(tmp_path, args, message):
    source = [] if any(a.startswith("source=") for a in args) else ["source=arithmetic"]
    model = [] if any(a.startswith(("model=", "source=")) for a in args) else ["model=transformer", "model.context=16"]
    p = subprocess.run([CLI, *source, *model, *args, "generations=2", "replicates=2", "quiet=true"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], p.stderr
    assert not (tmp_path / "runs").exists()



def test_a_derived_segment_keeps_finished_multirun_jobs_skipped_and_configs_comparable(tmp_path):
    """validate fills source.segment=auto -> 9 before the run saves its config; a freshly composed config must
    still digest and compare equal to the saved one (a re-run multirun skips its finished jobs)."""
    from omegaconf import OmegaConf

    from collapse import config as C

    args = ["source=arithmetic", "model=ngram", "model.order=3", "generations=2", "replicates=2", "quiet=true",
            "metrics.heldout=50"]
    composed = C.compose(args)
    validated = C.validate(C.compose(args))
    assert composed.source.segment == "auto" and validated.source.segment == 9
    assert C.config_digest(composed) == C.config_digest(validated)
    saved = OmegaConf.to_container(validated, resolve=True)
    given = OmegaConf.to_container(C.with_derived(composed), resolve=False)
    assert C.config_differences(saved, given) == []
    sweep = ["-m", *args, f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    first = subprocess.run([CLI, *sweep], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    again = subprocess.run([CLI, *sweep], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "already holds this run, finished; skipping it" in again.stdout + again.stderr
