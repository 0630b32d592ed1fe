"""Repository functions: every read and write the API and the workers make (routes stay thin).

Functions taking a ``Session`` run inside the caller's :meth:`service.db.Database.transaction`; the worker-side
functions that must be atomic on their own (claims, completions) take the :class:`~service.db.Database`.

Claims: ``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL; on SQLite the claim transaction starts with
``BEGIN IMMEDIATE`` (the write lock), so the select-then-update is atomic there as well. Fencing: a claim
increments the task's ``attempt`` (the job's ``step_token`` for job steps); heartbeats, completions and step
writes carry it and change nothing when it no longer matches (the lease was lost and re-claimed).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, and_, case, delete, exists, func, or_, select, text, update
from sqlalchemy.orm import Session, defer

from search.objectives import constraint_lines
from search.provenance import arch_artefact
from search.spec import JobSpec
from service.db import Database, StorageError
from service.models import (
    ACTIVE_JOB_STATES,
    JOB_STATES,
    ApiToken,
    Architecture,
    EvalTask,
    IdempotencyKey,
    Iteration,
    Job,
    utcnow,
)
from supernets.codec import normalize_backbone, to_block_strings
from supernets.errors import InputError

TOKEN_PREFIX = "msu_"
MAX_ID = 2**62


class NotFoundError(LookupError):
    """The object does not exist or belongs to another token (the API answers 404 either way)."""


class ConflictError(RuntimeError):
    """The request conflicts with the current state (the API answers 409); ``field`` names the input concerned."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


_PATH = re.compile(r"(?<![\w.])(?:~|\.{1,2})?/[^\s'\"():,;]+")
_TRACEBACK = re.compile(r"\n?Traceback \(most recent call last\):.*", re.S)


def public_error(message: str | None) -> str | None:
    """What a stored job or architecture error may say to its owner: no traceback and no server path (the full
    message goes to the server's log, with the request or worker id)."""
    if message is None:
        return None
    return _PATH.sub("<server path>", _TRACEBACK.sub("", message)).strip()[:4000]


class LimitError(RuntimeError):
    """The owner has reached a per-user limit (the API answers 429 with ``Retry-After``)."""

    def __init__(self, message: str, *, retry_after: int = 30) -> None:
        super().__init__(message)
        self.retry_after = retry_after


# --------------------------------------------------------------------------------------------------- tokens
def hash_token(secret: str) -> str:
    """SHA-256 hex of a token secret (secrets are 256-bit random, so a fast hash is enough)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def create_token(db: Database, name: str) -> tuple[int, str]:
    """Create an API token; returns ``(id, secret)`` -- the secret is shown once and only its hash is stored."""
    if not name or len(name) > 200:
        raise InputError("name", "a token name of 1..200 characters is needed")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with db.transaction() as s:
        tok = ApiToken(name=name, token_hash=hash_token(secret))
        s.add(tok)
        s.flush()
        return tok.id, secret


def authenticate(s: Session, secret: str) -> int | None:
    """Token id of a bearer secret, or ``None`` when unknown or revoked."""
    row = s.execute(
        select(ApiToken.id, ApiToken.revoked).where(ApiToken.token_hash == hash_token(secret))
    ).first()
    if row is None or row.revoked:
        return None
    return int(row.id)


def get_token(s: Session, token_id: int) -> ApiToken:
    """A token by id (:class:`NotFoundError` otherwise)."""
    tok = s.get(ApiToken, token_id)
    if tok is None:
        raise NotFoundError(f"token {token_id} not found")
    return tok


def token_info(tok: ApiToken) -> dict[str, Any]:
    """What a client may see of a token (never its hash)."""
    return {"id": tok.id, "name": tok.name, "created_at": _ts(tok.created_at)}


def list_tokens(db: Database) -> list[dict[str, Any]]:
    """Every token: id, name, created_at, revoked and its jobs' count (administration)."""
    with db.transaction() as s:
        counts = dict(s.execute(select(Job.owner_id, func.count()).group_by(Job.owner_id)).all())
        return [dict(token_info(t), revoked=bool(t.revoked), n_jobs=int(counts.get(t.id, 0)))
                for t in s.execute(select(ApiToken).order_by(ApiToken.id)).scalars()]


def revoke_token(s: Session, token_id: int) -> ApiToken:
    """Revoke a token (its jobs stay; requests with it get 401 within the servers' token cache time)."""
    tok = get_token(s, token_id)
    tok.revoked = True
    return tok


# ----------------------------------------------------------------------------------------------------- jobs
def job_spec(job: Job) -> JobSpec:
    """The job's spec as the typed model (stored as its complete ``model_dump`` at submission)."""
    return JobSpec.model_validate(job.spec)


def request_hash(spec: dict[str, Any], name: str | None) -> str:
    """Stable hash of a submission (for ``Idempotency-Key`` reuse checks)."""
    return hashlib.sha256(json.dumps({"spec": spec, "name": name}, sort_keys=True).encode()).hexdigest()


def create_job(
    s: Session,
    owner_id: int,
    spec: JobSpec,
    *,
    name: str | None = None,
    idempotency_key: str | None = None,
    artefact: dict[str, Any] | None = None,
) -> tuple[Job, bool]:
    """Store a validated job spec (its complete dump) as a queued job; returns ``(job, created)``. With an
    ``idempotency_key`` used before with the same request, the earlier job comes back (``created=False``); with a
    different request it is a :class:`ConflictError`. ``artefact``: what its architectures are
    (``search.provenance.describe``)."""
    data = spec.model_dump(mode="json")
    rh = request_hash(data, name)
    if idempotency_key is not None:
        prev = s.execute(
            select(IdempotencyKey).where(IdempotencyKey.owner_id == owner_id, IdempotencyKey.key == idempotency_key)
        ).scalar_one_or_none()
        if prev is not None:
            if prev.request_hash != rh:
                raise ConflictError("Idempotency-Key: this key was used with a different request body",
                                    field="Idempotency-Key")
            job = s.get(Job, prev.job_id)
            if job is None:  # pragma: no cover - cascade deletes the key with the job
                raise NotFoundError("job of this Idempotency-Key is gone")
            return job, False
    job = Job(
        owner_id=owner_id,
        name=name,
        spec=data,
        state="queued",
        cur_iteration=-1,
        total_iterations=spec.iterations,
        artefact=artefact,
    )
    s.add(job)
    s.flush()
    if idempotency_key is not None:
        s.add(IdempotencyKey(owner_id=owner_id, key=idempotency_key, request_hash=rh, job_id=job.id))
        s.flush()
    return job, True


def encode_cursor(value: int) -> str:
    """Opaque pagination cursor."""
    return base64.urlsafe_b64encode(str(value).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """Inverse of :func:`encode_cursor`; ``ValueError`` naming ``cursor`` on garbage."""
    try:
        pad = "=" * (-len(cursor) % 4)
        value = int(base64.urlsafe_b64decode(cursor + pad).decode())
    except Exception:
        raise InputError("cursor", "not a cursor returned by this API") from None
    if not 0 <= value <= MAX_ID:
        raise InputError("cursor", "not a cursor returned by this API")
    return value


def list_jobs(
    s: Session, owner_id: int, *, state: str | None = None, cursor: str | None = None, limit: int = 50
) -> tuple[list[Job], str | None]:
    """The owner's jobs, newest first, ``limit`` per page; returns ``(jobs, next_cursor)``."""
    if state is not None and state not in JOB_STATES:
        raise InputError("state", f"{state!r} is not one of {list(JOB_STATES)}")
    q = select(Job).where(Job.owner_id == owner_id)
    if state is not None:
        q = q.where(Job.state == state)
    if cursor:
        q = q.where(Job.id < decode_cursor(cursor))
    rows = list(s.execute(q.order_by(Job.id.desc()).limit(limit + 1)).scalars())
    nxt = encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
    return rows[:limit], nxt


def get_job(s: Session, owner_id: int | None, job_id: int, *, for_update: bool = False) -> Job:
    """A job of ``owner_id`` (any owner when ``None``); :class:`NotFoundError` otherwise."""
    q = select(Job).where(Job.id == job_id)
    if owner_id is not None:
        q = q.where(Job.owner_id == owner_id)
    if for_update:
        q = q.with_for_update()
    job = s.execute(q).scalar_one_or_none()
    if job is None:
        raise NotFoundError(f"job {job_id} not found")
    return job


def _ts(t: Any) -> str | None:
    return t.isoformat() + "Z" if t is not None else None


def job_list_item(job: Job) -> dict[str, Any]:
    """A job as ``GET /jobs`` lists it."""
    return {"id": job.id, "name": job.name, "state": job.state, "iteration": job.cur_iteration,
            "iterations": job.total_iterations, "created_at": _ts(job.created_at)}


def job_summary(s: Session, job: Job) -> dict[str, Any]:
    """What ``GET /jobs/{id}`` shows: state, progress, HV history, the best figures so far (the lowest
    first and second objective among the successful, feasible architectures), the job's constraints and the
    ones bounding an objective directly (``constraint_lines``, in the objective's unit, for plots), warnings."""
    spec = job_spec(job)
    hv = [
        {"iteration": r.k, "hv": r.hv, "n_archive": r.n_archive}
        for r in s.execute(
            select(Iteration.k, Iteration.hv, Iteration.n_archive).where(Iteration.job_id == job.id).order_by(
                Iteration.k
            )
        )
    ]
    counts = dict(
        s.execute(
            select(EvalTask.state, func.count())
            .where(EvalTask.job_id == job.id, EvalTask.iteration == job.cur_iteration)
            .group_by(EvalTask.state)
        ).all()
    )
    ok_feasible = and_(Architecture.status == "ok",
                       or_(Architecture.feasible.is_(None), Architecture.feasible.is_(True)))
    n_archive, n_failed, n_feasible = s.execute(
        select(func.count(), func.coalesce(func.sum(case((Architecture.status != "ok", 1), else_=0)), 0),
               func.coalesce(func.sum(case((ok_feasible, 1), else_=0)), 0)).where(Architecture.job_id == job.id)
    ).one()
    best: dict[str, Any] = {}
    for col, label in ((Architecture.f1, "f1"), (Architecture.f2, "f2")):
        row = s.execute(
            select(Architecture.id, Architecture.f1, Architecture.f2, Architecture.metrics)
            .where(Architecture.job_id == job.id, ok_feasible, col.is_not(None))
            .order_by(col, Architecture.id)
            .limit(1)
        ).first()
        if row is not None:
            best[f"min_{label}"] = {"arch_id": row.id, "objectives": [row.f1, row.f2], "metrics": row.metrics}
    return {
        "id": job.id,
        "name": job.name,
        "state": job.state,
        "error": job.error,
        "warnings": job_warnings(spec, job.state, int(n_archive), int(n_feasible)),
        "created_at": _ts(job.created_at),
        "updated_at": _ts(job.updated_at),
        "finished_at": _ts(job.finished_at),
        "objectives": list(spec.objectives),
        "constraints": dict(spec.constraints),
        "constraint_mode": spec.constraint_mode,
        "constraint_lines": constraint_lines(spec.objectives, spec.constraints),
        "spec": job.spec,
        "progress": {
            "iteration": job.cur_iteration,
            "iterations": job.total_iterations,
            "tasks_total": int(sum(counts.values())),
            "tasks_done": int(counts.get("done", 0)),
            "tasks_running": int(counts.get("running", 0)),
            "n_evaluated": int(n_archive),
            "n_failed": int(n_failed),
            "n_feasible": int(n_feasible),
        },
        "hv_history": hv,
        "best": best,
    }


def job_warnings(spec: JobSpec, state: str, n_archive: int, n_feasible: int) -> list[str]:
    """What a user should know about a job's outcome (shown by the CLI and the dashboard)."""
    if n_archive and not n_feasible and spec.constraints and state in ("running", "succeeded"):
        limits = ", ".join(f"{k} <= {v:g}" for k, v in spec.constraints.items())
        return [f"no feasible architecture: none of the {n_archive} evaluated meets the constraints ({limits})"]
    return []


def cancel_job(s: Session, owner_id: int, job_id: int) -> Job:
    """Cancel a queued/running job: its pending tasks are dropped; finished jobs are a :class:`ConflictError`."""
    job = get_job(s, owner_id, job_id, for_update=True)
    if job.state not in ACTIVE_JOB_STATES:
        raise ConflictError(f"job {job_id} is {job.state}; only queued or running jobs can be cancelled")
    job.state = "cancelled"
    job.finished_at = utcnow()
    job.step_token += 1  # fences off a step in flight
    s.execute(
        update(EvalTask)
        .where(EvalTask.job_id == job_id, EvalTask.state.in_(("pending", "running")))
        .values(state="cancelled")
    )
    return job


def resume_job(s: Session, owner_id: int, job_id: int, from_iteration: int | None, *, force: bool = False) -> Job:
    """Restart a job from stored iteration ``from_iteration`` (default: its latest): the next step loads that
    iteration's engine state, so the continued search is the one an uninterrupted run would have made. Iterations
    stored after it (and their architectures) are discarded only with ``force`` (else :class:`ConflictError`)."""
    job = get_job(s, owner_id, job_id, for_update=True)
    if job.state in ACTIVE_JOB_STATES and job.step_lease_expires > time.time() and job.step_owner:
        raise ConflictError(f"job {job_id} has an engine step in progress; cancel it first or retry")
    ks = [r for (r,) in s.execute(select(Iteration.k).where(Iteration.job_id == job_id).order_by(Iteration.k))]
    if from_iteration is None:
        if not ks:
            raise ConflictError(f"job {job_id} has no stored iteration to resume from")
        from_iteration = ks[-1]
    if from_iteration not in ks:
        raise InputError("from_iteration", f"job {job_id} has no stored iteration {from_iteration} (stored: "
                         f"{ks[0]}..{ks[-1]})" if ks else f"job {job_id} has no stored iteration yet")
    later = [k for k in ks if k > from_iteration]
    if later and not force:
        raise ConflictError(f"job {job_id} has iterations after {from_iteration} (up to {later[-1]}); resuming "
                            "from it discards them: send force: true to do so", field="force")
    s.execute(delete(Iteration).where(Iteration.job_id == job_id, Iteration.k > from_iteration))
    s.execute(delete(Architecture).where(Architecture.job_id == job_id, Architecture.iteration > from_iteration))
    s.execute(delete(EvalTask).where(EvalTask.job_id == job_id, EvalTask.iteration > from_iteration))
    job.state = "queued"
    job.error = None
    job.finished_at = None
    job.cur_iteration = from_iteration
    job.pending_state = None
    job.step_owner = None
    job.step_lease_expires = 0.0
    job.step_attempts = 0
    job.step_token += 1
    return job


def iteration_record(it: Iteration, with_state: bool = False) -> dict[str, Any]:
    """A stored iteration as the API shows it (its engine state only on request)."""
    d = {"iteration": it.k, "n_archive": it.n_archive, "hv": it.hv, "surrogate": it.surrogate, "stats": it.stats,
         "created_at": _ts(it.created_at)}
    if with_state:
        d["engine_state"] = it.engine_state
    return d


def list_iterations(s: Session, job_id: int) -> list[Iteration]:
    """All stored iterations of a job, oldest first (engine state not loaded)."""
    return list(
        s.execute(
            select(Iteration).options(defer(Iteration.engine_state)).where(Iteration.job_id == job_id).order_by(
                Iteration.k
            )
        ).scalars()
    )


def get_iteration(s: Session, job_id: int, k: int) -> Iteration:
    """Stored iteration ``k`` of a job (with its engine state)."""
    it = s.execute(select(Iteration).where(Iteration.job_id == job_id, Iteration.k == k)).scalar_one_or_none()
    if it is None:
        raise NotFoundError(f"job {job_id} has no stored iteration {k}")
    return it


def list_archive(
    s: Session, job_id: int, *, cursor: str | None = None, limit: int = 100
) -> tuple[list[Architecture], str | None]:
    """A job's evaluated architectures in evaluation order, ``limit`` per page."""
    q = select(Architecture).where(Architecture.job_id == job_id)
    if cursor:
        q = q.where(Architecture.id > decode_cursor(cursor))
    rows = list(s.execute(q.order_by(Architecture.id).limit(limit + 1)).scalars())
    nxt = encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
    return rows[:limit], nxt


def all_archive(s: Session, job_id: int) -> list[Architecture]:
    """Every archived architecture of a job (for selection)."""
    q = select(Architecture).where(Architecture.job_id == job_id).order_by(Architecture.id)
    return list(s.execute(q).scalars())


def get_architecture(s: Session, job_id: int, arch_id: int) -> Architecture:
    """One archived architecture of a job."""
    a = s.execute(
        select(Architecture).where(Architecture.job_id == job_id, Architecture.id == arch_id)
    ).scalar_one_or_none()
    if a is None:
        raise NotFoundError(f"job {job_id} has no architecture {arch_id}")
    return a


def arch_record(a: Architecture, job: Job, *, block_strings: bool = False) -> dict[str, Any]:
    """The archive record of the engine contract, plus the row id and what the architecture is (``artefact``);
    with ``block_strings``, its timm-style block strings (None for a config the codec cannot read)."""
    rec: dict[str, Any] = {
        "id": a.id,
        "config": a.config,
        "key": a.key,
        "iteration": a.iteration,
        "status": a.status,
        "feasible": a.feasible,
        "metrics": a.metrics,
        "objectives": a.objectives,
        "error": a.error,
        "artefact": arch_artefact(a.config, job.artefact or {}),
    }
    if block_strings:
        try:
            backbone = normalize_backbone({k: a.config[k] for k in ("ks", "e", "d", "r")})
            rec["block_strings"] = to_block_strings(backbone, job_spec(job).width_mult)
        except (ValueError, KeyError, TypeError, IndexError):
            rec["block_strings"] = None
    return rec


def check_exportable(job: Job, a: Architecture) -> None:
    """:class:`ConflictError` for an architecture whose evaluation failed, or a job without supernet weights
    (an oracle or proxy search that named none): there is nothing to export."""
    if a.status != "ok":
        raise ConflictError(f"architecture {a.id} failed its evaluation; only successful ones can be exported",
                            field="arch_id")
    if ((job.artefact or {}).get("supernet") or {}).get("kind") in (None, "none"):
        raise ConflictError(f"job {job.id} searched without supernet weights, so the server has none to export; "
                            f"export it with `msunas export --job {job.id} --arch {a.id} --supernet PATH`",
                            field="supernet")


def submit_job(db: Database, owner_id: int, spec: JobSpec, *, name: str | None = None,
               idempotency_key: str | None = None, artefact: dict[str, Any] | None = None,
               max_active: int | None = None) -> tuple[dict[str, Any], bool]:
    """Create a job (or find the one of this ``idempotency_key``) in one write transaction; returns its summary
    and whether it was created. On SQLite the transaction takes the write lock first (``BEGIN IMMEDIATE``), so
    concurrent requests with one key never both insert; on PostgreSQL the losing insert's unique violation is
    answered with the winner's job. ``max_active``: :class:`LimitError` when the owner already has that many
    queued or running jobs (a replayed key is still answered)."""
    for attempt in range(2):
        try:
            with db.transaction(claim=True) as s:
                job, created = create_job(s, owner_id, spec, name=name, idempotency_key=idempotency_key,
                                          artefact=artefact)
                if created and max_active is not None:
                    n = s.execute(select(func.count()).select_from(Job).where(
                        Job.owner_id == owner_id, Job.state.in_(ACTIVE_JOB_STATES))).scalar_one()
                    if n > max_active:  # rolls the insert back
                        raise LimitError(f"you have {n - 1} queued or running jobs; at most {max_active} "
                                         "(MSUNAS_MAX_ACTIVE_JOBS_PER_USER)")
                return job_summary(s, job), created
        except StorageError:
            if idempotency_key is None or attempt:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def check_health(db: Database) -> None:
    """The database answers and takes writes (``StorageError`` otherwise): a write transaction is begun (SQLite:
    ``BEGIN IMMEDIATE``, the write lock, on the file that is still there; PostgreSQL: not read-only)."""
    with db.transaction(claim=True) as s:
        s.execute(select(func.count()).select_from(ApiToken))
        if not db.is_sqlite and s.execute(text("SHOW transaction_read_only")).scalar() == "on":
            raise StorageError("the database is read-only")


# ---------------------------------------------------------------------------------------------- worker side
@dataclass
class StepClaim:
    """A leased job step."""

    job_id: int
    token: int


@dataclass
class TaskClaim:
    """A leased evaluation task."""

    task_id: int
    job_id: int
    iteration: int
    attempt: int
    config: dict[str, Any]
    spec: JobSpec
    artefact: dict[str, Any] | None


def claim_step(db: Database, owner: str, lease_seconds: float, max_attempts: int = 3) -> StepClaim | None:
    """Lease the engine step of one active job that needs one: a new job, or one whose current iteration's
    tasks are all finished. Exactly one worker holds a job's step at a time.

    Every claim counts an attempt (``jobs.step_attempts``; a committed step resets it): a step whose lease was
    lost ``max_attempts`` times (its workers died, or it ran past the step time limit) fails its job with that
    reason instead of being claimed again, so a poisoned step cannot hold the workers forever."""
    now = time.time()
    open_tasks = exists().where(
        EvalTask.job_id == Job.id,
        EvalTask.iteration == Job.cur_iteration,
        EvalTask.state.in_(("pending", "running")),
    )
    done_iteration = exists().where(Iteration.job_id == Job.id, Iteration.k == Job.cur_iteration)
    q = (
        select(Job)
        .where(
            Job.state.in_(ACTIVE_JOB_STATES),
            Job.step_lease_expires < now,
            or_(Job.cur_iteration < 0, ~open_tasks, done_iteration),
        )
        .order_by(Job.id)
        .limit(1)
    )
    with db.transaction() as s:  # cheap unlocked peek first: idle workers never take the write lock
        if s.execute(q.with_only_columns(Job.id)).first() is None:
            return None
    q = q.with_for_update(skip_locked=True)
    with db.transaction(claim=True) as s:
        job = s.execute(q).scalar_one_or_none()
        if job is None:
            return None
        if job.step_attempts >= max_attempts:
            job.state, job.finished_at, job.step_owner, job.step_lease_expires = "failed", utcnow(), None, 0.0
            job.error = (f"engine step lost {job.step_attempts} times (its workers died or it ran past the step "
                         "time limit, MSUNAS_STEP_TIMEOUT_SECONDS); the job is failed so the others keep running")
            job.step_token += 1
            return None
        job.step_attempts += 1
        job.step_owner = owner
        job.step_lease_expires = now + lease_seconds
        job.step_token += 1
        if job.state == "queued":
            job.state = "running"
        return StepClaim(job.id, job.step_token)


def heartbeat_step(db: Database, claim: StepClaim, lease_seconds: float) -> bool:
    """Extend a step lease; ``False`` when it was lost (fenced)."""
    with db.transaction() as s:
        r = s.execute(
            update(Job)
            .where(Job.id == claim.job_id, Job.step_token == claim.token, Job.state.in_(ACTIVE_JOB_STATES))
            .values(step_lease_expires=time.time() + lease_seconds)
        )
        return bool(r.rowcount)  # type: ignore[attr-defined]


@dataclass
class StepInput:
    """What an engine step reads: the spec, the latest stored iteration and the current iteration's results."""

    spec: JobSpec
    cur_iteration: int
    latest_k: int | None
    latest_state: dict[str, Any] | None
    pending_state: dict[str, Any] | None
    tasks: list[EvalTask]


def load_step_input(db: Database, claim: StepClaim) -> StepInput:
    """Read what the step needs (fenced: :class:`ConflictError` if the lease is already gone)."""
    with db.transaction() as s:
        job = get_job(s, None, claim.job_id)
        if job.step_token != claim.token:
            raise ConflictError("step lease lost")
        latest = s.execute(
            select(Iteration).where(Iteration.job_id == job.id).order_by(Iteration.k.desc()).limit(1)
        ).scalar_one_or_none()
        tasks = list(
            s.execute(
                select(EvalTask)
                .where(EvalTask.job_id == job.id, EvalTask.iteration == job.cur_iteration)
                .order_by(EvalTask.idx)
            ).scalars()
        )
        return StepInput(
            spec=job_spec(job),
            cur_iteration=job.cur_iteration,
            latest_k=latest.k if latest else None,
            latest_state=latest.engine_state if latest else None,
            pending_state=job.pending_state,
            tasks=tasks,
        )


def commit_step(
    db: Database,
    claim: StepClaim,
    *,
    told_iteration: int | None,
    stats: dict[str, Any] | None,
    engine_state: dict[str, Any] | None,
    records: list[dict[str, Any]],
    next_iteration: int | None,
    candidates: list[tuple[str, dict[str, Any]]],
    finished: bool,
    pending_state: dict[str, Any] | None = None,
) -> bool:
    """Write one engine step atomically, fenced by the step token: the told iteration's row and its archive
    records, then either the next iteration's tasks or the job's completion. ``False`` (nothing written) when
    the lease was lost or the job was cancelled meanwhile."""
    with db.transaction(claim=True) as s:
        job = s.execute(select(Job).where(Job.id == claim.job_id).with_for_update()).scalar_one_or_none()
        if job is None or job.step_token != claim.token or job.state not in ACTIVE_JOB_STATES:
            return False
        if told_iteration is not None:
            assert stats is not None and engine_state is not None
            surrogate = stats.get("surrogate")
            s.add(
                Iteration(
                    job_id=job.id,
                    k=told_iteration,
                    n_archive=int(stats.get("n_archive", 0)),
                    hv=_float_or_none(stats.get("hv")),
                    surrogate=surrogate if isinstance(surrogate, dict) else None,
                    stats=_jsonable(stats),
                    engine_state=engine_state,
                )
            )
            for r in records:
                objs = r.get("objectives") or []
                s.add(
                    Architecture(
                        job_id=job.id,
                        iteration=int(r.get("iteration", told_iteration)),
                        key=str(r["key"]),
                        config=r["config"],
                        status=str(r.get("status", "ok")),
                        feasible=None if r.get("feasible") is None else bool(r.get("feasible")),
                        metrics=_jsonable(r.get("metrics") or {}),
                        objectives=_jsonable(list(objs)) if objs else None,
                        f1=_float_or_none(objs[0]) if len(objs) > 0 else None,
                        f2=_float_or_none(objs[1]) if len(objs) > 1 else None,
                        error=public_error(r.get("error")),
                    )
                )
        job.pending_state = None if finished else pending_state
        if finished:
            job.state = "succeeded"
            job.finished_at = utcnow()
        elif next_iteration is not None:
            for idx, (key, cfg) in enumerate(candidates):
                s.add(EvalTask(job_id=job.id, iteration=next_iteration, idx=idx, key=key, config=cfg))
            job.cur_iteration = next_iteration
            job.n_tasks = len(candidates)
        job.step_owner = None
        job.step_lease_expires = 0.0
        job.step_attempts = 0  # the step got through: the next one starts counting afresh
        return True


def fail_job(db: Database, claim: StepClaim, error: str) -> bool:
    """Mark a job failed (fenced by the step token)."""
    with db.transaction() as s:
        r = s.execute(
            update(Job)
            .where(Job.id == claim.job_id, Job.step_token == claim.token, Job.state.in_(ACTIVE_JOB_STATES))
            .values(state="failed", error=public_error(error), finished_at=utcnow(), step_owner=None,
                    step_lease_expires=0.0)
        )
        return bool(r.rowcount)  # type: ignore[attr-defined]


def release_step(db: Database, claim: StepClaim) -> None:
    """Give a step lease back without writing (graceful shutdown)."""
    with db.transaction() as s:
        s.execute(
            update(Job)
            .where(Job.id == claim.job_id, Job.step_token == claim.token)
            .values(step_owner=None, step_lease_expires=0.0, step_attempts=Job.step_attempts - 1)  # not a failure
        )


def _next_owner(s: Session, claimable: Select[Any], now: float) -> int | None:
    """Whose evaluation runs next: among the owners with claimable tasks, the one with the fewest running now,
    ties to the one served least recently (so one user's 100 jobs take turns with another's one)."""
    owners = sorted(s.execute(claimable.with_only_columns(Job.owner_id).limit(None).order_by(None).distinct())
                    .scalars())
    if len(owners) <= 1:
        return owners[0] if owners else None
    tasks = select(Job.owner_id).select_from(EvalTask).join(Job, Job.id == EvalTask.job_id).where(
        Job.owner_id.in_(owners)).group_by(Job.owner_id)
    running: dict[int, int] = {o: n for o, n in s.execute(tasks.add_columns(func.count()).where(
        EvalTask.state == "running", EvalTask.lease_expires >= now))}
    served: dict[int, float] = {o: t for o, t in s.execute(tasks.add_columns(func.max(EvalTask.lease_expires)))}
    return min(owners, key=lambda o: (running.get(o, 0), served.get(o) or 0.0, o))


def claim_task(db: Database, owner: str, lease_seconds: float, max_attempts: int) -> TaskClaim | None:
    """Lease the oldest evaluation task that is pending, or running under an expired lease, of a running job.
    A task whose lease expired ``max_attempts`` times (its workers keep dying) is recorded as failed."""
    now = time.time()
    q = (
        select(EvalTask)
        .join(Job, Job.id == EvalTask.job_id)
        .where(
            Job.state == "running",
            or_(
                EvalTask.state == "pending",
                and_(EvalTask.state == "running", EvalTask.lease_expires < now),
            ),
        )
        .order_by(EvalTask.id)
        .limit(1)
    )
    with db.transaction() as s:  # cheap unlocked peek first: idle workers never take the write lock
        owner_id = _next_owner(s, q, now)
        if owner_id is None:
            return None
    q = q.where(Job.owner_id == owner_id).with_for_update(skip_locked=True, of=EvalTask)
    while True:
        with db.transaction(claim=True) as s:
            task = s.execute(q).scalar_one_or_none()
            if task is None:
                return None
            if task.state == "running":  # its lease expired: the worker holding it is gone
                task.n_lost += 1
            if task.n_lost >= max_attempts:
                task.state = "done"
                task.finished_at = utcnow()
                task.lease_owner = None
                task.result = {
                    "config": task.config,
                    "status": "failed",
                    "metrics": {},
                    "error": f"worker lost: the lease of this evaluation expired {task.n_lost} times",
                    "seconds": 0.0,
                }
                continue
            task.state = "running"
            task.lease_owner = owner
            task.lease_expires = now + lease_seconds
            task.attempt += 1
            spec, artefact = s.execute(select(Job.spec, Job.artefact).where(Job.id == task.job_id)).one()
            return TaskClaim(task.id, task.job_id, task.iteration, task.attempt, dict(task.config),
                             JobSpec.model_validate(spec), artefact)


def heartbeat_task(db: Database, claim: TaskClaim, lease_seconds: float) -> bool:
    """Extend a task lease; ``False`` when it was lost (re-claimed by another worker, or the job cancelled)."""
    with db.transaction() as s:
        r = s.execute(
            update(EvalTask)
            .where(EvalTask.id == claim.task_id, EvalTask.attempt == claim.attempt, EvalTask.state == "running")
            .values(lease_expires=time.time() + lease_seconds)
        )
        return bool(r.rowcount)  # type: ignore[attr-defined]


def complete_task(db: Database, claim: TaskClaim, result: dict[str, Any]) -> bool:
    """Store an evaluation result if this worker still holds the lease (fencing token ``attempt``)."""
    with db.transaction() as s:
        r = s.execute(
            update(EvalTask)
            .where(EvalTask.id == claim.task_id, EvalTask.attempt == claim.attempt, EvalTask.state == "running")
            .values(
                state="done",
                result=_jsonable(result),
                finished_at=utcnow(),
                lease_owner=None,
                n_completions=EvalTask.n_completions + 1,
            )
        )
        return bool(r.rowcount)  # type: ignore[attr-defined]


def release_task(db: Database, claim: TaskClaim) -> None:
    """Hand a task back as pending (graceful shutdown; not counted as a lost lease)."""
    with db.transaction() as s:
        s.execute(
            update(EvalTask)
            .where(EvalTask.id == claim.task_id, EvalTask.attempt == claim.attempt, EvalTask.state == "running")
            .values(state="pending", lease_owner=None, lease_expires=0.0)
        )


# -------------------------------------------------------------------------------------------------- helpers
def _float_or_none(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if v == v and v not in (float("inf"), float("-inf")) else None


def _jsonable(x: Any) -> Any:
    """Plain JSON types (numpy scalars/arrays become floats/lists; NaN/inf become None; NUL escaped)."""
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if hasattr(x, "tolist"):
        return _jsonable(x.tolist())
    if isinstance(x, float):
        return x if x == x and x not in (float("inf"), float("-inf")) else None
    if isinstance(x, str) and "\x00" in x:  # PostgreSQL text/JSON cannot hold NUL
        return x.replace("\x00", "\\0")
    return x
