"""Several processes, one run (JAX's distributed runtime, gloo collectives between CPU processes on localhost):
two real ``collapse`` processes with 2 CPU devices each write one run folder, the files of a one-process run,
with the metrics of one process; a two-process run killed with SIGKILL resumes, in two processes, to the numbers
of an uninterrupted one-process run; bad settings are one line and exit 2.

Every process is a subprocess with a timeout (a process waiting for a peer that died would otherwise wait for
JAX's heartbeat timeout)."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from collapse import distributed
from conftest import assert_float32_close

CLI = str(Path(sys.executable).parent / "collapse")
PROCESS_TIMEOUT_S = 300


def _free_port(low: int = 20000, high: int = 60000) -> int:
    for port in range(low + os.getpid() % 1000, high):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port")


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "OMPI_", "COLLAPSE_COORD", "JAX_COORD"))}
    env.update({"XLA_FLAGS": "--xla_force_host_platform_device_count=2", "JAX_PLATFORMS": "cpu", **extra})
    return env


def _by_hand(i: int, port: int) -> dict:
    return _env(COLLAPSE_COORDINATOR=f"127.0.0.1:{port}", COLLAPSE_PROCESSES="2", COLLAPSE_PROCESS_ID=str(i))


def _as_slurm(i: int, port: int) -> dict:
    """What ``srun -n 2`` on one node sets, so that JAX's own SLURM detection finds the coordinator (the first node
    of ``SLURM_STEP_NODELIST``, at port 61440 + job id mod 4096), the process count and this process's id."""
    assert 61440 <= port < 65536
    return _env(SLURM_JOB_ID=str(port - 61440), SLURM_STEP_NODELIST="localhost", SLURM_NTASKS="2",
                SLURM_PROCID=str(i), SLURM_LOCALID=str(i), SLURM_STEP_NUM_NODES="1")


def _start(args, cwd, env) -> subprocess.Popen:
    return subprocess.Popen([CLI, *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(procs) -> list[tuple[int, str, str]]:
    out = []
    for p in procs:
        try:
            stdout, stderr = p.communicate(timeout=PROCESS_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.fail(f"a process of a two-process run did not finish in {PROCESS_TIMEOUT_S} s")
        out.append((p.returncode, stdout, stderr))
    return out


def _two_processes(args, cwd, env_of) -> list[tuple[int, str, str]]:
    port = _free_port(61440, 65536) if env_of is _as_slurm else _free_port()
    return _finish([_start(args, cwd, env_of(i, port)) for i in range(2)])


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


RUN = ["replicates=12", "generations=8", "loop.samples=60", "metrics.eval_samples=48", "metrics.sample_replicates=8",
       "metrics.sample_every=2", "engine.chunks=4"]  # default metrics; 3 rows per device, 2 with sample metrics


@pytest.mark.parametrize("env_of", [_as_slurm], ids=["slurm-detected"])  # by hand: the resume test below
def test_two_processes_write_one_run_with_the_metrics_of_one_process(tmp_path, env_of):
    one = subprocess.run([CLI, *RUN, f"hydra.run.dir={tmp_path / 'one'}"], cwd=tmp_path, env=_env(
        XLA_FLAGS=""), capture_output=True, text=True, timeout=PROCESS_TIMEOUT_S)
    assert one.returncode == 0, one.stderr
    (code0, out0, err0), (code1, out1, err1) = _two_processes(RUN, tmp_path, env_of)  # default run folder
    assert code0 == 0 and code1 == 0, err0[-3000:] + err1[-3000:]
    folders = list((tmp_path / "runs").glob("*/*/*"))  # runs/<name>/<overrides>/<timestamp>
    assert len(folders) == 1, folders  # both processes named the same folder (process 0's clock)
    two = folders[0]
    assert f"run directory: {two}" in out0
    # besides gloo's own "[Gloo] Rank ... is connected" lines (printed from several threads), one line of ours
    assert out1.count("collapse:") == 1
    assert f"collapse: process 1 of 2 finished its rows; process 0 writes the run folder {two}\n" in out1
    assert "generation" not in err1  # progress lines come from process 0 only
    assert _files(two) == _files(tmp_path / "one")  # the same files (config, metrics, summary, samples, Hydra's)
    summary = json.loads((two / "summary.json").read_text())
    assert summary["status"] == "finished"
    assert summary["provenance"]["device"]["processes"] == 2 and summary["provenance"]["device"]["count"] == 4
    a, b = pd.read_parquet(two / "metrics.parquet"), pd.read_parquet(tmp_path / "one" / "metrics.parquet")
    assert len(a) == 12 * 8
    assert_float32_close(a, b)


KILL = ["engine.path=samples", "replicates=400", "loop.samples=2000", "generations=200", "engine.chunks=20",
        "metrics.sample_based=false", "metrics.draws=0", "checkpoint.every=1", "quiet=true"]


def test_a_killed_two_process_run_resumes_in_two_processes_to_the_numbers_of_one(tmp_path):
    one = subprocess.run([CLI, *KILL, f"hydra.run.dir={tmp_path / 'one'}"], cwd=tmp_path, env=_env(XLA_FLAGS=""),
                         capture_output=True, text=True, timeout=PROCESS_TIMEOUT_S)
    assert one.returncode == 0, one.stderr
    run = tmp_path / "two"
    port = _free_port()
    procs = [_start([*KILL, f"hydra.run.dir={run}"], tmp_path, _by_hand(i, port)) for i in range(2)]
    deadline, progress = time.time() + PROCESS_TIMEOUT_S, None
    while time.time() < deadline and all(p.poll() is None for p in procs):
        try:
            progress = json.loads((run / "checkpoint" / "progress.json").read_text())
        except (OSError, json.JSONDecodeError):
            progress = None
        if progress and progress["groups"].get("0", {}).get("chunks_done", 0) >= 3:
            break
        time.sleep(0.02)
    for p in procs:
        p.send_signal(signal.SIGKILL)
        p.communicate()
    done = json.loads((run / "checkpoint" / "progress.json").read_text())["groups"]["0"]
    assert not done["finished"] and 3 <= done["chunks_done"] < 20, done  # killed mid-way
    assert not (run / "summary.json").exists()

    port = _free_port()
    (c0, _, e0), (c1, _, e1) = _finish([_start([f"resume={run}", "quiet=false"], tmp_path, _by_hand(i, port))
                                        for i in range(2)])
    assert c0 == 0 and c1 == 0, e0[-3000:] + e1[-3000:]
    assert "resuming from the checkpoint" in e0
    a, b = pd.read_parquet(run / "metrics.parquet"), pd.read_parquet(tmp_path / "one" / "metrics.parquet")
    assert len(a) == 400 * 200  # every generation once: none lost, none duplicated
    assert_float32_close(a, b)
    assert not (run / "checkpoint").exists()


@pytest.mark.parametrize("env, message", [
    ({"COLLAPSE_PROCESSES": "two"}, "COLLAPSE_PROCESSES=two: must be an integer >= 1"),
    ({"COLLAPSE_DISTRIBUTED": "maybe"}, "COLLAPSE_DISTRIBUTED=maybe: must be one of auto, on, off"),
    ({"COLLAPSE_COORDINATOR": "127.0.0.1", "COLLAPSE_PROCESSES": "2", "COLLAPSE_PROCESS_ID": "0"},
     "COLLAPSE_COORDINATOR=127.0.0.1: must be host:port"),
    ({"COLLAPSE_COORDINATOR": "127.0.0.1:1234", "COLLAPSE_PROCESSES": "2", "COLLAPSE_PROCESS_ID": "2"},
     "COLLAPSE_PROCESS_ID=2: must be below COLLAPSE_PROCESSES=2"),
    ({"COLLAPSE_PROCESSES": "2"}, "COLLAPSE_COORDINATOR, COLLAPSE_PROCESS_ID: not set"),
])
def test_a_bad_distributed_setting_is_one_line_and_exit_2(tmp_path, env, message):
    p = subprocess.run([CLI, "generations=3", "replicates=2"], cwd=tmp_path, env=_env(**env), capture_output=True,
                       text=True, timeout=120)
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2 and len(lines) == 1 and lines[0].startswith("collapse: error: "), p.stderr
    assert message in lines[0]
    assert not (tmp_path / "runs").exists()


def test_what_the_environment_asks_for():
    assert distributed.requested({}) is None  # one process
    slurm = {"SLURM_JOB_ID": "7", "SLURM_STEP_NODELIST": "node[01-02]", "SLURM_PROCID": "1", "SLURM_LOCALID": "0"}
    assert distributed.requested({**slurm, "SLURM_NTASKS": "1"}) is None  # a one-task job (e.g. a submitit job)
    assert distributed.requested({**slurm, "SLURM_NTASKS": "8"}) == {}  # JAX detects the rest
    assert distributed.requested({**slurm, "SLURM_NTASKS": "8", "COLLAPSE_DISTRIBUTED": "off"}) is None
    assert distributed.requested({"OMPI_COMM_WORLD_SIZE": "4"}) == {}
    assert distributed.requested({"COLLAPSE_DISTRIBUTED": "on"}) == {}
    assert distributed.requested({"JAX_COORDINATOR_ADDRESS": "h:1", "COLLAPSE_PROCESSES": "3",
                                  "COLLAPSE_PROCESS_ID": "2"}) == {"coordinator_address": "h:1", "num_processes": 3,
                                                                  "process_id": 2}
