"""Shared fixtures: the location of ``../shared/data`` (real records for tests; skipped when absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """``$MSUNAS_SHARED_DATA`` or ``../shared/data`` beside the checkout."""
    return Path(os.environ.get("MSUNAS_SHARED_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    d = shared_data_dir()
    if not d.is_dir():
        pytest.skip(f"shared data folder {d} is absent (set MSUNAS_SHARED_DATA to a copy of ../shared/data)")
    return d
