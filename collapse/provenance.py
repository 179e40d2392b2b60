"""Provenance of a run: where the code came from, what ran it and on what (``summary.json`` -> ``provenance``).

:func:`record` gathers, at the end of a run: the git commit and dirty flag of the checkout collapse is
imported from (``None`` when it is not a git checkout or git is missing), the versions of the packages that
decide the numbers, the command line and overrides, the host, the platform and the JAX devices. The CLI
announces its command with :func:`cli_command` (an environment variable, so launcher subprocesses see it too).
"""
from __future__ import annotations

import contextlib
import json
import os
import platform
import socket
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

PACKAGES = ("collapse", "jax", "jaxlib", "flax", "optax", "numpy", "scipy", "pandas", "hydra-core", "omegaconf",
            "wandb")
COMMAND_ENV = "COLLAPSE_COMMAND"  # JSON list: the ``collapse`` command line as typed (set by the CLI)
GIT_TIMEOUT_S = 3.0


def package_root() -> Path:
    """The folder that holds the imported ``collapse`` package (a checkout's root for an editable install)."""
    return Path(__file__).resolve().parent.parent


def _git(root: Path, *args: str) -> Optional[str]:
    """stdout of ``git -C root args`` (stripped), or ``None`` if git is missing, fails or times out."""
    try:
        p = subprocess.run(["git", "--no-optional-locks", "-C", str(root), *args], capture_output=True, text=True,
                           timeout=GIT_TIMEOUT_S, env={**os.environ, "GIT_TERMINAL_PROMPT": "0"})
    except (OSError, subprocess.SubprocessError):
        return None
    return p.stdout.strip() if p.returncode == 0 else None


def git_state(root: Optional[Path] = None) -> dict[str, Any]:
    """``{"commit", "dirty"}`` of the git checkout at ``root`` (default: :func:`package_root`), both ``None``
    unless collapse's own ``__init__.py`` is tracked there. Dirty: any tracked change or untracked, not ignored
    file (``git status --porcelain`` not empty)."""
    root = package_root() if root is None else Path(root)
    none = {"commit": None, "dirty": None}
    if _git(root, "ls-files", "--error-unmatch", "collapse/__init__.py") is None:
        return none
    commit = _git(root, "rev-parse", "HEAD")
    status = _git(root, "status", "--porcelain")
    if commit is None:
        return none
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def package_versions(names: Sequence[str] = PACKAGES) -> dict[str, Optional[str]]:
    """Installed distribution versions (``None`` where not installed), plus ``python``."""
    out: dict[str, Optional[str]] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    out["python"] = platform.python_version()
    return out


def devices() -> dict[str, Any]:
    """The JAX backend: platform (cpu/gpu/tpu), device kind of the first device, device and process counts."""
    try:
        import jax

        devs = jax.devices()
        return {"platform": devs[0].platform, "kind": devs[0].device_kind, "count": len(devs),
                "processes": jax.process_count()}
    except Exception as exc:  # pragma: no cover - no usable backend
        return {"platform": None, "kind": None, "count": 0, "error": str(exc).splitlines()[0] if str(exc) else ""}


@contextlib.contextmanager
def cli_command(argv: Sequence[str]) -> Iterator[None]:
    """While the CLI runs: ``argv`` (the command line as typed) is what :func:`record` reports."""
    before = os.environ.get(COMMAND_ENV)
    os.environ[COMMAND_ENV] = json.dumps(list(argv))
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(COMMAND_ENV, None)
        else:
            os.environ[COMMAND_ENV] = before


def _cli_argv() -> Optional[list[str]]:
    raw = os.environ.get(COMMAND_ENV)
    if not raw:
        return None
    try:
        argv = json.loads(raw)
    except json.JSONDecodeError:
        return None
    return [str(a) for a in argv] if isinstance(argv, list) else None


def _job_overrides() -> Optional[list[str]]:
    """The overrides of this Hydra multirun job (e.g. one value of a ``-m`` sweep), else ``None``."""
    try:
        from hydra.core.hydra_config import HydraConfig

        if not HydraConfig.initialized():
            return None
        hc = HydraConfig.get()
        return list(hc.overrides.task) if str(hc.mode) == "RunMode.MULTIRUN" else None
    except Exception:  # pragma: no cover - outside a Hydra app
        return None


def command(overrides: Optional[Sequence[str]] = None) -> dict[str, Any]:
    """How the run was started: ``entry`` ("cli" or "python"), ``argv`` and ``overrides`` (as typed on the
    command line, or as passed to ``simulate``); multirun jobs add their own ``job_overrides``."""
    cli = _cli_argv()
    if overrides is None and cli is not None:
        out: dict[str, Any] = {"entry": "cli", "argv": cli, "overrides": [a for a in cli[1:] if not a.startswith("-")]}
        job = _job_overrides()
        if job is not None:
            out["job_overrides"] = job
        return out
    return {"entry": "python", "argv": list(sys.argv),
            "overrides": None if overrides is None else [str(o) for o in overrides]}


def record(cfg=None, overrides: Optional[Sequence[str]] = None) -> dict[str, Any]:
    """The ``provenance`` entry of ``summary.json`` (see the module docstring); ``cfg`` adds its digest."""
    out: dict[str, Any] = {**git_state(), "versions": package_versions(), **command(overrides),
                           "host": socket.gethostname(), "platform": platform.platform(), "device": devices(),
                           "time": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    if cfg is not None:
        from collapse.config import config_digest
        out["config_digest"] = config_digest(cfg)
    return out
