"""Headless Chromium for the browser test: Debian's build, driven by Playwright.

Playwright never downloads a browser of its own here: it launches the
system's Chromium (``scripts/install_browser.sh`` installs Debian's package
when it is missing), with a fresh profile each time.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from prefect_stack import ROOT

CHROMIUM = Path(os.environ.get("PIKA_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = ROOT / "tests" / "artifacts"
"""Where the browser test leaves its screenshots (ignored by git)."""

# Chromium in a container: no sandbox (we run as root), no GPU, and none of the
# background traffic a new profile starts (there is no internet to reach).
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def missing_browser() -> str | None:
    """Why the browser test cannot run on this machine, or None when it can."""
    if not os.access(CHROMIUM, os.X_OK):
        return (
            f"no Chromium at {CHROMIUM}: scripts/install_browser.sh could not install "
            "Debian's chromium package here"
        )
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (bash scripts/setup.sh installs it)"
    return None


@contextmanager
def chromium_page(profile: Path) -> Iterator[Any]:
    """A page of headless Chromium with a fresh profile in ``profile``; closed afterwards."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=FLAGS,
            viewport={"width": 1400, "height": 1000},
        )
        try:
            yield context.pages[0] if context.pages else context.new_page()
        finally:
            context.close()
