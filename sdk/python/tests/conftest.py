"""Makes sdk/python importable for its tests without installing the package."""

from __future__ import annotations

import sys
from pathlib import Path

SDK = Path(__file__).resolve().parent.parent
if str(SDK) not in sys.path:
    sys.path.insert(0, str(SDK))
