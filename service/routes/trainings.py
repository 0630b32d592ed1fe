"""Training archived architectures to convergence: ``POST /jobs/{id}/archs/{arch_id}/train`` queues one for the
workers; ``/jobs/{id}/trainings[/{training_id}]`` show them, cancel them and give their files."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Response

from service import trainings as tr
from service.deps import ArchId, DbDep, JobId, Owner, SettingsDep
from service.problems import AUTH, problem_responses
from service.repository import MAX_ID
from service.schemas import TrainingFileName, TrainingList, TrainingOut, TrainRequest

router = APIRouter(prefix="/jobs/{job_id}", tags=["trainings"])
TrainingId = Annotated[int, Path(ge=1, le=MAX_ID, description="training id")]
MEDIA = {"net.pth": "application/octet-stream", "net.onnx": "application/onnx", "net.int8.onnx": "application/onnx",
         "net.stats": "application/json"}


@router.post("/archs/{arch_id}/train", status_code=202, response_model=TrainingOut, responses={
    **problem_responses(*AUTH, 404, 409, 413, 429),
    202: {"headers": {"Location": {"description": "the training's URL", "schema": {"type": "string"}}}}})
def train(job_id: JobId, arch_id: ArchId, owner: Owner, db: DbDep, settings: SettingsDep, response: Response,
          body: TrainRequest | None = None) -> dict[str, Any]:
    """Queue a training of the architecture to convergence from its inherited supernet weights (what
    ``msunas train`` does), run by a worker on the job's evaluator device. 409: a failed or early-exit
    architecture, a job searched without supernet weights, or one already being trained."""
    opts = (body or TrainRequest()).model_dump()
    with db.transaction() as s:
        t = tr.create_training(s, owner, job_id, arch_id, opts, max_active=settings.max_active_jobs_per_user)
        out = tr.training_record(s, t)
    response.headers["Location"] = f"/jobs/{job_id}/trainings/{out['id']}"
    return out


@router.get("/trainings", response_model=TrainingList, responses=problem_responses(*AUTH, 404))
def list_trainings(job_id: JobId, owner: Owner, db: DbDep) -> dict[str, Any]:
    """The job's trainings, oldest first."""
    with db.transaction() as s:
        return {"items": [tr.training_record(s, t) for t in tr.list_trainings(s, owner, job_id)]}


@router.get("/trainings/{training_id}", response_model=TrainingOut, responses=problem_responses(*AUTH, 404))
def get_training(job_id: JobId, training_id: TrainingId, owner: Owner, db: DbDep) -> dict[str, Any]:
    """A training's state, epochs done, history and, once it succeeded, its measured figures and files."""
    with db.transaction() as s:
        return tr.training_record(s, tr.get_training(s, owner, job_id, training_id))


@router.post("/trainings/{training_id}/cancel", response_model=TrainingOut,
             responses=problem_responses(*AUTH, 404, 409))
def cancel_training(job_id: JobId, training_id: TrainingId, owner: Owner, db: DbDep) -> dict[str, Any]:
    """Cancel a queued or running training (the worker stops at its next batch); 409 when it already finished."""
    with db.transaction() as s:
        return tr.training_record(s, tr.cancel_training(s, owner, job_id, training_id))


@router.get("/trainings/{training_id}/files/{name}", response_class=Response, responses={
    200: {"content": {m: {"schema": {"type": "string", "format": "binary"}} for m in set(MEDIA.values())},
          "description": "the file (ONNX: metadata_props say what it is)"},
    **problem_responses(*AUTH, 404, 409)})
def training_file(job_id: JobId, training_id: TrainingId, name: TrainingFileName, owner: Owner,
                  db: DbDep) -> Response:
    """A succeeded training's file: ``net.pth`` (msunas's self-contained PyTorch format), ``net.onnx``,
    ``net.int8.onnx`` (when asked for) or ``net.stats`` (JSON: the measured figures and the history)."""
    with db.transaction() as s:
        data = tr.get_file(s, owner, job_id, training_id, name)
    return Response(content=data, media_type=MEDIA[name],
                    headers={"Content-Disposition": f'attachment; filename="job{job_id}_training{training_id}_{name}"'})
