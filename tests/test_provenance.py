"""Runs that can be cited and repeated: provenance in summary.json, ``collapse repeat``, no overwriting of a
finished run, folders named after the overrides, LICENSE and CITATION.cff."""
import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

import collapse
from collapse.runs import FinishedRunError, override_dir

ROOT = Path(collapse.__file__).resolve().parent.parent
CLI = str(Path(sys.executable).parent / "collapse")
TINY = ["replicates=4", "generations=3", "metrics.sample_based=false"]


def _cli(args, cwd):
    return subprocess.run([CLI, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def _git(*args) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=30).stdout.strip()


def _hashes(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    """One finished CLI run with overrides (and the git state around it)."""
    cwd = tmp_path_factory.mktemp("cli")
    before = (_git("rev-parse", "HEAD"), bool(_git("status", "--porcelain")))
    p = _cli([*TINY, "loop.real_fraction=0.5", "name=prov", "quiet=true"], cwd)
    after = (_git("rev-parse", "HEAD"), bool(_git("status", "--porcelain")))
    assert p.returncode == 0, p.stderr
    (run,) = [s.parent for s in (cwd / "runs" / "prov").rglob("summary.json")]
    return {"cwd": cwd, "run": run, "stdout": p.stdout, "git": (before, after)}


def test_cli_summary_records_commit_versions_command_host_and_device(cli_run):
    prov = json.loads((cli_run["run"] / "summary.json").read_text())["provenance"]
    (head0, dirty0), (head1, dirty1) = cli_run["git"]
    if (ROOT / ".git").exists():
        assert prov["commit"] in (head0, head1) and len(prov["commit"]) == 40
        assert isinstance(prov["dirty"], bool)
        if dirty0 == dirty1:
            assert prov["dirty"] == dirty0
    v = prov["versions"]
    assert v["collapse"] == collapse.__version__ and v["jax"] and v["numpy"] and v["hydra-core"] and v["python"]
    assert {"jaxlib", "flax", "optax", "scipy", "pandas", "omegaconf", "wandb"} <= set(v)
    assert prov["entry"] == "cli" and prov["argv"][0].endswith("collapse")
    assert prov["argv"][1:] == [*TINY, "loop.real_fraction=0.5", "name=prov", "quiet=true"]
    assert "loop.real_fraction=0.5" in prov["overrides"] and "replicates=4" in prov["overrides"]
    import socket
    assert prov["host"] == socket.gethostname() and prov["platform"]
    assert prov["device"]["platform"] == "cpu" and prov["device"]["kind"] and prov["device"]["count"] >= 1


def test_simulate_records_the_overrides_it_was_given():
    res = collapse.simulate(*TINY, "quiet=true")
    prov = res.summary["provenance"]
    assert prov["entry"] == "python" and prov["overrides"] == [*TINY, "quiet=true"]


def test_provenance_outside_a_git_checkout_is_none(tmp_path):
    from collapse.provenance import git_state
    assert git_state(tmp_path) == {"commit": None, "dirty": None}


def test_a_run_with_overrides_lands_in_a_folder_named_after_them(cli_run):
    run = cli_run["run"]
    assert run.parent.parent.name == "prov"  # runs/prov/<overrides>/<timestamp>
    assert run.parent.name == "generations-3+loop.real_fraction-0.5+metrics.sample_based-false+replicates-4"
    assert str(run) in cli_run["stdout"]


def test_override_folder_names_are_safe_and_bounded():
    from hydra.core.override_parser.overrides_parser import OverridesParser

    assert override_dir("") == ""
    assert override_dir("+sweep.seed-[0,1]+seed-2") == "sweep.seed-0_1+seed-2/"
    assert override_dir("source.path-'/data/my file.txt'") == "source.path-_data_my_file.txt/"
    long = "+".join(f"key{i}-value{i}" for i in range(50))
    name = override_dir(long)
    assert len(name) <= 101 and name.startswith("key0-value0+") and name != override_dir(long + "x")
    for name in ("sweep.seed-0_1+seed-2/", name):  # a folder can be passed back unquoted (resume=<folder>)
        assert OverridesParser.create().parse_override(f"resume=runs/x/{name}t").value() == f"runs/x/{name}t"


def test_repeat_of_a_finished_run_matches_and_a_tampered_one_does_not(cli_run, tmp_path):
    p = _cli(["repeat", str(cli_run["run"])], cli_run["cwd"])
    assert p.returncode == 0, p.stdout + p.stderr
    n = len(pd.read_parquet(cli_run["run"] / "metrics.parquet").columns) - 2  # all but replicate, generation
    assert f"all {n} metrics match (exactly)" in p.stdout, p.stdout

    bad = tmp_path / "tampered"
    shutil.copytree(cli_run["run"], bad)
    df = pd.read_parquet(bad / "metrics.parquet")
    df.loc[df.index[-1], "var_ratio"] *= 1.001
    df.to_parquet(bad / "metrics.parquet", index=False)
    p = _cli(["repeat", str(bad)], cli_run["cwd"])
    assert p.returncode == 1, p.stdout + p.stderr
    lines = [x for x in p.stdout.splitlines() if x.startswith("  ") and "values differ" in x]
    assert len(lines) == 1 and "var_ratio: 1 of 12 values differ" in lines[0], p.stdout
    p = _cli(["repeat", str(bad), "--rtol", "0.01"], cli_run["cwd"])
    assert p.returncode == 0 and "match (within rtol=0.01" in p.stdout, p.stdout


def test_repeat_refuses_a_folder_that_is_not_a_finished_run(tmp_path):
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.yaml").write_text("generations: 3\n")
    p = _cli(["repeat", str(tmp_path / "half")], tmp_path)
    assert p.returncode == 2 and "not a finished run" in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_repeat_run_of_a_vectorised_sweep(tmp_path):
    from collapse.repeat import repeat_run
    collapse.simulate(*TINY, "sweep.seed=[0,1]", run_dir=tmp_path / "sweep")
    res = repeat_run(tmp_path / "sweep")
    assert res.matched and res.rows == (2 * 4 * 3, 2 * 4 * 3) and res.out is None
    assert {m.name for m in res.metrics} >= {"var_ratio", "mean_err"} and "seed" not in {m.name for m in res.metrics}


def test_a_finished_run_is_never_overwritten(tmp_path):
    run = tmp_path / "run"
    collapse.simulate(*TINY, run_dir=run)
    before = _hashes(run)
    assert "summary.json" in before and "metrics.parquet" in before
    with pytest.raises(FinishedRunError, match=re.escape(f"{run} already holds a finished run")):
        collapse.simulate(*TINY, "generations=4", run_dir=run)
    assert _hashes(run) == before


def test_the_cli_refuses_a_finished_run_folder_before_writing_anything(cli_run):
    before = _hashes(cli_run["run"])
    p = _cli([*TINY, f"hydra.run.dir={cli_run['run']}"], cli_run["cwd"])
    assert p.returncode == 2 and "already holds a finished run" in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    assert _hashes(cli_run["run"]) == before


def test_license_and_citation_cff():
    lic = (ROOT / "LICENSE").read_text()
    assert lic.startswith("MIT License") and "2026 The collapse authors" in lic
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["type"] == "software" and cff["license"] == "MIT"
    assert {"message", "title", "authors", "version", "date-released", "abstract"} <= set(cff)
    assert cff["authors"] == [{"name": "The collapse authors"}]
    import tomllib
    assert cff["version"] == tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
