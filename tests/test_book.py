"""The book as a whole: chapter notebooks are committed executed, and the HTML book builds with
warnings as errors and shows each chapter's figures and math."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from book_build import build_book, toc_docnames

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


def test_setup_cell_names_a_foreign_utils_package_instead_of_importing_it(tmp_path):
    from IPython.core.inputtransformer2 import TransformerManager

    first_code = next(c for c in json.loads(CHAPTERS[0].read_text())["cells"] if c["cell_type"] == "code")
    code = TransformerManager().transform_cell("".join(first_code["source"]))  # the magics as Python calls
    (tmp_path / "utils.py").write_text("# someone else's utils\n")
    foreign = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert foreign.returncode != 0 and f"finds {tmp_path / 'utils.py'}, not this book's package" in foreign.stderr
    ours = subprocess.run([sys.executable, "-c", code], cwd=ROOT / "chapters", capture_output=True, text=True)
    assert ours.returncode == 0, ours.stderr


@pytest.fixture(scope="session")
def book(tmp_path_factory):
    return build_book(tmp_path_factory)


def test_book_builds_with_warnings_as_errors(book):
    assert book.returncode == 0, book.log[-6000:]
    html = book.html
    for path in CHAPTERS:
        page = (html / "chapters" / f"{path.stem}.html").read_text()
        assert page.count("<img") >= 2, f"{path.stem} renders without its figures"
        assert "\\(" in page or "\\[" in page or "math notranslate" in page, f"{path.stem} renders without math"
        assert "✔ verified" in page, f"{path.stem} renders without its checked claims"
        assert "{glue" not in page, f"{path.stem} has unresolved glue references"
    intro = (html / "book" / "intro.html").read_text()
    assert "Fawzi" in (html / "book" / "references.html").read_text() and "H7" in intro
    assert "colab.research.google.com" in (html / "chapters" / f"{CHAPTERS[0].stem}.html").read_text()


def test_book_reads_offline(book):
    """Everything a page loads is served with the book (the browser test checks it in a browser, with the
    network blocked): MathJax included, no script or style sheet from a CDN, no widget state."""
    assert (book.html / "_static" / "mathjax" / "tex-svg-full.js").is_file(), "MathJax is not served with the book"
    for docname in toc_docnames():
        page = book.page(docname).read_text()
        remote = re.findall(r'<(?:script|link)\b[^>]*\b(?:src|href)="((?:https?:)?//[^"]+)"', page)
        assert not remote, f"{docname} loads {remote} from the network"
        assert "_static/mathjax/tex-svg-full.js" in page or "math notranslate" not in page, docname
        assert "application/vnd.jupyter.widget" not in page, f"{docname} keeps Jupyter widget output or state"
        assert page.count("THEBE_JS_URL") <= 1, docname


def test_reference_list_is_labelled_as_the_text_cites(book):
    """The list's labels are the in-text citations ("Bengio et al., 2013"), without BibTeX markup."""
    page = book.page("book/references").read_text()
    labels = dict(re.findall(
        r'<div class="citation" id="([^"]+)"[^>]*>\s*<span class="label"><span class="fn-bracket">\[</span>(.*?)<', page
    ))
    assert labels, "the reference list is empty"
    bad = [label for label in labels.values() if not re.fullmatch(r"[^\W\d][^,]*, (\d{4}|n\.d\.)[a-z]?", label)]
    assert not bad, f"reference labels that are not 'author, year': {bad}"
    for docname in toc_docnames():
        text = book.page(docname).read_text()
        for anchor, cited in re.findall(r'href="[^"]*references\.html#([^"]+)"[^>]*>(.*?)</a>', text):
            assert re.sub(r"<[^>]+>", "", cited) == labels.get(anchor), (docname, cited, labels.get(anchor))
    assert "{\\" not in page, "BibTeX markup left in the reference list"
