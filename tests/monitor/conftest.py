"""Monitor tests reuse the gateway test helpers (release folders) and its scripted upstream."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "gateway"))
