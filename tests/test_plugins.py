"""Plug-ins from outside the package: the Laplace family and the spread_ratio metric of
``examples/plugins/laplace`` (walked through in docs/extending.md), copied to a temporary folder outside the
package, run through the CLI and through ``collapse.simulate`` with no edit to ``collapse/``."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import collapse
from collapse import components
from collapse.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "plugins" / "laplace"
RUN = ("hydra.searchpath=[file://./conf]", "generations=4", "replicates=64", "quiet=true",
       "metrics.sample_based=false", "metrics.draws=0")


@pytest.fixture
def plugin_dir(tmp_path, monkeypatch):
    where = tmp_path / "my_project"
    shutil.copytree(EXAMPLE, where)
    monkeypatch.chdir(where)
    yield where
    if "laplace_metrics" in sys.modules:  # other tests must not see the user's metric
        from collapse.metrics.registry import unregister
        unregister(sys.modules["laplace_metrics"].spread_ratio)
    for name in ("laplace_family", "laplace_metrics"):
        sys.modules.pop(name, None)


def test_laplace_family_runs_through_the_cli(plugin_dir):
    cmd = [sys.executable, "-m", "collapse", "model=laplace", "plugins=[laplace_metrics]", *RUN]
    out = subprocess.run(cmd, cwd=plugin_dir, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    (run,) = plugin_dir.glob("runs/default/*/*/summary.json")
    summary = json.loads(run.read_text())
    assert summary["status"] == "finished"
    df = pd.read_parquet(run.parent / "metrics.parquet")
    assert {"var_ratio", "tail_mass", "kl_true", "spread_ratio"} <= set(df.columns)
    assert Path(collapse.__file__).resolve().parent not in plugin_dir.parents


def test_laplace_family_through_simulate_matches_its_theory(plugin_dir):
    """Generation 0 is fit on 100 N(0, 1) points: the Laplace MLE has variance 2 b^2 with b = E|X - median|
    -> sqrt(2/pi), so var_ratio -> 4/pi at large n (here within its standard error over replicates plus the
    O(1/n) bias of the MAD); the plug-in metric is the draws' std over the truth's, so near sqrt(var_ratio)."""
    res = collapse.simulate("model=laplace", "plugins=[laplace_metrics]", *RUN)
    df = res.metrics
    g0 = df[df["generation"] == 0]
    v = g0["var_ratio"].to_numpy()
    se = v.std(ddof=1) / np.sqrt(len(v))
    assert abs(v.mean() - 4 / np.pi) < 4 * se + 4 / np.pi * 0.03, (v.mean(), se)
    s = g0["spread_ratio"].to_numpy()
    assert abs(np.median(s) - np.sqrt(np.median(v))) < 0.1
    assert res.config.model.module == "laplace_family"


def test_adding_a_metric_is_one_function_in_one_file(plugin_dir):
    """The metric file holds one decorated function; a fresh process without ``plugins`` has no such column
    (a registered metric stays registered for the rest of its process)."""
    text = (plugin_dir / "laplace_metrics.py").read_text()
    assert text.count("@metric(") == 1 and text.count("\ndef ") == 1
    code = ("import sys, collapse; df = collapse.simulate(*sys.argv[1:]).metrics; "
            "print('spread_ratio' in df.columns)")
    for plugins, expected in (((), "False"), (("plugins=[laplace_metrics]",), "True")):
        out = subprocess.run([sys.executable, "-c", code, "model=laplace", *plugins, *RUN], cwd=plugin_dir,
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        assert out.stdout.strip().splitlines()[-1] == expected


@pytest.mark.parametrize("overrides, line", [
    (("model=laplace", "model.min_scale=0"), "model.min_scale=0: must be a number > 0"),
    (("plugins=[no_such_module]",), "plugins=['no_such_module']: no module no_such_module"),
])
def test_plugin_bad_input_is_one_line(plugin_dir, overrides, line):
    with pytest.raises(ConfigError, match=line.replace("[", r"\[").replace("]", r"\]")):
        collapse.simulate(*overrides, *RUN)
    out = subprocess.run([sys.executable, "-m", "collapse", *overrides, *RUN], cwd=plugin_dir, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 2 and line in out.stderr and not (plugin_dir / "runs").exists()


def test_a_yaml_without_a_module_names_the_known_families(plugin_dir):
    (plugin_dir / "conf" / "model" / "mystery.yaml").write_text("name: mystery\n")
    with pytest.raises(ConfigError, match="no module collapse.families.mystery") as err:
        collapse.simulate("model=mystery", *RUN)
    known = str(err.value).split("known: ", 1)[1].split(", ")
    shipped = sorted(p.stem for p in (Path(collapse.__file__).parent / "families").glob("*.py")
                     if p.stem not in ("__init__", "base", "training"))
    assert known == shipped, known  # every family module of the package, sorted


def test_every_component_of_the_package_declares_itself():
    from collapse.config import CONF_DIR

    for group in ("source", "model", "curation"):
        yamls = sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))
        assert components.known(group) == yamls, group


def test_the_laplace_family_passes_the_contract_checker(plugin_dir):
    from collapse.testing import check_config

    report = check_config("model=laplace", "hydra.searchpath=[file://./conf]", "loop.samples=64")
    assert report.ok, report.failures
    assert {"mask_garbage", "mask_padding", "scan", "key_dependence", "gibbs_real", "gibbs_own"} <= set(report.passed)
