"""Several processes, one run: JAX's own distributed runtime (``jax.distributed.initialize``).

Every process runs the same command; the replicate rows are sharded over the devices of all processes
(:func:`collapse.placement.row_mesh`), every process computes its own rows and joins the gathers that bring all
rows to the host in the same order, and process 0 alone writes the run folder (config, metrics, summary,
checkpoints, wandb); every process reads the checkpoints when a run resumes, so the run folder must be on a
filesystem they all see. How to ask for it (environment variables, since they differ per process, like SLURM's):

- ``COLLAPSE_COORDINATOR=host:port`` (or JAX's own ``JAX_COORDINATOR_ADDRESS``), ``COLLAPSE_PROCESSES=N`` and
  ``COLLAPSE_PROCESS_ID=i`` (0 <= i < N): start N processes by hand (e.g. on localhost);
- under SLURM with more than one task in the job step (``srun -n 2 collapse ...``: ``SLURM_NTASKS`` > 1), or
  under Open MPI (``OMPI_COMM_WORLD_SIZE`` > 1), JAX finds all three by itself;
- ``COLLAPSE_DISTRIBUTED``: ``auto`` (the default: initialise when one of the above is present), ``on``
  (always: JAX's cluster auto-detection must succeed) or ``off`` (never; e.g. a one-task job inside a bigger
  allocation).

On CPU the processes' collectives are gloo's TCP ones (JAX's default ``jax_cpu_collectives_implementation``).
"""
from __future__ import annotations

import datetime as _dt
import os
from typing import Optional

SWITCH = "COLLAPSE_DISTRIBUTED"
COORDINATOR = "COLLAPSE_COORDINATOR"
PROCESSES = "COLLAPSE_PROCESSES"
PROCESS_ID = "COLLAPSE_PROCESS_ID"
SWITCH_VALUES = ("auto", "on", "off")
TIMEOUT_S = 300  # how long a process waits for the others at initialisation


class DistributedSettingError(ValueError):
    """An invalid distributed setting (an environment variable): ``str()`` is the one line to print."""


_started = False


def _int_env(name: str, env, lowest: int) -> Optional[int]:
    raw = env.get(name)
    if raw in (None, ""):
        return None
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or value < lowest:
        raise DistributedSettingError(f"{name}={raw}: must be an integer >= {lowest}")
    return value


def _cluster_size(env) -> int:
    """Processes of a job step that JAX's cluster detection understands (SLURM, Open MPI); 1 outside one."""
    if "SLURM_STEP_NODELIST" in env and "SLURM_PROCID" in env:
        return int(env.get("SLURM_NTASKS", env.get("SLURM_STEP_NUM_TASKS", "1")) or 1)
    if "OMPI_COMM_WORLD_SIZE" in env:
        return int(env["OMPI_COMM_WORLD_SIZE"] or 1)
    return 1


def requested(env=None) -> Optional[dict]:
    """The keyword arguments of ``jax.distributed.initialize`` the environment asks for, or None (one process).
    Raises :class:`DistributedSettingError` naming the variable on bad input."""
    env = os.environ if env is None else env
    switch = env.get(SWITCH, "auto").strip().lower() or "auto"
    if switch not in SWITCH_VALUES:
        raise DistributedSettingError(f"{SWITCH}={env.get(SWITCH)}: must be one of {', '.join(SWITCH_VALUES)}")
    if switch == "off":
        return None
    coordinator = env.get(COORDINATOR) or env.get("JAX_COORDINATOR_ADDRESS") or None
    processes = _int_env(PROCESSES, env, 1)
    process_id = _int_env(PROCESS_ID, env, 0)
    if coordinator is not None and (":" not in coordinator or not coordinator.rsplit(":", 1)[1].isdigit()):
        raise DistributedSettingError(f"{COORDINATOR}={coordinator}: must be host:port, e.g. 127.0.0.1:12345")
    given = {"coordinator_address": coordinator, "num_processes": processes, "process_id": process_id}
    if processes is not None and process_id is not None and process_id >= processes:
        raise DistributedSettingError(f"{PROCESS_ID}={process_id}: must be below {PROCESSES}={processes}")
    by_hand = any(v is not None for v in given.values())
    if switch == "auto" and not by_hand and _cluster_size(env) <= 1:
        return None
    if by_hand and None in given.values() and _cluster_size(env) <= 1:
        missing = [n for n, k in ((COORDINATOR, "coordinator_address"), (PROCESSES, "num_processes"),
                                  (PROCESS_ID, "process_id")) if given[k] is None]
        raise DistributedSettingError(f"{', '.join(missing)}: not set; a run over several processes started by "
                                      f"hand needs {COORDINATOR}, {PROCESSES} and {PROCESS_ID} in every process")
    return {k: v for k, v in given.items() if v is not None}


def start(env=None) -> bool:
    """Initialise JAX's distributed runtime once if the environment asks for it (before any JAX computation in
    this process), then give every process process 0's clock, so that ``${collapse.now:...}`` names the same run
    folder everywhere. Returns whether the environment asked for a distributed run (with
    ``COLLAPSE_PROCESSES=1`` nothing is initialised, and the run is an ordinary one)."""
    global _started
    if _started:
        return True
    kwargs = requested(env)
    if kwargs is None:
        return False
    import jax

    if kwargs.get("num_processes") == 1:
        _started = True
        return True
    try:
        jax.distributed.initialize(**kwargs, initialization_timeout=TIMEOUT_S)
    except RuntimeError as exc:
        if "initialize should only be called once" in str(exc) or "already" in str(exc):
            _started = True
            return True
        where = kwargs.get("coordinator_address", "the detected cluster")
        raise DistributedSettingError(f"jax.distributed.initialize with {where}: {str(exc).splitlines()[0]}") from None
    _started = True
    _share_clock()
    return True


_clock: Optional[_dt.datetime] = None  # process 0's time at start-up, in every process of a multi-process run


def _share_clock() -> None:
    """Give every process process 0's time at start-up (a broadcast from process 0), for :func:`now`."""
    global _clock
    import numpy as np
    from jax.experimental import multihost_utils

    stamp = _dt.datetime.now().strftime("%Y%m%d%H%M%S%f")  # 20 characters in every process
    shared = multihost_utils.broadcast_one_to_all(np.frombuffer(stamp.encode(), dtype=np.uint8))
    _clock = _dt.datetime.strptime(bytes(np.asarray(shared, dtype=np.uint8)).decode(), "%Y%m%d%H%M%S%f")


def now(pattern: str) -> str:
    """``${collapse.now:pattern}`` (the run and sweep folders' timestamps): the time formatted with ``pattern``
    (``datetime.strftime``); in a multi-process run, process 0's start-up time, so every process names the
    same folder."""
    return (_clock or _dt.datetime.now()).strftime(pattern)


def process_index() -> int:
    """This process's index among the run's processes (0 in a single-process run)."""
    import jax

    return jax.process_index()


def process_count() -> int:
    """How many processes run this experiment together (1 without the distributed runtime)."""
    import jax

    return jax.process_count()


def is_writer() -> bool:
    """Whether this process writes the run folder: process 0 (the only one of a single-process run)."""
    return process_index() == 0
