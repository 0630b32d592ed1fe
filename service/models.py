"""SQLAlchemy 2 models: API tokens, jobs, iterations, evaluated architectures, evaluation tasks, idempotency keys,
trainings of archived architectures and their files.

Every query the API and the workers make has an index (named ``ix_*``; see the migration):
- a token by hash (auth), a job by owner + id (listing with cursor, state filter), idempotency key by owner + key;
- claimable job steps (state, step lease expiry), claimable tasks (state, lease expiry, id);
- an iteration's tasks by (job, iteration, state); the archive by (job, id); an architecture by (job, key).
Times: ``created_at``/``updated_at`` are naive UTC datetimes; lease expiries are Unix seconds (float), compared
with the worker's clock (keep worker clocks in NTP sync, as with any lease system).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# BigInteger ids that still autoincrement on SQLite (SQLite only auto-increments INTEGER PRIMARY KEY)
IdType = BigInteger().with_variant(Integer(), "sqlite")

JOB_STATES = ("queued", "running", "succeeded", "failed", "cancelled")
ACTIVE_JOB_STATES = ("queued", "running")
TASK_STATES = ("pending", "running", "done", "cancelled")
TRAINING_STATES = ("queued", "running", "succeeded", "failed", "cancelled")


def utcnow() -> dt.datetime:
    """Naive UTC now (what the DateTime columns hold)."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    """Declarative base of the msunas tables."""

    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class ApiToken(Base):
    """A bearer token; only the SHA-256 of the secret is stored."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    token_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    __table_args__ = (Index("ix_api_tokens_hash", "token_hash", unique=True),)


class Job(Base):
    """One search. ``cur_iteration`` is the iteration whose candidates are being (or were last) evaluated; the
    job's engine step (tell + propose) is leased by ``step_owner`` until ``step_lease_expires`` with fencing
    token ``step_token`` (incremented on every claim). ``pending_state`` is the engine state right after the last
    ``ask()`` (candidates pending), so the worker that tells the results need not re-run the proposal."""

    __tablename__ = "jobs"
    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("api_tokens.id", ondelete="CASCADE"))
    name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16), default="queued")
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    cur_iteration: Mapped[int] = mapped_column(Integer, default=-1)
    n_tasks: Mapped[int] = mapped_column(Integer, default=0)
    total_iterations: Mapped[int] = mapped_column(Integer, default=0)
    pending_state: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    step_owner: Mapped[str | None] = mapped_column(String(200), nullable=True)
    step_lease_expires: Mapped[float] = mapped_column(Float, default=0.0)
    step_token: Mapped[int] = mapped_column(Integer, default=0)
    step_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    artefact: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    __table_args__ = (
        Index("ix_jobs_owner_id", "owner_id", "id"),
        Index("ix_jobs_owner_state_id", "owner_id", "state", "id"),
        Index("ix_jobs_state_step", "state", "step_lease_expires"),
    )


class Iteration(Base):
    """The statistics and the engine state written after iteration ``k`` was told to the engine."""

    __tablename__ = "iterations"
    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    k: Mapped[int] = mapped_column(Integer)
    n_archive: Mapped[int] = mapped_column(Integer, default=0)
    hv: Mapped[float | None] = mapped_column(Float, nullable=True)
    surrogate: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    stats: Mapped[dict[str, Any]] = mapped_column(JSON)
    engine_state: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    __table_args__ = (UniqueConstraint("job_id", "k", name="uq_iterations_job_k"),)


class Architecture(Base):
    """One evaluated architecture of a job's archive (exactly once per job: unique (job, key))."""

    __tablename__ = "architectures"
    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    iteration: Mapped[int] = mapped_column(Integer)
    key: Mapped[str] = mapped_column(String(400))
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))
    feasible: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    objectives: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)
    f1: Mapped[float | None] = mapped_column(Float, nullable=True)
    f2: Mapped[float | None] = mapped_column(Float, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    __table_args__ = (
        UniqueConstraint("job_id", "key", name="uq_architectures_job_key"),
        Index("ix_architectures_job_id", "job_id", "id"),
        Index("ix_architectures_job_iteration", "job_id", "iteration"),
        Index("ix_architectures_job_f1", "job_id", "f1"),
        Index("ix_architectures_job_f2", "job_id", "f2"),
    )


class EvalTask(Base):
    """One candidate to evaluate. ``attempt`` is the fencing token: incremented on every claim, and a result
    is accepted only with the attempt that holds the lease."""

    __tablename__ = "eval_tasks"
    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    iteration: Mapped[int] = mapped_column(Integer)
    idx: Mapped[int] = mapped_column(Integer)
    key: Mapped[str] = mapped_column(String(400))
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    lease_owner: Mapped[str | None] = mapped_column(String(200), nullable=True)
    lease_expires: Mapped[float] = mapped_column(Float, default=0.0)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    n_lost: Mapped[int] = mapped_column(Integer, default=0)
    n_completions: Mapped[int] = mapped_column(Integer, default=0)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    __table_args__ = (
        UniqueConstraint("job_id", "iteration", "key", name="uq_eval_tasks_job_iter_key"),
        Index("ix_eval_tasks_claim", "state", "lease_expires", "id"),
        Index("ix_eval_tasks_job_iter_state", "job_id", "iteration", "state"),
    )


class IdempotencyKey(Base):
    """``Idempotency-Key`` of a ``POST /jobs``: the same key and body give back the same job."""

    __tablename__ = "idempotency_keys"
    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("api_tokens.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(200))
    request_hash: Mapped[str] = mapped_column(String(64))
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    __table_args__ = (UniqueConstraint("owner_id", "key", name="uq_idempotency_owner_key"),)


class Training(Base):
    """One archived architecture trained to convergence (``POST /jobs/{id}/archs/{arch_id}/train``). Leased by
    one worker at a time like an evaluation task (``attempt`` is the fencing token); the checkpoint of the last
    finished epoch is a :class:`TrainingFile`, so a training whose worker died continues on any other worker."""

    __tablename__ = "trainings"
    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    arch_id: Mapped[int] = mapped_column(ForeignKey("architectures.id", ondelete="CASCADE"))
    options: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16), default="queued")
    epoch: Mapped[int] = mapped_column(Integer, default=0)
    history: Mapped[list[Any]] = mapped_column(JSON, default=list)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    lease_owner: Mapped[str | None] = mapped_column(String(200), nullable=True)
    lease_expires: Mapped[float] = mapped_column(Float, default=0.0)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    n_lost: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    __table_args__ = (
        Index("ix_trainings_job_id", "job_id", "id"),
        Index("ix_trainings_claim", "state", "lease_expires", "id"),
    )


class TrainingFile(Base):
    """A file a training wrote (checkpoint.pth while it runs; net.pth, net.onnx, net.int8.onnx, net.stats)."""

    __tablename__ = "training_files"
    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    training_id: Mapped[int] = mapped_column(ForeignKey("trainings.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    __table_args__ = (UniqueConstraint("training_id", "name", name="uq_training_files_name"),)
