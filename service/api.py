"""The REST API (FastAPI), and the dashboard page at ``/`` with its assets under ``/static``.

Thin routes: authenticate, validate, call :mod:`service.repository`, map domain errors to HTTP. Every error is
RFC 9457 ``application/problem+json`` with ``field`` naming the failing input where there is one. A job is
visible only to the token that submitted it (others get 404, as if it did not exist).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from search.spec import JobSpec
from service import repository as repo
from service.db import Database, StorageError, check_schema
from service.settings import Settings

PROBLEM = "application/problem+json"
STATIC_DIR = Path(__file__).resolve().parent / "static"  # the dashboard (index.html, app.js, app.css)
# the page loads only its own assets and talks only to this server
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; "
    "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
SUMMARY_CACHE_SECONDS = 0.25  # GET /jobs/{id} answers from memory for this long, then refreshes in the background
SUMMARY_STALE_MAX_SECONDS = 1.0  # ... and waits for the database once its answer is this far past due
TOKEN_CACHE_SECONDS = 10.0  # a known token is re-checked against the database at most this often
MAX_ID = 2**62
JobId = Annotated[int, PathParam(ge=1, le=MAX_ID, description="job id")]
ArchId = Annotated[int, PathParam(ge=1, le=MAX_ID, description="architecture id (from the archive)")]
IterK = Annotated[int, PathParam(ge=0, le=2**31 - 1, description="iteration number")]
# server limits on a spec's budget (the columns and the workers need bounded numbers)
SPEC_LIMITS = {"iterations": 100_000, "n_doe": 1_000_000, "n_iter": 100_000, "seed": 2**63 - 1}


class Problem(Exception):
    """An error answered as problem+json."""

    def __init__(self, status: int, title: str, detail: str, *, field: str | None = None,
                 errors: list[dict[str, Any]] | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail, self.field = status, title, detail, field
        self.errors = errors
        self.headers = headers


def problem_response(request: Request | None, p: Problem) -> JSONResponse:
    """Render a :class:`Problem` (RFC 9457 members plus ``field``/``errors``)."""
    body: dict[str, Any] = {"type": "about:blank", "title": p.title, "status": p.status, "detail": p.detail}
    if request is not None:
        body["instance"] = str(request.url.path)
    if p.field is not None:
        body["field"] = p.field
    if p.errors:
        body["errors"] = p.errors
    return JSONResponse(body, status_code=p.status, media_type=PROBLEM, headers=p.headers)


class BodySizeLimit:
    """Pure-ASGI middleware: a request body above ``max_bytes`` is answered 413 (by header or while streaming)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_big = Problem(413, "Payload Too Large", f"request body exceeds {self.max_bytes} bytes", field="body")
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.max_bytes:
                    await problem_response(None, too_big)(scope, receive, send)
                    return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooBig()
            return msg

        async def tracking_send(msg: Message) -> None:
            nonlocal started
            if msg["type"] == "http.response.start":
                started = True
            await send(msg)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooBig:
            if not started:
                await problem_response(None, too_big)(scope, receive, send)


class _TooBig(Exception):
    pass


# ------------------------------------------------------------------------------------------------ models
class ResumeRequest(BaseModel):
    """Body of ``POST /jobs/{id}/resume``."""

    model_config = ConfigDict(extra="forbid")
    from_iteration: int | None = Field(default=None, ge=0, description="stored iteration to resume from "
                                       "(default: the latest)")


class SelectRequest(BaseModel):
    """Body of ``POST /jobs/{id}/select``: the options of ``msunas select`` (``search.select.select``)."""

    model_config = ConfigDict(extra="forbid")
    n: int = Field(default=3, ge=1, le=10_000, description="how many architectures")
    prefer: str | None = Field(default=None, max_length=500, description="None: most accurate first; a METRIC: "
                               "the lowest of it (plus the most accurate); 'trade-off': high trade-off points; "
                               "a preference point like 'top1#80+macs#150': the closest to it")
    n_exits: int | None = Field(default=None, ge=0, le=4, description="early-exit nets with this many exits")
    constraints: dict[str, float] | None = Field(default=None, description="maxima of recorded metrics "
                                                 "(counts; latency_ms in ms)")


# ------------------------------------------------------------------------------------------------ helpers
def _field_of(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    # discriminated unions add the tag name ("evaluator.oracle.path"): drop it
    out: list[str] = []
    for p in parts:
        if out and out[-1] == "evaluator" and p in ("oracle", "supernet"):
            continue
        out.append(p)
    return ".".join(out) or "body"


def _confine(path_str: str, roots: list[Path], fld: str) -> None:
    if not roots:
        raise Problem(422, "Unprocessable Content",
                      f"{fld}: this server accepts no server-side paths (no data roots configured: "
                      "set MSUNAS_DATA_ROOTS or `msunas serve --data-root`)", field=fld)
    p = Path(os.path.realpath(path_str))
    for r in roots:
        rr = Path(os.path.realpath(r))
        if p == rr or rr in p.parents:
            return
    raise Problem(422, "Unprocessable Content",
                  f"{fld}: {path_str} is outside the server's data roots ({', '.join(map(str, roots))})", field=fld)


def _walk_values(x: Any, where: str) -> None:
    import math

    if isinstance(x, dict):
        for k, v in x.items():
            _walk_values(v, f"{where}.{k}" if where else str(k))
    elif isinstance(x, list | tuple):
        for i, v in enumerate(x):
            _walk_values(v, f"{where}.{i}")
    elif isinstance(x, float) and not math.isfinite(x):
        raise Problem(422, "Unprocessable Content", f"{where}: must be a finite number", field=where)
    elif isinstance(x, str) and "\x00" in x:
        raise Problem(422, "Unprocessable Content", f"{where}: NUL characters are not allowed", field=where)


def check_spec(spec: JobSpec, roots: list[Path]) -> None:
    """Service-side checks of a valid spec: finite numbers, no NUL characters, budgets within the server's
    limits, and every server-side path inside a configured data root (422 naming the field)."""
    _walk_values(spec.model_dump(mode="python"), "")
    for fld, mx in SPEC_LIMITS.items():
        v = getattr(spec, fld)
        if v > mx:
            raise Problem(422, "Unprocessable Content", f"{fld}: at most {mx} on this server, got {v}", field=fld)
    if spec.dataset.root:
        _confine(spec.dataset.root, roots, "dataset.root")
    if spec.supernet.path:
        _confine(spec.supernet.path, roots, "supernet.path")
    if spec.evaluator.kind == "oracle":
        _confine(spec.evaluator.path, roots, "evaluator.path")
    if spec.latency_table:
        _confine(spec.latency_table, roots, "latency_table")


def _iteration_out(it: Any, with_state: bool = False) -> dict[str, Any]:
    d = {"iteration": it.k, "n_archive": it.n_archive, "hv": it.hv, "surrogate": it.surrogate, "stats": it.stats,
         "created_at": it.created_at.isoformat() + "Z"}
    if with_state:
        d["engine_state"] = it.engine_state
    return d


_bearer = HTTPBearer(auto_error=False)


async def owner(request: Request, cred: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> int:
    """The token id of the request's bearer token (401 problem when missing or unknown).

    Async so that a cached token costs no thread-pool hop; an unknown one is checked in the thread pool."""
    unauthorized = {"WWW-Authenticate": "Bearer"}
    if cred is None or cred.scheme.lower() != "bearer":
        raise Problem(401, "Unauthorized", "Authorization: a bearer token is needed "
                      "(create one with `msunas token create`)", field="Authorization", headers=unauthorized)
    cache: dict[str, tuple[int, float]] = request.app.state.token_cache
    now = time.monotonic()
    hit = cache.get(cred.credentials)
    if hit is not None and hit[1] > now:
        return hit[0]
    db: Database = request.app.state.db

    def check() -> int | None:
        with db.transaction() as s:
            return repo.authenticate(s, cred.credentials)

    locks: dict[str, asyncio.Lock] = request.app.state.token_locks
    async with locks.setdefault(cred.credentials, asyncio.Lock()):  # one database check per token at a time
        hit = cache.get(cred.credentials)
        if hit is not None and hit[1] > time.monotonic():
            return hit[0]
        tid = await run_in_threadpool(check)
    if len(locks) > 10_000:
        locks.clear()
    if tid is not None:
        if len(cache) > 10_000:
            cache.clear()
        cache[cred.credentials] = (tid, now + TOKEN_CACHE_SECONDS)
    if tid is None:
        raise Problem(401, "Unauthorized", "Authorization: unknown or revoked token", field="Authorization",
                      headers=unauthorized)
    return tid


Owner = Annotated[int, Depends(owner)]


# ------------------------------------------------------------------------------------------------ the app
def create_app(settings: Settings | None = None, *, require_schema: bool = True) -> FastAPI:
    """Build the app on ``settings.db_url``; refuses (``SchemaOutdatedError``) an outdated schema."""
    settings = settings or Settings.from_env()
    db = Database(settings.db_url)
    if require_schema:
        check_schema(db)

    app = FastAPI(
        title="msunas",
        version="0.1.0",
        description="Multi-objective NAS as a service: submit a job spec, watch it, select and export "
        "architectures. Authenticate with `Authorization: Bearer <token>` (`msunas token create`).",
    )
    app.state.db = db
    app.state.settings = settings
    app.state.token_cache = {}
    app.state.token_locks = {}
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)

    # ---- errors
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = []
        for e in exc.errors():
            loc = _field_of(tuple(e.get("loc", ())))
            msg = str(e.get("msg", "invalid")).removeprefix("Value error, ")
            errors.append({"field": loc, "message": msg})
        first = errors[0] if errors else {"field": "body", "message": "invalid request"}
        return problem_response(request, Problem(422, "Unprocessable Content", f"{first['field']}: {first['message']}",
                                                 field=first["field"], errors=errors))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        titles = {404: "Not Found", 405: "Method Not Allowed", 401: "Unauthorized"}
        return problem_response(request, Problem(exc.status_code, titles.get(exc.status_code, "Error"),
                                                 str(exc.detail), headers=getattr(exc, "headers", None)))

    @app.exception_handler(StorageError)
    async def _storage(request: Request, exc: StorageError) -> JSONResponse:
        return problem_response(request, Problem(503, "Service Unavailable", f"database unavailable: {exc}",
                                                 headers={"Retry-After": "2"}))

    @app.exception_handler(repo.NotFoundError)  # a job/iteration/architecture absent or another token's
    async def _not_found(request: Request, exc: repo.NotFoundError) -> JSONResponse:
        return problem_response(request, Problem(404, "Not Found", str(exc)))

    @app.exception_handler(repo.ConflictError)
    async def _conflict(request: Request, exc: repo.ConflictError) -> JSONResponse:
        return problem_response(request, Problem(409, "Conflict", str(exc)))

    # ---- the dashboard: static page + assets shipped in the package (no CDN); its API calls carry the token
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    def dashboard() -> FileResponse:
        """The dashboard page (no token needed to load it; every API call it makes sends one)."""
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html", headers=PAGE_HEADERS)

    # ---- routes
    @app.get("/healthz", tags=["service"])
    def healthz() -> dict[str, Any]:
        """Liveness and database reachability."""
        from sqlalchemy import text

        with db.transaction() as s:
            s.execute(text("SELECT 1"))
        return {"status": "ok", "database": db.engine.dialect.name}

    @app.post("/jobs", status_code=202, tags=["jobs"])
    def submit(
        spec: JobSpec,
        response: Response,
        tid: Owner,
        name: Annotated[str | None, Query(max_length=200)] = None,
        idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
    ) -> dict[str, Any]:
        """Submit a job spec (202 + ``Location``). ``Idempotency-Key``: the same key and body give the same job."""
        check_spec(spec, settings.data_roots)
        if name is not None and "\x00" in name:
            raise Problem(422, "Unprocessable Content", "name: NUL characters are not allowed", field="name")
        data = spec.model_dump(mode="json")
        try:
            with db.transaction() as s:
                job, created = repo.create_job(s, tid, data, name=name, idempotency_key=idempotency_key)
                out = repo.job_summary(s, job)
        except repo.ConflictError as e:
            raise Problem(409, "Conflict", str(e), field="Idempotency-Key") from None
        except StorageError:  # a concurrent request with the same key won the insert: answer with its job
            if idempotency_key is None:
                raise
            with db.transaction() as s:
                job, created = repo.create_job(s, tid, data, name=name, idempotency_key=idempotency_key)
                out = repo.job_summary(s, job)
        response.headers["Location"] = f"/jobs/{job.id}"
        if not created:
            response.headers["Idempotent-Replayed"] = "true"
        return out

    @app.get("/jobs", tags=["jobs"])
    def list_jobs(
        tid: Owner,
        state: Annotated[str | None, Query(description="queued|running|succeeded|failed|cancelled")] = None,
        cursor: Annotated[str | None, Query(max_length=100)] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> dict[str, Any]:
        """The caller's jobs, newest first (``next_cursor`` for the next page)."""
        try:
            with db.transaction() as s:
                jobs, nxt = repo.list_jobs(s, tid, state=state, cursor=cursor, limit=limit)
                items = [{"id": j.id, "name": j.name, "state": j.state, "iteration": j.cur_iteration,
                          "iterations": j.total_iterations, "created_at": j.created_at.isoformat() + "Z"}
                         for j in jobs]
        except ValueError as e:
            fld = str(e).split(":", 1)[0]
            raise Problem(422, "Unprocessable Content", str(e), field=fld) from None
        return {"items": items, "next_cursor": nxt}

    summary_cache: dict[tuple[int, int], tuple[float, bytes]] = {}
    refreshing: dict[tuple[int, int], asyncio.Task[tuple[float, bytes]]] = {}

    def _invalidate(job_id: int) -> None:
        for key in [k for k in summary_cache if k[1] == job_id]:
            summary_cache.pop(key, None)

    @app.get("/jobs/{job_id}", tags=["jobs"], response_model=dict[str, Any])
    async def get_job(job_id: JobId, tid: Owner) -> Response:
        """State, progress (iteration, evaluations), HV history and the best architectures so far.

        Answered from memory: an entry older than ``SUMMARY_CACHE_SECONDS`` is refreshed by one background
        database read while pollers keep getting the previous answer, so many pollers of one job cost one read
        per interval and never wait for the database (only a job's first request does, or any request once
        the answer is ``SUMMARY_STALE_MAX_SECONDS`` past due, as when the database is down)."""
        key = (tid, job_id)
        hit, now = summary_cache.get(key), time.monotonic()
        if hit is None or hit[0] + SUMMARY_STALE_MAX_SECONDS <= now:  # none, or too old to show: wait for it
            return Response((await _refresh(key))[1], media_type="application/json")
        if hit[0] <= now and key not in refreshing:
            task = refreshing[key] = asyncio.create_task(_refresh(key))
            task.add_done_callback(lambda t: t.cancelled() or t.exception())  # errors surface to the next waiter
        return Response(hit[1], media_type="application/json")

    async def _refresh(key: tuple[int, int]) -> tuple[float, bytes]:
        try:
            return await run_in_threadpool(_summary, *key)
        except repo.NotFoundError:
            summary_cache.pop(key, None)  # the job is gone (or not the caller's): answer 404 from now on
            raise
        finally:
            refreshing.pop(key, None)

    def _summary(tid: int, job_id: int) -> tuple[float, bytes]:
        with db.transaction() as s:
            body = json.dumps(repo.job_summary(s, repo.get_job(s, tid, job_id)), separators=(",", ":")).encode()
        if len(summary_cache) > 10_000:
            summary_cache.clear()
        entry = (time.monotonic() + SUMMARY_CACHE_SECONDS, body)
        summary_cache[(tid, job_id)] = entry
        return entry

    @app.post("/jobs/{job_id}/cancel", tags=["jobs"])
    def cancel(job_id: JobId, tid: Owner) -> dict[str, Any]:
        """Cancel a queued or running job (409 when it already finished)."""
        with db.transaction() as s:
            out = repo.job_summary(s, repo.cancel_job(s, tid, job_id))
        _invalidate(job_id)
        return out

    @app.post("/jobs/{job_id}/resume", status_code=202, tags=["jobs"])
    def resume(job_id: JobId, tid: Owner, body: ResumeRequest | None = None) -> dict[str, Any]:
        """Resume from stored iteration ``from_iteration`` (default: the latest); later iterations are discarded."""
        try:
            with db.transaction() as s:
                out = repo.job_summary(s, repo.resume_job(s, tid, job_id, body.from_iteration if body else None))
            _invalidate(job_id)
            return out
        except ValueError as e:
            raise Problem(422, "Unprocessable Content", str(e), field="from_iteration") from None

    @app.get("/jobs/{job_id}/iterations", tags=["iterations"])
    def iterations(job_id: JobId, tid: Owner) -> dict[str, Any]:
        """Every stored iteration's statistics (HV, archive size, surrogate fit)."""
        with db.transaction() as s:
            repo.get_job(s, tid, job_id)
            return {"items": [_iteration_out(it) for it in repo.list_iterations(s, job_id)]}

    @app.get("/jobs/{job_id}/iterations/{k}", tags=["iterations"])
    def iteration(job_id: JobId, k: IterK, tid: Owner,
                  include_state: Annotated[bool, Query(description="include the engine state")] = False
                  ) -> dict[str, Any]:
        """One stored iteration (optionally with its engine state)."""
        with db.transaction() as s:
            repo.get_job(s, tid, job_id)
            return _iteration_out(repo.get_iteration(s, job_id, k), with_state=include_state)

    @app.get("/jobs/{job_id}/archive", tags=["archive"])
    def archive(
        job_id: JobId,
        tid: Owner,
        cursor: Annotated[str | None, Query(max_length=100)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> dict[str, Any]:
        """The job's evaluated architectures in evaluation order (``next_cursor`` for the next page)."""
        with db.transaction() as s:
            repo.get_job(s, tid, job_id)
            try:
                rows, nxt = repo.list_archive(s, job_id, cursor=cursor, limit=limit)
            except ValueError as e:
                raise Problem(422, "Unprocessable Content", str(e), field="cursor") from None
            return {"items": [repo.arch_record(a) for a in rows], "next_cursor": nxt}

    @app.get("/jobs/{job_id}/archs/{arch_id}", tags=["archive"])
    def arch(job_id: JobId, arch_id: ArchId, tid: Owner) -> dict[str, Any]:
        """One archived architecture, with its timm-style ``block_strings`` (``supernets.codec``)."""
        with db.transaction() as s:
            job = repo.get_job(s, tid, job_id)
            rec = repo.arch_record(repo.get_architecture(s, job_id, arch_id))
            width = job.spec.get("width_mult", 1.0)
        rec["block_strings"] = _block_strings(rec["config"], width)
        return rec

    @app.post("/jobs/{job_id}/select", tags=["archive"])
    def select_(job_id: JobId, tid: Owner, body: SelectRequest) -> dict[str, Any]:
        """Pick architectures from the archive (same options as ``msunas select``)."""
        with db.transaction() as s:
            repo.get_job(s, tid, job_id)
            records = [repo.arch_record(a) for a in repo.all_archive(s, job_id)]
        from search.select import select

        opts = body.model_dump(exclude_none=True)
        _walk_values(opts, "")
        try:
            picked = select(records, **opts)
        except ValueError as e:
            fld = str(e).split(":", 1)[0].split(".")[0] if ":" in str(e) else "body"
            raise Problem(422, "Unprocessable Content", str(e), field=fld) from None
        return {"items": list(picked)}

    @app.get("/jobs/{job_id}/archs/{arch_id}/export", tags=["archive"])
    def export(job_id: JobId, arch_id: ArchId, tid: Owner,
               format: Annotated[str, Query(pattern="^(onnx|torch|pytorch)$")] = "onnx") -> Response:  # noqa: A002
        """The architecture as ONNX (or a PyTorch checkpoint), extracted from the job's supernet."""
        with db.transaction() as s:
            job = repo.get_job(s, tid, job_id)
            a = repo.get_architecture(s, job_id, arch_id)
            spec_d, config, metrics = dict(job.spec), dict(a.config), dict(a.metrics or {})
        return _export(spec_d, config, format, metrics)

    return app


def _block_strings(config: Any, width_mult: Any) -> list[list[str]] | None:
    """Block strings of a stored config (``None`` for a config the MobileNetV3 codec cannot read)."""
    from supernets.codec import normalize_backbone, to_block_strings

    try:
        backbone = {k: config[k] for k in ("ks", "e", "d", "r")}
        return to_block_strings(normalize_backbone(backbone), float(width_mult))
    except (ValueError, KeyError, TypeError, IndexError):
        return None


def _export(spec_d: dict[str, Any], config: dict[str, Any], fmt: str, metrics: dict[str, Any]) -> Response:
    """Export through :mod:`service.export`; a job whose supernet file is gone or does not fit gives 409."""
    from service.export import export_bytes

    try:
        data, media = export_bytes(spec_d, config, fmt, metrics)
    except ValueError as e:  # e.g. the job's supernet file is gone or does not fit
        fld = str(e).split(":", 1)[0] if ":" in str(e) else "format"
        raise Problem(409, "Conflict", str(e), field=fld) from None
    ext = "onnx" if fmt == "onnx" else "pt"  # torch / pytorch
    return Response(content=data, media_type=media,
                    headers={"Content-Disposition": f'attachment; filename="arch.{ext}"'})
