"""Makes sdk/python importable for its tests without installing the package, and offers the
local stack (`make dev` in-process, tests/integration/conftest.py) to the tests that talk to a
real gateway, and the moto server (KMS) to those that sign with a KMS key."""

from __future__ import annotations

import sys
from pathlib import Path

SDK = Path(__file__).resolve().parent.parent
if str(SDK) not in sys.path:
    sys.path.insert(0, str(SDK))

from tests.conftest import moto_server  # noqa: E402
from tests.integration.conftest import stack  # noqa: E402

__all__ = ["moto_server", "stack"]
