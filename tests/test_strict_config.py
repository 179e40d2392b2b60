"""Strict configs: unknown keys and groups are refused with the closest real one, every multirun job is checked
before the first starts, and a launcher that cannot start says what is missing; all before any folder exists."""
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import collapse
from collapse import cli
from collapse import config as C

CLI = str(Path(sys.executable).parent / "collapse")
TINY = ["replicates=2", "generations=2", "metrics.sample_based=false"]


def run_cli(args, cwd, env=None):
    return subprocess.run([CLI, *args], cwd=cwd, capture_output=True, text=True, timeout=300, env=env)


def one_error_line(p) -> str:
    """The single stderr line of a refused command (exit 2, no traceback)."""
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    lines = [ln for ln in p.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    assert lines[0].startswith("collapse: error: ")
    return lines[0]


def test_plus_key_typo_exits_2_with_no_run_folder(tmp_path):
    line = one_error_line(run_cli(["+loop.realfraction=0.1", *TINY], tmp_path))
    assert "+loop.realfraction=0.1: unknown key" in line and "did you mean loop.real_fraction?" in line
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("args,wanted", [
    (["generatons=10"], "generatons=10: unknown key; did you mean generations?"),
    (["modle=gmm"], "did you mean model?"),
    (["model=gausian"], "did you mean gaussian?"),
    (["sourc.dim=3"], "did you mean source.dim?"),
    (["model.components=3"], "for model=gaussian; it is a key of model=gmm"),
    (["-m", "hydra/lancher=joblib", "seed=0,1"], "did you mean hydra/launcher?"),
])
def test_misspelled_key_or_group_names_the_closest_real_one(tmp_path, args, wanted):
    assert wanted in one_error_line(run_cli(args, tmp_path))
    assert not (tmp_path / "runs").exists()


def test_simulate_refuses_an_added_unknown_key():
    with pytest.raises(C.ConfigError, match=r"did you mean loop\.real_fraction"):
        collapse.simulate("+loop.realfraction=0.1", *TINY)
    with pytest.raises(C.ConfigError, match="model has estimator, name"):
        C.compose(["+model.foo=1"])


def test_multirun_with_a_bad_job_starts_no_job(tmp_path):
    line = one_error_line(run_cli(["-m", "loop.real_fraction=0,1.5", *TINY], tmp_path))
    assert "loop.real_fraction=1.5" in line and "multirun job 1 of 2" in line
    assert not (tmp_path / "runs").exists() and not list(tmp_path.rglob("summary.json"))


def test_a_multirun_preset_checks_every_job_first(tmp_path):
    # job 0 (curation=none) is fine; job 1 (threshold) needs candidate points, which engine.path=stats lacks
    line = one_error_line(run_cli(["experiment=curation_gaussian", "engine.path=stats", *TINY], tmp_path))
    assert "engine.path='stats'" in line and "multirun job 1 of 5: curation=threshold" in line
    assert not (tmp_path / "runs").exists()


def test_slurm_launcher_without_sbatch_is_one_line(tmp_path):
    path = os.pathsep.join([str(Path(sys.executable).parent), "/usr/bin", "/bin"])
    if shutil.which("sbatch", path=path):
        pytest.skip("sbatch is installed here")
    env = {**os.environ, "PATH": path}
    for launcher in ("slurm", "submitit_slurm"):
        line = one_error_line(run_cli(["-m", f"hydra/launcher={launcher}", "seed=0,1", *TINY], tmp_path, env))
        assert f"hydra/launcher='{launcher}'" in line and "sbatch" in line
    assert not (tmp_path / "runs").exists()


@pytest.mark.skipif(importlib.util.find_spec("hydra_plugins.hydra_ray_launcher") is not None,
                    reason="the ray launcher is installed")
def test_ray_launcher_not_installed_is_one_line(tmp_path):
    line = one_error_line(run_cli(["-m", "hydra/launcher=ray", "seed=0,1", *TINY], tmp_path))
    assert "hydra_ray_launcher plugin is not installed" in line
    assert not (tmp_path / "runs").exists()


def test_open_sections_and_group_keys_still_compose():
    assert C.compose(["sweep.seed=[0,1]"]).sweep.seed == [0, 1]
    assert C.compose(["hydra.run.dir=somewhere"]).name == "default"
    assert list(C.compose(["logger=wandb", "logger.tags=[a,b]"]).logger.tags) == ["a", "b"]
    assert C.compose(["model=gmm", "model.components=2"]).model.components == 2
    assert C.compose(["experiment=text_ngram", "model.order=2"]).model.order == 2


def test_multirun_jobs_expand_like_hydra():
    assert C.multirun_jobs(["seed=0"], False) is None  # a single run
    jobs = C.multirun_jobs(["model=glob(g*)", "seed=range(0,2)", "name=x"], True)
    assert jobs == [["model=gaussian", "seed=0", "name=x"], ["model=gaussian", "seed=1", "name=x"],
                    ["model=gmm", "seed=0", "name=x"], ["model=gmm", "seed=1", "name=x"]]
    assert C.multirun_jobs(["seed=choice(3,4)", "hydra.sweep.dir=s"], True) == [["seed=3"], ["seed=4"]]
    preset = C.multirun_jobs(["experiment=curation_gaussian", "curation=none,best_of"], False)
    assert [j[0] for j in preset] == ["curation=none", "curation=best_of"]  # the command line wins over the preset
    cli.check_before_start(["experiment=curation_gaussian", *TINY], False)  # all five jobs validate


def test_legitimate_multirun_with_sweep_and_hydra_overrides_runs(tmp_path):
    sweep_dir = tmp_path / "s"
    p = run_cli(["-m", "loop.real_fraction=0,0.5", "sweep.seed=[0,1]", f"hydra.sweep.dir={sweep_dir}", *TINY,
                 "quiet=true"], tmp_path)
    assert p.returncode == 0, p.stderr
    assert sorted(d.name for d in sweep_dir.iterdir() if d.is_dir()) == ["0", "1"]
    assert all((sweep_dir / j / "summary.json").is_file() for j in ("0", "1"))
