"""logger=wandb for real, in offline mode: the run's files are read back and hold every generation."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import collapse
from collapse.wandb_log import read_offline_config, read_offline_history


def test_offline_wandb_history_holds_every_generation_with_interval_and_histogram(tmp_path):
    res = collapse.simulate("logger=wandb", "generations=5", "replicates=6", "metrics.sample_based=false",
                            "name=wb", run_dir=tmp_path / "run")
    wdir = Path(res.summary["wandb_dir"]).parent  # .../wandb/offline-run-*/files -> the run folder
    assert wdir.name.startswith("offline-run-") and wdir.is_relative_to(tmp_path / "run")
    rows = [r for r in read_offline_history(wdir) if "var_ratio/mean" in r]
    assert [r["_step"] for r in rows] == [0, 1, 2, 3, 4]
    df = res.metrics
    for r in rows:
        vals = df[df["generation"] == r["_step"]]["var_ratio"]
        assert abs(r["var_ratio/mean"] - vals.mean()) < 1e-6 * max(1.0, abs(vals.mean()))
        assert r["var_ratio/lo"] < r["var_ratio/mean"] < r["var_ratio/hi"]
        assert r["var_ratio/median"] == pytest.approx(float(np.median(vals)), rel=1e-6)
        assert 0 <= r["var_ratio/median_lo"] <= r["var_ratio/median"] <= r["var_ratio/median_hi"]
        assert r["var_ratio/lo"] >= 0 and r["var_ratio/q25"] <= r["var_ratio/q75"]  # a non-negative metric
        assert r["samples/_type"] == "histogram" and sum(r["samples/values"]) == 1000  # 1000 model draws
    cfg = read_offline_config(wdir)
    assert cfg["loop"]["real_fraction"] == 0.0 and cfg["generations"] == 5 and "git_commit" in cfg
    s = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert s["status"] == "finished" and s["wandb_dir"]


def test_wandb_failing_to_start_does_not_fail_the_run(tmp_path):
    p = subprocess.run([str(Path(sys.executable).parent / "collapse"), "logger=wandb", "logger.mode=online",
                        "generations=3", "replicates=4", "metrics.sample_based=false", "name=wbfail"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=300,
                       env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "WANDB_API_KEY": "",
                            "WANDB_INIT_TIMEOUT": "5", "WANDB_BASE_URL": "http://127.0.0.1:9"})
    assert p.returncode == 0, p.stderr
    assert p.stderr.count("wandb could not start") == 1
    (run,) = [s.parent for s in (tmp_path / "runs" / "wbfail").rglob("summary.json")]
    s = json.loads((run / "summary.json").read_text())
    assert s["status"] == "finished" and any(e["event"] == "wandb_failed" for e in s["events"])
