"""The dashboard page at ``/``, ``/healthz`` and the problem-type catalogue at ``/problems``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import FileResponse

from service import repository as repo
from service.deps import DbDep
from service.problems import PROBLEM_TYPES, problem_responses
from service.schemas import Health, ProblemTypeOut

router = APIRouter()
STATIC_DIR = Path(__file__).resolve().parents[1] / "static"  # the dashboard (index.html, app.js, app.css)
# the page loads only its own assets and talks only to this server
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; "
    "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@router.get("/", include_in_schema=False)
def dashboard() -> FileResponse:
    """The dashboard page (no token needed to load it; every API call it makes sends one)."""
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html", headers=PAGE_HEADERS)


@router.get("/healthz", tags=["service"], response_model=Health, responses=problem_responses(503))
def healthz(db: DbDep) -> dict[str, Any]:
    """The server answers, and its database answers and takes writes."""
    repo.check_health(db)
    return {"status": "ok", "database": db.engine.dialect.name}


@router.get("/problems", tags=["service"], response_model=list[ProblemTypeOut])
def problems() -> list[dict[str, Any]]:
    """Every problem type this API answers with, and what a client should do on each."""
    return [{"type": p.uri, "status": p.status, "title": p.title, "advice": p.advice} for p in PROBLEM_TYPES]
