"""``create_app``: the FastAPI application (settings, middleware, problem handlers, routers; nothing else)."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from search.provenance import msunas_version
from service.cache import SummaryCache, TokenCache
from service.db import Database, check_schema
from service.middleware import BodySizeLimit, RequestId, StructuredBody
from service.problems import install_problem_handlers, problem_openapi
from service.routes import ROUTERS
from service.routes.pages import STATIC_DIR
from service.settings import Settings

DESCRIPTION = ("Multi-objective NAS as a service: submit a job spec, watch it, select and export architectures. "
               "Authenticate with `Authorization: Bearer <token>` (`msunas token create`). Errors are RFC 9457 "
               "problem+json (`GET /problems` lists the types).")


def create_app(settings: Settings | None = None, *, require_schema: bool = True) -> FastAPI:
    """The app on ``settings.db_url``; refuses (``SchemaOutdatedError``) a database not at the head revision."""
    settings = settings or Settings.from_env()
    db = Database(settings.db_url)
    if require_schema:
        check_schema(db)
    app = FastAPI(title="msunas", version=msunas_version(), description=DESCRIPTION,
                  generate_unique_id_function=lambda route: route.name)  # operationId: the route's function name
    app.state.settings = settings
    app.state.db = db
    app.state.token_cache = TokenCache(settings.token_cache_seconds)
    app.state.summary_cache = SummaryCache()
    app.add_middleware(StructuredBody)  # innermost: sees only bodies within the size limit
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestId)
    install_problem_handlers(app)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    for router in ROUTERS:
        app.include_router(router)
    app.openapi = lambda: problem_openapi(app)  # type: ignore[method-assign]
    return app
