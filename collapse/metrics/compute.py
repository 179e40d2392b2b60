"""Which metrics a (source, family) pair gets, and the compiled function that computes them.

Two functions are built per run: ``param_fn`` (cheap metrics from the fitted parameters, every kept
generation) and ``sample_fn`` (k-NN / Vendi / Hill metrics from ``metrics.eval_samples`` model draws,
thinned by ``metrics.sample_every`` and ``metrics.sample_replicates``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import jax
import jax.numpy as jnp

from collapse.metrics import continuous as cm
from collapse.metrics.discrete import discrete_metrics

CONTINUOUS = ("mean_err", "var_ratio", "logdet_ratio", "frechet", "nll_real", "kl_true", "tail_mass")
SAMPLE_BASED = ("precision", "recall", "density", "coverage", "vendi", "tail_index")
DISCRETE = ("entropy", "support", "extinct_mass", "gini_simpson", "tv_true", "kl_true", "tail_mass")
SUPERVISED = ("test_error", "noise_var")
TEXT = ("ppl_real", "kl_true", "token_entropy", "distinct_1", "distinct_2", "distinct_3", "distinct_4",
        "vocab_coverage", "extinct_types", "rare_mass", "zipf_slope", "repetition", "ppl_gen0_q50", "ppl_gen0_q95",
        "ppl_gen0_q99")
TEXT_SAMPLES_SHOWN = 3  # generated segments per generation kept for samples.jsonl
NEURAL = ("nll_real", "frechet", "precision", "recall", "density", "coverage", "vendi", "class_tv", "mode_coverage",
          "mode_quality", "train_loss")
IMAGES_SHOWN = 16  # generated images (or 2-D points x 16) per generation kept for the sample grids


@dataclass(frozen=True)
class MetricFns:
    param_names: tuple[str, ...]
    sample_names: tuple[str, ...]
    param_fn: Callable  # (key, params, truth, heldout[, gen0_params]) -> dict
    sample_fn: Callable  # (key, params, truth, heldout) -> dict
    needs_gen0: bool = False  # param_fn also takes the generation-0 params
    draw_fn: Callable | None = None  # (key, params, truth) -> model draws kept as the ``_samples`` artifact
    draw_every_kept: bool = False  # draws at every kept generation (wandb histograms), else at sampled ones
    probs_fn: Callable | None = None  # params -> the model's exact category probabilities (``_probs`` artifact)


def build_metrics(source, family, mcfg, scale: float, dtype, histogram: bool = False) -> MetricFns:
    """``mcfg``: the validated ``metrics`` config node (tail_level, eval_samples, knn_k, dc_k, draws, ...).

    Classical families (continuous and discrete sources) also get ``draw_fn``: ``metrics.draws`` model draws
    (at ``sampling.scale``) per generation of ``metrics.sample_every`` (``samples.npz``: tail and density plots),
    or at every kept generation with ``histogram`` (the wandb histogram; at least 1000 draws then); discrete
    sources also keep the model's exact probabilities at the same generations (``probs_fn``: rank-frequency
    plots). Text and
    neural families return their own ``_samples`` from ``param_fn``."""
    fns = _build_metrics(source, family, mcfg, scale, dtype)
    draws = int(mcfg.get("draws", 0))
    if histogram:
        draws = max(draws, HISTOGRAM_DRAWS)
    if draws <= 0 or source.kind not in ("continuous", "discrete") or "image" in family.kinds:
        return fns

    def draw_fn(key, params, truth):
        return family.sample(key, params, draws, scale_of(truth, scale), None)

    probs_fn = family.probs if source.kind == "discrete" and family.probs is not None else None
    return MetricFns(fns.param_names, fns.sample_names, fns.param_fn, fns.sample_fn, fns.needs_gen0, draw_fn,
                     histogram, probs_fn)


def scale_of(truth: dict, scale: float):
    """The sampling scale of metric draws: the row's own (``truth["sampling_scale"]``, set by a vectorised sweep
    over ``sampling.scale``) or the run's."""
    return truth.get("sampling_scale", scale)


HISTOGRAM_DRAWS = 1000  # least model draws per kept generation for the wandb histogram (classical families)


def _build_metrics(source, family, mcfg, scale: float, dtype) -> MetricFns:
    alpha = float(mcfg["tail_level"])
    if source.kind == "text":
        return build_text_metrics(source, family, mcfg)
    if source.kind == "image" or "image" in family.kinds:  # neural generative families (vae, diffusion)
        return build_neural_metrics(source, family, mcfg, scale)
    if source.kind == "discrete":
        def param_fn(key, params, truth, heldout):
            return discrete_metrics(family.probs(params), truth["probs"], truth["tail_set"])
        return MetricFns(DISCRETE, (), param_fn, lambda *a: {})

    if source.kind == "supervised":
        def param_fn(key, params, truth, heldout):
            w = family.coef(params)
            return {"test_error": jnp.sum((w - truth["w"]) ** 2), "noise_var": params["noise_var"]}
        return MetricFns(SUPERVISED, (), param_fn, lambda *a: {})

    exact_kl = source.name == "gaussian" and family.name == "gaussian"
    directions = int(mcfg["tail_directions"])
    tail_samples = int(mcfg["tail_samples"])

    def param_fn(key, params, truth, heldout):
        weights, means, covs = family.components(params)
        mu, cov = cm.mixture_moments(weights, means, covs)
        mu0, cov0 = truth["mean"], truth["cov"]
        log_model = family.log_prob(params, heldout)
        out = {
            "mean_err": cm.mean_err(mu, mu0),
            "var_ratio": cm.var_ratio(cov, cov0),
            "logdet_ratio": cm.logdet_ratio(cov, cov0),
            "frechet": cm.frechet(mu, cov, mu0, cov0),
            "nll_real": -jnp.mean(log_model),
        }
        if exact_kl:
            out["kl_true"] = cm.gaussian_kl(mu0, cov0, mu, cov)
        else:
            out["kl_true"] = jnp.mean(source.log_prob(truth, heldout) - log_model)
        if source.elliptical:
            u = cm.sphere_directions(key, directions, source.dim, dtype)
            p = cm.elliptical_tail_prob(weights, means, covs, mu0, truth["shape"], truth["tail_r2"], u)
        else:
            x = family.sample(key, params, tail_samples, 1.0, None)
            p = jnp.mean(source.log_prob(truth, x) < truth["tail_q"])
        out["tail_mass"] = p / alpha
        return out

    if not mcfg["sample_based"]:
        return MetricFns(CONTINUOUS, (), param_fn, lambda *a: {})

    from collapse.metrics.samples import sample_metrics
    eval_samples = int(mcfg["eval_samples"])

    def sample_fn(key, params, truth, heldout):
        fake = family.sample(key, params, eval_samples, scale_of(truth, scale), None)
        return sample_metrics(heldout[:eval_samples], fake, int(mcfg["knn_k"]), int(mcfg["dc_k"]))

    return MetricFns(CONTINUOUS, SAMPLE_BASED, param_fn, sample_fn)


def build_text_metrics(source, family, mcfg) -> MetricFns:
    """Text metrics, all from the fitted model and ``metrics.eval_samples`` generated segments each kept
    generation and replicate (definitions: :mod:`collapse.text.metrics` and the README):

    ppl_real = exp(mean NLL per token of the held-out real segments), over the positions the family scores;
    kl_true (markov only) = the exact KL rate sum_h pi(h) KL(T(.|h) || Q(.|h)) for an n-gram whose context
    covers the chain's order, else mean[log p_true - log p_model] per token over the held-out segments;
    ppl_gen0_q* = quantiles of the per-segment perplexity of generated text under the generation-0 model.
    """
    from collapse.text import metrics as tm

    V = source.dim
    eval_n = int(mcfg["eval_samples"])
    rep_n = int(mcfg.get("repetition_n", 4))
    prompt = int((source.info or {}).get("prompt", 0))
    exact_kl = "T_m" in (source.data or {}) and family.name == "ngram"
    has_truth = source.log_prob is not None

    def param_fn(key, params, truth, heldout, gen0):
        lp = family.log_prob(params, heldout)
        out = {"ppl_real": jnp.exp(-jnp.nanmean(lp))}
        if exact_kl:
            from collapse.text.markov import kl_rate
            out["kl_true"] = kl_rate(truth["T_m"], truth["pi_m"], jnp.exp(params["logp"]))
        elif has_truth:
            out["kl_true"] = jnp.nanmean(source.log_prob(truth, heldout) - lp)
        else:
            out["kl_true"] = jnp.full((), jnp.nan, lp.dtype)
        k_cov, k_syn = jax.random.split(key)
        prompts = source.covariates(k_cov, truth, eval_n) if source.covariates is not None else None
        tokens = family.sample(k_syn, params, eval_n, 1.0, prompts)
        valid = jnp.broadcast_to(jnp.arange(tokens.shape[1]) >= prompt, tokens.shape)
        out.update(tm.text_sample_metrics(tokens, valid, V, truth["real_types"], truth["tail_mask"],
                                          truth["real_tail_share"], rep_n))
        lp0 = family.log_prob(gen0, tokens)
        out.update(tm.ppl_quantiles(jnp.where(jnp.isnan(lp0), 0.0, lp0), valid & ~jnp.isnan(lp0)))
        out["_samples"] = tokens[:TEXT_SAMPLES_SHOWN].astype(jnp.int32)
        return out

    return MetricFns(TEXT, (), param_fn, lambda *a: {}, needs_gen0=True)


def build_neural_metrics(source, family, mcfg, scale: float) -> MetricFns:
    """Metrics of neural families (VAE, diffusion) on image and 2-D toy sources, every kept generation and
    replicate, from ``metrics.eval_samples`` model draws (made at ``sampling.scale``) against as many held-out
    real points:

    frechet, precision, recall, density, coverage, vendi: in the feature space of the source's classifier when
    it has one (labelled images), else in data space (:mod:`collapse.metrics.images`);
    class_tv: total variation between the classifier's class histogram of the draws and the real one;
    mode_coverage / mode_quality (sources with known modes): share of modes holding >= 1% of the draws /
    share of draws within 3 standard deviations of a mode; nll_real: -mean log p_model over the held-out set
    (VAE: the negative ELBO, an upper bound); train_loss: the family's final training loss.
    """
    from collapse.metrics import images as imm

    eval_n = int(mcfg["eval_samples"])
    knn_k, dc_k = int(mcfg["knn_k"]), int(mcfg["dc_k"])
    data = source.data or {}
    has_clf = "classifier" in data
    has_modes = (source.info or {}).get("modes", 0) > 0
    classes = int((source.info or {}).get("classes", 0) or 0)
    shown = IMAGES_SHOWN * (16 if source.kind != "image" else 1)
    names = [n for n in NEURAL if (n != "nll_real" or family.log_prob is not None) and (n != "class_tv" or has_clf)
             and (n not in ("mode_coverage", "mode_quality") or has_modes)]

    def param_fn(key, params, truth, heldout):
        fake = family.sample(key, params, eval_n, scale_of(truth, scale), None)
        real = heldout[:eval_n]
        if has_clf:
            from collapse.metrics.features import features, predict
            fr, ff = features(truth["classifier"], real), features(truth["classifier"], fake)
        else:
            fr, ff = real, fake
        out = dict(imm.neural_sample_metrics(fr, ff, knn_k, dc_k))
        if has_clf:
            out["class_tv"] = imm.class_tv(predict(truth["classifier"], fake), truth["real_class_hist"], classes)
        if has_modes:
            out.update(imm.mode_coverage(fake, truth["modes"], truth["mode_std"]))
        if family.log_prob is not None:
            out["nll_real"] = -jnp.mean(family.log_prob(params, heldout))
        out["train_loss"] = params["loss"]
        out = {k: out[k] for k in names}
        ok = _finite_params(params)  # a diverged model: NaN metrics from that generation on
        out = {k: jnp.where(ok, v, jnp.nan) for k, v in out.items()}
        extra = fake if fake.shape[0] >= shown else family.sample(jax.random.fold_in(key, 7), params, shown, scale_of(truth, scale),
                                                                   None)
        out["_samples"] = extra[:shown]
        return out

    return MetricFns(tuple(names), (), param_fn, lambda *a: {})


def _finite_params(params):
    leaves = [x for x in jax.tree_util.tree_leaves(params) if jnp.issubdtype(x.dtype, jnp.inexact)]
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))
