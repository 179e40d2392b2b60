"""One table of every metric collapse reports: readable name, unit, axis scale and precision watch.

Figures take their axis labels from it (:func:`axis_label`), the CLI and reports their headline order
(:func:`headline`), the precision guard its watched metrics (``guard``), and ``docs/metrics.md`` is generated
from it (``python -m collapse.metrics.table > docs/metrics.md``; a test keeps the two in sync).

Fields: ``label`` (what an axis says), ``unit`` ("" = dimensionless), ``log`` (a multiplicative quantity:
log axis in figures), ``guard`` (for continuous sources: ``positive`` = strictly positive and finite in exact
arithmetic, so a float32 zero, infinity, or magnitude below 1e-30 or above 1e30 means the arithmetic ran out;
``finite`` = only infinity or a magnitude above 1e30 does), ``about`` (one
line for the docs).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MetricInfo:
    label: str
    unit: str = ""
    log: bool = False
    guard: str = ""  # "" | "positive" | "finite" (see the module docstring)
    about: str = ""


M = MetricInfo
METRICS: dict[str, MetricInfo] = {
    # continuous sources: exact moments of the fitted model
    "mean_err": M("squared mean error", "data units²", True, "", "||mu - mu0||^2"),
    "var_ratio": M("variance ratio", "", True, "positive", "tr S / tr S0 (1 = the truth's spread)"),
    "logdet_ratio": M("log-determinant ratio", "nats", False, "finite", "log det S - log det S0"),
    "frechet": M("squared Fréchet distance", "units²", True, "finite",
                 "||mu - mu0||^2 + tr(S + S0 - 2 (S^1/2 S0 S^1/2)^1/2) (data space, or classifier features)"),
    "nll_real": M("held-out negative log-likelihood", "nats", False, "finite",
                  "mean -log p_model(x) over held-out real data (VAE: negative ELBO)"),
    "kl_true": M("KL(truth ‖ model)", "nats", True, "positive",
                 "KL(P_true || P_model), exact where closed-form, else a held-out Monte-Carlo mean (text: per token)"),
    "tail_mass": M("tail mass (1 = intact)", "", False, "",
                   "model mass of the truth's alpha-tail region / alpha (discrete: of the rarest 10% of mass)"),
    # sample-based (model draws against held-out real points)
    "precision": M("precision (k-NN)", "", False, "", "share of model draws inside the real data's k-NN balls"),
    "recall": M("recall (k-NN)", "", False, "", "share of real points inside the model draws' k-NN balls"),
    "density": M("density", "", False, "", "Naeem et al. 2020 density (1 = as dense as real data)"),
    "coverage": M("coverage", "", False, "", "share of real k-NN balls holding a model draw"),
    "vendi": M("Vendi score", "effective samples", False, "", "exp(entropy of the RBF kernel's eigenvalues)"),
    "tail_index": M("Hill tail index", "", False, "", "Hill estimate of the tail index of ||x|| (large = light)"),
    # discrete sources
    "entropy": M("entropy", "nats", False, "", "-sum p log p of the model"),
    "support": M("support", "categories", False, "", "#{k: p_k > 0}"),
    "extinct_mass": M("extinct true mass", "", False, "", "sum of p0 over categories with p = 0"),
    "gini_simpson": M("Gini-Simpson diversity", "", False, "", "1 - sum p^2"),
    "tv_true": M("total variation to the truth", "", False, "", "sum |p - p0| / 2"),
    # supervised
    "test_error": M("test error", "", True, "", "||w - w*||^2 (isotropic inputs)"),
    "noise_var": M("fitted noise variance", "", True, "", "residual variance of the fit"),
    # text
    "ppl_real": M("held-out perplexity", "", True, "", "exp(mean -log p(token | context)) on held-out text"),
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
    "ppl_gen0_q50": M("perplexity under generation 0 (median)", "", True, "",
                      "median over generated segments of their generation-0 perplexity"),
    "ppl_gen0_q95": M("perplexity under generation 0 (95th pct.)", "", True, "", "95th percentile of the same"),
    "ppl_gen0_q99": M("perplexity under generation 0 (99th pct.)", "", True, "", "99th percentile of the same"),
    # neural / images
    "class_tv": M("class-histogram total variation", "", False, "",
                  "TV between classifier class histograms of draws and real data"),
    "mode_coverage": M("mode coverage", "", False, "", "share of true modes holding >= 1% of the draws"),
    "mode_quality": M("mode quality", "", False, "", "share of draws within 3 std of a mode"),
    "train_loss": M("training loss", "nats", False, "", "the family's loss over the last 10% of steps"),
    # curation
    "accept_rate": M("accept rate", "", False, "", "kept / drawn candidates"),
    "reward_mean": M("mean reward", "", False, "", "the configured reward over fresh model draws"),
}
del M

# The metrics that carry collapse, per source kind, first first (CLI lines, report curves).
HEADLINE = {
    "continuous": ("var_ratio", "tail_mass", "kl_true", "mean_err", "frechet", "recall", "precision", "vendi"),
    "discrete": ("support", "extinct_mass", "entropy", "tail_mass", "kl_true", "gini_simpson"),
    "supervised": ("test_error", "noise_var"),
    "text": ("ppl_real", "kl_true", "distinct_4", "rare_mass", "vocab_coverage", "ppl_gen0_q95", "token_entropy"),
    "image": ("frechet", "recall", "precision", "class_tv", "mode_coverage", "mode_quality", "nll_real", "vendi"),
}
ANY_KIND = tuple(dict.fromkeys(m for ms in HEADLINE.values() for m in ms))


def info(metric: str) -> MetricInfo:
    """The table entry of ``metric`` (a plain entry named after the column for a metric not in the table)."""
    return METRICS.get(metric, MetricInfo(metric.replace("_", " ")))


def axis_label(metric: str) -> str:
    """``label (unit)``, or the label alone for a dimensionless metric."""
    m = info(metric)
    return f"{m.label} ({m.unit})" if m.unit else m.label


def headline(kind: str | None, available) -> list[str]:
    """Metrics of ``available`` in the headline order of the source kind (every kind's order if unknown)."""
    order = HEADLINE.get(kind or "", ANY_KIND)
    have = list(available)
    return [m for m in order if m in have] + [m for m in ANY_KIND if m in have and m not in order]


def markdown() -> str:
    """``docs/metrics.md``: the table as Markdown."""
    lines = ["# Metrics", "", "Generated from `collapse/metrics/table.py` by `python -m collapse.metrics.table`; "
             "figures label their axes from the same table. *log*: drawn on a log axis (a multiplicative "
             "quantity); *guard*: watched by the float32 precision guard.", "",
             "| column | name | unit | log | guard | definition |", "|---|---|---|---|---|---|"]
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    for name, m in METRICS.items():
        lines.append(f"| `{name}` | {cell(m.label)} | {m.unit or '-'} | {'yes' if m.log else ''} | "
                     f"{m.guard} | {cell(m.about)} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
