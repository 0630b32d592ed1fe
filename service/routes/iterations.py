"""``/jobs/{id}/iterations``: every stored iteration's statistics (and, on request, its engine state)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from service import repository as repo
from service.deps import DbDep, IterK, JobId, Owner
from service.problems import AUTH, problem_responses
from service.schemas import IterationList, IterationOut

router = APIRouter(prefix="/jobs/{job_id}/iterations", tags=["iterations"])


@router.get("", response_model=IterationList, response_model_exclude_unset=True,
            responses=problem_responses(*AUTH, 404))
def iterations(job_id: JobId, owner: Owner, db: DbDep) -> dict[str, Any]:
    """Every stored iteration's statistics (HV, archive size, surrogate fit), oldest first."""
    with db.transaction() as s:
        repo.get_job(s, owner, job_id)
        return {"items": [repo.iteration_record(it) for it in repo.list_iterations(s, job_id)]}


@router.get("/{k}", response_model=IterationOut, response_model_exclude_unset=True,
            responses=problem_responses(*AUTH, 404))
def iteration(job_id: JobId, k: IterK, owner: Owner, db: DbDep,
              include_state: Annotated[bool, Query(description="include the engine state")] = False
              ) -> dict[str, Any]:
    """One stored iteration (optionally with its engine state)."""
    with db.transaction() as s:
        repo.get_job(s, owner, job_id)
        return repo.iteration_record(repo.get_iteration(s, job_id, k), with_state=include_state)
