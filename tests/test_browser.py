"""The rendered book, read as a reader would: every page of a freshly built book opened in headless Chromium
(driven by Playwright), served from 127.0.0.1 with every other request blocked, so the book must read offline.

For every page: it loads with no JavaScript error and no failed request; every image loads; every formula is
typeset by MathJax (no raw TeX delimiters left, no MathJax error); every glue value is filled; no table cell
is NaN or truncated ("..."); no Jupyter widget output is left; every internal link and anchor resolves; and at
a 400-px wide viewport the page does not scroll sideways.

The test needs Chromium: Debian's package (`apt-get install chromium`; Playwright's own browser download is
not used), found on PATH or named by BOOK_CHROMIUM. Without one it fails, unless BOOK_SKIP_BROWSER=1 is set,
which skips it.
"""

import functools
import http.server
import json
import re
import threading
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import chromium
import pytest
from book_build import build_book, source_of, toc_docnames

DESKTOP = {"width": 1280, "height": 900}
NARROW = 400
# the pages of the book, plus Sphinx's own search (with a query, so that it searches) and index pages
PAGES = [f"{name}.html" for name in toc_docnames()] + ["search.html?q=quantization", "genindex.html"]


@pytest.fixture(scope="module")
def browser():
    yield from chromium.launched("the browser test of the rendered book")


@pytest.fixture(scope="module")
def site(browser, tmp_path_factory):
    """The freshly built book, served on 127.0.0.1; yields (html folder, base URL)."""
    book = build_book(tmp_path_factory)
    if not (book.html / "index.html").is_file():
        pytest.fail("the book did not build:\n" + book.log[-4000:])

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    class Server(http.server.ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request, client_address):
            pass  # a browser that drops a connection is no failure of the book

    server = Server(("127.0.0.1", 0), functools.partial(Handler, directory=str(book.html)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield book.html, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()
    thread.join()


class _Anchors(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids = set()

    def handle_starttag(self, tag, attrs):
        for key, value in attrs:
            if key == "id" or (tag == "a" and key == "name"):
                self.ids.add(value)


@functools.cache
def anchors_in(path: Path) -> frozenset:
    parser = _Anchors()
    parser.feed(path.read_text(errors="replace"))
    return frozenset(parser.ids)


def expected_glue(page: str) -> int:
    """How many {glue:text} values the page's source asks for (in Markdown, not in code)."""
    if "?" in page or page == "genindex.html":
        return 0
    source = source_of(page.removesuffix(".html"))
    if source.suffix == ".ipynb":
        cells = json.loads(source.read_text())["cells"]
        text = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    else:
        text = source.read_text()
    return len(re.findall(r"\{glue:text\}`", text))


# Run in the page once MathJax and the images are done: what a reader would see, as data.
INSPECT = r"""async () => {
  if (document.querySelector('script[src*="mathjax"]')) {
    const start = Date.now();
    while (!(window.MathJax && window.MathJax.startup && window.MathJax.startup.promise)) {
      if (Date.now() - start > 20000) break;
      await new Promise(r => setTimeout(r, 50));
    }
    if (window.MathJax && window.MathJax.startup) await window.MathJax.startup.promise;
  }
  for (const img of document.images) img.loading = "eager";
  await Promise.all([...document.images].map(img => img.decode().catch(() => null)));

  // (Sphinx's search shows excerpts of the pages' text, formulas as TeX: not typeset, by design)
  const outside = 'pre, code, kbd, samp, script, style, textarea, mjx-container, .highlight, #search-results';
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const rawTex = [];
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const text = node.textContent;
    const at = text.search(/\\\(|\\\)|\\\[|\\\]|\$\$/);
    if (at >= 0 && !node.parentElement.closest(outside)) rawTex.push(text.slice(Math.max(0, at - 30), at + 40));
  }
  return {
    title: document.title,
    article: (document.querySelector('main') || document.body).innerText.trim().length,
    mathjax: !!document.querySelector('script[src*="mathjax"]'),
    mathjaxVersion: window.MathJax && window.MathJax.version || null,
    formulas: document.querySelectorAll('mjx-container').length,
    untypeset: [...document.querySelectorAll('.math')].filter(el => !el.querySelector('mjx-container'))
      .map(el => el.textContent.trim().slice(0, 80)),
    mathErrors: [...document.querySelectorAll('mjx-merror, [data-mjx-error], [data-mml-node="merror"]')]
      .map(el => el.getAttribute('data-mjx-error') || el.textContent.slice(0, 80)),
    rawTex: rawTex,
    brokenImages: [...document.images].filter(img => !img.complete || img.naturalWidth === 0)
      .map(img => img.getAttribute('src')),
    images: document.images.length,
    glueText: document.body.textContent.includes('{glue'),
    pasted: [...document.querySelectorAll('.pasted-text')].filter(el => el.textContent.trim()).length,
    cells: [...document.querySelectorAll('table td, table th')].map(el => el.innerText.trim())
      .filter(t => /(^|[^\w-])(nan|nat|<na>)([^\w-]|$)/i.test(t) || t.endsWith('...') || t.endsWith('\u2026')),
    widgets: document.querySelectorAll('script[type^="application/vnd.jupyter.widget"], .jupyter-widgets').length,
    remoteAssets: [...document.querySelectorAll('script[src], link[rel~="stylesheet"][href], img[src], iframe[src]')]
      .map(el => el.src || el.href).filter(url => url && new URL(url).origin !== location.origin),
    searchResults: document.querySelectorAll('#search-results li').length,
    links: [...document.querySelectorAll('a[href]')].map(a => a.href),
    ids: [...document.querySelectorAll('[id], a[name]')].map(el => el.id || el.name),
  };
}"""

# Elements that stick out to the right at a narrow viewport, outside any element that scrolls or clips them.
OVERFLOWING = r"""() => {
  const width = window.innerWidth;
  const describe = el => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '')
    + (typeof el.className === 'string' && el.className.trim() ? '.' + el.className.trim().split(/\s+/).join('.') : '');
  const found = [];
  for (const el of document.body.querySelectorAll('*')) {
    const box = el.getBoundingClientRect();
    if (box.width === 0 || box.right <= width + 1) continue;
    let clipped = getComputedStyle(el).position === 'fixed';
    for (let p = el.parentElement; p && p !== document.body && !clipped; p = p.parentElement) {
      const style = getComputedStyle(p);
      clipped = style.overflowX !== 'visible' || style.position === 'fixed';
    }
    if (!clipped) found.push(`${describe(el)} (right edge at ${Math.round(box.right)} px)`);
  }
  return found.slice(-8);
}"""


FINISHED = """() => /finished/i.test(document.querySelector('.search-summary')?.textContent || '')"""
# Figures (cell outputs) shown at less than half their size: their labels are too small to read.
SHRUNK = r"""() => [...document.querySelectorAll('.cell_output img')]
  .filter(img => img.naturalWidth > 0 && img.clientWidth < 0.5 * img.naturalWidth)
  .map(img => `${img.getAttribute('src')} at ${Math.round(100 * img.clientWidth / img.naturalWidth)}%`)"""


def listed(what: str, items, limit: int = 6) -> list[str]:
    items = list(items)
    more = [f"{what}: ... and {len(items) - limit} more"] if len(items) > limit else []
    return [f"{what}: {item}" for item in items[:limit]] + more


@pytest.mark.parametrize("page", PAGES)
def test_page_reads_offline_in_a_browser(browser, site, page):
    html, base = site
    errors, failed, blocked = [], [], []
    context = chromium.offline_context(browser, base, blocked, viewport=DESKTOP)
    tab = context.new_page()
    tab.on("pageerror", lambda exc: errors.append(f"uncaught: {exc}"))
    tab.on("console", lambda msg: errors.append(f"console: {msg.text}") if msg.type == "error" else None)
    tab.on("requestfailed", lambda req: failed.append(f"{req.url} ({req.failure})") if req.url.startswith(base)
           else None)
    tab.on("response", lambda resp: failed.append(f"{resp.url} (HTTP {resp.status})") if resp.status >= 400
           else None)
    try:
        response = tab.goto(base + page, wait_until="load", timeout=30000)
        if "?q=" in page:  # Sphinx's search: wait until it has searched (and fetched the results' sources)
            tab.wait_for_function(FINISHED, timeout=20000)
        seen = tab.evaluate(INSPECT)
        tab.set_viewport_size({"width": NARROW, "height": 800})
        tab.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
        scroll_width, inner_width = tab.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
        shrunk = tab.evaluate(SHRUNK)
        sticking_out = tab.evaluate(OVERFLOWING) if scroll_width > inner_width + 1 else []
    finally:
        context.close()

    problems = []
    if response is None or not response.ok:
        problems.append(f"the page did not load: {response and response.status}")
    if not seen["article"]:
        problems.append("the page is empty")
    if "?q=" in page and not seen["searchResults"]:
        problems.append("the search finds nothing")
    problems += listed("JavaScript error", errors)
    problems += listed("request failed", failed)
    problems += listed("requested from the network (blocked)", blocked)
    problems += listed("loads from outside the book", seen["remoteAssets"])
    problems += listed("image does not load", seen["brokenImages"])
    if seen["mathjax"] and not seen["mathjaxVersion"]:
        problems.append("MathJax did not start")
    problems += listed("formula not typeset", map(repr, seen["untypeset"]))
    problems += listed("MathJax error", map(repr, seen["mathErrors"]))
    problems += listed("raw TeX left in the text", map(repr, seen["rawTex"]))
    if seen["glueText"]:
        problems.append("an unresolved {glue} reference is shown")
    wanted = expected_glue(page)
    if seen["pasted"] < wanted:
        problems.append(f"glue values missing: {seen['pasted']} shown, the source asks for {wanted}")
    problems += listed("table cell is NaN or truncated", map(repr, seen["cells"]))
    if seen["widgets"]:
        problems.append(f"{seen['widgets']} Jupyter widget outputs left (execute the notebook with TQDM_DISABLE=1)")
    here = urlsplit(base + page).path
    for url in sorted(set(seen["links"])):
        if not url.startswith(base):
            continue
        parts = urlsplit(url)
        target = html / unquote(parts.path.removeprefix(urlsplit(base).path))
        if parts.path.endswith("/"):
            target = target / "index.html"
        if not target.is_file():
            problems.append(f"link to a missing page: {url}")
        elif parts.fragment:
            fragment = unquote(parts.fragment)
            ids = set(seen["ids"]) if parts.path == here else anchors_in(target)
            if fragment not in ids:
                what = "a page that is not in the book" if re.search(r"\.(md|ipynb)$", fragment) else "a missing anchor"
                problems.append(f"link to {what}: {url}")
    problems += listed(f"figure shrunk to illegible at {NARROW} px", shrunk)
    if scroll_width > inner_width + 1:
        problems.append(f"at {NARROW} px the page scrolls sideways ({scroll_width} px wide): {sticking_out}")
    if problems:
        pytest.fail(f"{page}:\n  " + "\n  ".join(problems), pytrace=False)


REPORT_SEEN = r"""() => ({
  images: [...document.images].length,
  broken: [...document.images].filter(img => !img.complete || img.naturalWidth === 0).map(img => img.alt),
  links: [...document.querySelectorAll('a[href]')].map(a => a.href),
  wide: document.documentElement.scrollWidth > window.innerWidth + 1,
})"""


def test_the_readiness_report_reads_offline_and_links_into_the_book(browser, site, tmp_path):
    """The HTML page of utils.readiness (a tiny model, few probes), opened from a file with the network blocked:
    every figure is embedded and loads, nothing is fetched, and every "How to read it" link lands on an anchor
    of the freshly built book."""
    import torch

    from tests.test_readiness import FAST, TinyNet
    from utils import readiness
    from utils.data import load_dataset

    html, base = site
    data = load_dataset("digits", seed=0)
    torch.manual_seed(0)
    model = TinyNet().eval()
    page = readiness.report(model, (data.x_test[:96], data.y_test[:96]), **FAST).write_html(
        tmp_path / "report.html", book_url=base)
    errors, fetched = [], []
    context = chromium.offline_context(browser, "file:", fetched, viewport=DESKTOP)
    tab = context.new_page()
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        tab.goto(page.as_uri(), wait_until="load", timeout=30000)
        seen = tab.evaluate(REPORT_SEEN)
    finally:
        context.close()
    assert not errors and not fetched, f"the report needs the network or fails: {errors + fetched}"
    assert seen["images"] >= 6 and not seen["broken"], f"figures missing or broken: {seen}"
    missing = []
    for url in seen["links"]:
        parts = urlsplit(url)
        target = html / unquote(parts.path.removeprefix(urlsplit(base).path))
        if not url.startswith(base) or not target.is_file() or unquote(parts.fragment) not in anchors_in(target):
            missing.append(url)
    assert len(seen["links"]) >= 6 and not missing, f"links that land nowhere in the book: {missing}"
