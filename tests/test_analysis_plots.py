"""analysis.aggregate / compare_theory against hand computations; every plot renders from a tiny run; the report
command writes its files; bad input gets one clear line."""
import math
import subprocess
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

import collapse
from collapse import plots
from collapse.analysis import MixedSweepError, aggregate, compare_theory, load_sweep
from collapse.report import write_report
from collapse.theory import gaussian_var_ratio

CLI = str(Path(sys.executable).parent / "collapse")
TINY = ("replicates=6", "metrics.sample_based=false", "quiet=true")


def test_aggregate_equals_a_hand_computation():
    df = pd.DataFrame({"replicate": [0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2],
                       "generation": [0, 0, 0, 1, 1, 1] * 2,
                       "loop.real_fraction": [0.0] * 6 + [0.5] * 6,
                       "var_ratio": [1.0, 2.0, 4.0, 0.5, np.nan, 1.5, 3.0, 3.0, 3.0, 1.0, 2.0, 6.0]})
    agg = aggregate(df)
    assert agg.attrs["by"] == ["loop.real_fraction"] and len(agg) == 4
    row = agg[(agg["loop.real_fraction"] == 0.0) & (agg["generation"] == 0)].iloc[0]
    v = np.array([1.0, 2.0, 4.0])
    half = sps.t.ppf(0.975, 2) * v.std(ddof=1) / math.sqrt(3)
    assert row["mean"] == pytest.approx(7 / 3) and row["n"] == 3 and row["median"] == 2.0
    assert row["lo"] == pytest.approx(7 / 3 - half) and row["hi"] == pytest.approx(7 / 3 + half)
    nan_row = agg[(agg["loop.real_fraction"] == 0.0) & (agg["generation"] == 1)].iloc[0]
    assert nan_row["n"] == 2 and nan_row["mean"] == pytest.approx(1.0)  # the NaN replicate is left out
    flat = agg[(agg["loop.real_fraction"] == 0.5) & (agg["generation"] == 0)].iloc[0]
    assert flat["lo"] == flat["hi"] == 3.0  # no spread, no width
    boot = aggregate(df, method="bootstrap", seed=1)
    b = boot[(boot["loop.real_fraction"] == 0.5) & (boot["generation"] == 1)].iloc[0]
    assert 1.0 <= b["lo"] < 3.0 < b["hi"] <= 6.0  # percentile interval of resampled means of [1, 2, 6]
    with pytest.raises(KeyError, match="metric 'recall' is not in this table; available: var_ratio"):
        aggregate(df, metrics=["recall"])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    out = {}
    out["gauss"] = collapse.simulate(*TINY, "generations=21", "metrics.sample_every=10", run_dir=root / "gauss").run_dir
    out["sweep"] = collapse.simulate(*TINY, "generations=6", "sweep.loop.real_fraction=[0,0.2,0.5]",
                                     run_dir=root / "sweep").run_dir
    out["zipf"] = collapse.simulate(*TINY, "generations=5", "source=zipf", "model=categorical",
                                    "metrics.sample_every=2", run_dir=root / "zipf").run_dir
    out["ring"] = collapse.simulate(*TINY, "generations=3", "source=ring", run_dir=root / "ring").run_dir
    out["markov"] = collapse.simulate("replicates=2", "generations=3", "source=markov", "model=ngram", "quiet=true",
                                      run_dir=root / "markov").run_dir
    return out


def test_compare_theory_joins_the_closed_form(runs):
    df = load_sweep(runs["gauss"])
    th = compare_theory(df, metrics=["var_ratio", "tail_mass"])
    vr = th[th["metric"] == "var_ratio"].sort_values("generation")
    np.testing.assert_allclose(vr["theory"], gaussian_var_ratio(np.arange(21), 100), rtol=1e-12)
    assert th[th["metric"] == "tail_mass"]["theory"].isna().all()  # no closed form: NaN
    sw = compare_theory(load_sweep(runs["sweep"]), metrics=["var_ratio"])
    last = sw[sw["generation"] == 5].set_index("loop.real_fraction")["theory"]
    assert last[0.0] == pytest.approx(gaussian_var_ratio(5, 100)) and last[0.5] > last[0.0]


def _lines(fig):
    return [ln for ax in fig.axes for ln in ax.get_lines()]


def test_metric_curve_has_median_band_dashed_theory_and_a_readable_label(runs):
    fig = plots.metric_curve(runs["gauss"], "var_ratio")
    (ax,) = fig.axes
    assert ax.get_xlabel() == "generation" and ax.get_ylabel() == "variance ratio"
    styles = [ln.get_linestyle() for ln in ax.get_lines()]
    assert styles == ["-", "--"] and len(ax.collections) == 1  # median, theory; one interquartile band
    assert len(ax.get_lines()[0].get_xdata()) == 21
    df = load_sweep(runs["gauss"])
    med = df.groupby("generation")["var_ratio"].median().to_numpy()
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), med, rtol=1e-6)  # the median, not the mean
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["median", "interquartile range", "theory (expected value)"]  # the band is in the legend
    assert ax.get_yscale() == "log"  # a multiplicative quantity (metric table)
    fig = plots.metric_curve(runs["gauss"], "var_ratio", stat="mean")
    ax = fig.axes[0]
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), df.groupby("generation")["var_ratio"].mean(), rtol=1e-6)
    assert [t.get_text() for t in ax.get_legend().get_texts()][1] == "95% interval of the mean"
    plt.close("all")


def test_regimes_draw_one_line_and_band_per_sweep_point(runs):
    fig = plots.regimes(runs["sweep"], "var_ratio", by="loop.real_fraction")
    (ax,) = fig.axes
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[:3] == ["real_fraction=0", "real_fraction=0.2", "real_fraction=0.5"]
    assert labels[3:] == ["interquartile range", "theory (expected value)"]  # one entry each, not one per point
    assert len(ax.collections) == 3 and sum(ln.get_linestyle() == "--" for ln in ax.get_lines()) == 3
    plt.close(fig)


def test_phase_diagram_is_a_points_by_generations_grid(runs):
    fig = plots.phase_diagram(runs["sweep"], "var_ratio")
    ax = fig.axes[0]
    assert ax.get_images()[0].get_array().shape == (6, 3)  # generations x real fractions
    assert ax.get_xlabel() == "loop.real_fraction" and ax.get_ylabel() == "generation"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "0.2", "0.5"]
    plt.close(fig)


def test_pictures_of_draws_render(runs, tmp_path):
    fig = plots.survival(runs["gauss"])
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["generation 0", "generation 10", "generation 20", "truth"]
    assert fig.axes[0].get_xscale() == "log" and fig.axes[0].get_yscale() == "log"
    assert all(len(ln.get_xdata()) > 100 for ln in _lines(fig))
    files = plots.save(fig, tmp_path / "surv")
    assert [f.suffix for f in files] == [".pdf", ".png"] and all(f.stat().st_size > 1000 for f in files)
    fig = plots.densities(runs["gauss"], generations=[0, 20])
    assert len(fig.axes[0].patches) == 3  # truth + two generations (step histograms)
    fig = plots.rank_frequency(runs["zipf"])
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()][-1] == "truth"
    fig = plots.rank_frequency(runs["markov"])  # tokens "t12 t7 ...": ranks count tokens, not characters
    assert 12 < max(len(ln.get_xdata()) for ln in _lines(fig)) <= 32
    fig = plots.scatter(runs["ring"])
    assert len(fig.axes) == 2 and fig.axes[0].get_title() == "generation 0"  # generations 0 and 2
    fig = plots.sample_grid(runs["ring"])
    assert len(fig.axes) == 2 and len(fig.axes[0].get_images()) == 1
    plt.close("all")


def test_plot_bad_input_names_what_is_available(runs, tmp_path):
    with pytest.raises(KeyError, match="metric 'recall' is not in this run; available: mean_err, var_ratio"):
        plots.metric_curve(runs["gauss"], "recall")
    with pytest.raises(FileNotFoundError, match="has no samples.npz"):
        plots.survival(runs["sweep"])
    with pytest.raises(ValueError, match="for 2-D sources"):
        plots.scatter(runs["gauss"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(Exception, match="no finished job"):
        plots.metric_curve(tmp_path / "empty", "var_ratio")


def test_report_writes_figures_and_markdown_for_a_run_and_a_sweep(runs):
    for name, expected in (("gauss", ["curve_var_ratio", "tails_survival", "density"]),
                           ("sweep", ["curve_var_ratio", "phase_var_ratio"]),
                           ("zipf", ["curve_support", "rank_frequency"]),
                           ("ring", ["curve_var_ratio", "scatter"]),
                           ("markov", ["curve_kl_true", "curve_ppl_real", "rank_frequency"])):
        if name == "sweep":  # through the command once; in-process for the others (faster)
            p = subprocess.run([CLI, "report", str(runs[name])], capture_output=True, text=True, timeout=300)
            assert p.returncode == 0, p.stderr
            assert "report.md" in p.stdout and str(runs[name] / "report") in p.stdout
        else:
            write_report(runs[name])
        out = runs[name] / "report"
        for fig in expected:
            assert (out / f"{fig}.pdf").stat().st_size > 1000 and (out / f"{fig}.png").is_file(), (name, fig)
        md = (out / "report.md").read_text()
        assert "## Final generation" in md and "![curve_" in md
    md = (runs["sweep"] / "report" / "report.md").read_text()
    head = next(ln for ln in md.splitlines() if ln.startswith("| loop.real_fraction | metric"))
    col = [c.strip() for c in head.strip("|").split("|")].index("theory")
    rows = [ln for ln in md.splitlines() if ln.startswith("| 0.5 | var_ratio")]
    assert len(rows) == 1 and rows[0].strip("|").split("|")[col].strip() != "-"  # theory value for the fresh mix


def test_report_of_a_multirun_and_bad_folders(tmp_path):
    p = subprocess.run([CLI, "-m", "loop.real_fraction=0,0.5", *TINY, "generations=4", "name=rep"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    (sweep,) = (tmp_path / "runs" / "rep" / "multirun").iterdir()
    p = subprocess.run([CLI + "-report", str(sweep)], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert (sweep / "report" / "phase_var_ratio.png").is_file()
    assert "| 0.5 | var_ratio |" in (sweep / "report" / "report.md").read_text()
    (tmp_path / "notarun").mkdir()
    (tmp_path / "notarun" / "x.txt").write_text("hi")
    p = subprocess.run([CLI, "report", str(tmp_path / "notarun")], capture_output=True, text=True, timeout=300)
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1
    assert "not a finished run or sweep folder" in p.stderr and "found: x.txt" in p.stderr


def test_a_sweep_with_mixed_metrics_is_refused_with_what_was_found(tmp_path):
    for job, extra in (("0", []), ("1", ["source=zipf", "model=categorical"])):
        collapse.simulate(*TINY, "generations=2", *extra, run_dir=tmp_path / job)
    with pytest.raises(MixedSweepError, match=r"jobs 0: mean_err, var_ratio.*; jobs 1: entropy, support"):
        load_sweep(tmp_path)
    assert set(load_sweep(tmp_path, allow_mixed=True)["job"]) == {"0", "1"}


def test_a_reused_unfinished_run_folder_loses_the_previous_results(tmp_path):
    collapse.simulate(*TINY, "generations=41", "metrics.sample_every=10", run_dir=tmp_path / "r")
    (tmp_path / "r" / "report").mkdir()
    (tmp_path / "r" / "summary.json").unlink()  # unfinished (a finished run is never overwritten)
    collapse.simulate(*TINY, "generations=3", "metrics.draws=0", run_dir=tmp_path / "r")
    assert not (tmp_path / "r" / "samples.npz").exists() and not (tmp_path / "r" / "report").exists()
    assert load_sweep(tmp_path / "r")["generation"].max() == 2
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "samples.npz").write_bytes(b"not ours")  # a folder collapse did not write: untouched
    collapse.simulate(*TINY, "generations=2", "metrics.draws=0", run_dir=tmp_path / "mine")
    assert (tmp_path / "mine" / "samples.npz").read_bytes() == b"not ours"
