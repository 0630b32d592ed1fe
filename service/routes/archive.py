"""``/jobs/{id}/archive`` and ``/jobs/{id}/archs/{arch_id}``: the evaluated architectures."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from service import repository as repo
from service.deps import ArchId, Cursor, DbDep, JobId, Owner, api_cursor, repo_cursor
from service.problems import AUTH, links, problem_responses
from service.schemas import ArchivePage, ArchOut

router = APIRouter(prefix="/jobs/{job_id}", tags=["archive"])


@router.get("/archive", response_model=ArchivePage, responses={
    **problem_responses(*AUTH, 404),
    200: {"links": links("$request.path.job_id", "$response.body#/items/0/id", "arch", "export")}})
def archive(job_id: JobId, owner: Owner, db: DbDep, cursor: Cursor = None,
            limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
    """The job's evaluated architectures in evaluation order (``next_cursor`` for the next page)."""
    with db.transaction() as s:
        job = repo.get_job(s, owner, job_id)
        rows, nxt = repo.list_archive(s, job_id, cursor=repo_cursor(cursor), limit=limit)
        return {"items": [repo.arch_record(a, job) for a in rows], "next_cursor": api_cursor(nxt)}


@router.get("/archs/{arch_id}", response_model=ArchOut, responses=problem_responses(*AUTH, 404))
def arch(job_id: JobId, arch_id: ArchId, owner: Owner, db: DbDep) -> dict[str, Any]:
    """One archived architecture, with its timm-style ``block_strings`` (``supernets.codec``)."""
    with db.transaction() as s:
        job = repo.get_job(s, owner, job_id)
        return repo.arch_record(repo.get_architecture(s, job_id, arch_id), job, block_strings=True)
