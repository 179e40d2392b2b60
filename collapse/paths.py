"""Where the Hydra config tree lives.

In a source checkout (and an editable install of it) the tree is the top-level ``conf/`` next to
``collapse/``. A built wheel carries the same files as package data at ``collapse/conf/``
(``setup.py`` maps the package ``collapse.conf`` onto the directory ``conf/``), so an installed copy
finds them inside the package. The package-data location is tried first: it only exists in an
installed wheel, and there ``<site-packages>/conf`` would be someone else's directory.
"""
from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def conf_dir() -> Path:
    """The directory holding ``config.yaml`` and the config groups (``model/``, ``experiment/``, ...)."""
    for candidate in (_PACKAGE / "conf", _PACKAGE.parent / "conf"):
        if (candidate / "config.yaml").is_file():
            return candidate
    raise FileNotFoundError(
        f"collapse's config tree (config.yaml) is neither at {_PACKAGE / 'conf'} (installed package data) "
        f"nor at {_PACKAGE.parent / 'conf'} (source checkout)")


CONF_DIR = conf_dir()
