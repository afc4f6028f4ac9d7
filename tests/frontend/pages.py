"""The browser side of the live front-end test: open a notebook in JupyterLab or the classic Notebook, run
all its cells from the menu, and move every control of the explorer (the last cell's output) as a reader
would — sliders clicked along their track, toggle buttons clicked, dropdown options chosen — checking after
each move that the explorer's image changed."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

from playwright.sync_api import Locator, Page
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError


@dataclass(frozen=True)
class FrontEnd:
    name: str
    path: str  # the notebook's URL path, {name} standing for its file name
    ready: str  # JS: the notebook is open and its kernel idle
    run_all: tuple[str, str]  # the menu and the menu item that run every cell
    cell: str  # a code cell
    prompt: str  # its input prompt, within the cell
    output: str  # its output area, within the cell
    benign: tuple[str, ...] = ()  # regexes of the front end's own console errors and failed requests, not the book's


LAB = FrontEnd(
    name="JupyterLab",
    path="lab/tree/{name}",
    ready="""() => document.querySelector('.jp-Notebook .jp-CodeCell') !== null
        && document.querySelector('.jp-Notebook-ExecutionIndicator')?.getAttribute('data-status') === 'idle'""",
    run_all=(".lm-MenuBar-itemLabel:text-is('Run')", ".lm-Menu-itemLabel:text-is('Run All Cells')"),
    cell=".jp-Notebook .jp-CodeCell",
    prompt=".jp-InputArea-prompt",
    output=".jp-Cell-outputArea",
)
CLASSIC = FrontEnd(
    name="classic Notebook",
    path="notebooks/{name}",
    ready="""() => !!(window.Jupyter && Jupyter.notebook && Jupyter.notebook.kernel
        && Jupyter.notebook.kernel.is_connected() && Jupyter.notebook.kernel_busy === false
        && document.querySelector('#notebook-container .code_cell') !== null
        && window.require && require.defined('nbextensions/jupyter-js-widgets/extension'))""",
    run_all=("#celllink", "#run_all_cells > a"),
    cell="#notebook-container .cell.code_cell",
    prompt=".input_prompt",
    output=".output_wrapper",
    # the Notebook 6.5 wheel ships MathJax 2 without its .otf fonts: MathJax probes them (a 404 each, and a
    # font request to about:blank that Chromium refuses) and falls back to its web fonts; no widget is involved
    benign=(r"/static/components/MathJax/fonts/HTML-CSS/TeX/otf/\w+-\w+\.otf",
            r"^console error: Access to font at 'about:blank' .* blocked by CORS policy",
            r"^console error: Failed to load resource: net::ERR_FAILED \(at about:blank\)$"),
)
FRONT_ENDS = {"lab": LAB, "classic": CLASSIC}

# What the front ends and the widget libraries show when a widget cannot be displayed
WIDGET_ERRORS = ("Error displaying widget", "Failed to load model class", "Could not create a view",
                 "Could not create model", "Widget Javascript not detected",
                 "A Jupyter widget could not be displayed", "Error rendering", "Error creating widget",
                 "Model not found", "model not found", "Loading widget...")

PROGRESS = """([cell, prompt, output]) => [...document.querySelectorAll(cell)].map(c => ({
    prompt: (c.querySelector(prompt)?.textContent || '').replace(/\\s+/g, ' ').trim(),
    errors: [...c.querySelectorAll(`${output} .output_error, ${output} .output_stderr, `
                                   + `${output} [data-mime-type="application/vnd.jupyter.stderr"]`)]
      .map(e => e.innerText.trim()).filter(t => t.length > 0),
}))"""

# the image widget's current picture: its src, a SHA-256 of its bytes and its size (null until it has loaded)
IMAGE = """async img => {
  if (!img.complete || img.naturalWidth === 0 || !img.src) return null;
  try {
    const bytes = await (await fetch(img.src)).arrayBuffer();
    const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
    return {src: img.src.slice(0, 80), sha: [...digest].map(b => b.toString(16).padStart(2, '0')).join(''),
            bytes: bytes.byteLength, width: img.naturalWidth, height: img.naturalHeight};
  } catch (err) { return null; }  // a blob URL revoked as the next frame arrived: ask again
}"""

CONTROLS = """out => ({
  sliders: [...out.querySelectorAll('.widget-hslider')].map(s => (s.querySelector('.widget-label')?.innerText
           || '').trim()),
  toggles: [...out.querySelectorAll('.widget-toggle-buttons')].map(t => ({
           label: (t.querySelector('.widget-label')?.innerText || '').trim(),
           buttons: [...t.querySelectorAll('button')].map(b => b.innerText.trim())})),
  dropdowns: [...out.querySelectorAll('.widget-dropdown')].map(d => ({
           label: (d.querySelector('.widget-label')?.innerText || '').trim(),
           options: [...d.querySelectorAll('select option')].map(o => o.value)})),
})"""


@dataclass
class Report:
    """What one front end did: seconds per phase, every move with its image before and after, and every
    problem seen (filled by the caller's event handlers too)."""

    timings: dict[str, float] = field(default_factory=dict)
    moves: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)


def wait_for(page: Page, script: str, arg=None, *, timeout: float, what: str) -> None:
    try:
        page.wait_for_function(script, arg=arg, timeout=timeout * 1000, polling=200)
    except PlaywrightTimeoutError:
        raise AssertionError(f"{what}: not within {timeout:.0f} s") from None


def open_notebook(page: Page, fe: FrontEnd, url: str, kernel_state, report: Report, timeout: float = 90) -> None:
    """Open the notebook and wait until its kernel is idle (``kernel_state()``: the server's word) and the page
    says so. A "Select Kernel" dialog (JupyterLab) is answered with its default, the notebook's own kernel."""
    start = time.perf_counter()
    page.goto(url, wait_until="load", timeout=timeout * 1000)
    deadline = time.monotonic() + timeout
    while kernel_state() != "idle":
        accept = page.locator(".jp-Dialog .jp-Dialog-button.jp-mod-accept")
        if accept.count() and accept.first.is_visible():
            accept.first.click()
        if time.monotonic() > deadline:
            raise AssertionError(f"{fe.name}: no idle kernel for the notebook in {timeout:.0f} s")
        time.sleep(0.2)
    wait_for(page, fe.ready, timeout=timeout, what=f"the notebook did not open with an idle kernel in {fe.name}")
    report.timings["open the notebook, kernel idle"] = time.perf_counter() - start


def run_all(page: Page, fe: FrontEnd, report: Report, timeout: float = 300) -> None:
    """Run every cell from the menu; wait until the last one has run.
    A cell that fails (a traceback in its output) fails at once, with its text."""
    start = time.perf_counter()
    menu, item = fe.run_all
    page.locator(menu).first.click()
    page.locator(item).first.click()
    started = time.monotonic()
    deadline = started + timeout
    while True:
        cells = page.evaluate(PROGRESS, [fe.cell, fe.prompt, fe.output])
        failed = [(i, e) for i, c in enumerate(cells) for e in c["errors"]
                  if "Traceback" in e or re.search(r"^\w*(Error|Exception)\b", e, re.M)]
        if failed:
            i, text = failed[0]
            raise AssertionError(f"{fe.name}: code cell {i + 1} of {len(cells)} failed:\n{text[-3000:]}")
        prompts = [c["prompt"] for c in cells]
        if cells and re.search(r"\[\d+\]", prompts[-1]) and not any("*" in p for p in prompts):
            break
        if time.monotonic() > deadline or (time.monotonic() > started + 30 and not any(
                re.search(r"\[(\d+|\*)\]", p) for p in prompts)):
            raise AssertionError(f"{fe.name}: the cells did not finish running in {timeout:.0f} s (or did not "
                                 f"start in 30 s); prompts: {prompts}")
        time.sleep(0.25)
    report.stderr += [e for c in cells for e in c["errors"]]
    report.timings["run all cells"] = time.perf_counter() - start


def output_of(page: Page, fe: FrontEnd, code_cell: int) -> Locator:
    """The output area of the notebook's ``code_cell``-th code cell (from 0)."""
    return page.locator(fe.cell).nth(code_cell).locator(fe.output)


def image(page: Page, out: Locator, timeout: float = 30) -> dict:
    """The explorer's current picture (see IMAGE), once its image widget has one."""
    img = out.locator("img.widget-image").first
    try:
        img.wait_for(state="attached", timeout=timeout * 1000)
    except PlaywrightTimeoutError:
        raise AssertionError(f"the explorer's cell shows no image widget after {timeout:.0f} s; its output reads: "
                             f"{out.inner_text()[:600]!r}") from None
    deadline = time.monotonic() + timeout
    while True:
        seen = img.evaluate(IMAGE)
        if seen:
            return seen
        if time.monotonic() > deadline:
            raise AssertionError(f"the explorer's image did not load in {timeout:.0f} s")
        time.sleep(0.1)


def changed_image(page: Page, out: Locator, before: dict, what: str, timeout: float = 30) -> dict:
    """Wait until the explorer's picture differs from ``before``; fail, naming the move, if it does not."""
    deadline = time.monotonic() + timeout
    while True:
        now = image(page, out, timeout)
        if now["sha"] != before["sha"]:
            return now
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: the explorer's image did not change in {timeout:.0f} s")
        time.sleep(0.1)


def widget_errors(page: Page) -> list[str]:
    text = page.evaluate("() => document.body.innerText")
    return [f"widget error shown: {e!r}" for e in WIDGET_ERRORS if e in text]


def move_every_control(page: Page, out: Locator, report: Report, name: str) -> dict:
    """Move each control of the explorer in ``out`` and check that the picture follows each move; returns
    the controls found. ``name`` names the explorer in the report."""
    start = time.perf_counter()
    current = image(page, out)
    controls = out.evaluate(CONTROLS)
    if not (controls["sliders"] or controls["toggles"] or controls["dropdowns"]):
        raise AssertionError(f"{name}: the explorer shows no control (slider, toggle buttons or dropdown)")

    def moved(what: str, act) -> None:
        nonlocal current
        t = time.perf_counter()
        act()
        current = changed_image(page, out, current, f"{name}: {what}")
        report.moves.append(f"{name}: {what}: image {current['sha'][:10]} ({current['width']}×{current['height']} px, "
                            f"{current['bytes'] // 1024} KiB) in {time.perf_counter() - t:.2f} s")

    for i, label in enumerate(controls["sliders"]):
        slider = out.locator(".widget-hslider").nth(i)
        track = slider.locator(".ui-slider, .noUi-target").first  # ipywidgets 7 (jQuery UI), 8 (noUiSlider)
        handle = track.locator(".ui-slider-handle, .noUi-handle").first
        readout = slider.locator(".widget-readout").first
        far, near = (0.0, 1.0) if _position(track, handle) > 0.5 else (1.0, 0.0)
        back = "ArrowLeft" if near == 1.0 else "ArrowRight"
        # a click at the far end of the track, one at the near end, then one step back with the keyboard
        for what, fraction in ((f"click at {far:.0%} of the track", far), (f"click at {near:.0%} of the track", near),
                               (f"{back} key", None)):
            _settled(track)
            before, t = readout.inner_text(), time.perf_counter()
            if fraction is None:
                handle.focus()
                handle.press(back)
            else:
                _click_at(track, fraction)
            deadline = time.monotonic() + 10
            while readout.inner_text() == before and time.monotonic() < deadline:
                time.sleep(0.05)
            after = readout.inner_text()
            if after == before:
                raise AssertionError(f"{name}: slider {label!r}: {what} did not move it (still {before})")
            current = changed_image(page, out, current, f"{name}: slider {label!r} {before} → {after} ({what})")
            report.moves.append(f"{name}: slider {label!r} {before} → {after} ({what}): image {current['sha'][:10]} "
                                f"({current['width']}×{current['height']} px) in {time.perf_counter() - t:.2f} s")
    for i, toggle in enumerate(controls["toggles"]):
        group = out.locator(".widget-toggle-buttons").nth(i)
        for text in toggle["buttons"]:
            button = group.locator("button", has_text=re.compile(rf"^\s*{re.escape(text)}\s*$")).first
            if "mod-active" in (button.get_attribute("class") or ""):
                continue
            moved(f"toggle {toggle['label']!r} → {text!r}", button.click)
    for i, dropdown in enumerate(controls["dropdowns"]):
        select = out.locator(".widget-dropdown select").nth(i)
        for value in dropdown["options"]:
            if select.input_value() == value:
                continue
            moved(f"dropdown {dropdown['label']!r} → {value!r}", lambda s=select, v=value: s.select_option(v))
    report.timings[f"{name}: move every control"] = time.perf_counter() - start
    return controls


def _position(track: Locator, handle: Locator) -> float:
    """Where the slider's handle sits along its track, from 0 (left) to 1 (right)."""
    box, h = track.bounding_box(), handle.bounding_box()
    return (h["x"] + h["width"] / 2 - box["x"]) / box["width"]


def _click_at(track: Locator, fraction: float) -> None:
    """A click on the slider's track at ``fraction`` of its length (2 px inside its ends)."""
    box = track.bounding_box()
    track.click(position={"x": min(max(fraction * box["width"], 2), box["width"] - 2), "y": box["height"] / 2})


def _settled(track: Locator, timeout: float = 5) -> None:
    """Wait out noUiSlider's tap animation (ipywidgets 8): it ignores clicks until it ends (300 ms)."""
    deadline = time.monotonic() + timeout
    while track.evaluate("el => el.classList.contains('noUi-state-tap')") and time.monotonic() < deadline:
        time.sleep(0.05)
