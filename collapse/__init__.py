"""collapse: a JAX simulator of model collapse.

``collapse.simulate(*overrides, run_dir=None)`` runs one experiment (generations in ``lax.scan``,
replicates under ``vmap``) and returns a :class:`Result`; ``collapse.analysis.load_run`` reads a run
directory back.
"""
__version__ = "0.1.0"

from collapse.api import Result, simulate  # noqa: E402
from collapse.config import ConfigError  # noqa: E402

__all__ = ["simulate", "Result", "ConfigError", "__version__"]
