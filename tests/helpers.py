"""Small helpers shared by the tests (importable: pytest puts tests/ on sys.path)."""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]


def recipe(name: str) -> ModuleType:
    """Import ``recipes/<name>.py`` as a module (its ``main(argv)`` runs the recipe in-process)."""
    sys.path.insert(0, str(REPO / "recipes"))
    try:
        return __import__(name)
    finally:
        sys.path.pop(0)
