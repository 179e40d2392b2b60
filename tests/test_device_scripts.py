"""The accelerator checks of benchmarks/device/ run on CPU at a tiny size, so a session lent a device finds a
script that works: its JSON and Markdown outputs are written with a measured row per replicate count."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_lm_finetune_runs_tiny_on_cpu_and_writes_its_table(tmp_path):
    p = subprocess.run([sys.executable, str(ROOT / "benchmarks/device/lm_finetune.py"), "--tiny", "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert p.returncode == 0, p.stderr[-3000:]
    result = json.loads((tmp_path / "lm_finetune.json").read_text())
    assert [r["replicates"] for r in result["rows"]] == [1, 2]
    assert all(r["tokens_per_s"] > 0 and 0 < r["mfu"] < 1 and r["final_loss_mean"] > 0 for r in result["rows"])
    assert result["parameters"] == 141_056 and result["estimated_replicates_fit"] >= 1
    table = (tmp_path / "lm_finetune.md").read_text().splitlines()
    assert table[2].startswith("| replicates | tokens/s | MFU") and len(table) == 6


def test_the_device_check_runs_tiny_on_cpu_and_writes_json_and_markdown(tmp_path):
    p = subprocess.run([sys.executable, str(ROOT / "benchmarks/device/run_all.py"), "--tiny", "--out", str(tmp_path),
                        "--parts", "gaussian", "sweep", "neural", "--neural-replicates", "1", "--sweep-points", "2"],
                       capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert p.returncode == 0, p.stderr[-3000:]
    result = json.loads((tmp_path / "device_check.json").read_text())
    assert result["tiny"] and result["platform"] == "cpu" and not result["skipped"]
    assert [r["replicates"] for r in result["parts"]["gaussian"]] == [1000, 10_000]
    assert all(r["run_s"] > 0 and 0 < r["final_var_ratio_mean"] < 2 for r in result["parts"]["gaussian"])
    sweep = result["parts"]["sweep"]
    assert sweep["points"] == 2 and sweep["max_rel_diff_final_var_ratio"] <= 1e-6  # the sweep equals its runs
    assert [(r["model"], r["replicates"]) for r in result["parts"]["neural"]] == [("vae", 1), ("transformer", 1)]
    assert all(r["s_per_generation"] > 0 for r in result["parts"]["neural"])
    table = (tmp_path / "device_check.md").read_text()
    assert "| 10,000 x 50 |" in table and "| 2 separate runs |" in table and "| transformer | 1 |" in table
