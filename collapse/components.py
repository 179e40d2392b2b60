"""Components found by module name: every source, model family and curation rule is a module that declares
itself with one spec record (big_vision style: ``model=gmm`` is the module ``collapse.families.gmm``).

=========  ====================================  ===================  =========================================
group      module (default)                      attribute            record
=========  ====================================  ===================  =========================================
source     ``collapse.sources.<name>``           ``SOURCE``           :class:`SourceSpec`
model      ``collapse.families.<name>``          ``FAMILY``           :class:`FamilySpec`
curation   ``collapse.curation.<name>``          ``RULE``             :class:`RuleSpec`
=========  ====================================  ===================  =========================================

A component outside the package names its module in its yaml (``module: my_pkg.laplace``); the module is imported
with the working directory on ``sys.path`` (as ``python -m`` does). Nothing else is registered anywhere, and
nothing outside a component's module branches on its name.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import pkgutil
import sys
from dataclasses import dataclass
from typing import Any, Callable, Optional

from collapse.errors import ConfigError


@dataclass(frozen=True)
class SourceSpec:
    """A ground-truth source: its ``kind`` (continuous | discrete | supervised | text | image), further
    ``traits`` families may fit by (e.g. ``toy_2d``), ``check(cfg)`` of the ``source.*`` keys it owns (raises
    :class:`ConfigError`), and ``build(cfg) -> Source`` (called inside the run's precision context); optionally
    ``derive(cfg) -> {dotted key: value}``: keys the source computes from its others (``source.segment`` of a task
    whose length its settings fix), filled in before any key is checked."""

    name: str
    kind: str
    check: Callable[[Any], None]
    build: Callable[[Any], Any]
    traits: tuple[str, ...] = ()
    derive: Optional[Callable[[Any], dict]] = None

    @property
    def labels(self) -> tuple[str, ...]:
        """What a family's ``fits`` is matched against: the kind and the traits."""
        return (self.kind, *self.traits)


@dataclass(frozen=True)
class FamilySpec:
    """A model family: the source labels it ``fits`` (kinds or traits), ``check(cfg, source_spec)`` of the
    ``model.*`` keys it owns (and of how they combine with the source and loop), ``build(cfg, source) -> Family``,
    and optionally ``context(cfg)``: the number of previous tokens the model conditions on when finite (an n-gram:
    order - 1), so a Markov-chain source can precompute its exact truth for that context; and ``tokenizer(cfg)``:
    the path of the ``tokenizer.json`` the model reads text with (a pretrained LM), so a text source tokenizes its
    corpus with it; and ``rows_at_once(cfg)``: the most replicate rows that fit in memory together (None: all),
    used by ``engine.rows_at_once=auto``."""

    name: str
    fits: tuple[str, ...]
    check: Callable[[Any, Any], None]
    build: Callable[[Any, Any], Any]
    context: Optional[Callable[[Any], int]] = None
    tokenizer: Optional[Callable[[Any], str]] = None
    rows_at_once: Optional[Callable[[Any], Optional[int]]] = None

    def can_fit(self, source: SourceSpec) -> bool:
        return bool(set(self.fits) & set(source.labels))


@dataclass(frozen=True)
class RuleSpec:
    """A curation rule: ``check(cfg)`` of its own ``curation.*`` keys and ``build(ccfg) -> (candidates, select,
    take)``: ``candidates(n)`` the static count of candidates for n kept points, ``select(key, scores, n) ->
    (index (n,), accepted)``, and ``take(cand, index)`` or None (a gather). ``curates=False`` only for ``none``."""

    name: str
    check: Callable[[Any], None]
    build: Optional[Callable[[Any], tuple]]
    curates: bool = True


GROUPS = {"source": ("collapse.sources", "SOURCE", SourceSpec),
          "model": ("collapse.families", "FAMILY", FamilySpec),
          "curation": ("collapse.curation", "RULE", RuleSpec)}


def _node_get(node: Any, key: str) -> Any:
    try:
        return node.get(key)
    except AttributeError:
        return None


def find(group: str, node: Any) -> Any:
    """The spec of the component a config section (``cfg.source``, ``cfg.model``, ``cfg.curation``) names: from its
    ``module`` key when set, else ``<package>.<name>``. An unknown name is one :class:`ConfigError` line listing the
    known ones."""
    package, attribute, record = GROUPS[group]
    name = _node_get(node, "name")
    module_name = _node_get(node, "module") or f"{package}.{name}"
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{group}.name", name, "must be the name of a " + group)
    module = _import(module_name)
    if module is None:
        raise ConfigError(group, name, f"no module {module_name} (give a plug-in's yaml `module: <importable "
                          f"module>`); known: " + ", ".join(known(group)))
    spec = getattr(module, attribute, None)
    if not isinstance(spec, record):
        raise ConfigError(f"{group}.module", module_name, f"must define {attribute} = collapse.components."
                          f"{record.__name__}(...)")
    if spec.name != name:
        raise ConfigError(f"{group}.name", name, f"module {module_name} declares {attribute}.name={spec.name!r}")
    return spec


def _import(module_name: str):
    """The module, or None when it does not exist (errors inside an existing module propagate)."""
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.append(cwd)  # plug-in modules beside the user's configs
    try:
        if importlib.util.find_spec(module_name) is None:
            return None
    except ModuleNotFoundError:  # a missing parent package
        return None
    return importlib.import_module(module_name)


def load_plugins(cfg: Any) -> None:
    """Import every module of ``cfg.plugins`` (the user's own metrics, or components that register on import),
    with the working directory on ``sys.path``; an unknown module is one :class:`ConfigError` line."""
    names = _node_get(cfg, "plugins") or []
    if isinstance(names, str) or not all(isinstance(n, str) and n for n in names):
        raise ConfigError("plugins", names, "must be a list of module names, e.g. plugins=[my_metrics]")
    for name in names:
        if _import(name) is None:
            raise ConfigError("plugins", list(names), f"no module {name} on sys.path or in the working directory")


def known(group: str) -> list[str]:
    """Names of the package's own components of ``group``: the modules of its package that declare a spec."""
    package, attribute, record = GROUPS[group]
    pkg = importlib.import_module(package)
    names = []
    for info in pkgutil.iter_modules(pkg.__path__):
        module = importlib.import_module(f"{package}.{info.name}")
        if isinstance(getattr(module, attribute, None), record):
            names.append(getattr(module, attribute).name)
    return sorted(names)


def specs(group: str) -> list:
    """Specs of the package's own components of ``group``."""
    package, attribute, _ = GROUPS[group]
    return [getattr(importlib.import_module(f"{package}.{n}"), attribute) for n in known(group)]


def source_kind(name: Any, module: Any = None) -> str:
    """The kind of the source ``name`` (e.g. of a saved run's config), or "" when it cannot be found."""
    try:
        return find("source", {"name": name, "module": module}).kind
    except Exception:  # a plug-in not importable here, or a malformed config
        return ""
