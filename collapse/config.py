"""Composing and validating configs, and building the source, family and loop they describe.

Every invalid value raises :class:`ConfigError` naming the key, the value and what is allowed, before
any work is done. The CLI turns it into one line on stderr and exit code 2.
"""
from __future__ import annotations

import contextlib
import difflib
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
from omegaconf import DictConfig, OmegaConf, open_dict

from collapse import checks, components, schedules
from collapse.curation import check_curation
from collapse.engine import n_real_points
from collapse.errors import ConfigError
from collapse.paths import CONF_DIR
from collapse.sweep import rewrite_overrides

GROUPS = ("source", "model", "curation", "experiment", "logger", "hydra/launcher")
OPEN_SECTIONS = ("hydra", "sweep")  # keys that may be added with +: Hydra's own settings, vectorised sweep axes

LAUNCHER_PLUGINS = {"joblib": ("hydra_joblib_launcher",), "submitit_local": ("hydra_submitit_launcher",),
                    "submitit_slurm": ("hydra_submitit_launcher",), "ray": ("hydra_ray_launcher",),
                    "ray_aws": ("hydra_ray_launcher",),
                    "rq": ("hydra_rq_launcher",)}


def search_dirs(overrides: Iterable[str] = ()) -> list[Path]:
    """The config folders a run composes from: the package's ``conf/``, then every folder of a
    ``hydra.searchpath=[...]`` override (a plug-in's own configs): ``file://`` paths (relative to the working
    directory) and ``pkg://`` packages."""
    dirs = [Path(CONF_DIR)]
    for ov in overrides:
        key, sep, value = ov.lstrip("+~").partition("=")
        if key != "hydra.searchpath" or not sep:
            continue
        for item in value.strip("[]").split(","):
            item = item.strip().strip("'\"")
            if item.startswith("file://"):
                dirs.append(Path(item[len("file://"):]).expanduser())
            elif item.startswith("pkg://"):
                dirs.extend(_package_dir(item[len("pkg://"):]))
    return dirs


def _package_dir(name: str) -> list[Path]:
    """The folder(s) of the importable package ``a.b`` (a ``pkg://a.b`` search path entry; a/b/ also works)."""
    import importlib.util

    try:
        spec = importlib.util.find_spec(name.strip("/").replace("/", "."))
    except ModuleNotFoundError:
        return []
    return [Path(p) for p in (spec.submodule_search_locations or [])] if spec else []


def run_overrides(overrides: Iterable[str]) -> list[str]:
    """The overrides that decide a run's config: Hydra's own settings are left out, except ``hydra.searchpath``
    (which decides what config files exist)."""
    return [o for o in overrides if not o.lstrip("+~").startswith(("hydra.", "hydra/"))
            or o.lstrip("+~").startswith("hydra.searchpath=")]


def group_choices(group: str, dirs: Iterable[Path] | None = None) -> list[str]:
    """Config names of ``group``: the yaml files of the search folders (:func:`search_dirs`), plus Hydra's
    installed launcher plugins for hydra/launcher."""
    names = {p.stem for d in (dirs or [Path(CONF_DIR)]) for p in (d / group).glob("*.yaml")}
    if group == "hydra/launcher":
        import importlib.util

        names.add("basic")
        for name, (module,) in LAUNCHER_PLUGINS.items():
            if importlib.util.find_spec(f"hydra_plugins.{module}") is not None:
                names.add(name)
    return sorted(names)


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """``"; did you mean X?"`` for the candidate closest to ``word`` (difflib), or ``""``."""
    match = difflib.get_close_matches(word, sorted(set(candidates)), n=1, cutoff=0.6)
    return f"; did you mean {match[0]}?" if match else ""


def _missing_plugin(value: str) -> str:
    """What installs the launcher plugin ``value`` (one of :data:`LAUNCHER_PLUGINS`)."""
    (module,) = LAUNCHER_PLUGINS[value]
    install = "pip install -e '.[ray]'" if module == "hydra_ray_launcher" else f"pip install {module.replace('_', '-')}"
    return f"the {module} plugin is not installed ({install}); installed launchers: "


def check_group_overrides(overrides: Iterable[str]) -> None:
    """Reject ``model=foo`` style overrides naming an unknown config file, before Hydra sees them."""
    overrides = list(overrides)
    dirs = search_dirs(overrides)
    for ov in overrides:
        key, sep, value = ov.lstrip("+~").partition("=")
        key = key.split("@")[0]
        if not sep or key not in GROUPS or value in ("", "null") or "," in value or "(" in value:
            continue  # sweeps (a,b / choice / glob) are checked job by job
        choices = group_choices(key, dirs)
        if value in choices:
            continue
        if key == "hydra/launcher" and value in LAUNCHER_PLUGINS:
            raise ConfigError(key, value, _missing_plugin(value) + ", ".join(choices))
        raise ConfigError(key, value, "must be one of " + ", ".join(choices) + did_you_mean(value, choices))


@contextlib.contextmanager
def _hydra() -> Iterator[Any]:
    """Hydra initialised on ``conf/`` (its global state cleared before and after); yields its config loader."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            yield GlobalHydra.instance().config_loader()
    finally:
        GlobalHydra.instance().clear()


def _hydra_compose(overrides: list[str], with_hydra: bool = False) -> DictConfig:
    """Hydra's compose (inside :func:`_hydra`); its errors become one-line :class:`ConfigError`."""
    from hydra import compose as hydra_compose

    try:
        return hydra_compose("config", overrides=list(overrides), return_hydra_config=with_hydra)
    except Exception as exc:  # Hydra's override / missing-key errors
        raise ConfigError("overrides", " ".join(overrides), _first_line(exc)) from None


def parse_overrides(overrides: Iterable[str], loader: Any = None) -> list:
    """Hydra's parse of CLI-syntax overrides, sweeps included (``glob`` needs the ``loader``)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create(config_loader=loader)
    out = []
    for ov in overrides:
        try:
            out.extend(parser.parse_overrides([ov]))
        except Exception as exc:
            key, _, value = ov.partition("=")
            raise ConfigError(key, value, "cannot be parsed: " + _first_line(exc)) from None
    return out


def _shown(ov: Any) -> Any:
    """An override's value for a message: as typed for a sweep, else the parsed value."""
    return ov.input_line.partition("=")[2] if ov.is_sweep_override() else ov.value()


def dotted_keys(node: Any, prefix: str = "") -> set[str]:
    """Every dotted key of a nested dict: its sections and its leaves."""
    out: set[str] = set()
    for k, v in (node.items() if isinstance(node, dict) else ()):
        key = f"{prefix}{k}"
        out |= {key} | dotted_keys(v, key + ".")
    return out


def _is_open(key: str) -> bool:
    """Whether ``key`` lies in a section open to new keys (:data:`OPEN_SECTIONS`)."""
    return key.replace("/", ".").split(".")[0] in OPEN_SECTIONS


_KNOWN: dict[tuple[str, ...], tuple[frozenset, dict]] = {}


def _known(groups: tuple[str, ...]) -> tuple[frozenset, dict]:
    """(dotted keys, {group: chosen name}) of the config composed with only the group choices ``groups``
    (inside :func:`_hydra`; cached)."""
    if groups not in _KNOWN:
        cfg = OmegaConf.to_container(_hydra_compose(list(groups)), resolve=False)
        cfg.pop("hydra", None)
        names = {g: (cfg.get(g) or {}).get("name") for g in ("source", "model", "curation", "logger")}
        _KNOWN[groups] = frozenset(dotted_keys(cfg)), names
    return _KNOWN[groups]


def _defined_by(key: str, dirs: Iterable[Path] | None = None) -> list[str]:
    """``group=choice`` of every group file that defines ``key`` (``model.components`` -> model=gmm)."""
    group, _, rest = key.partition(".")
    if group not in ("source", "model", "curation", "logger") or not rest:
        return []
    files = sorted(p for d in (dirs or [Path(CONF_DIR)]) for p in (d / group).glob("*.yaml"))
    return [f"{group}={p.stem}" for p in files
            if rest in dotted_keys(OmegaConf.to_container(OmegaConf.load(p), resolve=False))]


def check_keys(parsed: list, known: frozenset, names: dict, dirs: Iterable[Path] | None = None) -> None:
    """Refuse an override of a key the composed config lacks (outside :data:`OPEN_SECTIONS`), naming the group
    choices that define it or else the closest real key or group (difflib)."""
    for ov in parsed:
        key = ov.key_or_group
        if key in GROUPS or _is_open(key) or key in known:
            continue
        allowed = "unknown key"
        if ov.type.name in ("ADD", "FORCE_ADD"):
            allowed += " (+ adds keys only under hydra.* and sweep.*)"
        others = _defined_by(key, dirs)
        if others:
            group = key.split(".")[0]
            allowed += f" for {group}={names.get(group)}; it is a key of " + ", ".join(others)
        else:
            allowed += _closest_key(key, known)
        raise ConfigError(ov.get_key_element(), _shown(ov), allowed)


def _closest_key(key: str, known: frozenset) -> str:
    """The hint for an unknown key: inside a real section, its closest key or else the section's keys; otherwise
    the closest real key of the same depth or group name (difflib)."""
    section, _, leaf = key.rpartition(".")
    if section in known:
        keys = sorted(k.rpartition(".")[2] for k in known if k.rpartition(".")[0] == section)
        match = did_you_mean(leaf, keys)
        return match.replace("mean ", f"mean {section}.") if match else f"; {section} has " + ", ".join(keys)
    same_depth = [k for k in [*known, *GROUPS] if k.count(".") == key.count(".")]
    return did_you_mean(key, same_depth) or "; `collapse --cfg job` lists the keys"


def _check_hydra_groups(parsed: list, loader: Any) -> None:
    """Refuse ``hydra/<group>=...`` naming a group Hydra does not have."""
    names = [f"hydra/{g}" for g in loader.list_groups("hydra")]
    for ov in parsed:
        if ov.key_or_group.startswith("hydra/") and ov.key_or_group not in names:
            raise ConfigError(ov.key_or_group, _shown(ov), "unknown config group" + did_you_mean(ov.key_or_group, names))


def _strict_compose(overrides: list[str], loader: Any, with_hydra: bool = False) -> DictConfig:
    """Hydra's compose after refusing unknown keys and groups (inside :func:`_hydra`)."""
    parsed = parse_overrides(overrides, loader)
    _check_hydra_groups(parsed, loader)
    groups = tuple(ov.input_line for ov in parsed if (ov.key_or_group in GROUPS and not ov.is_hydra_override()
                   and not ov.is_sweep_override()) or ov.key_or_group == "hydra.searchpath")
    if any(ov.key_or_group not in GROUPS and not _is_open(ov.key_or_group) for ov in parsed):
        check_keys(parsed, *_known(groups), search_dirs(overrides))  # (composing the known keys costs ~0.1 s)
    return _hydra_compose(overrides, with_hydra)


def compose(overrides: Iterable[str] = ()) -> DictConfig:
    """Compose ``conf/config.yaml`` with CLI-syntax overrides (no Hydra app needed). An unknown key or group
    choice raises :class:`ConfigError` naming the closest real one."""
    overrides = rewrite_overrides(overrides)
    check_group_overrides(overrides)
    with _hydra() as loader:
        cfg = _strict_compose(overrides, loader)
    cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    cfg.pop("hydra", None)
    return cfg


def multirun_jobs(overrides: Iterable[str], multirun: bool, single: dict | None = None) -> list[list[str]] | None:
    """The overrides of every job when the command is a multirun (``-m``, or a preset that sets ``hydra.mode:
    MULTIRUN``), or None for a single run. Sweeps (``a=1,2``, ``range``, ``choice``, ``glob``) and the preset's
    ``hydra.sweeper.params`` are expanded with Hydra's parser, in the basic sweeper's order; a launcher that
    cannot start here raises :class:`ConfigError`. For a single run, ``single["config"]`` (when ``single`` is a
    dict) receives its composed config, as :func:`compose` would return it (one Hydra compose less)."""
    from hydra.types import RunMode

    overrides = rewrite_overrides(overrides)
    check_group_overrides(overrides)
    with _hydra() as loader:
        parsed = parse_overrides(overrides, loader)
        fixed = [ov.input_line for ov in parsed if not ov.is_sweep_override()]
        full = _strict_compose(fixed, loader, with_hydra=True)
        node = full.hydra
        if not multirun and node.get("mode") != RunMode.MULTIRUN:
            if single is not None and len(fixed) == len(parsed):  # no sweep syntax: this is the run's config
                cfg = OmegaConf.create(OmegaConf.to_container(full, resolve=False))
                cfg.pop("hydra", None)
                single["config"] = cfg
            return None
        check_launcher(node)
        params = [f"{k}={v}" for k, v in (node.sweeper.get("params") or {}).items()]
        return _expand(parse_overrides([*params, *overrides], loader))


def _expand(parsed: list) -> list[list[str]]:
    """Every job's overrides: the product of each key's values, a later override of a key replacing an earlier
    one (as Hydra's basic sweeper does); Hydra's own overrides are left out."""
    import itertools

    values: dict[str, list[str]] = {}
    for ov in parsed:
        key = ov.get_key_element()
        if ov.is_hydra_override() and key != "hydra.searchpath":  # the search path decides which configs exist
            continue
        if not ov.is_sweep_override():
            values[key] = [ov.input_line]
        elif ov.is_discrete_sweep():
            values[key] = [f"{key}={v}" for v in ov.sweep_string_iterator()]
        else:
            raise ConfigError(key, _shown(ov), "is not a list of values; the basic sweeper takes a=1,2, range(...), "
                              "choice(...) or glob(...)")
    return [list(job) for job in itertools.product(*values.values())]


def check_launcher(node: Any) -> None:
    """Refuse a multirun launcher that cannot start here: SLURM without ``sbatch``, ray without ``ray``."""
    import importlib.util
    import shutil

    choice = node.runtime.choices.get("hydra/launcher") or "basic"
    target = str(node.launcher.get("_target_") or "")
    if target.endswith(".SlurmLauncher") and shutil.which("sbatch") is None:
        raise ConfigError("hydra/launcher", choice, "submits SLURM jobs with sbatch, which is not on PATH (not a SLURM "
                          "login node); here use hydra/launcher=basic, joblib, parallel or submitit_local")
    if "hydra_ray_launcher" in target and importlib.util.find_spec("ray") is None:
        raise ConfigError("hydra/launcher", choice, "needs ray, which is not installed (pip install -e '.[ray]')")


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


# ----- validation ----------------------------------------------------------------------------------
def validate(cfg: DictConfig) -> DictConfig:
    """Check every key the run uses: the loop's own keys here, each component's keys by its spec (the source's,
    the family's, the curation rule's). Fills the keys a source derives (:attr:`SourceSpec.derive`). Returns cfg."""

    components.load_plugins(cfg)
    checks.integer(cfg, "generations")
    checks.integer(cfg, "replicates")
    checks.integer(cfg, "seed", lo=None)
    checks.choice(cfg, "precision", ("float32", "float64"))
    name = checks.get(cfg, "name")
    if not isinstance(name, str) or not name or "/" in name:
        raise ConfigError("name", name, "must be a non-empty string without '/'")
    checks.choice(cfg, "loop.synthetic", ("replace", "accumulate", "accumulate_subsample"))
    checks.choice(cfg, "loop.real", ("fresh", "fixed"))
    frac_node = checks.get(cfg, "loop.real_fraction")
    if schedules.is_schedule(frac_node):
        schedules.checked("loop.real_fraction", frac_node, cfg.generations, 0.0, 1.0, first=1)
        frac = None
    else:
        frac = checks.number(cfg, "loop.real_fraction", 0.0, 1.0)
    samples = checks.integer(cfg, "loop.samples")
    source = components.find("source", cfg.source)
    _fill_derived(cfg, source)
    units, what = samples, "points"
    if source.kind == "text":
        seg = checks.integer(cfg, "source.segment", lo=2)
        if samples < seg:
            raise ConfigError("loop.samples", samples, f"counts tokens and must be >= source.segment={seg} (one segment)")
        units, what = samples // seg, f"segments of {seg} tokens"
    n_real = n_real_points(frac, units) if frac is not None else None
    if frac is not None and 0 < frac < 1 and n_real in (0, units):
        raise ConfigError("loop.real_fraction", frac,
                          f"rounds to {n_real} real {what} of {units} per batch; use 0, 1, or a fraction "
                          f"giving between 1 and {units - 1} real {what}")
    if schedules.is_schedule(checks.get(cfg, "sampling.scale")):
        schedules.checked("sampling.scale", checks.get(cfg, "sampling.scale"), cfg.generations, 0.0, None, lo_open=True)
    else:
        checks.number(cfg, "sampling.scale", 0.0, lo_open=True, allowed="must be a number > 0")
    if source.kind == "text":
        _validate_decoding(cfg)

    family = components.find("model", cfg.model)
    if not family.can_fit(source):
        fits = [s.name for s in components.specs("source") if family.can_fit(s)]
        raise ConfigError("model", family.name, f"cannot fit source={source.name}; model={family.name} fits source in "
                          + ", ".join(fits))
    check_schedules(cfg, source)
    source.check(cfg)
    family.check(cfg, source)
    check_real_weight(cfg, n_real, units)
    check_models(cfg, source)

    checks.integer(cfg, "metrics.every")
    checks.boolean(cfg, "metrics.sample_based")
    checks.integer(cfg, "metrics.eval_samples", lo=10)
    checks.integer(cfg, "metrics.sample_every")
    checks.integer(cfg, "metrics.sample_replicates", lo=-1)
    checks.integer(cfg, "metrics.draws", lo=0, allowed="must be an integer >= 0 (0 = no samples.npz)")
    checks.integer(cfg, "metrics.heldout", lo=10)
    checks.number(cfg, "metrics.tail_level", 0.0, 1.0, lo_open=True, hi_open=True)
    checks.integer(cfg, "metrics.tail_directions", lo=2)
    checks.integer(cfg, "metrics.tail_samples", lo=100)
    checks.integer(cfg, "metrics.repetition_n")
    if checks.get(cfg, "metrics.pass_k") is not None:  # (None: a config saved before the key)
        checks.integer(cfg, "metrics.pass_k", allowed="must be an integer >= 1 (samples of pass_at_k)")
    check_curation(cfg)
    ev = cfg.metrics.eval_samples
    for key in ("metrics.knn_k", "metrics.dc_k"):
        allowed = f"must be an integer in [1, metrics.eval_samples - 1 = {ev - 1}]"
        if checks.integer(cfg, key, allowed=allowed) >= ev:
            raise ConfigError(key, checks.get(cfg, key), allowed)
    checks.choice(cfg, "engine.path", ("auto", "samples", "stats"))
    checks.integer(cfg, "engine.chunks")
    if checks.get(cfg, "export") is not None:
        export_generations(cfg)
        allowed = f"must be an integer in [1, replicates = {cfg.replicates}]"
        if checks.integer(cfg, "export.replicates", allowed=allowed) > cfg.replicates:
            raise ConfigError("export.replicates", cfg.export.replicates, allowed)
    if checks.get(cfg, "engine.rows_at_once") not in ("auto", None):  # (None: a config saved before the key)
        checks.integer(cfg, "engine.rows_at_once", allowed="must be auto or an integer >= 1 (rows run together)")
    checks.number(cfg, "engine.max_pool_gib", 0.0, lo_open=True, allowed="must be a number > 0")
    checks.boolean(cfg, "quiet")
    checks.integer(cfg, "checkpoint.every", lo=0, allowed="must be an integer >= 0 (0 = no checkpoints)")
    if checks.get(cfg, "resume") is not None and not isinstance(checks.get(cfg, "resume"), str):
        raise ConfigError("resume", checks.get(cfg, "resume"), "must be the path of a run directory")
    if checks.choice(cfg, "logger.name", ("none", "wandb")) == "wandb":
        checks.choice(cfg, "logger.mode", ("offline", "online", "disabled"))
    return cfg


def check_schedules(cfg, source) -> None:
    """A schedule (``loop.real_fraction`` / ``sampling.scale`` over generations) needs a loop whose batch positions
    may change between generations: fresh real data, no curation, no finite or design-ordered source."""
    frac, scale = checks.get(cfg, "loop.real_fraction"), checks.get(cfg, "sampling.scale")
    if schedules.is_schedule(frac):
        if cfg.loop.real != "fresh":
            raise ConfigError("loop.real", cfg.loop.real, "must be fresh with a loop.real_fraction schedule (a fixed "
                              "real subset has one size)")
        if components.find("curation", cfg.curation).curates:
            raise ConfigError("loop.real_fraction", OmegaConf.to_container(frac), f"cannot follow a schedule with "
                              f"curation={cfg.curation.name} (the candidate count follows the synthetic count)")
        if source.kind in ("text", "image", "supervised"):
            raise ConfigError("loop.real_fraction", OmegaConf.to_container(frac), f"cannot follow a schedule with "
                              f"source={source.name} (its real rows are read in order or at fixed design positions)")
    if schedules.is_schedule(scale) and source.kind == "text":
        raise ConfigError("sampling.scale", OmegaConf.to_container(scale), "must be 1 for text sources")


def check_real_weight(cfg, n_real: int | None, units: int) -> None:
    """``loop.real_weight`` (null, or w in [0, 1]): needs loop.synthetic=replace, a batch with real and synthetic
    parts, and a family whose fit takes row weights."""
    if checks.get(cfg, "loop.real_weight") is None:
        return
    w = checks.number(cfg, "loop.real_weight", 0.0, 1.0, allowed="must be null (pooled fit) or a number in [0, 1]")
    if cfg.loop.synthetic != "replace":
        raise ConfigError("loop.synthetic", cfg.loop.synthetic, "must be replace with loop.real_weight (the weight is "
                          "the real part's share of each batch's fit)")
    if n_real is not None and not 0 < n_real < units:
        raise ConfigError("loop.real_weight", w, f"needs real and synthetic points in each batch "
                          f"(0 < loop.real_fraction < 1; now {n_real} of {units} are real)")


def loop_models(cfg) -> int:
    """``loop.models`` (1 in a config saved before the key)."""
    m = checks.get(cfg, "loop.models")
    return 1 if m is None else int(m)


def check_models(cfg, source) -> None:
    """``loop.models`` = M >= 1 lineages per replicate and ``loop.mixing`` (null, a self share in [0, 1], M weights, or
    M rows of M weights; each row non-negative and summing to 1). An ecosystem needs point draws from the models:
    no curation, no export of fitted models, no text or image source."""
    if checks.get(cfg, "loop.models") is None:
        return
    m = checks.integer(cfg, "loop.models", allowed="must be an integer >= 1 (model lineages per replicate)")
    mixing = checks.get(cfg, "loop.mixing")
    if mixing is not None:
        check_mixing(OmegaConf.to_container(mixing) if OmegaConf.is_config(mixing) else mixing, m)
    if m == 1:
        return
    if components.find("curation", cfg.curation).curates:
        raise ConfigError("loop.models", m, f"must be 1 with curation={cfg.curation.name} (an ecosystem's synthetic "
                          "part is drawn from the shared pool, not curated)")
    if source.kind in ("text", "image"):
        raise ConfigError("loop.models", m, f"must be 1 with source={source.name} (ecosystems run on continuous, "
                          "discrete, counting and supervised sources)")
    if checks.get(cfg, "export") is not None and cfg.export.generations:
        raise ConfigError("loop.models", m, "must be 1 with export.generations (the export writes one model per "
                          "replicate)")


def check_mixing(mixing, models: int) -> None:
    """One clear line for a ``loop.mixing`` that is not a self share in [0, 1], M weights or an M x M matrix whose
    rows are non-negative and sum to 1."""
    allowed = (f"must be null (uniform), a self share in [0, 1], a list of loop.models={models} non-negative weights "
               f"summing to 1, or {models} such lists (one row per lineage)")
    if isinstance(mixing, bool):
        raise ConfigError("loop.mixing", mixing, allowed)
    if isinstance(mixing, (int, float)):
        if not 0.0 <= float(mixing) <= 1.0:
            raise ConfigError("loop.mixing", mixing, allowed)
        return
    try:
        arr = np.asarray(mixing, dtype=float)
    except (TypeError, ValueError):
        raise ConfigError("loop.mixing", mixing, allowed) from None
    rows = arr[None] if arr.ndim == 1 else arr
    if (rows.ndim != 2 or rows.shape[1] != models or (arr.ndim == 2 and rows.shape[0] != models)
            or not np.all(np.isfinite(rows)) or np.any(rows < 0) or np.any(np.abs(rows.sum(1) - 1) > 1e-6)):
        raise ConfigError("loop.mixing", mixing, allowed)


def check_built(cfg, source, family) -> None:
    """What needs the built records: a real_fraction schedule on a finite source (read in order), and
    :func:`check_weighted_family`."""
    frac = checks.get(cfg, "loop.real_fraction")
    if schedules.is_schedule(frac) and "finite" in source.capabilities:
        raise ConfigError("loop.real_fraction", OmegaConf.to_container(frac), f"cannot follow a schedule with "
                          f"source={source.name} (its real data are read in order from a finite pool)")
    check_weighted_family(cfg, family)


def check_weighted_family(cfg, family) -> None:
    """The built family takes row weights (capability ``weights``) when ``loop.real_weight`` is set."""
    if checks.get(cfg, "loop.real_weight") is not None and "weights" not in family.capabilities:
        raise ConfigError("loop.real_weight", cfg.loop.real_weight, f"model={family.name} cannot weigh its rows; "
                          "families that can: gaussian, categorical, linear_regression, ngram, answers, poisson, "
                          "transformer, pretrained, vae, diffusion")


def _validate_decoding(cfg) -> None:
    """The decoding controls of text families (sampling.scale must stay 1 for text)."""
    if checks.get(cfg, "sampling.scale") != 1:
        raise ConfigError("sampling.scale", checks.get(cfg, "sampling.scale"), "must be 1 for text sources; use "
                          "sampling.temperature / top_k / top_p / repetition_penalty instead")
    checks.number(cfg, "sampling.temperature", 0.0, allowed="must be a number >= 0 (0 = greedy)")
    checks.integer(cfg, "sampling.top_k", lo=0, allowed="must be an integer >= 0 (0 = off)")
    checks.number(cfg, "sampling.top_p", 0.0, 1.0, lo_open=True, allowed="must be a number in (0, 1] (1 = off)")
    checks.number(cfg, "sampling.repetition_penalty", 1.0, allowed="must be a number >= 1 (1 = off)")
    if checks.choice(cfg, "sampling.prompt", ("none", "real_prefix")) == "real_prefix":
        seg = cfg.source.segment
        allowed = f"must be an integer in [1, source.segment - 1 = {seg - 1}]"
        if checks.integer(cfg, "sampling.prompt_length", allowed=allowed) >= seg:
            raise ConfigError("sampling.prompt_length", cfg.sampling.prompt_length, allowed)


# ----- building -------------------------------------------------------------------------------------
def build_source(cfg):
    """The :class:`~collapse.sources.base.Source` of ``cfg.source`` (call inside the precision context)."""
    return components.find("source", cfg.source).build(cfg)


def build_family(cfg, source):
    """The :class:`~collapse.families.base.Family` of ``cfg.model`` for ``source``."""
    return components.find("model", cfg.model).build(cfg, source)


def export_generations(cfg) -> tuple[int, ...]:
    """The sorted generations of ``export.generations`` (negative ones counted from the end), validated."""
    gens = checks.get(cfg, "export.generations")
    gens = list(gens) if hasattr(gens, "__iter__") and not isinstance(gens, str) else gens
    G = cfg.generations
    allowed = f"must be a list of generations in [-{G}, {G - 1}] (negative: from the end; -1 = the last)"
    if gens is None:
        return ()
    if not isinstance(gens, list) or not all(isinstance(g, int) and not isinstance(g, bool) for g in gens):
        raise ConfigError("export.generations", gens, allowed)
    if any(g < -G or g >= G for g in gens):
        raise ConfigError("export.generations", gens, allowed)
    return tuple(sorted({g % G for g in gens}))


def rows_at_once(cfg) -> int | None:
    """The most rows a compiled step runs together: ``engine.rows_at_once``, or for ``auto`` what the family's
    spec says fits in memory (None: all)."""
    value = cfg.engine.get("rows_at_once", "auto")
    if value not in ("auto", None):
        return int(value)
    hook = components.find("model", cfg.model).rows_at_once
    return hook(cfg) if hook is not None else None


def source_kind(cfg) -> str:
    """The kind of a (possibly saved) config's source, "" when its module cannot be found here."""
    src = (cfg or {}).get("source") or {}
    return components.source_kind(src.get("name"), src.get("module"))


RESULT_NEUTRAL = ("resume", "quiet", "logger", "checkpoint")  # keys that never change a run's numbers


def flat_items(node, prefix: str = "") -> dict:
    """{dotted key: value} of a nested dict/config."""
    out = {}
    for k, v in (node.items() if isinstance(node, dict) else []):
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flat_items(v, key + "."))
        else:
            out[key] = v
    return out


def config_differences(saved: dict, given: dict) -> list[str]:
    """Dotted keys whose values differ between two resolved configs (result-neutral keys ignored)."""
    a, b = flat_items(saved), flat_items(given)
    keys = sorted(set(a) | set(b))
    return [k for k in keys if k.split(".")[0] not in RESULT_NEUTRAL and a.get(k) != b.get(k)]


def _fill_derived(cfg: DictConfig, source=None) -> None:
    """Fill, in place, the keys the source computes from its others (:attr:`SourceSpec.derive`)."""
    source = source if source is not None else components.find("source", cfg.source)
    if source.derive is not None:
        with open_dict(cfg):
            for key, value in source.derive(cfg).items():
                OmegaConf.update(cfg, key, value)


def with_derived(cfg) -> DictConfig:
    """A copy of a composed (or saved) config with its source's derived keys filled in (``source.segment: auto`` of
    the arithmetic task -> 9), as :func:`validate` fills them before a run saves its config; so a freshly composed
    config compares equal to the saved one. Unchanged when the keys cannot be derived (validation reports why)."""
    out = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False) if isinstance(cfg, DictConfig) else cfg)
    try:
        _fill_derived(out)
    except Exception:  # an unknown source or a bad value: compared as given
        pass
    return out


def config_digest(cfg) -> str:
    """A hash of everything that determines a run's numbers (for checkpoints), derived keys filled in."""
    import hashlib
    import json

    items = {k: v for k, v in flat_items(OmegaConf.to_container(with_derived(cfg), resolve=True)).items()
             if k.split(".")[0] not in RESULT_NEUTRAL}
    return hashlib.sha256(json.dumps(items, sort_keys=True, default=str).encode()).hexdigest()[:16]
