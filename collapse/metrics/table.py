"""Every metric collapse reports, as one table: readable name, unit, axis scale and precision watch.

The entries live with the metric functions (:mod:`collapse.metrics.registry`; collapse's own in
:mod:`collapse.metrics.builtin`): :data:`METRICS` is the registry's live table of column descriptions, so a
metric registered by a plug-in appears here too. Figures take their axis labels from it (:func:`axis_label`),
the CLI and reports their headline order (:func:`headline`), the precision guard its watched metrics
(``guard``), and ``docs/metrics.md`` is generated from it (``python -m collapse.metrics.table >
docs/metrics.md``; a test keeps the two in sync).

Fields (:class:`MetricInfo`): ``label`` (what an axis says), ``unit`` ("" = dimensionless), ``log`` (a
multiplicative quantity: log axis in figures), ``guard`` (for continuous sources: ``positive`` = strictly
positive and finite in exact arithmetic, so a float32 zero, infinity, or magnitude below 1e-30 or above 1e30
means the arithmetic ran out; ``finite`` = only infinity or a magnitude above 1e30 does), ``about`` (one
line for the docs).
"""
from __future__ import annotations

from collapse.metrics import registry as _R
from collapse.metrics.registry import MetricInfo

_R.ensure_builtin()
METRICS: dict[str, MetricInfo] = _R.INFO  # the registry's own dict (live: plug-in metrics included)

# The metrics that carry collapse, per source kind, first first (CLI lines, report curves).
HEADLINE = {
    "continuous": ("var_ratio", "tail_mass", "kl_true", "mean_err", "frechet", "recall", "precision", "vendi"),
    "discrete": ("support", "extinct_mass", "entropy", "tail_mass", "kl_true", "gini_simpson"),
    "supervised": ("test_error", "noise_var"),
    "counts": ("rate_ratio", "extinct"),
    "text": ("task_accuracy", "task_accuracy_greedy", "pass_at_k", "ppl_real", "kl_true", "distinct_4", "rare_mass", "vocab_coverage", "ppl_gen0_q95", "token_entropy"),
    "image": ("frechet", "recall", "precision", "class_tv", "mode_coverage", "mode_quality", "nll_real", "vendi"),
    "task": ("task_accuracy", "task_accuracy_greedy", "pass_at_k", "answer_diversity", "lost_problems"),
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


def markdown(plugins: bool = False) -> str:
    """``docs/metrics.md``: the column table, then which runs get each registered metric and how; collapse's
    own metrics only unless ``plugins`` (metrics registered from outside the package, e.g. by a plug-in)."""
    def ours(where: str) -> bool:
        return plugins or where.startswith("collapse.") or where.startswith("describe(")

    lines = ["# Metrics", "", "Generated from the metric registry (`collapse/metrics/builtin.py`, registered with "
             "`collapse.metrics.registry.metric`) by `python -m collapse.metrics.table`; figures label their axes "
             "from the same entries. *log*: drawn on a log axis (a multiplicative quantity); *guard*: watched by "
             "the float32 precision guard.", "",
             "| column | name | unit | log | guard | definition |", "|---|---|---|---|---|---|"]
    for name, m in METRICS.items():
        if not ours(_R.described_by(name)):
            continue
        lines.append(f"| `{name}` | {_cell(m.label)} | {m.unit or '-'} | {'yes' if m.log else ''} | "
                     f"{m.guard} | {_cell(m.about)} |")
    lines += ["", "## Which runs get which metric", "",
              "One row per registered function, in column order. *runs*: source kinds; *needs* / *not with*: "
              "capabilities of the source (`source.`) and the family (`family.`), see `Source.capabilities` and "
              "`Family.capabilities`; *cost*: `every` kept generation, or `sampled` (every `metrics.sample_every` "
              "kept generations, the first `metrics.sample_replicates` replicates); *estimators*: the first whose "
              "capabilities the run has is used. Columns made outside the registry (curation's `accept_rate`, "
              "`reward_mean`) are not listed.", "",
              "| columns | function | runs | needs | not with | cost | estimators |", "|---|---|---|---|---|---|---|"]
    for m in (m for m in _R.REGISTRY if ours(m.where)):
        ests = "; ".join(f"`{e.name}`" + (f" ({', '.join(e.needs)})" if e.needs else "") + f": {e.about}"
                         for e in m.estimators)
        doc = (m.fn.__doc__ or "").strip().split("\n\n")[0]
        lines.append(f"| {', '.join(f'`{n}`' for n in m.names)} | `{m.where.split(':')[-1]}`: "
                     f"{_cell(' '.join(doc.split()))} | {', '.join(m.kinds) if m.kinds else 'any'} | "
                     f"{', '.join(m.needs) or '-'} | {', '.join(m.without) or '-'} | {m.cost} | {_cell(ests) or '-'} |")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


if __name__ == "__main__":
    print(markdown(), end="")
