"""Packaging: a built wheel carries the config tree where ``collapse.paths`` looks for it, and a
non-editable install of that wheel finds ``config.yaml``. Also: no tracked file cites a file outside the
repository."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built (no isolation, no network) from a copy of the sources, so the build leaves nothing in
    the working tree (build/, *.egg-info)."""
    pytest.importorskip("setuptools", minversion="77")
    pytest.importorskip("wheel")
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("collapse", "conf"):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    dist = tmp / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(dist)], check=True, capture_output=True, text=True)
    (whl,) = dist.glob("collapse-*.whl")
    return whl


def test_config_tree_is_top_level_in_the_checkout():
    from collapse.paths import CONF_DIR

    assert CONF_DIR == ROOT / "conf"
    assert not (ROOT / "collapse" / "conf").exists()


def test_wheel_carries_the_config_tree(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"collapse/{p.relative_to(ROOT).as_posix()}" for p in (ROOT / "conf").rglob("*.yaml")}
    assert "collapse/conf/config.yaml" in expected
    assert any(n.startswith("collapse/conf/model/") for n in expected)
    assert any(n.startswith("collapse/conf/experiment/") for n in expected)
    assert expected <= names, sorted(expected - names)
    assert "collapse/paths.py" in names and "collapse/config.py" in names
    assert not any(n.startswith("conf/") for n in names)  # nothing installed as a top-level `conf`


def test_installed_wheel_finds_config_yaml(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target",
                    str(target), str(wheel)], check=True, capture_output=True, text=True)
    code = ("from collapse.paths import CONF_DIR; import collapse; "
            "print(CONF_DIR); print(collapse.__file__); print((CONF_DIR / 'config.yaml').is_file())")
    env = {**os.environ, "PYTHONPATH": str(target)}
    # PYTHONPATH comes before the editable install's finder (appended to sys.meta_path), so the wheel's copy
    # answers; the printed collapse.__file__ checks that
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, check=True,
                         capture_output=True, text=True).stdout.split()
    assert out == [str((target / "collapse" / "conf").resolve()),
                   str(target / "collapse" / "__init__.py"), "True"], out


# A comment, docstring, notebook or document states the fact itself or points at a file inside the repository,
# never at a design note outside it.
OUTSIDE_CITATIONS = re.compile(
    r"\bCONTRACT\b"                                                   # the outside contract, in capitals
    r"|\b(?:CONTRACT|REFERENCE|ARCHITECTURE|DATA|DESIGN|SPEC)\.md\b"  # design notes that are not in the repo
    r"|\bshared/design\b|(?:\.\./)+shared\b")                         # the folder beside the checkout
NOT_CHECKED = {"LICENSE", "tests/test_packaging.py"}  # the MIT text says "ACTION OF CONTRACT"; this file


def _tracked_text_files() -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    files = []
    for name in out.decode().split("\0"):
        path = ROOT / name
        if name and name not in NOT_CHECKED and path.is_file():
            head = path.read_bytes()[:8192]
            if b"\0" not in head:
                files.append(path)
    return files


def test_no_file_cites_a_file_outside_the_repository():
    hits = []
    for path in _tracked_text_files():
        for i, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if OUTSIDE_CITATIONS.search(line):
                hits.append(f"{path.relative_to(ROOT)}:{i}: {line.strip()[:160]}")
    assert not hits, "citations of files outside the repository:\n" + "\n".join(hits)
