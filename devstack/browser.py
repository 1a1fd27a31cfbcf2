"""Headless Chromium for the payment page's browser tests and screenshots: Debian's Chromium
(`make test` installs it, with a CJK font), or the one `CHROMIUM` names, driven by Playwright,
with nothing that phones home."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Playwright


def executable() -> str:
    """`CHROMIUM` (e.g. Chrome on macOS), else Debian's Chromium."""
    return os.environ.get("CHROMIUM") or "/usr/bin/chromium"


ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# A phone: what the payment page is mostly opened on (the viewport of a 6.1" phone).
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}


def launch(playwright: Playwright) -> Browser:
    """A fresh headless Chromium (no profile: each context starts empty)."""
    return playwright.chromium.launch(executable_path=executable(), headless=True, args=ARGS)
