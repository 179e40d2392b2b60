"""The command line as a user types it: a finished run directory, and one-line errors for bad input."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from collapse.analysis import NotARunError, load_run

SMALL = ["generations=4", "replicates=8", "metrics.eval_samples=64", "metrics.sample_replicates=2"]


def run_cli(args, cwd, module=False):
    cmd = [sys.executable, "-m", "collapse", *args] if module else [str(Path(sys.executable).parent / "collapse"), *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300)


def test_cli_writes_a_complete_run_directory_that_load_run_reads(tmp_path):
    p = run_cli([*SMALL, "name=smoke"], tmp_path)
    assert p.returncode == 0, p.stderr
    runs = [s.parent for s in (tmp_path / "runs" / "smoke").rglob("summary.json")]  # <overrides>/<time>
    assert len(runs) == 1
    run = runs[0]
    assert {"config.yaml", "metrics.parquet", "summary.json"} <= {x.name for x in run.iterdir()}
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "finished"
    assert set(summary["metrics"]["var_ratio"]) >= {"mean", "lo", "hi", "n_finite", "median", "median_lo",
                                                     "median_hi", "q25", "q75", "top1_share", "heavy_tailed"}
    df = load_run(run)
    assert len(df) == 8 * 4 and df.attrs["config"]["generations"] == 4
    assert {"replicate", "generation", "var_ratio", "precision", "tail_mass"} <= set(df.columns)
    assert "var_ratio" in p.stdout and str(run) in p.stdout
    assert "generation 4/4" in p.stderr  # progress line
    # where the wall time went: every phase in summary.json and on one printed line
    ph = summary["phases"]
    names = ("startup", "setup", "compile", "chains", "summary", "reference", "writing")
    assert all(ph[n] >= 0 for n in names) and ph["startup"] > 0 and ph["compile"] > 0
    assert sum(g["run_s"] for g in ph["groups"]) == pytest.approx(ph["chains"], rel=0.05, abs=0.05)
    assert [g["sample_metrics"] for g in ph["groups"]] == [True, False]  # SMALL keeps 2 sample replicates
    line = next(x for x in p.stdout.splitlines() if x.strip().startswith("time:"))
    assert all(f"{n} " in line for n in names) and "with sample metrics" in line


def test_python_dash_m_and_experiment_preset(tmp_path):
    p = run_cli(["experiment=zipf_extinction", "generations=3", "replicates=4", "loop.samples=2000"], tmp_path,
                module=True)
    assert p.returncode == 0, p.stderr
    (run,) = [s.parent for s in (tmp_path / "runs" / "zipf_extinction").rglob("summary.json")]
    df = load_run(run)
    assert "support" in df.columns and df.attrs["config"]["source"]["name"] == "zipf"


@pytest.mark.parametrize("args,key", [
    (["loop.real_fraction=1.5"], "loop.real_fraction"),
    (["loop.real_fraction=0.001"], "loop.real_fraction"),
    (["loop.samples=0"], "loop.samples"),
    (["sampling.scale=0"], "sampling.scale"),
    (["loop.synthetic=grow"], "loop.synthetic"),
    (["model=foo"], "model"),
    (["source=zipf"], "model"),
    (["precision=float16"], "precision"),
    (["generations=-3"], "generations"),
    (["source.dim=5", "loop.samples=5"], "loop.samples"),
    (["source=linear", "model=linear_regression", "source.dim=10", "loop.samples=11"], "source.design_size"),
    (["engine.path=stats", "loop.synthetic=accumulate_subsample"], "engine.path"),
    (["metrics.tail_level=1"], "metrics.tail_level"),
    (["nosuchkey=3"], "nosuchkey"),
    (["model=kde", "loop.synthetic=accumulate", "generations=100000", "replicates=1000"], "engine.max_pool_gib"),
    (["generations=3", "export.generations=[3]"], "export.generations=[3]: must be a list of generations in [-3, 2]"),
    (["replicates=2", "export.replicates=3"], "export.replicates=3: must be an integer in [1, replicates = 2]"),
    (["engine.rows_at_once=0"], "engine.rows_at_once=0"),
    (["export.generations=[-1]", "sweep.seed=[1,2]"], "export.generations"),
    (["report", "runs"], "report"),
    (["-m", "hydra/launcher=nope", "loop.real_fraction=0,0.1"], "hydra/launcher"),
])
def test_bad_input_is_one_line_exit_2_and_no_run_written(tmp_path, args, key):
    p = run_cli(args, tmp_path)
    assert p.returncode == 2, (p.returncode, p.stderr)
    lines = [ln for ln in p.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, p.stderr
    assert key in lines[0] and "Traceback" not in p.stderr
    assert not list(tmp_path.rglob("metrics.parquet"))
    assert not (tmp_path / "runs").exists()


def test_load_run_refuses_unfinished_folders(tmp_path):
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.yaml").write_text("a: 1\n")
    with pytest.raises(NotARunError, match="config.yaml"):
        load_run(tmp_path / "half")


def test_simulate_writes_run_dir_only_when_asked(tmp_path):
    import collapse
    res = collapse.simulate(*SMALL, "metrics.sample_based=false")
    assert res.run_dir is None and len(res.metrics) == 32
    res = collapse.simulate(*SMALL, run_dir=tmp_path / "r")
    assert (tmp_path / "r" / "summary.json").is_file()
    assert load_run(tmp_path / "r").equals(res.metrics)


def test_unwritable_run_dir_fails_without_summary(tmp_path):
    import collapse
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OSError):
        collapse.simulate(*SMALL, run_dir=blocker / "run")


def test_hydra_multirun_writes_one_finished_run_per_job(tmp_path):
    p = run_cli(["-m", "loop.real_fraction=0,0.5", "generations=3", "replicates=4", "metrics.sample_based=false"],
                tmp_path)
    assert p.returncode == 0, p.stderr
    (sweep,) = (tmp_path / "runs" / "default" / "multirun").iterdir()
    jobs = sorted(d for d in sweep.iterdir() if d.is_dir())
    assert [j.name for j in jobs] == ["0", "1"]
    fractions = [load_run(j).attrs["config"]["loop"]["real_fraction"] for j in jobs]
    assert fractions == [0.0, 0.5]
    assert "loop.real_fraction=0.5" in (jobs[1] / ".hydra" / "overrides.yaml").read_text()
    from collapse.analysis import load_sweep
    df = load_sweep(sweep)
    assert len(df) == 2 * 4 * 3 and sorted(df["job"].unique()) == ["0", "1"]
    assert sorted(df["loop.real_fraction"].unique()) == [0.0, 0.5]  # a column per override, as typed
    assert df.groupby("job")["loop.real_fraction"].nunique().eq(1).all()
    (jobs[1] / "summary.json").unlink()  # an unfinished job is skipped and listed
    part = load_sweep(sweep)
    assert part.attrs["unfinished"] == ["1"] and set(part["job"]) == {"0"}


@pytest.mark.parametrize("launcher", ["joblib", "submitit_local", "ray"])
def test_multirun_through_a_parallel_launcher_gives_complete_job_folders(tmp_path, launcher):
    """Real launchers: joblib's worker processes, submitit's local executor, and a local Ray cluster (the [ray]
    extra, which `make test` installs)."""
    import importlib.util

    from collapse.analysis import load_sweep
    if launcher == "ray":
        assert importlib.util.find_spec("hydra_plugins.hydra_ray_launcher"), "pip install -e '.[ray]' (make test does)"
    p = run_cli(["-m", f"hydra/launcher={launcher}", "loop.real_fraction=0,0.5", "generations=3", "replicates=4",
                 "metrics.sample_based=false", "name=par"], tmp_path)
    assert p.returncode == 0, p.stderr
    (sweep,) = (tmp_path / "runs" / "par" / "multirun").iterdir()
    df = load_sweep(sweep)
    assert sorted(df["job"].unique()) == ["0", "1"] and not df.attrs["unfinished"]
    assert sorted(df["loop.real_fraction"].unique()) == [0.0, 0.5] and len(df) == 2 * 4 * 3
    for job in ("0", "1"):
        assert (sweep / job / "summary.json").is_file()
