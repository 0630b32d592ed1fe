"""RFC 9457 problem details: the problem types this API answers with, and the one exception-to-problem mapping.

Every error response is ``application/problem+json``::

    {"type": "/problems/invalid-input", "title": "Invalid input", "status": 422,
     "detail": "dataset.root: ...", "instance": "/jobs", "field": "dataset.root",
     "errors": [{"field": ..., "message": ...}], "request_id": "..."}

``field`` names the failing input where there is one; ``request_id`` matches the server log line of the request
(server paths, hosts and tracebacks are logged, never answered). ``GET /problems`` lists the types with what a
client should do on each.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from search.spec import error_field, error_parts
from service.db import StorageError
from service.repository import ConflictError, LimitError, NotFoundError
from service.schemas import ProblemDetail
from supernets.errors import InputError

PROBLEM_MEDIA = "application/problem+json"
log = logging.getLogger("msunas.api")


@dataclass(frozen=True)
class ProblemType:
    """One kind of problem: its ``type`` URI slug, HTTP status, title and what a client should do."""

    slug: str
    status: int
    title: str
    advice: str

    @property
    def uri(self) -> str:
        """The ``type`` member (a URI reference resolved against the server: ``GET /problems`` describes it)."""
        return f"/problems/{self.slug}"


INVALID_INPUT = ProblemType("invalid-input", 422, "Invalid input",
                            "fix the input named by `field` (and `errors`) and send the request again")
UNAUTHORIZED = ProblemType("unauthorized", 401, "Unauthorized",
                           "send `Authorization: Bearer <token>` with a valid token (`msunas token create`)")
NOT_FOUND = ProblemType("not-found", 404, "Not found",
                        "the resource does not exist or is not yours; check the id (jobs are visible to their owner)")
CONFLICT = ProblemType("conflict", 409, "Conflict",
                       "the resource's current state does not allow this; read it again (GET) and decide")
PAYLOAD_TOO_LARGE = ProblemType("payload-too-large", 413, "Payload too large",
                                "send a smaller body (the limit is the server's MSUNAS_MAX_BODY_BYTES)")
UNSUPPORTED_MEDIA = ProblemType("unsupported-media-type", 415, "Unsupported media type",
                                "send application/json or application/yaml")
METHOD_NOT_ALLOWED = ProblemType("method-not-allowed", 405, "Method not allowed", "use a method the route documents")
TOO_MANY_REQUESTS = ProblemType("too-many-requests", 429, "Too many requests",
                                "wait `Retry-After` seconds (your queued/running job limit is reached), then retry")
UNAVAILABLE = ProblemType("service-unavailable", 503, "Service unavailable",
                          "the database is briefly unavailable or busy: retry after `Retry-After` seconds")
INTERNAL = ProblemType("internal-error", 500, "Internal server error",
                       "a server bug: report the `request_id` to the operator")
PROBLEM_TYPES: tuple[ProblemType, ...] = (INVALID_INPUT, UNAUTHORIZED, NOT_FOUND, CONFLICT, PAYLOAD_TOO_LARGE,
                                          UNSUPPORTED_MEDIA, METHOD_NOT_ALLOWED, TOO_MANY_REQUESTS, UNAVAILABLE,
                                          INTERNAL)
_BY_STATUS = {p.status: p for p in PROBLEM_TYPES}


class Problem(Exception):
    """An error answered as problem+json (raise it from routes and dependencies)."""

    def __init__(self, kind: ProblemType, detail: str, *, field: str | None = None,
                 errors: list[dict[str, Any]] | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.kind, self.detail, self.field, self.errors, self.headers = kind, detail, field, errors, headers


def request_id_of(request: Request | None) -> str | None:
    """The id :class:`service.middleware.RequestId` gave this request."""
    if request is None:
        return None
    rid = request.scope.get("state", {}).get("request_id")
    return str(rid) if rid else None


def problem_body(p: Problem, instance: str | None = None, request_id: str | None = None) -> dict[str, Any]:
    """The problem+json members of ``p``."""
    body: dict[str, Any] = {"type": p.kind.uri, "title": p.kind.title, "status": p.kind.status, "detail": p.detail}
    if instance is not None:
        body["instance"] = instance
    if p.field is not None:
        body["field"] = p.field
    if p.errors:
        body["errors"] = p.errors
    if request_id is not None:
        body["request_id"] = request_id
    return body


def problem_response(request: Request | None, p: Problem) -> JSONResponse:
    """Render a :class:`Problem`."""
    instance = str(request.url.path) if request is not None else None
    return JSONResponse(problem_body(p, instance, request_id_of(request)), status_code=p.kind.status,
                        media_type=PROBLEM_MEDIA, headers=p.headers)


def field_of(loc: tuple[Any, ...] | list[Any]) -> str:
    """Dotted field name of a request error location (``body``/``query``/... dropped; see ``error_field``)."""
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    return error_field(parts) or "body"


def validation_problem(errors: list[dict[str, Any]]) -> Problem:
    """A 422 problem from pydantic error dicts (the first names ``field``; all are listed in ``errors``)."""
    items = []
    for e in errors:
        loc = list(e.get("loc", ()))
        where = loc[:1] if loc and loc[0] in ("body", "query", "path", "header") else []
        field, msg = error_parts({**e, "loc": loc[len(where):]})
        items.append({"field": field or "body", "message": msg})
    first = items[0] if items else {"field": "body", "message": "invalid request"}
    return Problem(INVALID_INPUT, f"{first['field']}: {first['message']}", field=first["field"], errors=items)


# ------------------------------------------------------------------------------------------------ OpenAPI
RETRY_AFTER_HEADER = {"Retry-After": {"description": "seconds to wait before retrying",
                                      "schema": {"type": "integer", "minimum": 0}}}
_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"description": "`Bearer`", "schema": {"type": "string"}}},
    429: RETRY_AFTER_HEADER,
    503: RETRY_AFTER_HEADER,
}
AUTH = (401, 422, 503)  # every authenticated operation (422: its parameters; 503: the database)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route answering these problem statuses: each documented with the problem+json
    schema (:func:`problem_openapi` moves it to ``application/problem+json``) and its headers."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in sorted(set(statuses)):
        kind = _BY_STATUS[status]
        out[status] = {"model": ProblemDetail, "description": f"{kind.title} (`{kind.uri}`): {kind.advice}"}
        if status in _HEADERS:
            out[status]["headers"] = _HEADERS[status]
    return out


def links(job_id: str, arch_id: str | None = None, *operations: str) -> dict[str, dict[str, Any]]:
    """OpenAPI ``links`` from a response to the operations (operation ids) it leads to, with the runtime expressions
    of their ``job_id`` (and ``arch_id``): what clients and stateful tests follow (submit -> get -> archive ...)."""
    out: dict[str, dict[str, Any]] = {}
    for op in operations:
        params = {"job_id": job_id, **({"arch_id": arch_id} if arch_id and op in ("arch", "export") else {})}
        out[op] = {"operationId": op, "parameters": params}
    return out


JOB_LINKS = ("get_job", "cancel", "resume", "iterations", "archive", "select")


def problem_openapi(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI document with every 4xx/5xx response as ``application/problem+json`` (FastAPI writes
    ``application/json`` for a response model); cached on the app like FastAPI's own."""
    if app.openapi_schema:
        return app.openapi_schema
    doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    for ops in doc.get("paths", {}).values():
        for op in ops.values():
            for code, resp in op.get("responses", {}).items():
                content = resp.get("content", {})
                if code[0] in "45" and "application/json" in content:
                    resp["content"] = {PROBLEM_MEDIA: content.pop("application/json"), **content}
    for unused in ("HTTPValidationError", "ValidationError"):
        if unused not in str(doc.get("paths")):
            doc.get("components", {}).get("schemas", {}).pop(unused, None)
    app.openapi_schema = doc
    return doc


# ------------------------------------------------------------------------------------------------ handlers
async def _problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Problem)
    return problem_response(request, exc)


async def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return problem_response(request, validation_problem(list(exc.errors())))


async def _input(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InputError)
    return problem_response(request, Problem(INVALID_INPUT, str(exc), field=exc.field))


def allowed_methods(request: Request) -> str:
    """Every method the request's path takes (Starlette's 405 names only those of the first matching route)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        regex, route_methods = getattr(route, "path_regex", None), getattr(route, "methods", None)
        if regex is not None and route_methods and regex.match(request.url.path):
            methods |= set(route_methods)
    return ", ".join(sorted(methods))


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    kind = _BY_STATUS.get(exc.status_code, INTERNAL if exc.status_code >= 500 else INVALID_INPUT)
    headers = dict(getattr(exc, "headers", None) or {})
    if exc.status_code == 405:
        headers["Allow"] = allowed_methods(request)
    return problem_response(request, Problem(kind, str(exc.detail), headers=headers or None))


async def _not_found(request: Request, exc: Exception) -> JSONResponse:
    return problem_response(request, Problem(NOT_FOUND, str(exc)))


async def _conflict(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ConflictError)
    return problem_response(request, Problem(CONFLICT, str(exc), field=exc.field))


async def _limit(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, LimitError)
    headers = {"Retry-After": str(exc.retry_after)}
    return problem_response(request, Problem(TOO_MANY_REQUESTS, str(exc), headers=headers))


async def _storage(request: Request, exc: Exception) -> JSONResponse:
    log.warning("request %s: database unavailable: %s", request_id_of(request), exc)
    detail = "the database is unavailable or busy; retry shortly"
    return problem_response(request, Problem(UNAVAILABLE, detail, headers={"Retry-After": "2"}))


async def _internal(request: Request, exc: Exception) -> JSONResponse:
    log.error("request %s: %s %s failed", request_id_of(request), request.method, request.url.path, exc_info=exc)
    return problem_response(request, Problem(INTERNAL, "the server failed to answer this request"))


def install_problem_handlers(app: FastAPI) -> None:
    """Map every exception a route can raise to its problem (the only place errors become HTTP)."""
    app.add_exception_handler(Problem, _problem)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(InputError, _input)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(NotFoundError, _not_found)
    app.add_exception_handler(ConflictError, _conflict)
    app.add_exception_handler(LimitError, _limit)
    app.add_exception_handler(StorageError, _storage)
    app.add_exception_handler(Exception, _internal)
