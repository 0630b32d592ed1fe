"""Service settings: one pydantic-settings model, read from ``MSUNAS_*`` environment variables.

Every default lives here and only here; CLI options override single fields (``settings.model_copy(update=...)``).
README's settings table is checked against this model by ``tests/service/test_settings.py``; regenerate it with
``python -m service.settings``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from supernets.errors import InputError


class Settings(BaseSettings):
    """Everything the server, the workers and the client commands are configured with."""

    model_config = SettingsConfigDict(env_prefix="MSUNAS_", extra="ignore", validate_default=True)

    db_url: str = Field(default="sqlite:///msunas.db", description="SQLAlchemy URL (SQLite file or PostgreSQL)")
    data_roots: Annotated[list[Path], NoDecode] = Field(
        default_factory=list,
        description="folders (`os.pathsep`-separated) that a job spec's server-side paths must lie in",
    )
    max_body_bytes: int = Field(default=1 << 20, ge=1024, description="request body size limit (413 above it)")
    lease_seconds: float = Field(default=30.0, gt=0, description="lease of a claimed task/step; heartbeats renew it")
    max_attempts: int = Field(default=3, ge=1, description="claims of one task (or lost engine steps of one job) "
                              "before it is recorded failed")
    max_active_jobs_per_user: int = Field(default=200, ge=1, description="queued + running jobs one token may have; "
                                          "more are answered 429 with Retry-After")
    step_timeout_seconds: float = Field(default=3600.0, gt=0, description="an engine step running longer loses its "
                                        "lease (and counts as an attempt)")
    poll_seconds: float = Field(default=0.2, gt=0, description="idle worker's sleep between claim attempts")
    worker_plugins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="comma-separated modules a worker imports at start (e.g. to register your own evaluators)",
    )
    worker_threads: int = Field(default=1, ge=1, le=256, description="torch/BLAS threads per worker process")
    token_cache_seconds: float = Field(
        default=1.0, ge=0, le=1.0, description="a known token is re-checked against the database this often"
    )
    allow_python_evaluator: bool = Field(
        default=False, description="accept `evaluator: {kind: python}` jobs (their workers run the code they name)"
    )
    url: str = Field(default="http://127.0.0.1:8000", description="server the client commands talk to")
    token: str | None = Field(default=None, description="bearer token of the client commands")

    @field_validator("data_roots", mode="before")
    @classmethod
    def _split_paths(cls, v: Any) -> Any:
        if isinstance(v, str):
            return [Path(p) for p in v.split(os.pathsep) if p.strip()]
        return v

    @field_validator("worker_plugins", mode="before")
    @classmethod
    def _split_modules(cls, v: Any) -> Any:
        if isinstance(v, str):
            return [m.strip() for m in v.split(",") if m.strip()]
        return v

    @classmethod
    def from_env(cls, **overrides: Any) -> Settings:
        """Settings from the environment, with ``overrides`` (non-None values) on top; ``InputError`` naming the
        variable for a bad value."""
        try:
            return cls(**{k: v for k, v in overrides.items() if v is not None})
        except ValidationError as e:
            first = e.errors()[0]
            name = str(first["loc"][0]) if first["loc"] else "settings"
            raise InputError(f"MSUNAS_{name.upper()}", str(first["msg"])) from None


def settings_table() -> str:
    """The README's settings table (markdown), generated from the model."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, f in Settings.model_fields.items():
        default = f.get_default(call_default_factory=True)
        shown = "(none)" if default in (None, []) else f"`{default}`"
        rows.append(f"| `MSUNAS_{name.upper()}` | {shown} | {f.description} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(settings_table())
