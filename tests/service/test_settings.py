"""Settings: one pydantic-settings model (``MSUNAS_`` prefix), defaults in one place, documented from the model."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from service.settings import Settings, settings_table
from supernets.errors import InputError

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("doc", ["README.md", "docs/service.md"])
def test_documented_table_is_the_model(doc: str) -> None:
    assert settings_table() in (ROOT / doc).read_text(), f"regenerate the table in {doc}: python -m service.settings"


def test_environment_is_read_with_the_prefix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MSUNAS_DB_URL", "sqlite:///x.db")
    monkeypatch.setenv("MSUNAS_DATA_ROOTS", f"{tmp_path}{os.pathsep}/data")
    monkeypatch.setenv("MSUNAS_WORKER_PLUGINS", "a.b, c")
    monkeypatch.setenv("MSUNAS_LEASE_SECONDS", "12.5")
    s = Settings()
    assert s.db_url == "sqlite:///x.db" and s.data_roots == [tmp_path, Path("/data")]
    assert s.worker_plugins == ["a.b", "c"] and s.lease_seconds == 12.5
    assert Settings.from_env(db_url="sqlite:///y.db", data_roots=None).db_url == "sqlite:///y.db"  # options win


def test_bad_values_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MSUNAS_LEASE_SECONDS", "soon")
    with pytest.raises(InputError, match="MSUNAS_LEASE_SECONDS: Input should be a valid number") as e:
        Settings.from_env()
    assert e.value.field == "MSUNAS_LEASE_SECONDS"
