"""Which Chromium the browser tests and screenshots launch: Debian's, or the one `CHROMIUM` names
(`CHROMIUM=/path/to/chrome make test` on macOS or another Linux)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from devstack import browser


def launched_executable() -> str:
    calls: list[dict[str, Any]] = []
    playwright = SimpleNamespace(chromium=SimpleNamespace(launch=lambda **options: calls.append(options)))
    browser.launch(playwright)  # type: ignore[arg-type]
    (options,) = calls
    assert options["headless"] is True
    return str(options["executable_path"])


def test_debian_chromium_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given no CHROMIUM in the environment
    monkeypatch.delenv("CHROMIUM", raising=False)
    # Then Debian's Chromium is launched
    assert launched_executable() == "/usr/bin/chromium"


def test_chromium_names_another_browser(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given CHROMIUM naming Chrome on macOS
    chrome = "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome"
    monkeypatch.setenv("CHROMIUM", chrome)
    # Then that browser is launched
    assert launched_executable() == chrome
