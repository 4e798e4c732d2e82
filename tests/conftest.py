"""Shared test fixtures: the read-only reference material in ../shared."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="session")
def simglucose_ref() -> Path:
    path = SHARED / "reference" / "simglucose"
    if not path.is_dir():
        pytest.skip(f"reference data absent: {path} (the ../shared folder beside the repo)")
    return path
