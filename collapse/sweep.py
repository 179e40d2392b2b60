"""Vectorised sweeps: ``sweep.<key>=[v1,v2,...]`` runs every point of a grid in one compiled program.

The points (the Cartesian product of the swept lists, first key slowest) become one more batch axis next to
the replicates: row (p, r) is replicate r of point p, with the same key ``fold_in(key(seed_p), r)`` it has in
the single run of point p, so each point equals that single run to float tolerance. Only keys that leave every
array shape and the program itself unchanged can be vectorised (:data:`SWEEPABLE`); any other key is a Hydra
multirun (``collapse -m key=v1,v2``), one job per value.
"""
from __future__ import annotations

import dataclasses
import itertools
from typing import Any, Iterable

from omegaconf import DictConfig, OmegaConf

from collapse.errors import ConfigError

SWEEPABLE = {
    "seed": "the replicates' random keys",
    "sampling.scale": "the sampling bias (a traced scalar)",
    "loop.real_fraction": "the real share of each batch (real and synthetic rows selected by position)",
    "loop.real_weight": "the real part's weight in each fit (a traced scalar in the row weights)",
}


def rewrite_overrides(overrides: Iterable[str]) -> list[str]:
    """``sweep.<key>=...`` -> ``+sweep.<key>=...`` (``sweep`` is an open dict, so its keys are added)."""
    return [f"+{o}" if o.startswith("sweep.") else o for o in overrides]


def _leaves(node, prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in node.items():
        if isinstance(v, dict):
            out.update(_leaves(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def axes(cfg: DictConfig) -> dict[str, list]:
    """{dotted key: values} of the swept keys (empty for a plain run); bad keys raise :class:`ConfigError`."""
    node = cfg.get("sweep")
    if not node:
        return {}
    allowed = ", ".join(SWEEPABLE)
    out = {}
    for key, values in _leaves(OmegaConf.to_container(node, resolve=True)).items():
        name = f"sweep.{key}"
        if OmegaConf.select(cfg, key, default="__missing__") == "__missing__" or key.startswith("sweep"):
            raise ConfigError(name, values, f"unknown key {key!r}; a vectorised sweep can vary {allowed}")
        if key not in SWEEPABLE:
            raise ConfigError(name, values, f"{key} changes array shapes or the compiled program, so it cannot be "
                                f"vectorised (sweepable: {allowed}); run one job per value with Hydra multirun: "
                                f"collapse -m {key}=v1,v2,...")
        if not isinstance(values, list) or not values or any(isinstance(v, (list, dict)) for v in values):
            raise ConfigError(name, values, f"must be a non-empty list of values, e.g. {name}=[0,0.1,0.5]")
        out[key] = values
    return out


def grid(sweep_axes: dict[str, list]) -> list[dict[str, Any]]:
    """Every point of the grid, first key slowest: [{key: value}, ...]."""
    keys = list(sweep_axes)
    return [dict(zip(keys, vals)) for vals in itertools.product(*(sweep_axes[k] for k in keys))]


def point_config(cfg: DictConfig, point: dict[str, Any]) -> DictConfig:
    """The config of one point: the sweep's config with the point's values set and no sweep."""
    out = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    out.sweep = {}
    for key, value in point.items():
        OmegaConf.update(out, key, value, merge=False)
    return out


def label(point: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in point.items())


def check_source(sweep_axes: dict[str, list], source, family) -> None:
    """Refuse axes that would change data shared by all rows (seeded finite data) or row positions."""
    name = f"source={source.name}"
    finite = source.real_batch is not None
    if "seed" in sweep_axes and (finite or source.data):
        raise ConfigError("sweep.seed", sweep_axes["seed"],
                            f"{name} draws its shared data (split, chain or classifier) from the seed, one copy for "
                            f"all rows; run one job per seed with collapse -m seed=...")
    if "loop.real_fraction" in sweep_axes and (finite or source.kind == "supervised"):
        why = "reads real data from a finite pool in order" if finite else "places rows at fixed design positions"
        raise ConfigError("sweep.loop.real_fraction", sweep_axes["loop.real_fraction"],
                            f"{name} {why}, so the real share changes which rows are read; run one job per value "
                            f"with collapse -m loop.real_fraction=...")


def dynamic_values(cfgs: list[DictConfig], specs: list, sweep_axes: dict[str, list]) -> dict[str, list]:
    """The per-point inputs of the engine ({"seed", "n_real", "scale", "real_weight"}: those swept); every
    other part of the loop must be the same at every point."""
    # curation: one config for every point (never swept), but each point builds its own record of functions
    def shared(spec):
        weight = None if spec.real_weight is None else 0.0
        return dataclasses.replace(spec, n_real=0, scale=1.0, curation=None, real_weight=weight)

    base = shared(specs[0])
    for cfg, spec in zip(cfgs[1:], specs[1:]):
        other = shared(spec)
        if other != base:
            diff = [f.name for f in dataclasses.fields(base) if getattr(base, f.name) != getattr(other, f.name)]
            raise ConfigError("sweep", dict(sweep_axes), f"the points need different programs ({', '.join(diff)} "
                                "differ, e.g. engine.path=auto picks another path); use collapse -m instead")
    out: dict[str, list] = {}
    if "seed" in sweep_axes:
        out["seed"] = [int(c.seed) for c in cfgs]
    if "loop.real_fraction" in sweep_axes:
        out["n_real"] = [s.n_real for s in specs]
    if "sampling.scale" in sweep_axes:
        out["scale"] = [s.scale for s in specs]
    if "loop.real_weight" in sweep_axes:
        out["real_weight"] = [s.real_weight for s in specs]
    return out
