"""Checkpoints and resume: a run killed with SIGKILL and resumed gives the numbers of an uninterrupted run."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ARGS = ["engine.path=samples", "replicates=1000", "loop.samples=2000", "generations=200", "engine.chunks=20",
        "metrics.sample_based=false", "metrics.draws=0", "checkpoint.every=1", "quiet=true"]
CLI = str(Path(sys.executable).parent / "collapse")


def _run(args, cwd, **kw):
    return subprocess.run([CLI, *args], cwd=cwd, capture_output=True, text=True, timeout=600, **kw)


def test_sigkill_then_resume_equals_an_uninterrupted_run(tmp_path):
    full = _run([*ARGS, "name=full"], tmp_path)
    assert full.returncode == 0, full.stderr
    (full_dir,) = [s.parent for s in (tmp_path / "runs" / "full").rglob("summary.json")]
    assert not (full_dir / "checkpoint").exists()  # removed once the run finished

    proc = subprocess.Popen([CLI, *ARGS, "name=killed"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    progress = None
    while time.time() < deadline:
        found = list((tmp_path / "runs").glob("killed/**/checkpoint/progress.json"))
        if found:
            try:
                progress = json.loads(found[0].read_text())
            except json.JSONDecodeError:
                progress = None
            if progress and progress["groups"].get("0", {}).get("chunks_done", 0) >= 3:
                break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert progress is not None, "no checkpoint appeared"
    (killed,) = {s.parent.parent for s in (tmp_path / "runs" / "killed").rglob("progress.json")}
    done = json.loads((killed / "checkpoint" / "progress.json").read_text())["groups"]["0"]
    assert not done["finished"] and 3 <= done["chunks_done"] < 20, done  # killed mid-way
    assert not (killed / "summary.json").exists() and not (killed / "metrics.parquet").exists()

    res = _run(["resume=" + str(killed)], tmp_path)
    assert res.returncode == 0, res.stderr
    a = pd.read_parquet(full_dir / "metrics.parquet")
    b = pd.read_parquet(killed / "metrics.parquet")
    assert len(a) == len(b) == 1000 * 200  # every generation once: none lost, none duplicated
    pd.testing.assert_frame_equal(a, b)  # bitwise: the same program continued from the same state
    assert json.loads((killed / "summary.json").read_text())["status"] == "finished"
    again = _run(["resume=" + str(killed)], tmp_path)
    assert again.returncode == 0 and "already finished" in again.stdout


def test_resume_refuses_a_folder_that_is_not_a_run_and_a_different_config(tmp_path):
    p = _run(["resume=" + str(tmp_path)], tmp_path)
    assert p.returncode == 2 and "not a run directory" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    run = tmp_path / "r"
    run.mkdir()
    (run / "config.yaml").write_text("generations: 300\nreplicates: 10\n")  # a run started with generations=300
    p = _run(["resume=" + str(run), "generations=200"], tmp_path)
    assert p.returncode == 2 and "generations" in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


def test_an_unwritable_checkpoint_folder_is_one_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint").symlink_to(blocker / "sub")  # a path under a regular file: cannot be created
    p = _run(["generations=50", "replicates=10", "engine.chunks=10", "checkpoint.every=5", "quiet=true",
              f"hydra.run.dir={run}"], tmp_path)
    assert p.returncode == 2, p.stderr
    assert "cannot write a checkpoint" in p.stderr and not (run / "summary.json").exists()


def test_rerunning_a_multirun_skips_finished_jobs_and_resumes_the_killed_one(tmp_path, monkeypatch):
    from collapse import config as C
    from collapse.analysis import load_sweep
    from collapse.api import run
    from conftest import crash_after_saves

    common = ["replicates=4", "generations=12", "engine.chunks=6", "checkpoint.every=1", "metrics.sample_based=false",
              "name=mr"]
    sweep_dir = tmp_path / "sweep"
    first = _run(["-m", *common, "loop.real_fraction=0,0.5", f"hydra.sweep.dir={sweep_dir}"], tmp_path)
    assert first.returncode == 0, first.stderr
    reference = pd.read_parquet(sweep_dir / "1" / "metrics.parquet")
    finished_at = (sweep_dir / "0" / "summary.json").stat().st_mtime_ns

    # job 1 dies after its third durable chunk (same config, same folder)
    for name in ("summary.json", "metrics.parquet"):
        (sweep_dir / "1" / name).unlink()
    crash_after_saves(monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        run(C.compose([*common, "loop.real_fraction=0.5", "quiet=true"]), run_dir=sweep_dir / "1")
    monkeypatch.undo()
    assert (sweep_dir / "1" / "checkpoint" / "progress.json").is_file()

    again = _run(["-m", *common, "loop.real_fraction=0,0.5", f"hydra.sweep.dir={sweep_dir}"], tmp_path)
    assert again.returncode == 0, again.stderr
    assert "already holds this run, finished; skipping it" in again.stdout
    assert "resuming from the checkpoint: 7 of 12 generations done" in again.stderr
    assert (sweep_dir / "0" / "summary.json").stat().st_mtime_ns == finished_at  # not run again
    pd.testing.assert_frame_equal(pd.read_parquet(sweep_dir / "1" / "metrics.parquet"), reference)
    assert sorted(set(load_sweep(sweep_dir)["job"])) == ["0", "1"]


def test_a_checkpoint_of_another_layout_is_refused_in_one_line(tmp_path):
    """A checkpoint whose replicate group holds other rows, or whose state lacks an entry this run carries (another
    version of collapse grouped replicates or carried state differently), is refused by name; a matching one
    loads."""
    import jax
    import numpy as np

    from collapse.checkpoint import CheckpointError, Checkpointer

    state = {"params": np.zeros((4, 3), np.float32), "k": np.zeros(4, np.uint32)}
    rows = [{"var_ratio": np.ones((4, 2)), "_samples": np.ones((2, 2, 5))}]
    ck = Checkpointer(tmp_path / "checkpoint", every=1, digest="d")
    ck.save(0, 1, state, rows)
    shape = jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), state)
    assert Checkpointer(tmp_path / "checkpoint", 1, "d").load(0, shape)[0] == 1
    fewer = {k: jax.ShapeDtypeStruct((2,) + v.shape[1:], v.dtype) for k, v in shape.items()}
    with pytest.raises(CheckpointError, match="another layout.*rows of 'var_ratio': 4, this run's group has 2"):
        Checkpointer(tmp_path / "checkpoint", 1, "d").load(0, fewer)
    more = {**shape, "sample_prep": jax.ShapeDtypeStruct((4, 7), np.float32)}
    with pytest.raises(CheckpointError, match="state entries missing, e.g. 'sample_prep'"):
        Checkpointer(tmp_path / "checkpoint", 1, "d").load(0, more)


def test_a_crash_between_the_group_file_and_the_index_resumes_from_the_group_file(tmp_path, monkeypatch):
    """SIGKILL can land after a save renamed ``group0.npz`` but before it renamed ``progress.json``: the index then
    lags the group file by one chunk. Resuming must take the chunk count from the group file (its state and rows
    belong together), so the finished table equals an uninterrupted run's."""
    from collapse import checkpoint as ckpt
    from collapse import config as C
    from collapse.api import run

    common = ["replicates=4", "generations=12", "engine.chunks=6", "checkpoint.every=1", "metrics.sample_based=false",
              "metrics.draws=0", "quiet=true"]
    reference = run(C.compose(common), run_dir=tmp_path / "full").metrics
    write, calls = ckpt._fsync_write, {"index": 0}

    def dies_before_the_third_index(path, body):
        if path.name == "progress.json":
            calls["index"] += 1
            if calls["index"] == 3:  # the third group file is durable, its index entry never is
                raise KeyboardInterrupt
        write(path, body)

    monkeypatch.setattr(ckpt, "_fsync_write", dies_before_the_third_index)
    with pytest.raises(KeyboardInterrupt):
        run(C.compose(common), run_dir=tmp_path / "killed")
    monkeypatch.undo()
    index = json.loads((tmp_path / "killed" / "checkpoint" / "progress.json").read_text())
    assert index["groups"]["0"]["chunks_done"] == 2  # the index lags: the group file holds 3 chunks
    resumed = run(C.compose(common), run_dir=tmp_path / "killed")
    pd.testing.assert_frame_equal(resumed.metrics, reference)


def test_exported_models_of_a_group_finished_before_a_crash_come_back_on_resume(tmp_path, monkeypatch):
    """export.generations: a replicate group that finished before the crash is not run again on resume, so its
    kept models must come from its checkpoint: the resumed run writes the same params.safetensors as an
    uninterrupted one (and the models are the generations asked for: they differ)."""
    from safetensors.numpy import load_file

    from collapse import checkpoint as ckpt
    from collapse import config as C
    from collapse.api import run

    common = ["replicates=4", "generations=6", "engine.chunks=3", "checkpoint.every=1", "metrics.sample_replicates=2",
              "metrics.eval_samples=50", "metrics.draws=0", "export.generations=[1,-1]", "export.replicates=2",
              "quiet=true"]
    run(C.compose(common), run_dir=tmp_path / "full")
    write = ckpt._fsync_write

    def dies_in_the_second_group(path, body):
        if path.name == "group1.npz":  # group 0 (replicates 0-1, with the kept models) has finished
            raise KeyboardInterrupt
        write(path, body)

    monkeypatch.setattr(ckpt, "_fsync_write", dies_in_the_second_group)
    with pytest.raises(KeyboardInterrupt):
        run(C.compose(common), run_dir=tmp_path / "killed")
    monkeypatch.undo()
    assert not (tmp_path / "killed" / "models").exists()
    resumed = run(C.compose(common), run_dir=tmp_path / "killed")
    assert resumed.summary["models"] == [f"models/gen{g}/replicate{r}" for g in (1, 5) for r in (0, 1)]
    for name in resumed.summary["models"]:
        a = load_file(str(tmp_path / "full" / name / "params.safetensors"))
        b = load_file(str(tmp_path / "killed" / name / "params.safetensors"))
        assert sorted(a) == sorted(b) == ["chol", "cov", "mean"], (sorted(a), sorted(b))
        assert all(np.array_equal(a[k], b[k]) for k in a), name
    first = load_file(str(tmp_path / "full" / "models/gen1/replicate0/params.safetensors"))
    last = load_file(str(tmp_path / "full" / "models/gen5/replicate0/params.safetensors"))
    assert any(not np.array_equal(first[k], last[k]) for k in first)
