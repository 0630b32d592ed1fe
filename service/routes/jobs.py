"""``/jobs``: submit, list, show, cancel and resume search jobs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response

from search.spec import JobSpec
from service import repository as repo
from service.admission import admit
from service.cache import SummaryCache, summary_loader
from service.deps import Cursor, DbDep, JobId, Owner, SettingsDep, api_cursor, repo_cursor
from service.problems import AUTH, CONFLICT, JOB_LINKS, Problem, links, problem_responses
from service.schemas import JobDetail, JobPage, JobState, ResumeRequest
from supernets.errors import InputError

router = APIRouter(prefix="/jobs", tags=["jobs"])


def _cache(request: Request) -> SummaryCache:
    cache: SummaryCache = request.app.state.summary_cache
    return cache


@router.post("", status_code=202, response_model=JobDetail, responses={
    **problem_responses(*AUTH, 409, 413, 429),
    202: {"headers": {"Location": {"description": "the job's URL", "schema": {"type": "string"}}},
          "links": links("$response.body#/id", None, *JOB_LINKS)}})
def submit(
    spec: JobSpec,
    response: Response,
    owner: Owner,
    db: DbDep,
    settings: SettingsDep,
    name: Annotated[str | None, Query(max_length=200, description="a label for the job")] = None,
    idempotency_key: Annotated[str | None, Header(max_length=200, description="the same key and body give the same "
                                                                               "job (no duplicate)")] = None,
) -> dict[str, Any]:
    """Submit a job spec (202 + ``Location``). ``Idempotency-Key``: the same key and body give the same job."""
    artefact = admit(spec, settings)
    summary, created = repo.submit_job(db, owner, spec, name=name, idempotency_key=idempotency_key,
                                       artefact=artefact, max_active=settings.max_active_jobs_per_user)
    response.headers["Location"] = f"/jobs/{summary['id']}"
    if not created:
        response.headers["Idempotent-Replayed"] = "true"
    return summary


@router.get("", response_model=JobPage, responses={
    **problem_responses(*AUTH), 200: {"links": links("$response.body#/items/0/id", None, *JOB_LINKS)}})
def list_jobs(
    owner: Owner,
    db: DbDep,
    state: Annotated[JobState | None, Query(description="only jobs in this state")] = None,
    cursor: Cursor = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    """The caller's jobs, newest first (``next_cursor`` for the next page)."""
    with db.transaction() as s:
        jobs, nxt = repo.list_jobs(s, owner, state=state, cursor=repo_cursor(cursor), limit=limit)
        return {"items": [repo.job_list_item(j) for j in jobs], "next_cursor": api_cursor(nxt)}


@router.get("/{job_id}", response_model=JobDetail, responses=problem_responses(*AUTH, 404))
async def get_job(job_id: JobId, owner: Owner, db: DbDep, request: Request) -> Response:
    """State, progress (iteration, evaluations), HV history, the best architectures so far and warnings.

    Served from memory for up to 0.25 s (at most 1.25 s old), so many pollers cost one database read."""
    body = await _cache(request).get(owner, job_id, summary_loader(db))
    return Response(body, media_type="application/json")


@router.post("/{job_id}/cancel", response_model=JobDetail, responses=problem_responses(*AUTH, 404, 409))
def cancel(job_id: JobId, owner: Owner, db: DbDep, request: Request) -> dict[str, Any]:
    """Cancel a queued or running job (409 when it already finished); running evaluations stop."""
    with db.transaction() as s:
        out = repo.job_summary(s, repo.cancel_job(s, owner, job_id))
    _cache(request).invalidate(job_id)
    return out


@router.post("/{job_id}/resume", status_code=202, response_model=JobDetail, responses={
    **problem_responses(*AUTH, 404, 409, 413), 202: {"links": links("$response.body#/id", None, "get_job", "cancel")}})
def resume(job_id: JobId, owner: Owner, db: DbDep, request: Request,
           body: ResumeRequest | None = None) -> dict[str, Any]:
    """Resume from stored iteration ``from_iteration`` (default: the latest); iterations stored after it are
    discarded only with ``force: true`` (else 409). An iteration the job has not stored is 409 too."""
    body = body or ResumeRequest()
    try:
        with db.transaction() as s:
            out = repo.job_summary(s, repo.resume_job(s, owner, job_id, body.from_iteration, force=body.force))
    except InputError as e:  # a valid iteration number the job has not stored: its state, not the request
        if e.field != "from_iteration":
            raise
        raise Problem(CONFLICT, str(e), field=e.field) from None
    _cache(request).invalidate(job_id)
    return out
