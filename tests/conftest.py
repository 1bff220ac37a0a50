"""Shared fixtures: the reference data in ../shared/reference and the examples."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = Path(os.environ.get("ASNC_REFERENCE", ROOT.parent / "shared" / "reference"))
EXAMPLES = ROOT / "examples"
PUBLISHED = ("assemblenet50", "assemblenet101", "assemblenet_plus50", "assemblenet_plus_lite")


@pytest.fixture(scope="session")
def structures() -> dict:
    return json.loads((REFERENCE / "structures.json").read_text())


@pytest.fixture(scope="session")
def golden() -> dict:
    return json.loads((REFERENCE / "golden.json").read_text())
