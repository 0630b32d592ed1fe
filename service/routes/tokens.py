"""``/tokens/me``: the calling token (who am I), and revoking it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from service import repository as repo
from service.cache import TokenCache
from service.deps import DbDep, Owner
from service.problems import problem_responses
from service.schemas import TokenInfo

router = APIRouter(prefix="/tokens", tags=["tokens"])


@router.get("/me", response_model=TokenInfo, responses=problem_responses(401, 503))
def me(owner: Owner, db: DbDep) -> dict[str, Any]:
    """The token this request authenticated with."""
    with db.transaction() as s:
        return repo.token_info(repo.get_token(s, owner))


@router.delete("/me", status_code=204, response_class=Response, responses=problem_responses(401, 503))
def revoke_me(owner: Owner, db: DbDep, request: Request) -> Response:
    """Revoke the calling token (at once on this server; within MSUNAS_TOKEN_CACHE_SECONDS on the others)."""
    with db.transaction() as s:
        repo.revoke_token(s, owner)
    cache: TokenCache = request.app.state.token_cache
    cache.forget(owner)
    return Response(status_code=204)
