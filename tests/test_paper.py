"""paper/: `make_paper.py --quick` writes every file that main.tex includes, every macro it uses is generated,
and no simulated number is typed into main.tex by hand."""
from __future__ import annotations

import hashlib
import math
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT / "paper"
MAIN = PAPER / "main.tex"

# Upper-case control sequences of LaTeX itself that main.tex may use; every other one must come from numbers.tex.
LATEX_CAPITALISED = {"LaTeX", "TeX", "Bigl", "Bigr", "Big", "Bigg", "Biggl", "Biggr", "Gamma", "Vert"}
NUM = r"-?\d+(?:\.\d+)?(?:\\times10\^\{-?\d+\})?"
INTERVAL = re.compile(rf"^({NUM})\\;\[({NUM}),\\,({NUM})\]$")


def strip_comments(tex: str) -> str:
    return "\n".join(re.sub(r"(?<!\\)%.*", "", line) for line in tex.splitlines())


def to_float(s: str) -> float:
    m = re.fullmatch(r"(-?\d+(?:\.\d+)?)(?:\\times10\^\{(-?\d+)\})?", s)
    assert m, s
    return float(m.group(1)) * (10.0 ** int(m.group(2)) if m.group(2) else 1.0)


def unwrap(body: str) -> str:
    m = re.fullmatch(r"\\ensuremath\{(.*)\}", body)
    return m.group(1) if m else body


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    """Run make_paper.py --quick once into a temporary folder (seeded with stale files it must replace)."""
    tmp = tmp_path_factory.mktemp("paper")
    out, runs = tmp / "generated", tmp / "runs"
    out.mkdir()
    stale = [out / "numbers.tex", out / "fig_stale.pdf"]
    for p in stale:
        p.write_text("stale\n")
        os.utime(p, (time.time() - 3600, time.time() - 3600))
    start = time.time()
    proc = subprocess.run([sys.executable, str(PAPER / "make_paper.py"), "--quick", "--out", str(out),
                           "--runs", str(runs)], capture_output=True, text=True, timeout=900, cwd=tmp)
    assert proc.returncode == 0, f"make_paper.py failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return {"out": out, "runs": runs, "tmp": tmp, "start": start, "stdout": proc.stdout}


def included_files(tex: str) -> list[tuple[str, str]]:
    """(kind, path) of every \\input / \\include / \\includegraphics in ``tex`` (comments stripped)."""
    tex = strip_comments(tex)
    found = [("input", p) for p in re.findall(r"\\(?:input|include)\{([^}]*)\}", tex)]
    found += [("graphics", p) for p in re.findall(r"\\includegraphics(?:\[[^\]]*\])?\{([^}]*)\}", tex)]
    return found


def resolve(out: Path, kind: str, path: str) -> Path:
    assert path.startswith("generated/"), f"main.tex includes {path!r}, which is not a generated file"
    p = out / path.removeprefix("generated/")
    if p.suffix:
        return p
    for ext in ((".tex",) if kind == "input" else (".pdf", ".png")):
        if p.with_suffix(ext).exists():
            return p.with_suffix(ext)
    return p.with_suffix(".tex" if kind == "input" else ".pdf")


def all_sources(out: Path) -> dict[str, str]:
    """main.tex and every generated .tex it includes (recursively), by name."""
    sources, todo = {"main.tex": MAIN.read_text(encoding="utf-8")}, ["main.tex"]
    while todo:
        for kind, path in included_files(sources[todo.pop()]):
            f = resolve(out, kind, path)
            if kind == "input" and f.name not in sources and f.exists():
                sources[f.name] = f.read_text(encoding="utf-8")
                todo.append(f.name)
    return sources


def test_every_included_file_is_written_by_this_run(build):
    out, start = build["out"], build["start"]
    refs = [(k, p) for src in all_sources(out).values() for k, p in included_files(src)]
    assert any(k == "graphics" for k, _ in refs) and any(k == "input" for k, _ in refs)
    for kind, path in refs:
        f = resolve(out, kind, path)
        assert f.is_file(), f"{path} (included by main.tex) was not written: {f}"
        assert f.stat().st_size > 0, f"{f} is empty"
        assert f.stat().st_mtime >= start - 1e-3, f"{f} was not written by this run"
    assert not (out / "fig_stale.pdf").exists(), "a stale generated file survived the build"
    # every figure also comes as PNG (collapse.plots.save writes both)
    for kind, path in refs:
        if kind == "graphics":
            assert resolve(out, kind, path).with_suffix(".png").is_file()


def test_manifest_lists_every_generated_file(build):
    out = build["out"]
    lines = [ln for ln in (out / "MANIFEST.txt").read_text().splitlines() if ln and not ln.startswith("#")]
    listed = {}
    for ln in lines:
        name, size, digest = ln.split()
        f = out / name
        assert f.is_file() and f.stat().st_size == int(size), ln
        assert hashlib.sha256(f.read_bytes()).hexdigest() == digest, ln
        listed[name] = digest
    on_disk = {p.name for p in out.iterdir() if p.is_file()} - {"MANIFEST.txt"}
    assert on_disk == set(listed), f"MANIFEST differs from the folder: {on_disk ^ set(listed)}"
    for src in all_sources(out).values():
        for kind, path in included_files(src):
            assert resolve(out, kind, path).name in listed, path


def test_macros_used_are_defined_and_look_like_numbers(build):
    out = build["out"]
    numbers = (out / "numbers.tex").read_text(encoding="utf-8")
    defined = dict(re.findall(r"^\\newcommand\{\\([A-Za-z]+)\}\{(.*)\}$", numbers, re.M))
    assert len(defined) == len([ln for ln in numbers.splitlines() if ln.startswith("\\newcommand")])
    used = set()
    for name, src in all_sources(out).items():
        if name != "numbers.tex":
            used |= set(re.findall(r"\\([A-Z][A-Za-z]*)", strip_comments(src)))
    used -= LATEX_CAPITALISED
    assert not used - set(defined), f"macros used but not generated: {sorted(used - set(defined))}"
    assert not set(defined) - used, f"generated macros never used: {sorted(set(defined) - used)}"

    sims = [k for k in defined if k.endswith("Sim")]
    assert len(sims) >= 15
    for name, body in defined.items():
        assert body.count("{") == body.count("}"), name
        value = unwrap(body)
        if name.endswith("Sim"):
            m = INTERVAL.match(value)
            assert m, f"\\{name} = {value!r} is not 'mean [lo, hi]'"
            mean, lo, hi = (to_float(x) for x in m.groups())
            assert lo <= mean <= hi and lo < hi, f"\\{name}: {value}"
        elif name.endswith(("Mode", "Version")):
            assert value.strip(), name
        else:
            assert re.fullmatch(NUM, value), f"\\{name} = {value!r} is not a number"
            assert math.isfinite(to_float(value))
    assert unwrap(defined["PaperMode"]) == "quick"
    assert int(unwrap(defined["ChecksInside"])) <= int(unwrap(defined["ChecksTotal"]))


def test_no_number_typed_by_hand_in_main_tex():
    body = strip_comments(MAIN.read_text(encoding="utf-8"))
    body = re.sub(r"(\\[A-Za-z]+)\[[^\]]*\]", r"\1", body)  # layout options such as [width=0.6\linewidth]
    decimals = re.findall(r".{0,30}\d\.\d.{0,30}", body)
    assert not decimals, f"decimal numbers typed into main.tex: {decimals}"
    assert "\\input{generated/numbers.tex}" in body


def test_tables_are_booktabs_and_bib_keys_exist(build):
    out = build["out"]
    tables = sorted(out.glob("table_*.tex"))
    assert len(tables) >= 4
    for t in tables:
        text = t.read_text(encoding="utf-8")
        assert text.startswith("\\begin{tabular}") and text.rstrip().endswith("\\end{tabular}"), t.name
        for rule in ("\\toprule", "\\midrule", "\\bottomrule"):
            assert rule in text, (t.name, rule)
        assert text.count("{") == text.count("}"), t.name
    body = strip_comments(MAIN.read_text(encoding="utf-8"))
    cited = {k.strip() for group in re.findall(r"\\cite[tp]?\*?(?:\[[^\]]*\])*\{([^}]*)\}", body)
             for k in group.split(",")}
    keys = set(re.findall(r"@\w+\{([^,]+),", (PAPER / "refs.bib").read_text(encoding="utf-8")))
    assert cited and cited <= keys, f"cited but not in refs.bib: {cited - keys}"
    assert keys <= cited, f"in refs.bib but never cited: {keys - cited}"


def test_runs_and_latex_message(build):
    runs = list(build["runs"].glob("quick-*/*/summary.json"))
    assert len(runs) >= 6, runs
    if shutil.which("latexmk") is None:
        assert os.environ.get("COLLAPSE_REQUIRE_PDF") != "1", "COLLAPSE_REQUIRE_PDF=1 but LaTeX is not installed"
        assert "LaTeX is not installed" in build["stdout"]
    else:
        assert (build["tmp"] / "latex_build" / "main.pdf").is_file()


def _gray_pages(pdf: Path, folder: Path) -> list:
    """Every page of ``pdf`` rendered by poppler's pdftoppm at 30 dpi, as 2-D uint8 arrays (binary PGM)."""
    import numpy as np

    subprocess.run(["pdftoppm", "-r", "30", "-gray", str(pdf), str(folder / "page")], check=True, timeout=300)
    pages = []
    for f in sorted(folder.glob("page-*.pgm")):
        data = f.read_bytes()
        magic, w, h, maxval, rest = data.split(maxsplit=4)
        assert magic == b"P5" and int(maxval) == 255, f.name
        pages.append(np.frombuffer(rest[: int(w) * int(h)], np.uint8).reshape(int(h), int(w)))
    return pages


@pytest.mark.skipif(shutil.which("latexmk") is None and os.environ.get("COLLAPSE_REQUIRE_PDF") != "1",
                    reason="LaTeX is not installed (CI installs it: .ci/run)")
def test_the_pdf_renders_every_page_with_text_and_figures(build, tmp_path):
    """The quick build's PDF: poppler renders every page; each carries ink (text), and the pages with figures more
    (no blank page, no missing figure box)."""
    assert shutil.which("pdftoppm"), "poppler-utils (pdftoppm) is needed to check the pages"
    pdf = build["tmp"] / "latex_build" / "main.pdf"
    assert pdf.is_file(), build["stdout"][-2000:]
    pages = _gray_pages(pdf, tmp_path)
    n_figures = len(re.findall(r"\\includegraphics", MAIN.read_text(encoding="utf-8")))
    assert len(pages) >= 8 and n_figures >= 8, (len(pages), n_figures)
    ink = [float((p < 200).mean()) for p in pages]  # share of inked pixels (30 dpi: antialiased text is grey)
    assert all(i > 0.003 for i in ink), ink  # every page has more on it than a page number (~0.0003)
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    for title in re.findall(r"\\section\{([^}]*)\}", MAIN.read_text(encoding="utf-8")):
        words = re.sub(r"\\[a-z]+\{?|[{}$]", "", title).split()[:2]
        assert " ".join(words).replace("fi", "") in text.replace("\ufb01", "").replace("fi", ""), title
    assert "??" not in text, "an undefined reference or citation (??) in the PDF"
