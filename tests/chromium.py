"""The machine's Chromium for the tests that read pages as a reader would (test_browser.py, test_frontend.py):
Debian's package (`apt-get install chromium`; Playwright's own browser download is not used), found on PATH or
named by BOOK_CHROMIUM, launched headless with every host but 127.0.0.1 unreachable. Without one a test fails
and says how to install it, unless BOOK_SKIP_BROWSER=1 is set, which skips it."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

SKIP_VARIABLE = "BOOK_SKIP_BROWSER"
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# Headless and quiet: without the background-networking flags Chromium keeps calling home, and the resolver
# rule makes every host but the local server unreachable even below Playwright's request routing.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-default-apps", "--disable-extensions",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]


def executable(test: str) -> str:
    """The machine's Chromium, or a failure (for ``test``, e.g. "the browser test") that says how to install one
    or how to skip the test."""
    if os.environ.get(SKIP_VARIABLE) == "1":
        pytest.skip(f"{test} skipped: {SKIP_VARIABLE}=1")
    how = ("Install Chromium (Debian/Ubuntu: `sudo apt-get install chromium`; or point BOOK_CHROMIUM at a Chromium "
           f"or Chrome executable), or skip this test with {SKIP_VARIABLE}=1 in the environment.")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.fail(f"{test.capitalize()} needs Playwright (`make test` installs it). {how}", pytrace=False)
    found = os.environ.get("BOOK_CHROMIUM") or next(filter(None, map(shutil.which, BROWSERS)), None)
    if not found:
        pytest.fail(f"{test.capitalize()} found no Chromium on PATH ({', '.join(BROWSERS)}). {how}", pytrace=False)
    return found


def launched(test: str) -> Iterator:
    """A headless Chromium for the length of a fixture (``yield from launched(...)``)."""
    path = executable(test)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def offline_context(browser, allowed: str, blocked: list[str], **options):
    """A browser context (Playwright's ``new_context(**options)``, service workers off) in which only URLs that
    start with ``allowed`` load: every other request is aborted and its URL appended to ``blocked``."""
    context = browser.new_context(service_workers="block", **options)

    def route(request_route) -> None:
        if request_route.request.url.startswith(allowed):
            request_route.continue_()
        else:
            blocked.append(request_route.request.url)
            request_route.abort()

    context.route("**/*", route)
    return context
