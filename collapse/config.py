"""Composing and validating configs, and building the source, family and loop they describe.

Every invalid value raises :class:`ConfigError` naming the key, the value and what is allowed, before
any work is done. The CLI turns it into one line on stderr and exit code 2.
"""
from __future__ import annotations

import contextlib
import difflib
from pathlib import Path
from typing import Any, Iterable, Iterator

import jax.numpy as jnp
from omegaconf import DictConfig, OmegaConf

from collapse.paths import CONF_DIR
GROUPS = ("source", "model", "curation", "experiment", "logger", "hydra/launcher")
OPEN_SECTIONS = ("hydra", "sweep")  # keys that may be added with +: Hydra's own settings, vectorised sweep axes

SOURCE_KINDS = {"gaussian": "continuous", "gmm": "continuous", "student_t": "continuous", "zipf": "discrete",
                "linear": "supervised", "text": "text", "markov": "text", "digits": "image", "idx": "image",
                "array": "image", "ring": "continuous", "grid": "continuous"}
IMAGE_AND_TOY = ("digits", "idx", "array", "ring", "grid")
FAMILY_SOURCES = {
    "gaussian": ("gaussian", "gmm", "student_t", "ring", "grid"),
    "gmm": ("gaussian", "gmm", "student_t", "ring", "grid"),
    "kde": ("gaussian", "gmm", "student_t", "ring", "grid"),
    "categorical": ("zipf",),
    "linear_regression": ("linear",),
    "ngram": ("text", "markov"),
    "transformer": ("text", "markov"),
    "vae": IMAGE_AND_TOY,
    "diffusion": IMAGE_AND_TOY,
}


class ConfigError(ValueError):
    """A bad config value: ``key=value: what is allowed``."""

    def __init__(self, key: str, value: Any, allowed: str):
        self.key, self.value, self.allowed = key, value, allowed
        super().__init__(f"{key}={value!r}: {allowed}")


LAUNCHER_PLUGINS = {"joblib": ("hydra_joblib_launcher",), "submitit_local": ("hydra_submitit_launcher",),
                    "submitit_slurm": ("hydra_submitit_launcher",), "ray": ("hydra_ray_launcher",),
                    "ray_aws": ("hydra_ray_launcher",),
                    "rq": ("hydra_rq_launcher",)}


def group_choices(group: str) -> list[str]:
    """Config names of ``group``: our yaml files, plus Hydra's installed launcher plugins for hydra/launcher."""
    names = {p.stem for p in (CONF_DIR / group).glob("*.yaml")}
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
    for ov in overrides:
        key, sep, value = ov.lstrip("+~").partition("=")
        key = key.split("@")[0]
        if not sep or key not in GROUPS or value in ("", "null") or "," in value or "(" in value:
            continue  # sweeps (a,b / choice / glob) are checked job by job
        choices = group_choices(key)
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


def _defined_by(key: str) -> list[str]:
    """``group=choice`` of every group file that defines ``key`` (``model.components`` -> model=gmm)."""
    group, _, rest = key.partition(".")
    if group not in ("source", "model", "curation", "logger") or not rest:
        return []
    return [f"{group}={p.stem}" for p in sorted((CONF_DIR / group).glob("*.yaml"))
            if rest in dotted_keys(OmegaConf.to_container(OmegaConf.load(p), resolve=False))]


def check_keys(parsed: list, known: frozenset, names: dict) -> None:
    """Refuse an override of a key the composed config lacks (outside :data:`OPEN_SECTIONS`), naming the group
    choices that define it or else the closest real key or group (difflib)."""
    for ov in parsed:
        key = ov.key_or_group
        if key in GROUPS or _is_open(key) or key in known:
            continue
        allowed = "unknown key"
        if ov.type.name in ("ADD", "FORCE_ADD"):
            allowed += " (+ adds keys only under hydra.* and sweep.*)"
        others = _defined_by(key)
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
    groups = tuple(ov.input_line for ov in parsed if ov.key_or_group in GROUPS and not ov.is_hydra_override()
                   and not ov.is_sweep_override())
    check_keys(parsed, *_known(groups))
    return _hydra_compose(overrides, with_hydra)


def compose(overrides: Iterable[str] = ()) -> DictConfig:
    """Compose ``conf/config.yaml`` with CLI-syntax overrides (no Hydra app needed). An unknown key or group
    choice raises :class:`ConfigError` naming the closest real one."""
    from collapse.sweep import rewrite_overrides

    overrides = rewrite_overrides(overrides)
    check_group_overrides(overrides)
    with _hydra() as loader:
        cfg = _strict_compose(overrides, loader)
    cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    cfg.pop("hydra", None)
    return cfg


def multirun_jobs(overrides: Iterable[str], multirun: bool) -> list[list[str]] | None:
    """The overrides of every job when the command is a multirun (``-m``, or a preset that sets ``hydra.mode:
    MULTIRUN``), or None for a single run. Sweeps (``a=1,2``, ``range``, ``choice``, ``glob``) and the preset's
    ``hydra.sweeper.params`` are expanded with Hydra's parser, in the basic sweeper's order; a launcher that
    cannot start here raises :class:`ConfigError`."""
    from hydra.types import RunMode

    from collapse.sweep import rewrite_overrides

    overrides = rewrite_overrides(overrides)
    check_group_overrides(overrides)
    with _hydra() as loader:
        fixed = [ov.input_line for ov in parse_overrides(overrides, loader) if not ov.is_sweep_override()]
        node = _strict_compose(fixed, loader, with_hydra=True).hydra
        if not multirun and node.get("mode") != RunMode.MULTIRUN:
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
        if ov.is_hydra_override():
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


# ----- small checkers ----------------------------------------------------------------------------
def _get(cfg, key: str):
    return OmegaConf.select(cfg, key)


def _int(cfg, key: str, lo: int | None = 1, allowed: str | None = None) -> int:
    v = _get(cfg, key)
    if isinstance(v, bool) or not isinstance(v, int) or (lo is not None and v < lo):
        raise ConfigError(key, v, allowed or (f"must be an integer >= {lo}" if lo is not None else "must be an integer"))
    return v


def _num(cfg, key: str, lo: float | None = None, hi: float | None = None, lo_open: bool = False,
         hi_open: bool = False, allowed: str | None = None) -> float:
    v = _get(cfg, key)
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and v == v and abs(v) != float("inf")
    if ok and lo is not None:
        ok = v > lo if lo_open else v >= lo
    if ok and hi is not None:
        ok = v < hi if hi_open else v <= hi
    if not ok:
        if allowed is None:
            left = "(" if lo_open else "["
            right = ")" if hi_open else "]"
            allowed = f"must be a number in {left}{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}{right}"
        raise ConfigError(key, v, allowed)
    return float(v)


def _choice(cfg, key: str, choices: tuple[str, ...]) -> str:
    v = _get(cfg, key)
    if v not in choices:
        raise ConfigError(key, v, "must be one of " + ", ".join(choices))
    return v


def _bool(cfg, key: str) -> bool:
    v = _get(cfg, key)
    if not isinstance(v, bool):
        raise ConfigError(key, v, "must be true or false")
    return v


def validate(cfg: DictConfig) -> DictConfig:
    """Check every key the run uses; fills ``source.design_size`` for the linear source. Returns cfg."""
    from collapse.engine import n_real_points

    _int(cfg, "generations")
    _int(cfg, "replicates")
    _int(cfg, "seed", lo=None)
    _choice(cfg, "precision", ("float32", "float64"))
    name = _get(cfg, "name")
    if not isinstance(name, str) or not name or "/" in name:
        raise ConfigError("name", name, "must be a non-empty string without '/'")
    synthetic = _choice(cfg, "loop.synthetic", ("replace", "accumulate", "accumulate_subsample"))
    _choice(cfg, "loop.real", ("fresh", "fixed"))
    frac = _num(cfg, "loop.real_fraction", 0.0, 1.0)
    samples = _int(cfg, "loop.samples")
    src = _choice(cfg, "source.name", tuple(SOURCE_KINDS))
    units, what = samples, "points"
    if SOURCE_KINDS[src] == "text":
        seg = _int(cfg, "source.segment", lo=2)
        if samples < seg:
            raise ConfigError("loop.samples", samples, f"counts tokens and must be >= source.segment={seg} (one segment)")
        units, what = samples // seg, f"segments of {seg} tokens"
    n_real = n_real_points(frac, units)
    if 0 < frac < 1 and n_real in (0, units):
        raise ConfigError("loop.real_fraction", frac,
                          f"rounds to {n_real} real {what} of {units} per batch; use 0, 1, or a fraction "
                          f"giving between 1 and {units - 1} real {what}")
    _num(cfg, "sampling.scale", 0.0, lo_open=True, allowed="must be a number > 0")
    if SOURCE_KINDS[src] == "text":
        _validate_decoding(cfg)

    fam = _choice(cfg, "model.name", tuple(FAMILY_SOURCES))
    if src not in FAMILY_SOURCES[fam]:
        raise ConfigError("model", fam, f"cannot fit source={src}; model={fam} fits source in "
                          + ", ".join(FAMILY_SOURCES[fam]))
    _validate_source(cfg, src, samples)
    _validate_model(cfg, fam, src, samples, synthetic)

    _int(cfg, "metrics.every")
    _bool(cfg, "metrics.sample_based")
    _int(cfg, "metrics.eval_samples", lo=10)
    _int(cfg, "metrics.sample_every")
    _int(cfg, "metrics.sample_replicates", lo=-1)
    _int(cfg, "metrics.draws", lo=0, allowed="must be an integer >= 0 (0 = no samples.npz)")
    _int(cfg, "metrics.heldout", lo=10)
    _num(cfg, "metrics.tail_level", 0.0, 1.0, lo_open=True, hi_open=True)
    _int(cfg, "metrics.tail_directions", lo=2)
    _int(cfg, "metrics.tail_samples", lo=100)
    _int(cfg, "metrics.repetition_n")
    _validate_curation(cfg)
    ev = cfg.metrics.eval_samples
    _int(cfg, "metrics.knn_k", allowed=f"must be an integer in [1, metrics.eval_samples - 1 = {ev - 1}]")
    _int(cfg, "metrics.dc_k", allowed=f"must be an integer in [1, metrics.eval_samples - 1 = {ev - 1}]")
    for key in ("metrics.knn_k", "metrics.dc_k"):
        if _get(cfg, key) >= ev:
            raise ConfigError(key, _get(cfg, key), f"must be an integer in [1, metrics.eval_samples - 1 = {ev - 1}]")
    _choice(cfg, "engine.path", ("auto", "samples", "stats"))
    _int(cfg, "engine.chunks")
    _num(cfg, "engine.max_pool_gib", 0.0, lo_open=True, allowed="must be a number > 0")
    _bool(cfg, "quiet")
    _int(cfg, "checkpoint.every", lo=0, allowed="must be an integer >= 0 (0 = no checkpoints)")
    if _get(cfg, "resume") is not None and not isinstance(_get(cfg, "resume"), str):
        raise ConfigError("resume", _get(cfg, "resume"), "must be the path of a run directory")
    if _choice(cfg, "logger.name", ("none", "wandb")) == "wandb":
        _choice(cfg, "logger.mode", ("offline", "online", "disabled"))
    return cfg


def text_units(cfg) -> tuple[int, int]:
    """(segments per batch, real segments per batch) of a text source: floor(loop.samples / segment), and
    n_real = floor(real_fraction * segments + 0.5)."""
    from collapse.engine import n_real_points

    units = cfg.loop.samples // cfg.source.segment
    return units, n_real_points(cfg.loop.real_fraction, units)


def _validate_decoding(cfg) -> None:
    if _get(cfg, "sampling.scale") != 1:
        raise ConfigError("sampling.scale", _get(cfg, "sampling.scale"), "must be 1 for text sources; use "
                          "sampling.temperature / top_k / top_p / repetition_penalty instead")
    _num(cfg, "sampling.temperature", 0.0, allowed="must be a number >= 0 (0 = greedy)")
    _int(cfg, "sampling.top_k", lo=0, allowed="must be an integer >= 0 (0 = off)")
    _num(cfg, "sampling.top_p", 0.0, 1.0, lo_open=True, allowed="must be a number in (0, 1] (1 = off)")
    _num(cfg, "sampling.repetition_penalty", 1.0, allowed="must be a number >= 1 (1 = off)")
    if _choice(cfg, "sampling.prompt", ("none", "real_prefix")) == "real_prefix":
        seg = cfg.source.segment
        _int(cfg, "sampling.prompt_length", allowed=f"must be an integer in [1, source.segment - 1 = {seg - 1}]")
        if cfg.sampling.prompt_length >= seg:
            raise ConfigError("sampling.prompt_length", cfg.sampling.prompt_length,
                              f"must be an integer in [1, source.segment - 1 = {seg - 1}]")


def prompt_length(cfg) -> int:
    """Prompt tokens per synthetic text segment (0 without a prompt)."""
    return int(cfg.sampling.prompt_length) if cfg.sampling.get("prompt", "none") == "real_prefix" else 0


def _path_key(cfg, key: str, optional: bool = False) -> None:
    v = _get(cfg, key)
    if (v is None and optional) or (isinstance(v, str) and v):
        return
    raise ConfigError(key, v, "must be a file path" + (" or null" if optional else ""))


def _validate_source(cfg, src: str, samples: int) -> None:
    if src in ("digits", "idx", "array"):
        _num(cfg, "source.heldout_share", 0.0, 1.0, lo_open=True, hi_open=True)
        if src == "idx":
            _path_key(cfg, "source.images")
            _path_key(cfg, "source.labels", optional=True)
        if src == "array":
            _path_key(cfg, "source.path")
    elif src == "ring":
        _int(cfg, "source.modes")
        _num(cfg, "source.radius", 0.0, lo_open=True, allowed="must be a number > 0")
        _num(cfg, "source.std", 0.0, lo_open=True, allowed="must be a number > 0")
    elif src == "grid":
        _int(cfg, "source.side")
        _num(cfg, "source.spacing", 0.0, lo_open=True, allowed="must be a number > 0")
        _num(cfg, "source.std", 0.0, lo_open=True, allowed="must be a number > 0")
    elif src == "text":
        corpus = _get(cfg, "source.corpus")
        if not isinstance(corpus, str) or not corpus:
            raise ConfigError("source.corpus", corpus, "must be kjv, stdlib or the path of a UTF-8 text file")
        _choice(cfg, "source.level", ("char", "word"))
        _int(cfg, "source.vocab_size", lo=2)
        _num(cfg, "source.heldout_share", 0.0, 1.0, lo_open=True, hi_open=True)
    elif src == "markov":
        _int(cfg, "source.vocab", lo=2)
        order = _int(cfg, "source.order")
        _num(cfg, "source.exponent", 0.0, allowed="must be a number >= 0")
        if cfg.source.segment <= order:
            raise ConfigError("source.segment", cfg.source.segment, f"must be > source.order={order}")
        if cfg.source.vocab ** order > 2**22:
            raise ConfigError("source.order", order, f"source.vocab^order = {cfg.source.vocab ** order} contexts; "
                              "keep it <= 2^22")
    if src in ("gaussian", "gmm", "student_t", "linear"):
        _int(cfg, "source.dim")
    if src == "gaussian":
        _num(cfg, "source.mean", allowed="must be a finite number")
        _num(cfg, "source.scale", 0.0, lo_open=True, allowed="must be a number > 0")
    elif src == "gmm":
        _int(cfg, "source.components")
        _num(cfg, "source.separation", 0.0, allowed="must be a number >= 0")
    elif src == "student_t":
        _num(cfg, "source.df", 0.0, lo_open=True, allowed="must be a number > 0")
    elif src == "zipf":
        _int(cfg, "source.categories", lo=2)
        _num(cfg, "source.exponent", 0.0, allowed="must be a number >= 0")
    elif src == "linear":
        if _get(cfg, "source.design_size") is None:
            cfg.source.design_size = samples
        t = _int(cfg, "source.design_size")
        d = cfg.source.dim
        if t != samples:
            raise ConfigError("source.design_size", t, f"must equal loop.samples={samples} (the batch is the design)")
        if t < d + 2:
            raise ConfigError("source.design_size", t, f"must be >= source.dim + 2 = {d + 2}")
        _num(cfg, "source.noise_var", 0.0, lo_open=True, allowed="must be a number > 0")
        _choice(cfg, "source.design", ("fixed", "fresh"))


def _validate_model(cfg, fam: str, src: str, samples: int, synthetic: str) -> None:
    if fam == "gaussian":
        _choice(cfg, "model.estimator", ("mle", "unbiased"))
        d = cfg.source.get("dim", 2)  # the 2-D toys (ring, grid) have no dim key
        if samples < d + 1:
            raise ConfigError("loop.samples", samples, f"must be >= source.dim + 1 = {d + 1} for a Gaussian fit")
    elif fam == "gmm":
        _int(cfg, "model.components")
        _int(cfg, "model.em_steps")
        if samples < cfg.model.components:
            raise ConfigError("loop.samples", samples, f"must be >= model.components = {cfg.model.components}")
    elif fam == "kde":
        bw = _get(cfg, "model.bandwidth")
        if not (bw in ("scott", "silverman") or (isinstance(bw, (int, float)) and not isinstance(bw, bool) and bw > 0)):
            raise ConfigError("model.bandwidth", bw, "must be scott, silverman or a number > 0")
    elif fam == "categorical":
        _num(cfg, "model.smoothing", 0.0, allowed="must be a number >= 0")
    elif fam == "linear_regression":
        _num(cfg, "model.ridge", 0.0, allowed="must be a number >= 0")
        _choice(cfg, "model.label_noise", ("fitted", "source"))
    elif fam == "ngram":
        order = _int(cfg, "model.order")
        if _choice(cfg, "model.smoothing", ("none", "add_k", "interpolated")) == "add_k":
            _num(cfg, "model.k", 0.0, lo_open=True, allowed="must be a number > 0 (smoothing=none is k = 0)")
        _num(cfg, "model.lam", 0.0, 1.0, lo_open=True)
        p = prompt_length(cfg)
        if 0 < p < order - 1:
            raise ConfigError("sampling.prompt_length", p, f"must be >= model.order - 1 = {order - 1} for an n-gram")
        if order >= cfg.source.segment:
            raise ConfigError("model.order", order, f"must be < source.segment={cfg.source.segment}")
    elif fam in ("vae", "diffusion"):
        if fam == "vae":
            _int(cfg, "model.latent", allowed="must be an integer >= 1 (the latent size)")
            lik = _choice(cfg, "model.likelihood", ("auto", "bernoulli", "gaussian"))
            if lik == "bernoulli" and SOURCE_KINDS[src] != "image":
                raise ConfigError("model.likelihood", lik, f"needs data in [0, 1] (an image source); source={src} "
                                  "is unbounded: use gaussian or auto")
        else:
            _int(cfg, "model.sampler_steps")
        _int(cfg, "model.hidden")
        _int(cfg, "model.steps")
        _int(cfg, "model.batch")
        _num(cfg, "model.lr", 0.0, lo_open=True, allowed="must be a number > 0")
        _int(cfg, "model.warmup", lo=0)
        _choice(cfg, "model.init", ("scratch", "warm_start"))
    elif fam == "transformer":
        _int(cfg, "model.layers")
        heads = _int(cfg, "model.heads")
        d = _int(cfg, "model.d_model")
        if d % heads:
            raise ConfigError("model.d_model", d, f"must be a multiple of model.heads={heads}")
        seg = cfg.source.segment
        _int(cfg, "model.context", lo=seg, allowed=f"must be an integer >= source.segment={seg} (the sequence length)")
        _int(cfg, "model.steps")
        _int(cfg, "model.batch")
        _num(cfg, "model.lr", 0.0, lo_open=True, allowed="must be a number > 0")
        _int(cfg, "model.warmup", lo=0)
        _num(cfg, "model.weight_decay", 0.0, allowed="must be a number >= 0")
        _choice(cfg, "model.init", ("scratch", "warm_start", "gen0"))
        if cfg.model.context > samples:
            raise ConfigError("model.context", cfg.model.context, f"is longer than the data: loop.samples={samples} "
                              "tokens per batch")


def _validate_curation(cfg) -> None:
    """The ``curation`` group and ``metrics.reward_mean`` (whether the source can score is checked when building)."""
    from collapse.curation import METHODS, SCORES

    v = _get(cfg, "metrics.reward_mean")
    if v not in ("auto", True, False):
        raise ConfigError("metrics.reward_mean", v, "must be auto, true or false")
    name = _choice(cfg, "curation.name", METHODS)
    _int(cfg, "curation.reward_draws")
    if name == "none":
        return
    if _choice(cfg, "curation.score", SCORES) == "detector":
        _int(cfg, "curation.detector.steps")
        _num(cfg, "curation.detector.lr", 0.0, lo_open=True, allowed="must be a number > 0")
        _num(cfg, "curation.detector.l2", 0.0, allowed="must be a number >= 0")
    if name in ("threshold", "importance"):
        over = _num(cfg, "curation.oversample", 1.0, allowed="must be a number >= 1 (candidates per kept point)")
    if name == "threshold":
        q = _num(cfg, "curation.quantile", 0.0, 1.0, hi_open=True)
        if over * (1.0 - q) < 1.0 - 1e-9:
            raise ConfigError("curation.oversample", over, f"keeps only the {1 - q:.0%} of candidates at or above "
                              f"curation.quantile={q}, fewer than the batch needs; must be >= 1 / (1 - quantile) = "
                              f"{1 / (1 - q):.4g}")
    if name == "best_of":
        _int(cfg, "curation.k", allowed="must be an integer >= 1 (candidates per kept point)")
    if name in ("pairwise", "importance"):
        _num(cfg, "curation.temperature", 0.0, lo_open=True, allowed="must be a number > 0")
    if name == "importance":
        _choice(cfg, "curation.resampling", ("multinomial", "systematic"))
    if _get(cfg, "source.name") == "linear" and _get(cfg, "source.design") == "fixed":
        raise ConfigError("source.design", "fixed", f"places every synthetic row at a fixed design point, so "
                          f"curation={name} has no extra candidates to choose from; use source.design=fresh")
    if _get(cfg, "engine.path") == "stats":
        raise ConfigError("engine.path", "stats", f"curation={name} scores candidate points, so it needs "
                          "engine.path=samples (or auto)")


def dtype_of(cfg) -> Any:
    return jnp.float64 if cfg.precision == "float64" else jnp.float32


def build_source(cfg):
    """The :class:`~collapse.sources.base.Source` of ``cfg.source`` (call inside the precision context)."""
    from collapse.sources import continuous, discrete, supervised

    s, dt, alpha = cfg.source, dtype_of(cfg), float(cfg.metrics.tail_level)
    if s.name == "gaussian":
        return continuous.gaussian(s.dim, float(s.mean), float(s.scale), alpha, dt)
    if s.name == "student_t":
        return continuous.student_t(s.dim, float(s.df), alpha, dt)
    if s.name == "gmm":
        return continuous.gmm(s.dim, s.components, float(s.separation), alpha, dt)
    if s.name == "zipf":
        return discrete.zipf(s.categories, float(s.exponent), dt)
    if s.name in ("text", "markov"):
        return _build_text_source(cfg)
    if s.name in ("ring", "grid"):
        from collapse.sources import toy
        if s.name == "ring":
            return toy.ring(s.modes, float(s.radius), float(s.std), alpha, dt)
        return toy.grid(s.side, float(s.spacing), float(s.std), alpha, dt)
    if s.name in ("digits", "idx", "array"):
        return _build_image_source(cfg)
    return supervised.linear(s.dim, s.design_size, float(s.noise_var), s.design, dt)


def _build_text_source(cfg):
    from collapse.sources import text as ts
    from collapse.text.corpus import CorpusError, build_corpus

    s = cfg.source
    units, n_real = text_units(cfg)
    if s.name == "markov":
        ctx = cfg.model.order - 1 if cfg.model.name == "ngram" else -1
        return ts.markov(s.vocab, s.order, float(s.exponent), s.segment, cfg.seed, ctx, prompt_length(cfg))
    try:
        corpus = build_corpus(s.corpus, s.level, s.vocab_size, s.segment, float(s.heldout_share), units, cfg.seed)
    except CorpusError as exc:
        raise ConfigError(exc.key, exc.value, exc.allowed) from None
    need = (cfg.generations - 1) * n_real if cfg.loop.real == "fresh" else 0
    if need > len(corpus.fresh):
        raise ConfigError("loop.real_fraction", cfg.loop.real_fraction,
                          f"fresh real text is exhausted: generations - 1 = {cfg.generations - 1} batches x {n_real} "
                          f"real segments = {need} segments, but the fresh pool of source.corpus={s.corpus} holds "
                          f"{len(corpus.fresh)} ({len(corpus.fresh) * s.segment} tokens); lower generations, "
                          "loop.real_fraction or loop.samples, or use loop.real=fixed")
    top_k = cfg.sampling.top_k
    if top_k > corpus.vocab_size:
        raise ConfigError("sampling.top_k", top_k, f"must be <= the vocabulary size {corpus.vocab_size} (0 = off)")
    return ts.text(corpus, int(cfg.metrics.heldout), prompt_length(cfg), dtype_of(cfg))


def _build_image_source(cfg):
    """A finite image source, split once from ``seed``, with a feature classifier when it has labels."""
    import dataclasses

    from collapse.sources import images as im

    s = cfg.source
    try:
        if s.name == "digits":
            x, y, _shape = im.load_digits_data()
        elif s.name == "idx":
            x, y, _shape = im.load_idx_data(s.images, s.labels)
        else:
            x, y, _shape = im.load_array_data(s.path)
        data = im.split_images(x, y, float(s.heldout_share), cfg.loop.samples, cfg.seed)
    except im.ImageDataError as exc:
        raise ConfigError(exc.key, exc.value, exc.allowed) from None
    from collapse.engine import n_real_points
    n_real = n_real_points(cfg.loop.real_fraction, cfg.loop.samples)
    need = (cfg.generations - 1) * n_real if cfg.loop.real == "fresh" else 0
    if need > len(data.fresh):
        raise ConfigError("loop.real_fraction", cfg.loop.real_fraction,
                          f"fresh real images are exhausted: generations - 1 = {cfg.generations - 1} batches x {n_real} "
                          f"real images = {need}, but the fresh pool of source={s.name} holds {len(data.fresh)}; lower "
                          "generations, loop.real_fraction or loop.samples, or use loop.real=fixed")
    src = im.image_source(data, int(cfg.metrics.heldout), dtype_of(cfg), name=s.name)
    if data.classes > 1:
        clf = feature_classifier(s.name, data, cfg.seed)
        src = dataclasses.replace(src, data={**src.data, "classifier": clf.params},
                                  info={**src.info, "classifier_accuracy": clf.accuracy, "classifier": clf})
    return src


def feature_classifier(name: str, data, seed: int):
    """The source's feature classifier: trained once per (source, split) in this process and cached."""
    key = (name, data.heldout.shape, data.train0.shape, data.fresh.shape, seed,
           float(data.heldout.sum()), float(data.train0[:10].sum()))
    if key not in _CLASSIFIERS:
        import numpy as np

        from collapse.metrics.features import train_classifier
        parts = [(data.train0, data.y_train0), (data.fresh, data.y_fresh)]
        x = np.concatenate([p[0] for p in parts if len(p[0])])
        y = np.concatenate([p[1] for p in parts if len(p[0])])
        _CLASSIFIERS[key] = train_classifier(x, y, data.heldout, data.y_heldout, data.classes, seed=seed)
    return _CLASSIFIERS[key]


_CLASSIFIERS: dict = {}


def _ngram_max_table() -> int:
    from collapse.families.ngram import MAX_TABLE
    return MAX_TABLE


def decoding_of(cfg):
    """The :class:`~collapse.text.decoding.Decoding` of ``cfg.sampling``."""
    from collapse.text.decoding import Decoding

    sm = cfg.sampling
    return Decoding(temperature=float(sm.temperature), top_k=int(sm.top_k), top_p=float(sm.top_p),
                    repetition_penalty=float(sm.repetition_penalty))


def build_family(cfg, source):
    """The :class:`~collapse.families.base.Family` of ``cfg.model`` for ``source``."""
    m = cfg.model
    if m.name == "gaussian":
        from collapse.families.gaussian import gaussian
        return gaussian(source.dim, m.estimator)
    if m.name == "gmm":
        from collapse.families.gmm import gmm
        return gmm(components=m.components, em_steps=m.em_steps, dim=source.dim)
    if m.name == "kde":
        from collapse.families.kde import kde
        bw = m.bandwidth if isinstance(m.bandwidth, str) else float(m.bandwidth)
        return kde(bandwidth=bw, dim=source.dim, max_points=_kde_points(cfg))
    if m.name == "ngram":
        from collapse.families.ngram import ngram
        if source.dim ** m.order > _ngram_max_table():
            raise ConfigError("model.order", m.order, f"a table of V^order = {source.dim}^{m.order} entries is too "
                              f"large (max {_ngram_max_table()}); lower model.order or the vocabulary")
        return ngram(source.dim, m.order, m.smoothing, float(m.k), float(m.lam), decoding_of(cfg), source.segment,
                     prompt_length(cfg), dtype_of(cfg))
    if m.name == "vae":
        from collapse.families.vae import vae
        lik = m.likelihood if m.likelihood != "auto" else ("bernoulli" if source.kind == "image" else "gaussian")
        return vae(source.dim, latent=m.latent, hidden=m.hidden, likelihood=lik, steps=m.steps, batch=m.batch,
                   lr=float(m.lr), warmup=m.warmup, init=m.init, dtype=dtype_of(cfg))
    if m.name == "diffusion":
        from collapse.families.diffusion import diffusion
        return diffusion(source.dim, hidden=m.hidden, steps=m.steps, batch=m.batch, lr=float(m.lr), warmup=m.warmup,
                         sampler_steps=m.sampler_steps, init=m.init, bounded=source.kind == "image",
                         dtype=dtype_of(cfg))
    if m.name == "transformer":
        from collapse.families.transformer import transformer
        return transformer(source.dim, source.segment, layers=m.layers, d_model=m.d_model, heads=m.heads,
                           context=m.context, steps=m.steps, batch=m.batch, lr=float(m.lr), warmup=m.warmup,
                           weight_decay=float(m.weight_decay), init=m.init, decoding=decoding_of(cfg),
                           prompt=prompt_length(cfg), dtype=dtype_of(cfg))
    if m.name == "categorical":
        from collapse.families.categorical import categorical
        return categorical(source.dim, float(m.smoothing), dtype_of(cfg))
    from collapse.families.linear_regression import linear_regression
    return linear_regression(source.dim, float(m.ridge), m.label_noise, float(cfg.source.noise_var))


def _kde_points(cfg) -> int:
    """Rows the KDE is fit on: the whole pool under accumulate, else one batch."""
    if cfg.loop.synthetic == "accumulate":
        return cfg.generations * cfg.loop.samples
    return cfg.loop.samples


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


def config_digest(cfg) -> str:
    """A hash of everything that determines a run's numbers (for checkpoints)."""
    import hashlib
    import json

    items = {k: v for k, v in flat_items(OmegaConf.to_container(cfg, resolve=True)).items()
             if k.split(".")[0] not in RESULT_NEUTRAL}
    return hashlib.sha256(json.dumps(items, sort_keys=True, default=str).encode()).hexdigest()[:16]
