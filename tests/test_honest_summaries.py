"""Summaries fit for heavy tails, the float32 precision guard, and figures a journal takes (labels from the metric
table, the band in the legend, log ticks, exact rank-frequency, no legend entry without a line)."""
import json
import subprocess
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest

import collapse
from collapse import plots
from collapse.metrics.table import METRICS, axis_label, markdown
from collapse.summaries import describe, is_heavy_tailed, median_interval, theory_check, top_share

CLI = str(Path(sys.executable).parent / "collapse")
ROOT = Path(__file__).resolve().parents[1]


def test_median_interval_covers_the_median_at_its_level():
    rng = np.random.default_rng(20261201)  # seed fixed before looking
    trials, n = 2000, 50
    hits = sum(lo <= 1.0 <= hi for lo, hi in (median_interval(rng.lognormal(0, 2, n)) for _ in range(trials)))
    cover = hits / trials
    se = np.sqrt(0.95 * 0.05 / trials)
    assert cover >= 0.95 - 4 * se, cover  # distribution-free: at least the nominal level
    assert cover <= 0.99  # and not the trivial [min, max]


def test_non_negative_metrics_never_get_a_negative_interval():
    rng = np.random.default_rng(1)
    chains = rng.lognormal(0, 4, 1000)  # a mean carried by a few chains: the t-interval would reach below 0
    d = describe(chains)
    assert d["interval"] == "bootstrap" and d["lo"] >= 0 and d["lo"] < d["mean"] < d["hi"]
    t_lo = chains.mean() - 1.96 * chains.std(ddof=1) / np.sqrt(chains.size)
    assert t_lo < 0  # the case this guards against
    assert d["heavy_tailed"] and d["top1_share"] > 0.2
    signed = describe(rng.normal(size=1000))
    assert signed["interval"] == "t" and not signed["heavy_tailed"]
    assert signed["median_lo"] < signed["median"] < signed["median_hi"] and signed["q25"] < signed["q75"]


def test_heavy_tail_diagnostic_separates_light_and_heavy_replicate_distributions():
    rng = np.random.default_rng(2)
    for light in (rng.normal(size=1000), rng.uniform(size=1000), rng.exponential(size=1000),
                  rng.normal(size=20)):
        assert not is_heavy_tailed(top_share(light), light.size)
    heavy = rng.lognormal(0, 3, 1000)
    assert is_heavy_tailed(top_share(heavy), heavy.size)
    assert theory_check({"lo": 1.0, "hi": 2.0, "heavy_tailed": True}, 5.0)["reason"].startswith("heavy-tailed")
    assert theory_check({"lo": 1.0, "hi": 2.0}, 1.5) is None


def test_long_horizon_summary_is_non_negative_and_explains_the_theory_miss():
    res = collapse.simulate("generations=1000", "replicates=1000", "metrics.sample_based=false", "metrics.every=50")
    kl = res.summary["metrics"]["kl_true"]
    assert kl["lo"] >= 0 and kl["median_lo"] >= 0 and kl["heavy_tailed"]
    vr = res.summary["metrics"]["var_ratio"]
    assert vr["lo"] >= 0 and vr["median"] < vr["mean"] / 100  # the typical chain is far below the mean
    miss = vr.get("theory_outside")
    if miss is not None:  # E[var_ratio] is carried by chains too rare to sample: the summary says so
        assert miss["side"] == "above" and "heavy-tailed" in miss["reason"]
    events = {e["event"] for e in res.summary["events"]}
    assert "heavy_tailed" in events


def test_precision_guard_counts_float32_underflow_and_suggests_float64(capfd):
    over = ("loop.samples=10", "generations=600", "replicates=40", "metrics.sample_based=false", "metrics.every=20")
    res = collapse.simulate(*over)
    g = res.summary["precision_guard"]
    assert g["checked"] and 0 < g["replicates"] <= 40 and g["suggestion"] == "precision=float64"
    assert "var_ratio" in g["metrics"] and g["first_generation"] > 0
    err = capfd.readouterr().err
    assert err.count("float32 ran out of range") == 1 and "precision=float64" in err  # said once
    assert any(e["event"] == "float32_range" for e in res.summary["events"])
    res64 = collapse.simulate(*over, "precision=float64")
    assert res64.summary["precision_guard"] == {"checked": False}
    last = res64.metrics[res64.metrics["generation"] == 599]["var_ratio"]
    assert (last > 0).all()  # float64 still resolves what float32 lost
    assert "float32" not in capfd.readouterr().err
    healthy = collapse.simulate("generations=20", "replicates=20", "metrics.sample_based=false")
    assert healthy.summary["precision_guard"] == {"checked": True, "replicates": 0, "of": 20}


def test_cli_prints_the_median_first_and_zipf_leads_with_support(tmp_path):
    from collapse.cli import headline
    res = collapse.simulate("replicates=50", "generations=30", "metrics.sample_based=false")
    line = next(ln for ln in headline(res) if ln.strip().startswith("var_ratio:"))
    assert line.index("median") < line.index("mean")
    p = subprocess.run([CLI, "experiment=zipf_extinction", "replicates=10", "generations=5", "name=z"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=600)  # the command itself, once
    assert p.returncode == 0, p.stderr
    lines = [ln.strip() for ln in p.stdout.splitlines() if ": generation 0" in ln]
    assert lines[0].startswith("support:") and lines[1].startswith("extinct_mass:")


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    """The default experiment (its loop and size; sample metrics thinned to keep the test short)."""
    return collapse.simulate("metrics.sample_replicates=4", run_dir=tmp_path_factory.mktemp("d") / "run").run_dir


def test_tail_figure_of_the_default_run_shows_the_median_falling(default_run):
    fig = plots.metric_curve(default_run, "tail_mass")
    ax = fig.axes[0]
    median = ax.get_lines()[0].get_ydata()
    assert ax.get_lines()[0].get_label() == "median"
    assert median[0] > 0.5 and median[-1] < 0.05  # intact at generation 0, erased by generation 199
    assert ax.get_ylabel() == axis_label("tail_mass")
    plt.close(fig)


def _legend_has_only_drawn_entries(ax):
    handles, labels = ax.get_legend_handles_labels()
    for h, lab in zip(handles, labels):
        if hasattr(h, "get_ydata"):
            y = np.asarray(h.get_ydata(), float)
            visible = h.get_linestyle() not in ("None", "none", "") and np.isfinite(y).sum() >= 2
            assert visible or (h.get_marker() not in ("None", "none", "", None) and np.isfinite(y).any()), lab


def test_every_report_figure_has_labels_from_the_table_and_honest_legends(default_run, tmp_path):
    z = collapse.simulate("experiment=zipf_extinction", "replicates=20", "generations=21",
                          "metrics.sample_every=10", run_dir=tmp_path / "zipf").run_dir
    for run in (default_run, z):
        df = plots.table(run)
        for m in [c for c in df.columns if c in METRICS]:
            if not np.isfinite(df[m].to_numpy(float)).any():
                continue
            fig = plots.metric_curve(run, m)
            ax = fig.axes[0]
            assert ax.get_ylabel() == axis_label(m)
            _legend_has_only_drawn_entries(ax)
            if ax.get_yscale() == "log":  # a log axis shows at least two labelled ticks
                lo, hi = ax.get_ylim()
                shown = [t for t, lab in zip(ax.get_yticks(), ax.get_yticklabels()) if lo <= t <= hi and lab.get_text()]
                assert len(shown) >= 2, (m, shown)
            plt.close(fig)
    fig = plots.rank_frequency(z)
    ax = fig.axes[0]
    gen0 = ax.get_lines()[0]
    support0 = int(plots.table(z).query("generation == 0 and replicate == 0")["support"].iloc[0])
    assert len(gen0.get_xdata()) == support0  # every surviving category, from the exact probabilities
    assert ax.get_ylabel() == "model probability"
    plt.close(fig)


def test_narrow_log_axis_gets_several_ticks():
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0.9, 1.3])
    ax.set_yscale("log")
    plots.log_ticks(ax)
    fig.canvas.draw()
    lo, hi = ax.get_ylim()
    shown = [t for t, lab in zip(ax.get_yticks(), ax.get_yticklabels()) if lo <= t <= hi and lab.get_text()]
    assert len(shown) >= 3
    plt.close(fig)


def test_summary_json_and_report_lead_with_the_median(default_run):
    s = json.loads((Path(default_run) / "summary.json").read_text())
    vr = s["metrics"]["var_ratio"]
    assert vr["median_lo"] <= vr["median"] <= vr["median_hi"] and vr["lo"] >= 0
    from collapse.report import write_report
    out = write_report(default_run)
    text = (out / "report.md").read_text()
    header = next(ln for ln in text.splitlines() if ln.startswith("| metric"))
    assert header.index("median") < header.index("mean")
    assert "heavy-tailed" in text
    plt.close("all")


def test_docs_metric_table_is_generated_from_the_code():
    assert (ROOT / "docs" / "metrics.md").read_text() == markdown(), \
        "docs/metrics.md is stale: python -m collapse.metrics.table > docs/metrics.md"


def test_one_replicate_has_no_band_to_name_and_generations_are_whole_ticks():
    res = collapse.simulate("replicates=1", "generations=3", "metrics.sample_based=false")
    fig = plots.metric_curve(res.metrics, "var_ratio")
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "interquartile range" not in labels and labels[0] == "median"
    fig.canvas.draw()
    xt = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert xt and all(float(t).is_integer() for t in xt)
    plt.close(fig)


def test_binomial_quantile_matches_scipy_stats():
    """median_ranks' Binomial(n, 1/2) quantile (from scipy.special.bdtr, no scipy.stats import) equals
    scipy.stats.binom.ppf for every n up to 2000 and a few large n, at the levels summaries use."""
    from scipy import stats

    from collapse.summaries import binom_half_ppf

    for n in [*range(1, 2001), 10_000, 99_999]:
        for q in (0.005, 0.025, 0.05):
            assert binom_half_ppf(q, n) == int(stats.binom.ppf(q, n, 0.5)), (n, q)
