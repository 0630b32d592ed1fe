"""Fixtures of the service tests: a migrated database on SQLite (always) and PostgreSQL (when
``MSUNAS_TEST_POSTGRES_URL`` is set; a fresh database per test, dropped afterwards)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from search.provenance import describe
from search.spec import load_spec
from service import db as dbmod
from service import repository as repo
from service.models import Job
from tests.conftest import write_random_oracle

PG_URL = os.environ.get("MSUNAS_TEST_POSTGRES_URL")

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def _pg_admin(sql: str) -> None:
    import psycopg

    assert PG_URL is not None
    with psycopg.connect(PG_URL.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute(sql)


def fresh_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """A brand-new empty database URL of ``backend``; dropped after use (Postgres)."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'msunas.db'}"
        return
    if not PG_URL:
        pytest.skip("MSUNAS_TEST_POSTGRES_URL is not set (PostgreSQL tests skipped)")
    name = f"msunas_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    _pg_admin(f'CREATE DATABASE "{name}"')
    base = PG_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=BACKENDS)
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database (no tables)."""
    yield from fresh_url(request.param, tmp_path)


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database migrated to the head revision."""
    for url in fresh_url(request.param, tmp_path):
        dbmod.upgrade(url)
        yield url


@pytest.fixture
def predictor_file(tmp_path: Path) -> Path:
    """A seeded random-weight oracle predictor file (real .npz of the real format)."""
    return write_random_oracle(tmp_path / "acc_predictor.npz")


@pytest.fixture(scope="module")
def finished_job(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    """A SQLite database (module-wide) holding one finished oracle job with a params constraint (2 iterations
    after the initial design) and a token that owns it: ``{"url", "root", "token", "token_id", "job_id", "pred"}``."""
    from service import repository as repo
    from service.db import Database
    from service.settings import Settings
    from service.worker import Worker
    from tests.service.test_worker import oracle_spec

    root = tmp_path_factory.mktemp("dashboard")
    url = f"sqlite:///{root / 'msunas.db'}"
    dbmod.upgrade(url)
    pred = write_random_oracle(root / "acc_predictor.npz")
    db = Database(url)
    tid, secret = repo.create_token(db, "dash")
    spec = oracle_spec(pred, iterations=2, constraints={"params": 6.0e6}, constraint_mode="hard",
                       supernet={"random_init": True})  # random weights, asked for: its exports are real files
    with db.transaction() as s:
        job, _ = create_job(s, tid, spec, name="finished oracle")
        job_id = job.id
    Worker(Settings(db_url=url, poll_seconds=0.01)).run(max_idle_seconds=0.3)
    with db.transaction() as s:
        state = repo.get_job(s, None, job_id).state
    assert state == "succeeded"
    yield {"url": url, "root": root, "token": secret, "token_id": tid, "job_id": job_id, "pred": pred}
    db.dispose()


def create_job(s: Session, owner: int, spec: dict[str, Any], **kw: Any) -> tuple[Job, bool]:
    """``repository.create_job`` with a spec dict validated and described the way the API does it."""
    job_spec = load_spec(spec)
    return repo.create_job(s, owner, job_spec, artefact=describe(job_spec), **kw)
