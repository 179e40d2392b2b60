"""The ``collapse`` command: validate, then hand over to a Hydra app over ``conf/``.

Single runs are composed and validated before Hydra starts, so a bad value exits with one line and
code 2 before any run directory exists. Multirun jobs (``-m``) validate inside each job.
"""
from __future__ import annotations

import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from collapse import config as C

INFO_FLAGS = ("--help", "-h", "--hydra-help", "--cfg", "-c", "--info", "-i", "--version", "--shell-completion", "-sc")


def _fail(msg: str) -> "None":
    print(f"collapse: error: {msg}", file=sys.stderr)
    raise SystemExit(2)


def headline(res) -> list[str]:
    """A few lines that say what the run showed: generation 0 vs the last generation, with theory."""
    s = res.summary
    df = res.metrics
    first = df[df["generation"] == 0]
    keys = [k for k in ("var_ratio", "mean_err", "tail_mass", "kl_true", "ppl_real", "rare_mass", "distinct_4",
                        "frechet", "class_tv", "mode_coverage", "support", "entropy", "test_error", "recall")
            if k in s["metrics"] and s["metrics"][k]["mean"] is not None]
    lines = []
    for k in keys[:4]:
        m = s["metrics"][k]
        g0 = first[k].mean()
        ci = f" [{m['lo']:.4g}, {m['hi']:.4g}]" if m["lo"] is not None else ""
        th = f"  (theory {s['theory'][k]:.4g})" if k in s.get("theory", {}) else ""
        lines.append(f"  {k:>10}: generation 0 {g0:.4g} -> generation {s['generation']} mean {m['mean']:.4g}{ci}, "
                     f"median {m['median']:.4g}{th}")
    return lines


@hydra.main(config_path=str(C.CONF_DIR), config_name="config", version_base="1.3")
def _app(cfg: DictConfig) -> None:
    import logging

    from collapse.api import run

    logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)
    out = HydraConfig.get().runtime.output_dir
    cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    cfg.pop("hydra", None)
    hc = HydraConfig.get()
    group = None
    if str(hc.mode) == "RunMode.MULTIRUN":
        from pathlib import Path
        group = "/".join(Path(hc.sweep.dir).parts[-3:])  # <name>/multirun/<timestamp>
    try:
        res = run(cfg, run_dir=out, group=group)
    except C.ConfigError as exc:
        _fail(str(exc))
    s = res.summary
    print(f"collapse: finished '{cfg.name}': {cfg.replicates} replicates x {cfg.generations} generations "
          f"of model={cfg.model.name} on source={cfg.source.name} ({cfg.loop.synthetic}, real_fraction="
          f"{cfg.loop.real_fraction}) in {s['wall_time_s']:.1f} s (compile {s['compile_s']:.1f} s); "
          f"mean and 95% interval over replicates:")
    for line in headline(res):
        print(line)
    if res.samples:
        last = [x for x in res.samples if x["generation"] == s["generation"]][:1]
        for x in last:
            print(f"  sample of generation {x['generation']}: {x['text'][:100]!r}  (more in samples.jsonl)")
    from pathlib import Path
    if (Path(out) / "samples").is_dir():
        print(f"  sample pictures per generation: {Path(out) / 'samples'}")
    print(f"  run directory: {out}")


def main(argv: list[str] | None = None) -> None:
    import warnings
    warnings.filterwarnings("ignore", message=".*is validated against ConfigStore schema.*")  # submitit plugin
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "report":
        _fail("'collapse report' is not available yet (it arrives with the figures issue)")
    multirun = "-m" in argv or "--multirun" in argv
    info = any(a in INFO_FLAGS or a.startswith("--cfg") for a in argv)
    overrides = [a for a in argv if not a.startswith("-")]
    try:
        C.check_group_overrides(overrides)
        if not multirun and not info:
            cfg = C.compose([o for o in overrides if not o.lstrip("+~").startswith(("hydra.", "hydra/"))])
            C.validate(cfg)
            from collapse.api import prepare, precision_context
            with precision_context(cfg):
                prepare(cfg)  # also checks the engine path and the pool size
    except C.ConfigError as exc:
        _fail(str(exc))
    sys.argv = [sys.argv[0] if sys.argv else "collapse", *argv]
    _app()


if __name__ == "__main__":
    main()
