"""The page's static files (package data in `static/`), served under names that carry a hash of
their content: `page.<hash>.css`. A new release changes the name, so browsers and caches may keep
a file for a year without ever serving a stale one."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources

CONTENT_TYPES = {"css": "text/css; charset=utf-8", "js": "text/javascript; charset=utf-8"}


@dataclass(frozen=True)
class Asset:
    name: str  # the URL name: page.<hash>.<ext>
    content_type: str
    body: str


def _load(filename: str) -> Asset:
    body = (resources.files(__package__) / "static" / filename).read_text(encoding="utf-8")
    stem, _, ext = filename.rpartition(".")
    digest = hashlib.sha256(body.encode()).hexdigest()[:16]
    return Asset(name=f"{stem}.{digest}.{ext}", content_type=CONTENT_TYPES[ext], body=body)


# Read once per container, at import (cold start): two small files.
STYLESHEET = _load("page.css")
SCRIPT = _load("page.js")
BY_NAME = {a.name: a for a in (STYLESHEET, SCRIPT)}
