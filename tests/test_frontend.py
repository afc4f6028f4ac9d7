"""The explorers, live in a real Jupyter front end: a chapter notebook opened in headless Chromium (driven by
Playwright), its cells run from the menu, and every control of its explorer moved as a reader would.

Two front ends, each served by its own Jupyter server on a free port of 127.0.0.1, with a token, every other
host blocked in the browser:

- ``lab``: JupyterLab with the book's environment (ipywidgets 8);
- ``classic``: the classic Notebook 6.5 with ipywidgets 7.7.1 and IPython 7.34, Colab's versions (of the
  Jupyter front ends, the closest to Colab's own). Its environment is created on first use under
  ``~/.cache/fragile-yet-robust/frontend-classic-venv`` (``$BOOK_CLASSIC_VENV`` moves it; about 20 s, from
  PyPI): the Jupyter packages only, the book's environment (torch, numpy, matplotlib, ``utils``) after them
  on ``sys.path``.

The chapter (``CHAPTER``) is a copy in a temporary folder, cut after its explorer cell, with its sizes shrunk
by lines appended to its ``parameters`` cell (``OVERRIDES``); at those sizes its claims are recorded, not
enforced (``BOOK_CLAIMS=record-only``: the claims are checked by the notebook tests at the real sizes). A last
cell of the test's own (``CONTROLS_CELL``) adds chapter 4's explorer on a small model, for the kinds of control
chapter 1's lacks (toggle buttons, a dropdown). The kernels run one thread each and write nothing into the
repository: the book's root is a temporary folder and claim records go to another; trained models are read
from (and, when missing, written to) this clone's git-ignored cache ``data/checkpoints``, shared with the
notebook tests (``$BOOK_CHECKPOINTS`` moves it).

The test fails on any JavaScript error (uncaught, or logged as an error), any widget error shown ("Error
displaying widget", "Failed to load model class", …), a traceback in a cell or in the server's log (an
explorer callback that raised), a control whose move does not change the explorer's image (compared by
the SHA-256 of its bytes), or a run that does not finish. Chromium as for test_browser.py: Debian's
``chromium`` (or ``$BOOK_CHROMIUM``); without one the test fails and says how to install it;
``BOOK_SKIP_BROWSER=1`` skips it. It prints the versions, the time of each phase and every move.

Measured on 2 cores shared with another job (load 2.6-2.9): about 40 s for both front ends with the classic
environment made and chapter 1's models cached; 60 s with neither.
"""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path

import chromium
import pytest
from frontend import notebooks, pages, servers

ROOT = Path(__file__).resolve().parents[1]
# The cheapest chapter to its explorer. Chapter 1 at these sizes runs to its explorer in about 8 s on 2 idle
# cores with its models cached (30-45 s on a busy machine), at its own sizes in about 20 s (its dimension
# sweep, 10 dimensions, 10-11 s). The sweep trains one MLP per dimension; its fit over d >= 16 needs two.
CHAPTER = "01_decision_boundaries"
OVERRIDES = 'SIZES["small"].update(dims=[2, 16, 32], n_points=20, n_directions=8)'
# Chapter 1's explorer has one control, a selection slider. The test's own last cell adds chapter 4's explorer
# (a slider, toggle buttons and a dropdown) on a small MLP trained for 3 epochs on the 8x8 digits (about 4 s),
# so that every kind of control the book's explorers use is moved in both front ends.
CONTROLS_CELL = """# added by the front-end test: chapter 4's explorer on a small model (toggle buttons, dropdown)
import torch

from utils import data, models, train
from utils.chapters import ch04_post_training_quantization as ch4

digits = data.load_dataset("digits")
torch.manual_seed(0)
small = models.build_model("mlp", digits, hidden=(16,))
train.fit(small, digits, epochs=3, lr=3e-3, batch_size=64, progress=False, device="cpu",
          generator=torch.Generator().manual_seed(0))
small.eval()
no_curvature = {n: torch.zeros_like(p) for n, p in small.named_parameters()}
grid = ch4.rounding_grid(small, digits.x_test, digits.y_test, (digits.x_train[:100], digits.y_train[:100]),
                         "layers.0.weight", diag_h=no_curvature, bits=(4, 2), generator=torch.Generator())
ch4.explorer(grid, "layers.0.weight")"""
# read at import: the tests' autouse fixture (conftest.py) clears BOOK_CHECKPOINTS while a test runs
CHECKPOINTS = os.environ.get("BOOK_CHECKPOINTS") or str(ROOT / "data" / "checkpoints")
RUN_TIMEOUT = 300  # seconds for the cells (a clone whose cache lacks chapter 1's models trains them first)


def say(pytestconfig, text: str) -> None:
    """Print past pytest's capture: what the test is doing (creating an environment) and its timings."""
    capture = pytestconfig.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print(text, flush=True)


@pytest.fixture(scope="module")
def browser():
    yield from chromium.launched("the live front-end test")


def server_python(kind: str, pytestconfig) -> str:
    if kind == "lab":
        try:
            import jupyterlab  # noqa: F401
        except ImportError:
            pytest.fail("JupyterLab is not installed in the book's environment: `pip install -r requirements.txt` "
                        "(it lists jupyterlab)", pytrace=False)
        return sys.executable
    return str(servers.classic_python(say=lambda text: say(pytestconfig, text)))


@pytest.mark.parametrize("kind", ["lab", "classic"])
def test_explorer_moves_live_in_the_front_end(kind, browser, tmp_path, pytestconfig):
    fe = pages.FRONT_ENDS[kind]
    report = pages.Report()
    start = time.perf_counter()
    python = server_python(kind, pytestconfig)
    report.timings["environment ready"] = time.perf_counter() - start
    path, explorer = notebooks.small_copy(CHAPTER, tmp_path / "notebooks", OVERRIDES, extra=(CONTROLS_CELL,))
    env = {
        "BOOK_ROOT": str(tmp_path / "root"), "BOOK_CLAIMS_DIR": str(tmp_path / "claims"),
        "BOOK_CHECKPOINTS": CHECKPOINTS,
        "BOOK_CLAIMS": "record-only", "BOOK_SCALE": "small", "BOOK_SEED": "0", "TQDM_DISABLE": "1",
        # one thread per kernel: on 2 cores shared with other jobs, torch's two OpenMP threads wait on each other
        # (measured at load 2.6: the cells took 31-33 s with two threads, 8-9 s with one)
        "OMP_NUM_THREADS": "1",
    }
    t = time.perf_counter()
    with servers.jupyter_server(kind, python, path.parent, tmp_path / "jupyter", env) as server:
        report.timings["server answers"] = time.perf_counter() - t
        blocked = []
        context = chromium.offline_context(browser, server.base, blocked, viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.on("pageerror", lambda exc: report.problems.append(f"uncaught JavaScript error: {exc}"))
        page.on("console", lambda msg: report.problems.append(
            f"console error: {msg.text} (at {msg.location.get('url')})") if msg.type == "error" else None)
        page.on("response", lambda r: report.problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400
                else None)
        try:
            pages.open_notebook(page, fe, server.url(fe.path.format(name=path.name)),
                                lambda: server.kernel_state(path.name), report)
            pages.run_all(page, fe, report, timeout=RUN_TIMEOUT)
            controls = [pages.move_every_control(page, pages.output_of(page, fe, cell), report, name)
                        for cell, name in ((explorer, f"chapter {CHAPTER[:2]}"), (explorer + 1, "chapter 04, small"))]
            report.problems += pages.widget_errors(page)
        except Exception as err:  # a check that failed, or Playwright's own error: both reported with a screenshot
            what = str(err) if isinstance(err, AssertionError) else f"{type(err).__name__}: {err}"
            report.problems[:0] = [what, *pages.widget_errors(page)]
            page.screenshot(path=tmp_path / f"{kind}-failure.png", full_page=True)
            controls = None
        finally:
            context.close()
        log = server.log_text()
    report.timings["total"] = time.perf_counter() - start
    report.problems += [f"requested from outside 127.0.0.1 (blocked): {url}" for url in sorted(set(blocked))]
    benign = [p for p in report.problems if any(re.search(b, p) for b in fe.benign)]
    report.problems = [p for p in report.problems if p not in benign]
    if "Traceback" in log:
        report.problems.append("a traceback in the server's log (a kernel or an explorer callback failed):\n"
                               + log[log.index("Traceback") - 200:][:3000])
    versions = servers.versions(python)
    say(pytestconfig, f"\n[frontend] {fe.name} ({', '.join(f'{k} {v}' for k, v in versions.items())})\n  "
        + "\n  ".join([f"{k}: {v:.1f} s" for k, v in report.timings.items()] + report.moves
                      + [f"stderr of a cell: {s[:300]!r}" for s in report.stderr]
                      + [f"ignored (the front end's own, see pages.py): {p}" for p in benign]))
    if report.problems:
        pytest.fail(f"{fe.name}, {CHAPTER}'s explorer (screenshot: {tmp_path / f'{kind}-failure.png'}):\n  "
                    + "\n  ".join(report.problems), pytrace=False)
    assert controls and report.moves, f"{fe.name}: no control of the explorer was moved"
