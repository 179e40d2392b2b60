"""Self-improvement or collapse on a verifiable task: the expected accuracy of verified self-training.

The loop (one problem; problems are independent under a balanced design, each answered the same number of times
per generation): a problem has A answers, one of them correct. The model is a categorical q(. | problem); its
accuracy a = q(correct | problem) is the chance that one sampled answer is right. Each generation:

1. the model answers every synthetic slot of the problem with k samples; a verifier accepts a right answer with
   probability 1 - fnr and a wrong one with probability fpr (false negatives and false positives);
2. best-of-k keeps, per slot, the first accepted answer, or the first sample when none is accepted;
3. h human answers per problem (right with probability ``human_accuracy``, else a wrong answer uniformly) join the
   s synthetic ones, m = h + s in all, and the next model is the smoothed maximum-likelihood categorical of
   them: q(answer) = (count(answer) + alpha) / (m + A alpha).

Generation 0 is fit on m human answers. Sampling scale 1 (a tempered model's accuracy also depends on how its
wrong mass is spread).

Closed forms (derived here; the setting of STaR / ReST-style self-training, Zelikman et al. 2022, Gulcehre et
al. 2023, and of Feng et al. 2024, "Beyond model collapse: scaling up with synthesized data requires
verification"):

- Share right among accepted answers: T(a) = a (1 - fnr) / (a (1 - fnr) + (1 - a) fpr) (:func:`accepted_right`).
  In odds, T multiplies a / (1 - a) by r = (1 - fnr) / fpr: with many samples per slot, no human data and no
  smoothing, odds_g = odds_0 r^g, so accuracy rises to 1 when fpr < 1 - fnr, stays when fpr = 1 - fnr (the
  verifier is uninformative) and falls to 0 when fpr > 1 - fnr.
- The answer best-of-k keeps is right with probability
  T_k(a) = (1 - (1 - p)^k) T(a) + (1 - p)^k a fnr / (1 - p), p = a (1 - fnr) + (1 - a) fpr the acceptance
  probability (:func:`kept_right`): T_1(a) = a (one sample, no selection), T_k -> T as k grows.
- Many answers per problem (m -> infinity, :func:`task_accuracy_limit`): a_{g+1} = w ha + (1 - w) T_k(a_g) with w
  = h / m the human share; a fixed point between ha and 1 when the verifier is informative.
- Finite answers (:func:`task_accuracy_exact`): given a_g, the count j of right answers among the m is
  Binomial(h, ha) + Binomial(s, T_k(a_g)) (each kept slot is an independent draw), and a_{g+1} =
  (j + alpha) / (m + A alpha). The count is a Markov chain on 0..m; propagating its distribution gives
  E[a_g] exactly. What finite m changes: without smoothing or human data, j = 0 and j = m are absorbing (a
  problem whose model never answers right, or always does, stays so), so E[a_g] is not the limit recursion
  applied to E[a_0] (Jensen: T_k is not linear), and drift can lose a problem even when the verifier is good;
  smoothing (alpha > 0) keeps every answer possible, so nothing is absorbed; human data pull each generation
  toward ha.
"""
from __future__ import annotations

import numpy as np
from scipy.stats import binom

__all__ = ["accepted_right", "kept_right", "task_accuracy_limit", "task_accuracy_exact", "task_curves"]


def accepted_right(a, fpr: float, fnr: float) -> np.ndarray:
    """T(a): the share of right answers among those the verifier accepts (a where nothing can be accepted)."""
    a = np.asarray(a, np.float64)
    right, wrong = a * (1.0 - fnr), (1.0 - a) * fpr
    total = right + wrong
    return np.where(total > 0, right / np.where(total > 0, total, 1.0), a)


def kept_right(a, fpr: float, fnr: float, k: int | None) -> np.ndarray:
    """T_k(a): the probability that the answer best-of-k keeps is right (``k`` None: infinitely many samples)."""
    a = np.asarray(a, np.float64)
    if k is None:
        return accepted_right(a, fpr, fnr)
    p = a * (1.0 - fnr) + (1.0 - a) * fpr
    none = (1.0 - p) ** k
    rejected_right = np.where(p < 1, a * fnr / np.where(p < 1, 1.0 - p, 1.0), 0.0)
    return (1.0 - none) * accepted_right(a, fpr, fnr) + none * rejected_right


def task_accuracy_limit(g, a0: float, fpr: float, fnr: float, k: int | None = None, human_share: float = 0.0,
                        human_accuracy: float = 1.0) -> np.ndarray:
    """Accuracy at generations ``g`` with many answers per problem: a_{g+1} = w ha + (1 - w) T_k(a_g), a_0 = a0."""
    g = np.asarray(g, np.int64)
    out, a = np.empty(int(g.max()) + 1 if g.size else 0), float(a0)
    for t in range(out.size):
        out[t] = a
        a = human_share * human_accuracy + (1.0 - human_share) * float(kept_right(a, fpr, fnr, k))
    return out[g]


def _fitted(j, m: int, answers: int, smoothing: float) -> np.ndarray:
    return (np.asarray(j, np.float64) + smoothing) / (m + answers * smoothing)


def task_accuracy_exact(g, per_problem: int, human_per_problem: int, answers: int, fpr: float, fnr: float,
                        k: int | None = None, human_accuracy: float = 1.0, smoothing: float = 0.0,
                        initial: str = "human") -> dict[str, np.ndarray]:
    """E[accuracy] and P(accuracy = 0) at generations ``g`` for m = ``per_problem`` answers per problem, h =
    ``human_per_problem`` of them human at generations >= 1 (all m at generation 0, ``initial="human"``).

    Returns {"accuracy": E[a_g], "lost": P(no right answer among the m: j = 0)}, exact (the count chain)."""
    g = np.asarray(g, np.int64)
    m, h = int(per_problem), int(human_per_problem)
    if not (0 <= h <= m and m >= 1):
        raise ValueError(f"need 0 <= human_per_problem <= per_problem, per_problem >= 1; got {h}, {m}")
    j = np.arange(m + 1)
    if initial != "human":
        raise ValueError("initial must be 'human' (generation 0 fit on m human answers)")
    dist = binom.pmf(j, m, human_accuracy)
    human = binom.pmf(np.arange(h + 1), h, human_accuracy)  # right human answers of a later generation
    # transition: from j (model accuracy a(j)) to j' = right human + right kept synthetic
    right_kept = kept_right(_fitted(j, m, answers, smoothing), fpr, fnr, k)
    syn = binom.pmf(np.arange(m - h + 1)[None, :], m - h, right_kept[:, None])  # (m+1, s+1)
    step = np.zeros((m + 1, m + 1))
    for i in range(h + 1):
        step[:, i:i + m - h + 1] += human[i] * syn
    acc, lost = [], []
    for _ in range(int(g.max()) + 1 if g.size else 0):
        acc.append(float(dist @ _fitted(j, m, answers, smoothing)))
        lost.append(float(dist[0]))
        dist = dist @ step
    return {"accuracy": np.asarray(acc)[g], "lost": np.asarray(lost)[g]}


def task_curves(cfg, generations: int) -> dict[str, np.ndarray]:
    """The curves of a ``source=task`` / ``model=answers`` config whose loop this module describes exactly, else {}:
    ``curation=none`` (k = 1: the kept answer is the sample) or ``curation=best_of`` with ``score=verifier``
    (k = ``curation.k``), ``loop.synthetic=replace``, fresh human data (or none), ``sampling.scale`` 1, and
    ``loop.samples`` and its real part multiples of ``source.problems`` (the balanced design). Returns
    ``task_accuracy`` (E[a_g]) and, without smoothing, ``lost_problems`` (P(no right answer): q(right) = 0)."""
    from collapse.theory import n_real_of

    get = lambda sec: cfg.get(sec) or {}  # noqa: E731
    src, model, loop, cur, sampling = (get(k) for k in ("source", "model", "loop", "curation", "sampling"))
    name = cur.get("name", "none")
    if name == "none":
        k, fpr, fnr = 1, 0.0, 0.0
    elif name == "best_of" and cur.get("score") == "verifier":
        v = cur.get("verifier") or {}
        k, fpr, fnr = int(cur.get("k", 1)), float(v.get("fpr", 0.0)), float(v.get("fnr", 0.0))
    else:
        return {}
    P, M, rf = src.get("problems"), loop.get("samples"), float(loop.get("real_fraction", 0.0))
    n_real = n_real_of(rf, M) if isinstance(M, int) else None
    if (loop.get("synthetic", "replace") != "replace" or float(sampling.get("scale", 1.0)) != 1.0
            or not isinstance(P, int) or not isinstance(M, int) or M % P or n_real % P
            or (n_real > 0 and loop.get("real", "fresh") != "fresh") or generations < 1):
        return {}
    m, h = M // P, n_real // P
    if (m + 1) * (h + 1) * (m - h + 1) > 2e8:
        return {}  # the exact chain is O(m^3) to build; no curve rather than an approximate one
    alpha = float(model.get("smoothing", 0.0))
    out = task_accuracy_exact(np.arange(generations), m, h, int(src.get("answers")), fpr, fnr, k,
                              float(src.get("human_accuracy")), alpha)
    curves = {"task_accuracy": out["accuracy"]}
    if alpha == 0.0:
        curves["lost_problems"] = out["lost"]
    return curves
