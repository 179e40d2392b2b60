"""A multirun through Hydra's submitit_slurm launcher on a real (one-node) SLURM cluster: the jobs are real
``sbatch`` array jobs, and a job preempted mid-run (``SIGUSR2``, the signal submitit asks SLURM to send before
the time limit) is requeued by submitit into its own folder, resumes from its checkpoint and finishes with the
numbers of an uninterrupted run.

``.ci/slurm-up`` starts the cluster (Debian's slurmctld, slurmd and munge, as root); CI runs it before the tests
and sets ``COLLAPSE_REQUIRE_SLURM=1``, so there the test cannot be skipped. Elsewhere it runs where ``sinfo``
answers and is skipped otherwise."""
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

CLI = str(Path(sys.executable).parent / "collapse")


def _slurm_up() -> bool:
    if shutil.which("sinfo") is None:
        return False
    p = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=30)
    return p.returncode == 0 and bool(p.stdout.strip())


if not _slurm_up():
    if os.environ.get("COLLAPSE_REQUIRE_SLURM") == "1":
        raise RuntimeError("COLLAPSE_REQUIRE_SLURM=1 but no SLURM cluster answers `sinfo` (see .ci/slurm-up)")
    pytest.skip("no SLURM cluster answers `sinfo` (.ci/slurm-up starts a one-node one as root)",
                allow_module_level=True)

ARGS = ["engine.path=samples", "replicates=400", "loop.samples=2000", "generations=200", "engine.chunks=20",
        "metrics.sample_based=false", "metrics.draws=0", "checkpoint.every=1"]
LAUNCH = ["hydra/launcher=submitit_slurm", "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=2",
          "hydra.launcher.timeout_min=30"]


def _chunks_done(job: Path) -> int:
    try:
        return json.loads((job / "checkpoint" / "progress.json").read_text())["groups"]["0"]["chunks_done"]
    except (OSError, json.JSONDecodeError, KeyError):
        return 0


def _start_when_requeued(job: str, wait_s: float = 60) -> None:
    """SLURM holds a requeued job back by a begin time about 2 minutes ahead; once it is pending again, let it start
    now (what an administrator's ``scontrol update`` does; the job, its script and its folder are unchanged)."""
    deadline = time.time() + wait_s
    while time.time() < deadline:
        state = subprocess.run(["squeue", "-h", "-j", job, "-o", "%T"], capture_output=True, text=True, timeout=30)
        if state.stdout.strip() == "PENDING":
            subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], check=True, timeout=30)
            return
        time.sleep(0.2)


def test_a_preempted_slurm_job_is_requeued_into_its_folder_and_resumes(tmp_path):
    one = subprocess.run([CLI, *ARGS, "quiet=true", f"hydra.run.dir={tmp_path / 'one'}"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr
    sweep = tmp_path / "sweep"
    driver = subprocess.Popen([CLI, "-m", *LAUNCH, *ARGS, "seed=0,1", f"hydra.sweep.dir={sweep}"], cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and driver.poll() is None and _chunks_done(sweep / "0") < 3:
        time.sleep(0.02)
    jobs = sorted(p.name for p in (sweep / ".submitit").glob("*_0") if p.is_dir())
    assert jobs and _chunks_done(sweep / "0") >= 3, "job 0 wrote no checkpoint"
    # preempt job 0 as SLURM does before the time limit (submitit's --signal=USR2@120): submitit checkpoints the
    # Hydra job and requeues it with `scontrol requeue`
    subprocess.run(["scancel", "--signal=USR2", jobs[0]], check=True, timeout=30)
    _start_when_requeued(jobs[0])
    try:
        out, err = driver.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        driver.kill()
        pytest.fail("the SLURM multirun did not finish in 600 s")
    assert driver.returncode == 0, err[-3000:]
    log = "".join(p.read_text() for p in (sweep / ".submitit" / jobs[0]).glob("*_log.*"))
    assert "Requeued" in log or "requeue" in log.lower(), log[-3000:]
    assert "resuming from the checkpoint" in log, log[-3000:]

    from collapse.analysis import load_sweep

    df = load_sweep(sweep)
    assert sorted(df["job"].unique()) == ["0", "1"] and not df.attrs["unfinished"]
    job0 = pd.read_parquet(sweep / "0" / "metrics.parquet")
    pd.testing.assert_frame_equal(job0, pd.read_parquet(tmp_path / "one" / "metrics.parquet"))  # bitwise
    assert len(job0) == 400 * 200 and not (sweep / "0" / "checkpoint").exists()
    script = next((sweep / ".submitit").glob("*/*_submission.sh")).read_text()
    assert "#SBATCH --signal=USR2@" in script and "#SBATCH --array=0-1" in script
