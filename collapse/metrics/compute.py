"""Which metrics a (source, family) pair gets, and the compiled function that computes them.

Two functions are built per run: ``param_fn`` (cheap metrics from the fitted parameters, every kept
generation) and ``sample_fn`` (k-NN / Vendi / Hill metrics from ``metrics.eval_samples`` model draws,
thinned by ``metrics.sample_every`` and ``metrics.sample_replicates``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import jax.numpy as jnp

from collapse.metrics import continuous as cm
from collapse.metrics.discrete import discrete_metrics

CONTINUOUS = ("mean_err", "var_ratio", "logdet_ratio", "frechet", "nll_real", "kl_true", "tail_mass")
SAMPLE_BASED = ("precision", "recall", "density", "coverage", "vendi", "tail_index")
DISCRETE = ("entropy", "support", "extinct_mass", "gini_simpson", "tv_true", "kl_true", "tail_mass")
SUPERVISED = ("test_error", "noise_var")


@dataclass(frozen=True)
class MetricFns:
    param_names: tuple[str, ...]
    sample_names: tuple[str, ...]
    param_fn: Callable  # (key, params, truth, heldout) -> dict
    sample_fn: Callable  # (key, params, truth, heldout) -> dict


def build_metrics(source, family, mcfg, scale: float, dtype) -> MetricFns:
    """``mcfg``: the validated ``metrics`` config node (tail_level, eval_samples, knn_k, dc_k, ...)."""
    alpha = float(mcfg["tail_level"])
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
        fake = family.sample(key, params, eval_samples, scale, None)
        return sample_metrics(heldout[:eval_samples], fake, int(mcfg["knn_k"]), int(mcfg["dc_k"]))

    return MetricFns(CONTINUOUS, SAMPLE_BASED, param_fn, sample_fn)
