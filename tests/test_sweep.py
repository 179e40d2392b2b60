"""Vectorised sweeps (``sweep.<key>=[...]``): one compiled program whose points equal the single runs."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import collapse
from collapse.analysis import load_sweep
from collapse.api import point_rows
from collapse.cli import main
from collapse.wandb_log import read_offline_history

SMALL = ["replicates=4", "generations=8", "metrics.sample_replicates=2", "metrics.sample_every=4"]
CLI = str(Path(sys.executable).parent / "collapse")


def _compare(sweep_df: pd.DataFrame, point: dict, single: pd.DataFrame, rtol: float, loose: dict) -> None:
    sub = point_rows(sweep_df, point)
    assert list(sub.columns) == list(single.columns) and len(sub) == len(single)
    for col in single.columns:
        a, b = single[col].to_numpy(np.float64), sub[col].to_numpy(np.float64)
        np.testing.assert_allclose(b, a, rtol=loose.get(col, rtol), atol=0, equal_nan=True,
                                   err_msg=f"{col} at {point}")


def _check_points(extra: list[str], axes: dict[str, list], rtol: float, loose: dict | None = None) -> None:
    typed = [f"sweep.{k}=[{','.join(map(str, v))}]" for k, v in axes.items()]
    res = collapse.simulate(*SMALL, *extra, *typed)
    keys = list(axes)
    assert list(res.metrics.columns[:2 + len(keys)]) == ["replicate", "generation", *keys]
    n_points = int(np.prod([len(v) for v in axes.values()]))
    assert len(res.metrics) == n_points * 4 * 8 and len(res.summary["points"]) == n_points
    for p in res.summary["points"]:
        point = p["point"]
        single = collapse.simulate(*SMALL, *extra, *[f"{k}={v}" for k, v in point.items()]).metrics
        _compare(res.metrics, point, single, rtol, loose or {})


def test_float32_sweep_of_real_fraction_and_scale_equals_single_runs():
    # A sweep point equals its single run to rtol 1e-6 in float32 (README, "Sweeps, launchers, ...").
    # vendi (the exponential of an eigenvalue entropy of a 256 x 256 kernel) moves by ~5e-6 whenever the batch
    # of rows changes size, in single runs too (1 vs 24 replicates), so it gets 1e-5.
    # (real_fraction 0 is in the float64 tests below)
    _check_points([], {"loop.real_fraction": [0.3, 1.0], "sampling.scale": [1.0, 0.6]}, 1e-6, {"vendi": 1e-5})


@pytest.mark.parametrize("extra", [
    ["engine.path=samples"],
    ["loop.real=fixed"],
    ["loop.real=fixed", "engine.path=samples"],
    ["loop.synthetic=accumulate_subsample"],
    ["source=zipf", "model=categorical"],
    ["source=gmm", "model=gmm"],  # EM compiles slowly: real_fraction only (scale: see the others)
], ids=lambda e: "+".join(e))
def test_float64_sweep_equals_single_runs_to_round_off(extra):
    # float64: any logic slip (a wrong row, count or key) shows far above 1e-9
    # (the metric draws at a swept scale are covered by the float32 test, with sample-based metrics on)
    axes = {"loop.real_fraction": [0, 0.3], "sampling.scale": [1.0, 0.6]}
    if "model=gmm" in extra:
        axes = {"loop.real_fraction": [0, 0.3]}
    _check_points(["precision=float64", "metrics.sample_based=false", *extra], axes, 1e-9)


def test_seed_sweep_equals_runs_with_each_seed():
    _check_points(["metrics.sample_based=false"], {"seed": [3, 11]}, 1e-6)


def test_cli_sweep_writes_one_run_with_a_column_per_key_read_by_load_sweep(tmp_path):
    p = subprocess.run([CLI, "replicates=5", "generations=6", "metrics.sample_based=false", "name=vs",
                        "sweep.loop.real_fraction=[0,0.5]", "sweep.seed=[0,1]"], cwd=tmp_path, capture_output=True,
                       text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    assert "vectorised sweep" in p.stdout and "loop.real_fraction=0.5, seed=1: var_ratio" in p.stdout
    (run,) = [s.parent for s in (tmp_path / "runs" / "vs").rglob("summary.json")]
    df = load_sweep(run)
    assert {"loop.real_fraction", "seed"} <= set(df.columns) and "sweep.loop.real_fraction" not in df.columns
    assert len(df) == 4 * 5 * 6
    counts = df.groupby(["loop.real_fraction", "seed"]).size()
    assert counts.to_dict() == {(0.0, 0): 30, (0.0, 1): 30, (0.5, 0): 30, (0.5, 1): 30}
    s = json.loads((run / "summary.json").read_text())
    assert s["status"] == "finished" and s["sweep"]["keys"] == ["loop.real_fraction", "seed"]
    by_point = {(q["point"]["loop.real_fraction"], q["point"]["seed"]): q for q in s["points"]}
    last = df[df["generation"] == 5]
    for (frac, seed), q in by_point.items():
        vals = last[(last["loop.real_fraction"] == frac) & (last["seed"] == seed)]["var_ratio"]
        assert q["metrics"]["var_ratio"]["mean"] == pytest.approx(vals.mean(), rel=1e-6)
    # real data holds the variance: the mixed points end closer to 1 than the fully synthetic ones (theory too)
    assert by_point[(0.5, 0)]["theory"]["var_ratio"] > by_point[(0.0, 0)]["theory"]["var_ratio"]


def test_multirun_of_vectorised_sweeps_reads_back_with_both_kinds_of_columns(tmp_path):
    p = subprocess.run([CLI, "-m", "model=gaussian,kde", "replicates=3", "generations=4", "metrics.sample_based=false",
                        "name=mix", "sweep.sampling.scale=[1.0,0.5]"], cwd=tmp_path, capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == 0, p.stderr
    (sweep_dir,) = (tmp_path / "runs" / "mix" / "multirun").iterdir()
    df = load_sweep(sweep_dir)
    assert set(df["model"]) == {"gaussian", "kde"} and set(df["sampling.scale"]) == {1.0, 0.5}
    assert len(df) == 2 * 2 * 3 * 4


def test_sweep_with_wandb_logs_one_offline_run_per_point(tmp_path):
    res = collapse.simulate("logger=wandb", "generations=4", "replicates=3", "metrics.sample_based=false",
                            "sweep.loop.real_fraction=[0,0.5]", run_dir=tmp_path / "run")
    dirs = res.summary["wandb_dirs"]
    assert len(dirs) == 2 and len(set(dirs)) == 2
    for wdir, frac in zip(dirs, [0, 0.5]):
        rows = [r for r in read_offline_history(Path(wdir).parent) if "var_ratio/mean" in r]
        assert [r["_step"] for r in rows] == [0, 1, 2, 3]
        vals = point_rows(res.metrics, {"loop.real_fraction": frac})
        assert rows[-1]["var_ratio/mean"] == pytest.approx(vals[vals["generation"] == 3]["var_ratio"].mean(),
                                                           rel=1e-6)
        assert rows[-1]["samples/_type"] == "histogram"


def test_sweep_crashed_mid_way_resumes_to_the_same_numbers(tmp_path, monkeypatch):
    from collapse import config as C
    from collapse.api import run
    from conftest import crash_after_saves

    args = ["replicates=4", "generations=12", "engine.chunks=6", "checkpoint.every=1", "metrics.sample_based=false",
            "sweep.loop.real_fraction=[0,0.5]", "sweep.sampling.scale=[1.0,0.8]", "quiet=true"]
    full = run(C.compose(args), run_dir=tmp_path / "full")
    crash_after_saves(monkeypatch, 3)  # the process dies right after its third durable chunk
    with pytest.raises(KeyboardInterrupt):
        run(C.compose(args), run_dir=tmp_path / "killed")
    monkeypatch.undo()
    assert not (tmp_path / "killed" / "summary.json").exists()
    progress = json.loads((tmp_path / "killed" / "checkpoint" / "progress.json").read_text())
    assert progress["groups"]["0"]["chunks_done"] == 3
    p = subprocess.run([CLI, f"resume={tmp_path / 'killed'}"], cwd=tmp_path, capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == 0, p.stderr
    resumed = pd.read_parquet(tmp_path / "killed" / "metrics.parquet")
    pd.testing.assert_frame_equal(resumed, full.metrics, check_dtype=False)


@pytest.mark.parametrize("args, expected", [
    (["sweep.loop.samples=[10,20]"], "sweep.loop.samples=[10, 20]: loop.samples changes array shapes"),
    (["sweep.loop.samples=[10,20]"], "collapse -m loop.samples=v1,v2"),
    (["sweep.foo=[1,2]"], "sweep.foo=[1, 2]: unknown key 'foo'; a vectorised sweep can vary seed, sampling.scale"),
    (["sweep.loop.real_fraction=0.1"], "must be a non-empty list of values"),
    (["sweep.loop.real_fraction=[]"], "must be a non-empty list of values"),
    (["sweep.loop.real_fraction=[0,2]"], "sweep.loop.real_fraction=[0, 2]: value 2: must be a number in [0.0, 1.0]"),
    (["sweep.sampling.scale=[1,-1]"], "value -1: must be a number > 0"),
    (["sweep.loop.real_fraction=[0,0.5]", "source=linear", "model=linear_regression"],
     "source=linear places rows at fixed design positions"),
    (["sweep.seed=[1,2]", "source=markov", "model=ngram"], "run one job per seed with collapse -m seed="),
])
def test_bad_sweeps_fail_with_one_line_and_no_run(tmp_path, monkeypatch, capsys, args, expected):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        main(["generations=3", "replicates=2", *args])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expected in err
    assert not (tmp_path / "runs").exists()
