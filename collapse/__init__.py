"""collapse: a JAX simulator of model collapse.

``collapse.simulate(*overrides, run_dir=None)`` runs one experiment (generations in ``lax.scan``,
replicates under ``vmap``) and returns a :class:`Result`; ``collapse.analysis.load_run`` reads a run
directory back.
"""
__version__ = "0.1.0"

import os as _os
import time as _time

IMPORTED_AT = _time.perf_counter()  # the start of a run's ``startup`` phase (summary.json ``phases``)

# Several collapse jobs may share one GPU (joblib / submitit launchers): no job preallocates the whole card.
# Set XLA_PYTHON_CLIENT_PREALLOCATE=true yourself for a single large run.
_os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")


def _enable_compilation_cache() -> None:
    """Keep compiled programs on disk (``$COLLAPSE_CACHE_DIR``, default ``~/.cache/collapse/jax``) so a
    config that ran before starts without recompiling. ``COLLAPSE_CACHE_DIR=off`` disables it."""
    where = _os.environ.get("COLLAPSE_CACHE_DIR", _os.path.join(_os.path.expanduser("~"), ".cache", "collapse", "jax"))
    if where.lower() in ("off", "0", "none", ""):
        return
    import jax

    try:
        jax.config.update("jax_compilation_cache_dir", where)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.1)  # small programs too
    except Exception:  # pragma: no cover - an older/newer jax without these options
        pass


_enable_compilation_cache()

from collapse.api import Result, simulate  # noqa: E402
from collapse.config import ConfigError  # noqa: E402

__all__ = ["simulate", "Result", "ConfigError", "__version__"]
