"""Service settings, read from environment variables (each has a CLI option that overrides it).

| variable                   | default                         | meaning                                          |
|----------------------------|---------------------------------|--------------------------------------------------|
| ``MSUNAS_DB_URL``          | ``sqlite:///msunas.db``         | SQLAlchemy URL (SQLite file or PostgreSQL)        |
| ``MSUNAS_DATA_ROOTS``      | (none)                          | ``os.pathsep``-separated folders a job spec's     |
|                            |                                 | server-side paths must lie in                     |
| ``MSUNAS_MAX_BODY_BYTES``  | ``1048576``                     | request body size limit (413 above it)            |
| ``MSUNAS_LEASE_SECONDS``   | ``30``                          | lease of a claimed task/step; heartbeats renew it |
| ``MSUNAS_MAX_ATTEMPTS``    | ``3``                           | claims of one task before it is recorded failed   |
| ``MSUNAS_POLL_SECONDS``    | ``0.2``                         | idle worker's sleep between claim attempts        |
| ``MSUNAS_WORKER_PLUGINS`` | (none)                          | comma-separated modules a worker imports at start |
|                            |                                 | (e.g. to register your own evaluator kinds)       |
| ``MSUNAS_URL``             | ``http://127.0.0.1:8000``       | server the client commands talk to                |
| ``MSUNAS_TOKEN``           | (none)                          | bearer token of the client commands               |
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_DB_URL = "sqlite:///msunas.db"


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{name}: expected a number, got {raw!r}") from None


@dataclass
class Settings:
    """Everything the server and the workers are configured with."""

    db_url: str = DEFAULT_DB_URL
    data_roots: list[Path] = field(default_factory=list)
    max_body_bytes: int = 1 << 20
    lease_seconds: float = 30.0
    max_attempts: int = 3
    poll_seconds: float = 0.2
    plugins: list[str] = field(default_factory=list)

    @classmethod
    def from_env(cls) -> Settings:
        """Settings from the ``MSUNAS_*`` environment variables (defaults for the unset ones)."""
        roots = [Path(p) for p in os.environ.get("MSUNAS_DATA_ROOTS", "").split(os.pathsep) if p.strip()]
        return cls(
            db_url=os.environ.get("MSUNAS_DB_URL") or DEFAULT_DB_URL,
            data_roots=roots,
            max_body_bytes=int(_float("MSUNAS_MAX_BODY_BYTES", 1 << 20)),
            lease_seconds=_float("MSUNAS_LEASE_SECONDS", 30.0),
            max_attempts=int(_float("MSUNAS_MAX_ATTEMPTS", 3)),
            poll_seconds=_float("MSUNAS_POLL_SECONDS", 0.2),
            plugins=[m.strip() for m in os.environ.get("MSUNAS_WORKER_PLUGINS", "").split(",") if m.strip()],
        )
