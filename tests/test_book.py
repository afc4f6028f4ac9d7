"""The book as a whole: chapter notebooks are committed executed, and the HTML book builds with
warnings as errors and shows each chapter's figures and math."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "chapters").glob("*.ipynb"))


def repository_url() -> str:
    match = re.search(r"^repository:\s*\n\s+url:\s*(\S+)", (ROOT / "_config.yml").read_text(), re.M)
    assert match, "_config.yml must define repository.url"
    return match.group(1)


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_is_committed_executed_in_order_and_clean(path):
    nb = json.loads(path.read_text())
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert [c["execution_count"] for c in code] == list(range(1, len(code) + 1))
    for cell in code:
        for out in cell["outputs"]:
            assert out["output_type"] != "error"
            text = "".join(out.get("text", ""))
            assert not (out.get("name") == "stderr" and "Warning" in text), text
    assert path.stem in (ROOT / "_toc.yml").read_text()


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_colab_setup_cell_clones_the_configured_repository(path):
    first_code = next(c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code")
    assert f"git clone -q {repository_url()} " in "".join(first_code["source"])


def test_book_builds_with_warnings_as_errors(tmp_path):
    jb = Path(sys.executable).with_name("jupyter-book")
    result = subprocess.run(
        [str(jb), "build", "--warningiserror", "--keep-going", "--path-output", str(tmp_path), str(ROOT)],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    html = tmp_path / "_build" / "html"
    for path in CHAPTERS:
        page = (html / "chapters" / f"{path.stem}.html").read_text()
        assert page.count("<img") >= 2, f"{path.stem} renders without its figures"
        assert "\\(" in page or "\\[" in page or "math notranslate" in page, f"{path.stem} renders without math"
        assert "✔ verified" in page, f"{path.stem} renders without its checked claims"
        assert "{glue" not in page, f"{path.stem} has unresolved glue references"
    intro = (html / "book" / "intro.html").read_text()
    assert "Fawzi" in (html / "book" / "references.html").read_text() and "H7" in intro
    assert "colab.research.google.com" in (html / "chapters" / f"{CHAPTERS[0].stem}.html").read_text()
