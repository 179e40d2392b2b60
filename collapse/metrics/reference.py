"""Real-versus-real reference values of the sample-based metrics: what a perfect model would score.

A sample-based metric compares ``metrics.eval_samples`` model draws F with a real set R of the size the run
uses. Its reference is the same metric with F replaced by a second real set R' independent of R:

    reference[m] = (1/P) sum_{p=1..P} m(R_p, R'_p),   P = min(replicates, MAX_PAIRS) independent pairs,

and ``reference_sd[m]`` is the standard deviation over the P pairs (ddof = 1; 0 when P = 1), the spread one
replicate's value has around it. The pairs use their own keys (``fold_in(key(seed), REFERENCE_STREAM)``), so
the run's own random numbers are unchanged. Where the two sets come from:

- continuous sources (classical families, and neural families (``family.trains``) on 2-D toys): R and R'
  are two fresh sets of ``eval_samples`` exact draws each;
- finite sources (images: ``"finite" in source.capabilities``): R is exactly the run's real set (the first
  ``eval_samples`` held-out images, fewer when the held-out split is smaller: 180 for digits), and R' is
  ``eval_samples`` images drawn without replacement from the real images outside the held-out split
  (generation 0's batch and the fresh pool: disjoint from R), a new draw for every pair; a pool smaller than
  ``eval_samples`` is used whole;
- text: R' is ``eval_samples`` real segments (held-out segments of a corpus drawn without replacement, or
  fresh draws of a Markov source), scored like generated text (prompt positions excluded). Text metrics
  compare against the real vocabulary, not against a sample set, so R plays no part.

Metrics (the names the run reports; the metric code itself is :mod:`collapse.metrics.samples`,
:mod:`collapse.metrics.images`, :mod:`collapse.text.metrics`): classical continuous runs precision, recall,
density, coverage, vendi, tail_index; neural runs frechet, precision, recall, density, coverage, vendi and,
where they exist, class_tv (labelled images) and mode_coverage / mode_quality (toys); text runs
token_entropy, distinct_1..4, vocab_coverage, extinct_types, rare_mass, zipf_slope, repetition. Metrics of
the fitted model (nll_real, ppl_real, kl_true, train_loss, ...) and sources without sample metrics
(discrete, supervised, ``metrics.sample_based=false``) get none.
"""
from __future__ import annotations

import contextlib
import functools

import jax
import jax.numpy as jnp
import numpy as np

MAX_PAIRS = 4  # independent real-vs-real pairs averaged (at most; 0.03-0.8 s each for 256 points on a CPU core)
REFERENCE_STREAM = 0x5EF  # fold_in constant of the reference keys


def reference_entry(cfg, source, family) -> dict:
    """The summary entries ``reference`` {metric: mean}, ``reference_sd`` {metric: sd} and
    ``reference_method`` (one sentence) of a run; {} when the run has no sample-based metric.
    Computed under the run's precision (float64 runs in float64)."""
    ctx = jax.enable_x64(True) if cfg.precision == "float64" else contextlib.nullcontext()
    with ctx:
        pairs = min(int(cfg.replicates), MAX_PAIRS)
        fn, shared, method = _pair_fn(cfg, source, family)
        if fn is None:
            return {}
        keys = jax.random.split(jax.random.fold_in(jax.random.key(int(cfg.seed)), REFERENCE_STREAM), pairs)
        shared = jax.tree_util.tree_map(jnp.asarray, shared)
        draw, score = fn  # draw: one small jitted program per run (eager dispatch of its ops costs ~0.3 s);
        # score: a program compiled once per shape and process
        vals = score(jax.jit(jax.vmap(draw, in_axes=(0, None)))(keys, shared), shared)
        vals = {k: np.asarray(v, np.float64) for k, v in vals.items()}
    mean = {k: float(np.mean(v)) for k, v in vals.items()}
    sd = {k: float(np.std(v, ddof=1)) if len(v) > 1 else 0.0 for k, v in vals.items()}
    return {"reference": mean, "reference_sd": sd,
            "reference_method": f"real vs real: {method}; mean over {pairs} independent pair(s)"}


def _pair_fn(cfg, source, family):
    """((key, shared) -> {metric: value} of one real-vs-real pair, shared arrays, description), or
    (None, None, "") without sample metrics."""
    mcfg = cfg.metrics
    n = int(mcfg.eval_samples)
    knn_k, dc_k = int(mcfg.knn_k), int(mcfg.dc_k)
    if source.kind == "text":
        return _text_pair(source, n, int(mcfg.get("repetition_n", 4)))
    if family.trains:  # neural families (vae, diffusion) on images and 2-D toys
        return _neural_pair(source, n, knn_k, dc_k)
    if source.kind == "continuous" and mcfg.sample_based:
        return _continuous_pair(source, n, knn_k, dc_k)
    return None, None, ""


def _truth(source, key, shared) -> dict:
    return {**source.init(key), **shared}


def _continuous_pair(source, n: int, knn_k: int, dc_k: int):
    """((draw, score), shared, description): ``draw(key, shared)`` gives the pair's two real sets, ``score``
    runs :func:`_continuous_scores` (compiled once per shape and process, not once per run)."""
    def draw(key, shared):
        k_truth, k_a, k_b = jax.random.split(key, 3)
        truth = _truth(source, k_truth, shared)
        return source.sample(k_a, truth, n), source.sample(k_b, truth, n)

    def score(data, shared):
        return _continuous_scores(*data, knn_k, dc_k)

    return (draw, score), dict(source.data or {}), (f"two independent sets of {n} source draws "
                                                    "(eval_samples) in place of held-out vs model draws")


@functools.partial(jax.jit, static_argnums=(2, 3))
def _continuous_scores(a, b, knn_k: int, dc_k: int) -> dict:
    """:func:`collapse.metrics.samples.sample_metrics` of every pair (a[p] as real, b[p] as model draws)."""
    from collapse.metrics.samples import sample_metrics

    return jax.vmap(lambda x, y: sample_metrics(x, y, knn_k, dc_k))(a, b)


def _neural_pair(source, n: int, knn_k: int, dc_k: int):
    data, caps = source.data or {}, source.capabilities
    has_clf = "labels" in caps
    has_modes = "modes" in caps
    finite = "finite" in caps  # a finite data set (images): the reference draws from its other real units
    classes = int((source.info or {}).get("classes", 0) or 0)
    if finite:
        shared = {"real": data["heldout"][:n], "pool": np.concatenate([data["train0"], data["fresh"]])}
        m = min(n, len(shared["pool"]))
        how = (f"the run's {len(shared['real'])} held-out images vs {m} other real images (generation 0's batch "
               "and the fresh pool, drawn without replacement per pair)")
    else:
        shared, m = dict(data), n
        how = f"two independent sets of {n} source draws (eval_samples)"
    if has_clf:
        shared.update(classifier=data["classifier"], real_class_hist=data["real_class_hist"])

    def draw(key, shared):
        if finite:
            pool = shared["pool"]
            return shared["real"], pool[jax.random.choice(key, pool.shape[0], (m,), replace=False)]
        k_truth, k_a, k_b = jax.random.split(key, 3)
        truth = _truth(source, k_truth, shared)
        return source.sample(k_a, truth, n), source.sample(k_b, truth, n)

    extras = {}
    if has_clf:
        extras.update(classifier=shared["classifier"], real_class_hist=shared["real_class_hist"])
    if has_modes:
        t = source.init(jax.random.key(0))
        extras.update(modes=t["modes"], mode_std=jnp.asarray(t["mode_std"]))

    def score(data, shared):
        return _neural_scores(*data, extras, knn_k, dc_k, classes)

    return (draw, score), shared, how


def _text_pair(source, n: int, rep_n: int):
    data = source.data or {}
    prompt = int((source.info or {}).get("prompt", 0))
    held = data.get("heldout")
    if held is not None:
        m = min(n, len(held))
        how = f"{m} held-out real segments (drawn without replacement per pair) scored as generated text"
    else:
        how = f"{n} fresh real segments scored as generated text"

    def draw(key, shared):
        if held is not None:
            return shared["heldout"][jax.random.choice(key, len(held), (m,), replace=False)]
        return source.sample(key, _truth(source, key, shared), n)

    def score(tokens, shared):
        return _text_scores(tokens, shared["real_types"], shared["tail_mask"], shared["real_tail_share"], prompt,
                            source.dim, rep_n)

    shared = {k: v for k, v in data.items() if k not in ("train0", "fresh")}  # the training text is not read
    return (draw, score), shared, how


@functools.partial(jax.jit, static_argnums=(3, 4, 5))
def _neural_scores(a, b, extras: dict, knn_k: int, dc_k: int, classes: int) -> dict:
    """Neural sample metrics of every pair (a[p] real, b[p] in the model draws' place): in the classifier's
    feature space when ``extras`` has one (plus class_tv), with mode coverage when it has true modes."""
    from collapse.metrics import images as imm
    from collapse.metrics.features import features, predict

    def one(x, y):
        clf = extras.get("classifier")
        fx, fy = (features(clf, x), features(clf, y)) if clf is not None else (x, y)
        out = dict(imm.neural_sample_metrics(fx, fy, knn_k, dc_k))
        if clf is not None:
            out["class_tv"] = imm.class_tv(predict(clf, y), extras["real_class_hist"], classes)
        if "modes" in extras:
            out.update(imm.mode_coverage(y, extras["modes"], extras["mode_std"]))
        return out

    return jax.vmap(one)(a, b)


@functools.partial(jax.jit, static_argnums=(4, 5, 6))
def _text_scores(tokens, real_types, tail_mask, real_tail_share, prompt: int, vocab: int, rep_n: int) -> dict:
    """Text sample metrics of every pair's real segments (tokens[p]) scored as generated text (positions
    before ``prompt`` excluded)."""
    from collapse.text import metrics as tm

    def one(t):
        valid = jnp.broadcast_to(jnp.arange(t.shape[1]) >= prompt, t.shape)
        return tm.text_sample_metrics(t, valid, vocab, real_types, tail_mask, real_tail_share, rep_n)

    return jax.vmap(one)(tokens)
