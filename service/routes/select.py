"""``POST /jobs/{id}/select``: pick architectures from a job's archive (the options of ``msunas select``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from search.select import select_records
from service import repository as repo
from service.deps import DbDep, JobId, Owner
from service.problems import AUTH, links, problem_responses
from service.schemas import Selection, SelectRequest

router = APIRouter(prefix="/jobs/{job_id}", tags=["archive"])


@router.post("/select", response_model=Selection, responses={
    **problem_responses(*AUTH, 404, 413),
    200: {"links": links("$request.path.job_id", "$response.body#/items/0/id", "arch", "export")}})
def select(job_id: JobId, owner: Owner, db: DbDep, body: SelectRequest) -> dict[str, Any]:
    """Pick architectures (most accurate, lowest metric, trade-off, preference point); never a violator of the
    job's constraints."""
    with db.transaction() as s:
        job = repo.get_job(s, owner, job_id)
        rows = repo.all_archive(s, job_id)
        records = [repo.arch_record(a, job) for a in rows]
    return {"items": select_records(records, repo.job_spec(job), body)}
