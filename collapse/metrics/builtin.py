"""collapse's own metrics, registered with :func:`collapse.metrics.registry.metric`.

Registration order is column order (per run) and the order of docs/metrics.md. Notation (continuous sources):
truth mean mu0, covariance S0; model mean mu, covariance S (``ctx.moments``: exact mixture moments at scale 1
when the family has ``components``, else Monte-Carlo moments of ``metrics.tail_samples`` model draws).
The arithmetic is :mod:`collapse.metrics.continuous`, :mod:`~collapse.metrics.discrete`,
:mod:`~collapse.metrics.samples`, :mod:`~collapse.metrics.images` and :mod:`collapse.text.metrics`.
"""
from __future__ import annotations

import jax.numpy as jnp

from collapse.metrics import continuous as cm
from collapse.metrics.registry import Estimator, MetricInfo, describe, metric

M = MetricInfo
CLASSICAL = dict(kinds=("continuous",), without=("family.trains",))  # exact-moment families (gaussian, gmm, kde)
NEURAL = dict(kinds=("continuous", "image"))  # with needs family.trains: trained generative families (vae, diffusion)
MOMENTS = (Estimator("exact", ("family.components",), "exact moments of the model's Gaussian mixture"),
           Estimator("monte_carlo", (), "sample mean and covariance of metrics.tail_samples model draws at scale 1"))

# ----- continuous sources, classical families: every kept generation -------------------------------------------


@metric("mean_err", **CLASSICAL, estimators=MOMENTS, label="squared mean error", unit="data units²", log=True,
        about="||mu - mu0||^2")
def mean_err(ctx):
    """||mu - mu0||^2."""
    return cm.mean_err(ctx.moments[0], ctx.truth["mean"])


@metric("var_ratio", **CLASSICAL, estimators=MOMENTS, label="variance ratio", log=True, guard="positive",
        about="tr S / tr S0 (1 = the truth's spread)")
def var_ratio(ctx):
    """tr S / tr S0."""
    return cm.var_ratio(ctx.moments[1], ctx.truth["cov"])


@metric("logdet_ratio", **CLASSICAL, estimators=MOMENTS, label="log-determinant ratio", unit="nats", guard="finite",
        about="log det S - log det S0")
def logdet_ratio(ctx):
    """log det S - log det S0 (nats)."""
    return cm.logdet_ratio(ctx.moments[1], ctx.truth["cov"])


@metric("frechet", **CLASSICAL, estimators=MOMENTS, label="squared Fréchet distance", unit="units²", log=True,
        guard="finite",
        about="||mu - mu0||^2 + tr(S + S0 - 2 (S^1/2 S0 S^1/2)^1/2) (data space, or classifier features)")
def frechet(ctx):
    """Squared Fréchet (2-Wasserstein between Gaussians) distance of (mu, S) to (mu0, S0)."""
    mu, cov = ctx.moments
    return cm.frechet(mu, cov, ctx.truth["mean"], ctx.truth["cov"])


@metric("nll_real", **CLASSICAL, needs=("family.log_prob",), label="held-out negative log-likelihood", unit="nats",
        guard="finite", about="mean -log p_model(x) over held-out real data (VAE: negative ELBO)")
def nll_real(ctx):
    """-mean log p_model(x) over the held-out real points (nats)."""
    return -jnp.mean(ctx.log_model)


@metric("kl_true", **CLASSICAL,
        estimators=(Estimator("closed_form", ("source.gaussian", "family.gaussian"),
                              "KL(N(mu0, S0) || N(mu, S)) in closed form"),
                    Estimator("monte_carlo", ("source.density", "family.log_prob"),
                              "mean of log p_true - log p_model over the held-out real points")),
        label="KL(truth ‖ model)", unit="nats", log=True, guard="positive",
        about="KL(P_true || P_model), exact where closed-form, else a held-out Monte-Carlo mean (text: per token)")
def kl_true(ctx):
    """KL(P_true || P_model) (nats): closed form for a Gaussian model of a Gaussian truth, else held-out MC."""
    if ctx.estimator == "closed_form":
        mu, cov = ctx.moments
        return cm.gaussian_kl(ctx.truth["mean"], ctx.truth["cov"], mu, cov)
    return jnp.mean(ctx.log_true - ctx.log_model)


@metric("tail_mass", **CLASSICAL,
        estimators=(Estimator("directions", ("source.elliptical", "family.components"),
                              "conditional Monte Carlo over metrics.tail_directions antithetic directions, the "
                              "radius integrated exactly per mixture component"),
                    Estimator("monte_carlo", ("source.density",),
                              "share of metrics.tail_samples model draws (scale 1) with log p_true < tail_q")),
        label="tail mass (1 = intact)",
        about="model mass of the truth's alpha-tail region / alpha (discrete: of the rarest 10% of mass)")
def tail_mass(ctx):
    """P_model(log p_true(X) < q) / alpha, q the truth's alpha-quantile of log p_true (alpha = tail_level)."""
    alpha = float(ctx.cfg["tail_level"])
    if ctx.estimator == "directions":
        weights, means, covs = ctx.components
        u = cm.sphere_directions(ctx.key, int(ctx.cfg["tail_directions"]), ctx.source.dim, ctx.dtype)
        p = cm.elliptical_tail_prob(weights, means, covs, ctx.truth["mean"], ctx.truth["shape"],
                                    ctx.truth["tail_r2"], u)
    else:
        p = jnp.mean(ctx.source.log_prob(ctx.truth, ctx.tail_draws) < ctx.truth["tail_q"])
    return p / alpha


# ----- continuous sources, classical families: sampled (metrics.sample_every / sample_replicates) ----------------

SAMPLE_INFO = {
    "precision": M("precision (k-NN)", "", False, "", "share of model draws inside the real data's k-NN balls"),
    "recall": M("recall (k-NN)", "", False, "", "share of real points inside the model draws' k-NN balls"),
    "density": M("density", "", False, "", "Naeem et al. 2020 density (1 = as dense as real data)"),
    "coverage": M("coverage", "", False, "", "share of real k-NN balls holding a model draw"),
    "vendi": M("Vendi score", "effective samples", False, "", "exp(entropy of the RBF kernel's eigenvalues)"),
    "tail_index": M("Hill tail index", "", False, "", "Hill estimate of the tail index of ||x|| (large = light)"),
}


def real_side(ctx):
    """The real held-out points' radii, centre and Vendi bandwidth (samples.real_reference), once per replicate."""
    from collapse.metrics.samples import real_reference

    return real_reference(ctx.real, int(ctx.cfg["knn_k"]), int(ctx.cfg["dc_k"]))


@metric(tuple(SAMPLE_INFO), **CLASSICAL, cost="sampled", info=SAMPLE_INFO, prepare=real_side)
def sample_based(ctx):
    """k-NN precision/recall (k = knn_k), density/coverage (k = dc_k), Vendi and Hill tail index of
    metrics.eval_samples model draws (at sampling.scale) against as many held-out real points."""
    from collapse.metrics.samples import sample_metrics_from

    ref = ctx.prepared if ctx.prepared is not None else real_side(ctx)
    return sample_metrics_from(ref, ctx.fake, int(ctx.cfg["knn_k"]), int(ctx.cfg["dc_k"]))


# ----- discrete sources ----------------------------------------------------------------------------------------


@metric(("entropy", "support", "extinct_mass", "gini_simpson", "tv_true", "kl_true", "tail_mass"),
        kinds=("discrete",), needs=("family.probs",), info={
            "entropy": M("entropy", "nats", False, "", "-sum p log p of the model"),
            "support": M("support", "categories", False, "", "#{k: p_k > 0}"),
            "extinct_mass": M("extinct true mass", "", False, "", "sum of p0 over categories with p = 0"),
            "gini_simpson": M("Gini-Simpson diversity", "", False, "", "1 - sum p^2"),
            "tv_true": M("total variation to the truth", "", False, "", "sum |p - p0| / 2")})
def discrete(ctx):
    """Exact functionals of the model's category probabilities p against the truth p0 (discrete_metrics)."""
    from collapse.metrics.discrete import discrete_metrics

    return discrete_metrics(ctx.family.probs(ctx.params), ctx.truth["probs"], ctx.truth["tail_set"])


# ----- counting sources (source=poisson) ----------------------------------------------------------------------


@metric(("rate_ratio", "extinct"), kinds=("counts",), info={
    "rate_ratio": M("fitted rate / true rate", "", False, "", "rate / rate0 (a martingale: mean 1 in the plain loop)"),
    "extinct": M("rate extinct", "", False, "", "1 when the fitted rate is 0 (absorbing), else 0")})
def counts(ctx):
    """The fitted Poisson rate against the truth's: rate / rate0, and whether it has hit 0 (params["rate"])."""
    rate = ctx.params["rate"]
    return {"rate_ratio": rate / ctx.truth["rate"], "extinct": (rate <= 0).astype(rate.dtype)}


# ----- supervised sources --------------------------------------------------------------------------------------


@metric("test_error", kinds=("supervised",), needs=("family.coef",), label="test error", log=True,
        about="||w - w*||^2 (isotropic inputs)")
def test_error(ctx):
    """||w - w*||^2 of the fitted coefficients (the excess test error for isotropic inputs)."""
    return jnp.sum((ctx.family.coef(ctx.params) - ctx.truth["w"]) ** 2)


@metric("noise_var", kinds=("supervised",), needs=("family.coef",), label="fitted noise variance", log=True,
        about="residual variance of the fit")
def noise_var(ctx):
    """The fitted residual variance (params["noise_var"])."""
    return ctx.params["noise_var"]


# ----- text ----------------------------------------------------------------------------------------------------

TEXT = dict(kinds=("text",))


@metric("ppl_real", **TEXT, needs=("family.log_prob",), label="held-out perplexity", log=True,
        about="exp(mean -log p(token | context)) on held-out text")
def ppl_real(ctx):
    """exp(mean NLL per token of the held-out real segments), over the positions the family scores."""
    return jnp.exp(-jnp.nanmean(ctx.log_model))


@metric("kl_true", **TEXT, needs=("family.log_prob",),
        estimators=(Estimator("transitions", ("source.transitions", "family.transitions"),
                              "exact KL rate sum_h pi(h) KL(T(.|h) || Q(.|h)) of the model's transition table"),
                    Estimator("monte_carlo", ("source.density",),
                              "mean of log p_true - log p_model per token over the held-out segments"),
                    Estimator("none", (), "NaN: no true density (a real corpus)")))
def kl_true_text(ctx):
    """KL(P_true || P_model) per token (nats/token)."""
    if ctx.estimator == "transitions":
        from collapse.text.markov import kl_rate

        return kl_rate(ctx.truth["T_m"], ctx.truth["pi_m"], ctx.family.transitions(ctx.params))
    if ctx.estimator == "monte_carlo":
        return jnp.nanmean(ctx.source.log_prob(ctx.truth, ctx.heldout) - ctx.log_model)
    return jnp.full((), jnp.nan, ctx.log_model.dtype)


TEXT_INFO = {
    "token_entropy": M("token entropy", "nats", False, "", "unigram entropy of generated tokens"),
    "distinct_1": M("distinct-1", "", False, "", "distinct unigrams / unigrams of generated text"),
    "distinct_2": M("distinct-2", "", False, "", "distinct bigrams / bigrams"),
    "distinct_3": M("distinct-3", "", False, "", "distinct trigrams / trigrams"),
    "distinct_4": M("distinct-4", "", False, "", "distinct 4-grams / 4-grams"),
    "vocab_coverage": M("vocabulary coverage", "", False, "", "share of real types that appear in generated text"),
    "extinct_types": M("extinct types", "types", False, "", "real types absent from generated text"),
    "rare_mass": M("rare-token mass (1 = intact)", "", False, "",
                   "share of generated tokens outside the real 90% head / the same share in real text"),
    "zipf_slope": M("Zipf slope", "", False, "", "s of log f_r = c - s log r over generated types"),
    "repetition": M("repetition", "", False, "", "share of repeated n-grams inside a segment"),
}


@metric(tuple(TEXT_INFO), **TEXT, info=TEXT_INFO)
def text_samples(ctx):
    """Diversity and tail metrics of metrics.eval_samples generated segments (prompt positions excluded)."""
    from collapse.text import metrics as tm

    t = ctx.truth
    return tm.text_sample_metrics(ctx.tokens, ctx.valid, ctx.source.dim, t["real_types"], t["tail_mask"],
                                  t["real_tail_share"], int(ctx.cfg.get("repetition_n", 4)))


@metric(("ppl_gen0_q50", "ppl_gen0_q95", "ppl_gen0_q99"), **TEXT, needs=("family.log_prob",), gen0=True, info={
    "ppl_gen0_q50": M("perplexity under generation 0 (median)", "", True, "",
                      "median over generated segments of their generation-0 perplexity"),
    "ppl_gen0_q95": M("perplexity under generation 0 (95th pct.)", "", True, "", "95th percentile of the same"),
    "ppl_gen0_q99": M("perplexity under generation 0 (99th pct.)", "", True, "", "99th percentile of the same")})
def ppl_gen0(ctx):
    """Quantiles over generated segments of their perplexity under the generation-0 model."""
    from collapse.text import metrics as tm

    lp0 = ctx.family.log_prob(ctx.gen0, ctx.tokens)
    return tm.ppl_quantiles(jnp.where(jnp.isnan(lp0), 0.0, lp0), ctx.valid & ~jnp.isnan(lp0))


# ----- neural families (VAE, diffusion) on image and 2-D toy sources: every kept generation ----------------------
# From metrics.eval_samples model draws (at sampling.scale) against as many held-out real points; a replicate
# whose params are not finite gets NaN for every metric from then on (collapse.metrics.compute).


@metric("nll_real", **NEURAL, needs=("family.trains", "family.log_prob"))
def nll_real_neural(ctx):
    """-mean log p_model over the held-out set (VAE: the negative ELBO, an upper bound)."""
    return -jnp.mean(ctx.log_model)


@metric(("frechet", "precision", "recall", "density", "coverage", "vendi"), **NEURAL, needs=("family.trains",),
        estimators=(Estimator("features", ("source.labels",), "in the source classifier's feature space"),
                    Estimator("data", (), "in data space")))
def neural_samples(ctx):
    """Fréchet distance of Gaussians fitted to both sets, k-NN precision/recall, density/coverage and Vendi of
    the model draws against the real points (images.neural_sample_metrics)."""
    from collapse.metrics import images as imm

    fr, ff = ctx.features
    return imm.neural_sample_metrics(fr, ff, int(ctx.cfg["knn_k"]), int(ctx.cfg["dc_k"]))


@metric("class_tv", **NEURAL, needs=("family.trains", "source.labels"), label="class-histogram total variation",
        about="TV between classifier class histograms of draws and real data")
def class_tv(ctx):
    """TV between the classifier's class histogram of the draws and the real one."""
    from collapse.metrics import images as imm

    classes = int((ctx.source.info or {}).get("classes", 0) or 0)
    return imm.class_tv(ctx.predicted, ctx.truth["real_class_hist"], classes)


@metric(("mode_coverage", "mode_quality"), **NEURAL, needs=("family.trains", "source.modes"), info={
    "mode_coverage": M("mode coverage", "", False, "", "share of true modes holding >= 1% of the draws"),
    "mode_quality": M("mode quality", "", False, "", "share of draws within 3 std of a mode")})
def modes(ctx):
    """Share of the known modes holding >= 1% of the draws / share of draws within 3 std of a mode."""
    from collapse.metrics import images as imm

    return imm.mode_coverage(ctx.fake, ctx.truth["modes"], ctx.truth["mode_std"])


@metric("train_loss", **NEURAL, needs=("family.trains",), label="training loss", unit="nats",
        about="the family's loss over the last 10% of steps")
def train_loss(ctx):
    """The family's training loss over the last 10% of steps (params["loss"])."""
    return ctx.params["loss"]


# ----- tasks with checkable answers (source=task) -----------------------------------------------------------------

TASK = dict(kinds=("task",), needs=("family.answer_probs", "source.answers"))
TASK_INFO = {
    "task_accuracy": M("task accuracy", "", False, "", "mean over problems of q(right | problem): the chance one "
                       "sampled answer is right"),
    "task_accuracy_greedy": M("greedy task accuracy", "", False, "", "share of problems whose most likely answer is "
                              "right (a tie of t answers counts 1/t)"),
    "pass_at_k": M("pass@k", "", False, "", "mean over problems of 1 - (1 - q(right))^k, k = metrics.pass_k: the "
                   "chance that one of k sampled answers is right"),
    "answer_diversity": M("answer diversity", "answers", False, "", "source=task: mean over problems of "
                          "exp(entropy of q(. | problem)), the effective number of answers, 1 to A; text tasks: mean "
                          "over held-out problems of the distinct answers among metrics.pass_k draws, 1 to k"),
    "lost_problems": M("lost problems", "", False, "", "share of problems whose right answer has probability 0 "
                       "(the model can never produce it again)"),
}


@metric(tuple(TASK_INFO), **TASK, info=TASK_INFO)
def task_metrics(ctx):
    """Exact functions of the answer table q (P, A) and the right answers c (P,)."""
    q = ctx.family.answer_probs(ctx.params)
    right = jnp.take_along_axis(q, ctx.truth["answers"][:, None], axis=1)[:, 0]
    top = jnp.max(q, axis=1)
    ties = jnp.sum(q >= top[:, None], axis=1)
    k = int(ctx.cfg.get("pass_k", 8))
    entropy = -jnp.sum(jnp.where(q > 0, q * jnp.log(jnp.where(q > 0, q, 1.0)), 0.0), axis=1)
    return {"task_accuracy": jnp.mean(right),
            "task_accuracy_greedy": jnp.mean(jnp.where(right >= top, 1.0 / ties, 0.0)),
            "pass_at_k": jnp.mean(1.0 - (1.0 - right) ** k),
            "answer_diversity": jnp.mean(jnp.exp(entropy)),
            "lost_problems": jnp.mean((right <= 0).astype(q.dtype))}


# ----- text tasks with checkable answers (source=arithmetic) --------------------------------------------------
# On the held-out problems (ctx.heldout: each problem's prompt then its right answer). The column names are the
# categorical task's; their estimators here are those a text model allows.

TEXT_TASK = dict(kinds=("text",), needs=("source.answers", "family.log_prob"))


def _prompt(ctx) -> int:
    return int((ctx.source.info or {}).get("prompt", 0))


@metric(("task_accuracy", "pass_at_k"), **TEXT_TASK)
def text_task_exact(ctx):
    """Exact from each held-out problem's right-answer probability q = prod over the answer positions t of
    p(x_t | x_<t) (teacher-forced on the right answer, decoding controls not applied): mean q, and mean
    1 - (1 - q)^k, k = metrics.pass_k."""
    lp = ctx.log_model[:, _prompt(ctx):]
    q = jnp.exp(jnp.sum(lp, axis=-1))
    k = int(ctx.cfg.get("pass_k", 8))
    return {"task_accuracy": jnp.mean(q), "pass_at_k": jnp.mean(1.0 - (1.0 - q) ** k)}


@metric("task_accuracy_greedy", kinds=("text",), needs=("source.answers", "family.decode"))
def text_task_greedy(ctx):
    """Share of the held-out problems whose greedy answer (temperature 0, the argmax token at every answer position)
    the source's checker accepts."""
    from collapse.text.decoding import Decoding

    prompts = ctx.heldout[:, :_prompt(ctx)]
    tokens = ctx.family.decode(ctx.fold("greedy"), ctx.params, prompts.shape[0], prompts, Decoding(temperature=0.0))
    return jnp.mean(ctx.source.is_right(ctx.truth, tokens))


@metric("answer_diversity", kinds=("text",), needs=("source.answers",))
def text_answer_diversity(ctx):
    """Mean over the held-out problems of the number of distinct answers among k = metrics.pass_k answers drawn
    with the run's decoding controls (1 to k)."""
    P, k = _prompt(ctx), int(ctx.cfg.get("pass_k", 8))
    prompts = jnp.repeat(ctx.heldout[:, :P], k, axis=0)
    answers = ctx.family.sample(ctx.fold("diversity"), ctx.params, prompts.shape[0], 1.0, prompts)[:, P:]
    a = answers.reshape(-1, k, answers.shape[-1])
    same = jnp.all(a[:, :, None, :] == a[:, None, :, :], axis=-1)  # (H, k, k)
    earlier = jnp.tril(jnp.ones((k, k), bool), -1)
    first = ~jnp.any(same & earlier, axis=-1)  # answer i differs from every answer j < i
    return jnp.mean(jnp.sum(first, axis=-1).astype(ctx.dtype))


# ----- columns made outside the registry (curation, in the engine's step) ----------------------------------------

describe("accept_rate", "accept rate", about="kept / drawn candidates")
describe("verifier_precision", "verifier precision", about="share of the candidates the verifier accepts that are "
         "right (curation.score=verifier or learned_verifier)")
describe("verifier_fpr", "verifier false-positive rate", about="share of the wrong candidates the verifier accepts, "
         "measured against the exact checker")
describe("verifier_fnr", "verifier false-negative rate", about="share of the right candidates the verifier rejects, "
         "measured against the exact checker")
describe("reward_mean", "mean reward", about="the configured reward over fresh model draws")

# ----- columns of a model ecosystem (loop.models > 1; collapse.ecosystem, pooled population of all lineages) -----
describe("pool_var_ratio", "pooled variance ratio", log=True, about="tr S_pool / tr S0, S_pool the covariance of the "
         "equal mixture of the ecosystem's models (loop.models > 1)")
describe("spread", "between-model spread", about="(1/M) sum_i ||mu_i - mu_bar||^2 / tr S0: how far the ecosystem's "
         "model means lie apart (loop.models > 1)")
describe("pool_support", "pooled support", unit="categories", about="#{k: p_pool_k > 0}, p_pool the mean of the "
         "ecosystem's category probabilities (loop.models > 1)")
describe("pool_gini_simpson", "pooled Gini-Simpson diversity", about="1 - sum p_pool^2 (loop.models > 1)")
describe("spread_tv", "between-model total variation", about="(1/M) sum_i TV(p_i, p_pool) (loop.models > 1)")
del M
