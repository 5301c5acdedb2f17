"""Headless Chromium for the UI tests and benchmarks: Debian's ``/usr/bin/chromium`` (or
``$EM_TEST_CHROMIUM``) driven by Playwright, and signing in through the sign-in form."""
from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager

CHROMIUM = os.environ.get("EM_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def sign_in(browser, base: str, key: str, viewport: dict | None = None):  # type: ignore[no-untyped-def]
    """A page in a fresh browser context, signed in with ``key`` through the sign-in form."""
    page = browser.new_context(base_url=base, viewport=viewport or {"width": 1400, "height": 900}).new_page()
    page.goto("/ui/signin")
    page.fill("#apikey", key)
    page.click("#signin")
    page.wait_for_url(re.compile(r".*/ui/folders/.*"))
    return page


@contextmanager
def chromium(executable: str = CHROMIUM) -> Iterator:
    """A headless Chromium browser (Playwright's), closed afterwards."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
