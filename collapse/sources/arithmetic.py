"""``source=arithmetic``: a text task with checkable answers, for Transformer and n-gram self-training.

A problem is ``a op b`` with operands of ``digits`` = D decimal digits (zero-padded) and op one of
``operators`` (``+``, ``-``, ``*``; ``-`` problems have a >= b, so every answer is a non-negative integer). A unit
is one segment of L = 2 D + 2 + W character tokens: the prompt ``a op b =`` (2 D + 2 tokens) then the answer
zero-padded to W digits, W = max over the operators of D + 1 (``+``), D (``-``), 2 D (``*``), written least
significant digit first when ``reverse`` (the order in which carries are computed, which a left-to-right model
learns far more easily). ``37+45=`` with reverse: ``37+45=280`` (82 reversed and padded to 3 digits).

Vocabulary (V = 14): ids 0-9 the digits, 10 ``+``, 11 ``-``, 12 ``*``, 13 ``=``.

Problems: every valid triple (op, a, b), shuffled once from ``seed``; the first ``metrics.heldout`` are the
held-out problems (metrics, never trained on), the rest the training problems (``source.problems`` > 0 keeps the
first that many of them: a fixed pool). Human data (``sample``) answer uniformly drawn training problems, right
with probability ``human_accuracy``, else with a wrong answer drawn uniformly from the other 10^W - 1 W-digit
strings. The model answers uniformly drawn training problems too (``covariates``: the prompts), ``attempts``
consecutive candidates per problem, so ``curation=best_of`` compares k answers of one problem.

``is_right(truth, tokens)`` parses each segment's problem from its prompt and checks its answer exactly: the
verifier of ``curation.score=verifier`` and of the task metrics. The true density is not modelled (``log_prob`` is
None: the problem law excludes the held-out set).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from collapse import checks
from collapse.components import SourceSpec
from collapse.errors import ConfigError
from collapse.sources.base import Source
from collapse.sources.text import vocab_data

OPERATORS = ("+", "-", "*")
PLUS, MINUS, TIMES, EQUALS = 10, 11, 12, 13
VOCAB = [str(d) for d in range(10)] + ["+", "-", "*", "="]
MAX_DIGITS = 3


def answer_width(digits: int, operators) -> int:
    """W: digits of the widest answer, max over the operators of D + 1 (+), D (-), 2 D (*)."""
    return max({"+": digits + 1, "-": digits, "*": 2 * digits}[op] for op in operators)


def segment_length(digits: int, operators) -> int:
    """L = 2 D + 2 + W tokens: the operands, the operator, '=' and the answer."""
    return 2 * digits + 2 + answer_width(digits, operators)


def all_problems(digits: int, operators) -> np.ndarray:
    """(N, 3) int32 rows (op index, a, b) of every problem, ops in :data:`OPERATORS` order (``-``: a >= b)."""
    n = 10 ** digits
    a, b = np.divmod(np.arange(n * n, dtype=np.int64), n)
    rows = []
    for op in operators:
        keep = a >= b if op == "-" else np.ones_like(a, bool)
        rows.append(np.stack([np.full(int(keep.sum()), OPERATORS.index(op)), a[keep], b[keep]], 1))
    return np.concatenate(rows).astype(np.int32)


def _digits_of(v, width: int):
    """(..., width) decimal digits of v, most significant first."""
    powers = 10 ** jnp.arange(width - 1, -1, -1, dtype=jnp.int32)
    return (v[..., None] // powers) % 10


def _value_of(d):
    """The integer written by digits d (..., w), most significant first."""
    powers = 10 ** jnp.arange(d.shape[-1] - 1, -1, -1, dtype=jnp.int32)
    return jnp.sum(d.astype(jnp.int32) * powers, axis=-1)


def solve(op, a, b):
    """The right answer of (op, a, b): a + b, a - b or a b."""
    return jnp.where(op == 0, a + b, jnp.where(op == 1, a - b, a * b))


def arithmetic(digits: int = 2, operators=("+",), reverse: bool = True, human_accuracy: float = 1.0,
               heldout: int = 500, problems: int = 0, attempts: int = 1, seed: int = 0) -> Source:
    """The source (see the module docstring)."""
    D, W, ha, r = int(digits), answer_width(digits, operators), float(human_accuracy), int(attempts)
    P, L = 2 * D + 2, segment_length(digits, operators)
    table = all_problems(D, operators)
    table = table[np.random.default_rng(seed).permutation(len(table))]
    held, train = table[:heldout], table[heldout:]
    if problems:
        train = train[:problems]

    def answer_tokens(v):
        d = _digits_of(v, W)
        return d[..., ::-1] if reverse else d

    def prompt_tokens(rows):
        op, a, b = rows[..., 0], rows[..., 1], rows[..., 2]
        return jnp.concatenate([_digits_of(a, D), (PLUS + op)[..., None], _digits_of(b, D),
                                jnp.full(op.shape + (1,), EQUALS, jnp.int32)], -1).astype(jnp.int32)

    def segments(rows, answers):
        return jnp.concatenate([prompt_tokens(rows), answer_tokens(answers)], -1).astype(jnp.int32)

    def right_answers(rows):
        return solve(rows[..., 0], rows[..., 1], rows[..., 2])

    def draw_rows(key, truth, n, block):
        """n problem rows, ``block`` consecutive rows per drawn problem."""
        ids = jax.random.randint(key, (-(-n // block),), 0, truth["train_problems"].shape[0])
        return truth["train_problems"][jnp.repeat(ids, block, total_repeat_length=-(-n // block) * block)[:n]]

    def sample(key, truth, n):
        k_rows, k_ok, k_wrong = jax.random.split(key, 3)
        rows = draw_rows(k_rows, truth, n, 1)
        right = right_answers(rows)
        wrong = (right + 1 + jax.random.randint(k_wrong, (n,), 0, 10 ** W - 1)) % 10 ** W
        ok = jax.random.uniform(k_ok, (n,)) < ha
        return segments(rows, jnp.where(ok, right, wrong))

    def covariates(key, truth, n):
        return prompt_tokens(draw_rows(key, truth, n, r))

    def is_right(truth, tokens):
        """(n,) bool: the answer of each segment (n, L) is its prompt's right answer."""
        op = tokens[:, D] - PLUS
        a, b = _value_of(tokens[:, :D]), _value_of(tokens[:, D + 1:2 * D + 1])
        return jnp.all(tokens[:, P:] == answer_tokens(solve(op, a, b)), axis=-1)

    held_segments = np.asarray(segments(jnp.asarray(held), right_answers(jnp.asarray(held))))
    counts = np.bincount(held_segments[:, P:].reshape(-1), minlength=len(VOCAB))
    data = {"train_problems": train, "heldout": held_segments, **vocab_data(counts)}
    info = {"prompt": P, "vocab": VOCAB, "level": "char", "problems": len(train), "heldout_problems": len(held),
            "answer_width": W, "attempts": r}
    return Source("arithmetic", "text", len(VOCAB), lambda key: {}, sample, log_prob=None, covariates=covariates,
                  data=data, segment=L, info=info, is_right=is_right)


def attempts_of(cfg) -> int:
    """``source.attempts``: auto = the candidates a curation rule compares per kept answer (best_of: k,
    pairwise: 2), else 1."""
    a = cfg.source.attempts
    if a != "auto":
        return int(a)
    name = cfg.curation.name
    return int(cfg.curation.k) if name == "best_of" else 2 if name == "pairwise" else 1


def derive(cfg) -> dict:
    """``source.segment`` (auto = 2 D + 2 + W) from the digits and operators, after checking them (and that
    sampling.prompt is none: the problem is the prompt)."""
    allowed = f"must be an integer in [1, {MAX_DIGITS}]"
    if checks.integer(cfg, "source.digits", allowed=allowed) > MAX_DIGITS:
        raise ConfigError("source.digits", cfg.source.digits, allowed)
    D = cfg.source.digits
    ops = checks.get(cfg, "source.operators")
    ops = [ops] if isinstance(ops, str) else list(ops) if ops is not None else []
    if not ops or any(o not in OPERATORS for o in ops) or len(set(ops)) != len(ops):
        raise ConfigError("source.operators", ops, "must be a non-empty list of distinct operators from + - *")
    if checks.get(cfg, "sampling.prompt") != "none":
        raise ConfigError("sampling.prompt", cfg.sampling.prompt, "must be none for source=arithmetic: every "
                          "synthetic segment continues its problem's prompt")
    need = segment_length(D, ops)
    seg = checks.get(cfg, "source.segment")
    if seg != "auto" and seg != need:
        raise ConfigError("source.segment", seg, f"must be auto or {need}: {D}-digit operands, the operator, '=' and "
                          f"a {answer_width(D, ops)}-digit answer (the task does not fit another length)")
    return {"source.segment": need}


def check(cfg) -> None:
    """human_accuracy, reverse, problems, attempts; held-out problems leaving training problems; an n-gram context
    within the prompt; attempts a multiple of best_of's k (digits and operators: :func:`derive`)."""
    D = cfg.source.digits
    ops = list(cfg.source.operators) if not isinstance(cfg.source.operators, str) else [cfg.source.operators]
    checks.number(cfg, "source.human_accuracy", 0.0, 1.0, allowed="must be a probability in [0, 1]")
    checks.boolean(cfg, "source.reverse")
    total = len(all_problems(D, ops)) if D <= MAX_DIGITS else 0
    held = cfg.metrics.heldout
    if not isinstance(held, int) or held >= total:
        raise ConfigError("metrics.heldout", held, f"must be < the {total} problems of {D}-digit "
                          f"{' '.join(ops)} (held-out problems; the rest are the training problems)")
    problems = checks.integer(cfg, "source.problems", lo=0, allowed="must be an integer >= 0 (0 = every training "
                              "problem)")
    if problems > total - held:
        raise ConfigError("source.problems", problems, f"must be <= the {total - held} training problems (0 = all)")
    a = checks.get(cfg, "source.attempts")
    if a != "auto":
        checks.integer(cfg, "source.attempts", allowed="must be auto or an integer >= 1 (consecutive answers per "
                       "problem)")
    order = cfg.model.get("order")
    if cfg.model.name == "ngram" and isinstance(order, int) and order - 1 > 2 * D + 2:
        raise ConfigError("model.order", order, f"must be <= {2 * D + 3}: the context of the first answer token is "
                          f"its problem's prompt of {2 * D + 2} tokens")
    if cfg.curation.name == "best_of" and a != "auto" and int(a) % int(cfg.curation.k):
        raise ConfigError("source.attempts", a, f"must be a multiple of curation.k={cfg.curation.k}, so that the k "
                          "candidates of one best-of group answer one problem (or auto)")
    if cfg.curation.name == "pairwise" and a != "auto" and int(a) % 2:
        raise ConfigError("source.attempts", a, "must be even (or auto) for curation=pairwise, so that both "
                          "candidates of a pair answer one problem")


def build(cfg) -> Source:
    s = cfg.source
    ops = [s.operators] if isinstance(s.operators, str) else list(s.operators)
    return arithmetic(int(s.digits), ops, bool(s.reverse), float(s.human_accuracy), int(cfg.metrics.heldout),
                      int(s.problems), attempts_of(cfg), int(cfg.seed))


SOURCE = SourceSpec("arithmetic", "text", check, build, derive=derive)
