"""FastAPI dependencies: settings, the database, and the calling token (``Owner``), as ``Annotated`` types."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service import repository as repo
from service.cache import TokenCache
from service.db import Database
from service.problems import UNAUTHORIZED, Problem
from service.settings import Settings


def get_settings(request: Request) -> Settings:
    """The app's settings."""
    settings: Settings = request.app.state.settings
    return settings


def get_db(request: Request) -> Database:
    """The app's database (one engine per app; routes open transactions with ``db.transaction()``)."""
    db: Database = request.app.state.db
    return db


SettingsDep = Annotated[Settings, Depends(get_settings)]
DbDep = Annotated[Database, Depends(get_db)]


_bearer = HTTPBearer(auto_error=False)


async def current_owner(request: Request, db: DbDep,
                        cred: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> int:
    """The token id of the request's bearer token (401 problem when missing, unknown or revoked).

    Async so that a cached token costs no thread-pool hop; an unknown one is checked in the thread pool."""
    headers = {"WWW-Authenticate": "Bearer"}
    if cred is None or cred.scheme.lower() != "bearer":
        raise Problem(UNAUTHORIZED, "Authorization: a bearer token is needed (create one with `msunas token create`)",
                      field="Authorization", headers=headers)
    if len(cred.credentials) > 200:
        raise Problem(UNAUTHORIZED, "Authorization: unknown or revoked token", field="Authorization", headers=headers)
    cache: TokenCache = request.app.state.token_cache
    tid = await cache.owner(db, cred.credentials)
    if tid is None:
        raise Problem(UNAUTHORIZED, "Authorization: unknown or revoked token", field="Authorization", headers=headers)
    return tid


Owner = Annotated[int, Depends(current_owner)]


MAX_ID = 2**62  # ids fit a signed 64-bit column with room to spare
JobId = Annotated[int, Path(ge=1, le=MAX_ID, description="job id")]
ArchId = Annotated[int, Path(ge=1, le=MAX_ID, description="architecture id (from the archive)")]
IterK = Annotated[int, Path(ge=0, le=2**31 - 1, description="iteration number")]
Cursor = Annotated[str | None, Query(min_length=1, max_length=18, pattern=r"^[0-9]+$",
                                     description="the cursor from a previous page's next_cursor")]


def repo_cursor(cursor: str | None) -> str | None:
    """The repository's cursor of an API cursor (the API's is the decimal id; every one the schema admits is
    valid, so a schema-valid request is never refused)."""
    return repo.encode_cursor(int(cursor)) if cursor else None


def api_cursor(cursor: str | None) -> str | None:
    """The API cursor of a repository cursor (inverse of :func:`repo_cursor`)."""
    return str(repo.decode_cursor(cursor)) if cursor else None
