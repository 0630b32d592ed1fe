"""Trainings of archived architectures: every read and write of the ``trainings`` and ``training_files`` tables.

``POST /jobs/{id}/archs/{arch_id}/train`` queues one; a worker leases it like an evaluation task (fencing token
``attempt``, heartbeats), trains with :func:`supernets.train_subnet.train_subnet` and stores the checkpoint after
every epoch (so a worker that dies costs at most one epoch: the next claim continues from it) and, at the end,
the files and the measured figures. Functions taking a ``Session`` run inside the caller's transaction.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from search.objectives import dataset_classes, n_classes_of
from search.spec import JobSpec
from service.db import Database
from service.models import Architecture, Job, Training, TrainingFile, utcnow
from service.repository import (
    ConflictError,
    LimitError,
    NotFoundError,
    _jsonable,
    _ts,
    check_exportable,
    get_architecture,
    get_job,
    public_error,
)

ACTIVE = ("queued", "running")
RESULT_FILES = ("net.pth", "net.onnx", "net.int8.onnx", "net.stats")
CHECKPOINT = "checkpoint.pth"


def create_training(s: Session, owner_id: int, job_id: int, arch_id: int, options: dict[str, Any], *,
                    max_active: int | None = None) -> Training:
    """Queue a training of archived architecture ``arch_id``. :class:`ConflictError` for an architecture that
    cannot be trained (failed evaluation, an early-exit net, a job without supernet weights) or that is already
    being trained; :class:`LimitError` past ``max_active`` queued or running trainings of the owner."""
    job = get_job(s, owner_id, job_id)
    a = get_architecture(s, job_id, arch_id)
    check_exportable(job, a)
    spec = JobSpec.model_validate(job.spec)
    if spec.search_space != "mobilenetv3":
        raise ConflictError(f"job {job_id} searched {spec.search_space} architectures; training to convergence "
                            "takes single-exit mobilenetv3 ones (fine-tune early-exit nets with `msunas export "
                            "--n-epochs N`)", field="arch_id")
    n, have = n_classes_of(spec), dataset_classes(spec.dataset.name, spec.dataset.root)
    if n != have:
        raise ConflictError(f"job {job_id}'s architectures have {n} classes ({spec.evaluator.kind} evaluator), its "
                            f"dataset {spec.dataset.name} has {have}: there is no data to train them on; search with "
                            "the supernet evaluator on your dataset", field="arch_id")
    busy = s.execute(select(Training.id).where(Training.job_id == job_id, Training.arch_id == arch_id,
                                               Training.state.in_(ACTIVE))).scalar()
    if busy is not None:
        raise ConflictError(f"architecture {arch_id} is already being trained (training {busy}); cancel it first "
                            "or wait for it", field="arch_id")
    if max_active is not None:
        n = s.execute(select(func.count()).select_from(Training).join(Job, Job.id == Training.job_id).where(
            Job.owner_id == owner_id, Training.state.in_(ACTIVE))).scalar_one()
        if n >= max_active:
            raise LimitError(f"you have {n} queued or running trainings; at most {max_active} "
                             "(MSUNAS_MAX_ACTIVE_JOBS_PER_USER)")
    t = Training(job_id=job_id, arch_id=arch_id, options=_jsonable(options), state="queued", epoch=0, history=[],
                 lease_expires=0.0, attempt=0, n_lost=0)
    s.add(t)
    s.flush()
    return t


def get_training(s: Session, owner_id: int | None, job_id: int, training_id: int, *,
                 for_update: bool = False) -> Training:
    """A training of one of ``owner_id``'s jobs; :class:`NotFoundError` otherwise."""
    get_job(s, owner_id, job_id)
    q = select(Training).where(Training.job_id == job_id, Training.id == training_id)
    t = s.execute(q.with_for_update() if for_update else q).scalar_one_or_none()
    if t is None:
        raise NotFoundError(f"job {job_id} has no training {training_id}")
    return t


def list_trainings(s: Session, owner_id: int, job_id: int) -> list[Training]:
    """A job's trainings, oldest first."""
    get_job(s, owner_id, job_id)
    return list(s.execute(select(Training).where(Training.job_id == job_id).order_by(Training.id)).scalars())


def training_record(s: Session, t: Training) -> dict[str, Any]:
    """What ``GET /jobs/{id}/trainings/{training_id}`` shows: state, progress, options, the measured figures
    when done, and the files there are to download (name, size, SHA-256)."""
    files = s.execute(select(TrainingFile.name, TrainingFile.size, TrainingFile.sha256).where(
        TrainingFile.training_id == t.id).order_by(TrainingFile.name)).all()
    result = t.result or {}
    return {
        "id": t.id, "job_id": t.job_id, "arch_id": t.arch_id, "state": t.state, "options": t.options,
        "epoch": t.epoch, "epochs": int(t.options.get("epochs", 0)), "history": t.history or [],
        "metrics": result.get("metrics"), "error": public_error(t.error),
        "files": [{"name": n, "size": int(sz), "sha256": h} for n, sz, h in files if n != CHECKPOINT],
        "created_at": _ts(t.created_at), "finished_at": _ts(t.finished_at),
    }


def cancel_training(s: Session, owner_id: int, job_id: int, training_id: int) -> Training:
    """Cancel a queued or running training (the worker stops at its next batch); else :class:`ConflictError`."""
    t = get_training(s, owner_id, job_id, training_id, for_update=True)
    if t.state not in ACTIVE:
        raise ConflictError(f"training {training_id} is {t.state}; only queued or running ones can be cancelled")
    t.state = "cancelled"
    t.finished_at = utcnow()
    t.lease_owner = None
    s.execute(delete(TrainingFile).where(TrainingFile.training_id == t.id, TrainingFile.name == CHECKPOINT))
    return t


def get_file(s: Session, owner_id: int, job_id: int, training_id: int, name: str) -> bytes:
    """One file of a succeeded training (:class:`NotFoundError` when it has none of that name)."""
    t = get_training(s, owner_id, job_id, training_id)
    if t.state != "succeeded":
        raise ConflictError(f"training {training_id} is {t.state}; its files come when it has succeeded")
    data = s.execute(select(TrainingFile.data).where(TrainingFile.training_id == t.id,
                                                     TrainingFile.name == name)).scalar_one_or_none()
    if data is None:
        raise NotFoundError(f"training {training_id} has no {name}")
    return bytes(data)


# ---------------------------------------------------------------------------------------------- worker side
@dataclass
class TrainingClaim:
    """A leased training, with what the worker needs to run it."""

    training_id: int
    job_id: int
    attempt: int
    config: dict[str, Any]
    options: dict[str, Any]
    spec: JobSpec
    artefact: dict[str, Any] | None
    checkpoint: bytes | None


def claim_training(db: Database, owner: str, lease_seconds: float, max_attempts: int) -> TrainingClaim | None:
    """Lease the oldest queued training, or a running one whose lease expired (it continues from its stored
    checkpoint). One whose lease expired ``max_attempts`` times fails with that reason."""
    now = time.time()
    q = (select(Training).where((Training.state == "queued")
                                | ((Training.state == "running") & (Training.lease_expires < now)))
         .order_by(Training.id).limit(1))
    with db.transaction() as s:  # unlocked peek first: idle workers never take the write lock
        if s.execute(q.with_only_columns(Training.id)).scalar() is None:
            return None
    while True:
        with db.transaction(claim=True) as s:
            t = s.execute(q.with_for_update(skip_locked=True)).scalar_one_or_none()
            if t is None:
                return None
            if t.state == "running":
                t.n_lost += 1
            if t.n_lost >= max_attempts:
                t.state, t.finished_at, t.lease_owner = "failed", utcnow(), None
                t.error = f"worker lost: the lease of this training expired {t.n_lost} times"
                continue
            t.state, t.lease_owner, t.lease_expires = "running", owner, now + lease_seconds
            t.attempt += 1
            spec, artefact = s.execute(select(Job.spec, Job.artefact).where(Job.id == t.job_id)).one()
            config = s.execute(select(Architecture.config).where(Architecture.id == t.arch_id)).scalar_one()
            ck = s.execute(select(TrainingFile.data).where(TrainingFile.training_id == t.id,
                                                           TrainingFile.name == CHECKPOINT)).scalar_one_or_none()
            return TrainingClaim(t.id, t.job_id, t.attempt, dict(config), dict(t.options),
                                 JobSpec.model_validate(spec), artefact, None if ck is None else bytes(ck))


def _fenced(claim: TrainingClaim) -> Any:
    return (Training.id == claim.training_id) & (Training.attempt == claim.attempt) & (Training.state == "running")


def heartbeat_training(db: Database, claim: TrainingClaim, lease_seconds: float) -> bool:
    """Extend the lease; ``False`` when it was lost (re-claimed, or the training cancelled)."""
    with db.transaction() as s:
        r = s.execute(update(Training).where(_fenced(claim)).values(lease_expires=time.time() + lease_seconds))
        return bool(r.rowcount)  # type: ignore[attr-defined]


def _put_file(s: Session, training_id: int, name: str, data: bytes) -> None:
    s.execute(delete(TrainingFile).where(TrainingFile.training_id == training_id, TrainingFile.name == name))
    s.add(TrainingFile(training_id=training_id, name=name, size=len(data), sha256=hashlib.sha256(data).hexdigest(),
                       data=data))


def save_epoch(db: Database, claim: TrainingClaim, epoch: int, history: list[dict[str, Any]],
               checkpoint: bytes) -> bool:
    """Store a finished epoch (progress and checkpoint) if the lease still holds; ``False`` otherwise."""
    with db.transaction() as s:
        r = s.execute(update(Training).where(_fenced(claim)).values(epoch=epoch, history=_jsonable(history)))
        if not r.rowcount:  # type: ignore[attr-defined]
            return False
        _put_file(s, claim.training_id, CHECKPOINT, checkpoint)
        return True


def complete_training(db: Database, claim: TrainingClaim, result: dict[str, Any], files: dict[str, bytes]) -> bool:
    """Store the measured result and the files (the checkpoint goes) if the lease still holds."""
    with db.transaction() as s:
        r = s.execute(update(Training).where(_fenced(claim)).values(
            state="succeeded", result=_jsonable(result), epoch=int(result.get("epochs", 0)),
            history=_jsonable(result.get("history", [])), finished_at=utcnow(), lease_owner=None))
        if not r.rowcount:  # type: ignore[attr-defined]
            return False
        s.execute(delete(TrainingFile).where(TrainingFile.training_id == claim.training_id,
                                             TrainingFile.name == CHECKPOINT))
        for name, data in files.items():
            _put_file(s, claim.training_id, name, data)
        return True


def fail_training(db: Database, claim: TrainingClaim, error: str) -> bool:
    """Record a training that cannot succeed (its reason is shown without server paths)."""
    with db.transaction() as s:
        r = s.execute(update(Training).where(_fenced(claim)).values(state="failed", error=error,
                                                                    finished_at=utcnow(), lease_owner=None))
        return bool(r.rowcount)  # type: ignore[attr-defined]


def release_training(db: Database, claim: TrainingClaim) -> None:
    """Hand a training back as queued (graceful shutdown; it continues from its last stored epoch)."""
    with db.transaction() as s:
        s.execute(update(Training).where(_fenced(claim)).values(state="queued", lease_owner=None, lease_expires=0.0))
