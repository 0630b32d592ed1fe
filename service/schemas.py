"""Request and response models of the REST API (they type the OpenAPI document; routes return them)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from search.select import SelectOptions
from search.spec import CONSTRAINT_KEYS, JobSpec
from service.models import JOB_STATES

JobState = Literal["queued", "running", "succeeded", "failed", "cancelled"]
assert set(JobState.__args__) == set(JOB_STATES)  # type: ignore[attr-defined]
Timestamp = str  # ISO 8601 UTC with a trailing Z


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Health(_Out):
    """``GET /healthz``: the server answers and its database answers and takes writes."""

    status: Literal["ok"]
    database: str = Field(description="the database dialect (sqlite or postgresql)")


class JobListItem(_Out):
    """One job of ``GET /jobs``."""

    id: int
    name: str | None
    state: JobState
    iteration: int = Field(description="current iteration (-1 before the initial design is proposed)")
    iterations: int = Field(description="iterations the spec asks for (after the initial design)")
    created_at: Timestamp


class JobPage(_Out):
    """A page of jobs, newest first; pass ``next_cursor`` as ``cursor`` for the next page (null: last page)."""

    items: list[JobListItem]
    next_cursor: str | None


class Progress(_Out):
    """Where a job is."""

    iteration: int
    iterations: int
    tasks_total: int = Field(description="evaluations of the current iteration")
    tasks_done: int
    tasks_running: int
    n_evaluated: int = Field(description="architectures in the archive (failed ones included)")
    n_failed: int
    n_feasible: int = Field(description="successful architectures that meet every constraint")


class HvPoint(_Out):
    """Hypervolume after one iteration."""

    iteration: int
    hv: float | None
    n_archive: int


class BestArch(_Out):
    """The successful feasible architecture with the lowest value of one objective."""

    arch_id: int
    objectives: list[float | None]
    metrics: dict[str, Any]


class Best(_Out):
    """The best successful feasible architecture per objective so far (absent before there is one)."""

    min_f1: BestArch | None = Field(default=None, description="lowest first objective")
    min_f2: BestArch | None = Field(default=None, description="lowest second objective")


class ConstraintLine(_Out):
    """A constraint bounding an objective directly, in the objective's unit (for plots)."""

    axis: int = Field(description="the objective's index (0 or 1)")
    objective: str = Field(description="the objective the constraint bounds")
    constraint: str = Field(description="the constraint's key in the spec")
    value: float = Field(description="the bound in the objective's unit (millions for counts, ms for latency)")


class JobDetail(_Out):
    """``GET /jobs/{id}``: state, progress, HV history, best figures, the job's spec and warnings."""

    id: int
    name: str | None
    state: JobState
    error: str | None
    warnings: list[str] = Field(description="e.g. no architecture meets the constraints")
    created_at: Timestamp
    updated_at: Timestamp
    finished_at: Timestamp | None
    objectives: list[str]
    constraints: dict[str, float]
    constraint_mode: str
    constraint_lines: list[ConstraintLine]
    spec: JobSpec
    progress: Progress
    hv_history: list[HvPoint]
    best: Best


class IterationOut(_Out):
    """One stored iteration: archive size, HV, surrogate fit statistics (and, on request, the engine state)."""

    iteration: int
    n_archive: int
    hv: float | None
    surrogate: dict[str, Any] | None
    stats: dict[str, Any]
    created_at: Timestamp
    engine_state: dict[str, Any] | None = Field(default=None, description="with ?include_state=true only")


class IterationList(_Out):
    """Every stored iteration, oldest first."""

    items: list[IterationOut]


class ArchOut(_Out):
    """One evaluated architecture: its config, metrics (counts; latency in ms; top1 in %) and objectives."""

    id: int
    config: dict[str, Any]
    key: str
    iteration: int
    status: Literal["ok", "failed"] | str
    feasible: bool | None
    metrics: dict[str, Any]
    objectives: list[float | None] | None
    error: str | None
    artefact: dict[str, Any] = Field(description="what the architecture is: space, width, classes, resolution, "
                                     "dataset, supernet identity")
    block_strings: list[list[str]] | None = Field(default=None, description="timm-style (single architecture only)")


class ArchivePage(_Out):
    """A page of the archive in evaluation order; pass ``next_cursor`` as ``cursor`` for the next page."""

    items: list[ArchOut]
    next_cursor: str | None


class Selection(_Out):
    """The architectures ``POST /jobs/{id}/select`` picked, best first."""

    items: list[ArchOut]


TrainingState = Literal["queued", "running", "succeeded", "failed", "cancelled"]
TrainingFileName = Literal["net.pth", "net.onnx", "net.int8.onnx", "net.stats"]


class TrainRequest(BaseModel):
    """Body of ``POST /jobs/{id}/archs/{arch_id}/train``: the options of ``msunas train`` (KD from the supernet's
    largest subnet, cosine schedule, label smoothing, optional EMA). The device is the job's evaluator device."""

    model_config = ConfigDict(extra="forbid")
    epochs: int = Field(default=30, ge=1, le=10_000)
    batch_size: int = Field(default=64, ge=1, le=4096)
    lr: float = Field(default=0.02, gt=0.0, le=10.0, description="peak learning rate (cosine to 0)")
    label_smoothing: float = Field(default=0.1, ge=0.0, le=0.99)
    kd_ratio: float = Field(default=0.5, ge=0.0, le=1.0, description="weight of the distillation loss")
    ema: bool = Field(default=False, description="keep and evaluate an EMA of the weights")
    ema_decay: float = Field(default=0.999, ge=0.0, le=0.999999)
    train_images: int | None = Field(default=None, ge=1, le=100_000_000, description="images per epoch (default: "
                                     "the whole training split)")
    int8: bool = Field(default=True, description="also write net.int8.onnx (its top-1 and latency measured)")
    seed: int = Field(default=0, ge=0, le=2**31 - 1)


class TrainingFileOut(_Out):
    """A file of a succeeded training (``GET .../trainings/{training_id}/files/{name}``)."""

    name: TrainingFileName
    size: int = Field(description="bytes")
    sha256: str


class TrainingOut(_Out):
    """One training of an archived architecture: state, epochs done, per-epoch history, and when it succeeded the
    measured figures (``top1``, ``top1_test``, ``top1_int8``: % on the job's validation/test split;
    ``latency_ms_fp32``/``latency_ms_int8``: ONNX Runtime CPU, batch 1, 1 thread, median) and its files."""

    id: int
    job_id: int
    arch_id: int
    state: TrainingState
    options: TrainRequest
    epoch: int = Field(description="epochs finished (stored checkpoint)")
    epochs: int
    history: list[dict[str, Any]] = Field(description="per epoch: train_loss, top1_valid, elapsed_s")
    metrics: dict[str, Any] | None
    error: str | None
    files: list[TrainingFileOut]
    created_at: Timestamp
    finished_at: Timestamp | None


class TrainingList(_Out):
    """A job's trainings, oldest first."""

    items: list[TrainingOut]


class TokenInfo(_Out):
    """The calling token (``GET /tokens/me``)."""

    id: int
    name: str
    created_at: Timestamp


class ResumeRequest(BaseModel):
    """Body of ``POST /jobs/{id}/resume``."""

    model_config = ConfigDict(extra="forbid")
    from_iteration: int | None = Field(default=None, ge=0, le=2**31 - 1,
                                       description="stored iteration to resume from (default: the latest)")
    force: bool = Field(default=False, description="discard the iterations stored after from_iteration")


ConstraintKey = Literal["params", "macs", "activations", "latency_ms", "avg_macs"]
assert set(ConstraintKey.__args__) == set(CONSTRAINT_KEYS)  # type: ignore[attr-defined]
Maximum = Annotated[float, Field(gt=0, allow_inf_nan=False)]
_NAME, _NUM = r"[A-Za-z_][A-Za-z0-9_]*", r"-?[0-9]{1,30}(\.[0-9]{0,30})?([eE]-?[0-9]{1,2})?"  # finite ("+" parts them)
PREFER_PATTERN = rf"^(trade-off|{_NAME}|{_NAME}#{_NUM}(\+{_NAME}#{_NUM})*)$"  # search.select.parse_preference


class SelectRequest(SelectOptions):
    """Body of ``POST /jobs/{id}/select``: the options of ``msunas select`` (the schema names the constraint
    keys and that a maximum is a finite number > 0)."""

    prefer: str | None = Field(
        default=None, min_length=1, max_length=200, pattern=PREFER_PATTERN,
        description="None: most accurate first; a METRIC: the lowest of it (plus the most accurate); 'trade-off': "
        "high trade-off points; a preference point METRIC#VALUE+... like 'top1#80+macs#150': the closest to it")
    constraints: dict[ConstraintKey, Maximum] | None = Field(  # type: ignore[assignment]
        default=None, max_length=len(CONSTRAINT_KEYS),
        description="extra maxima on recorded metrics (counts; latency_ms in ms), on top of the job's own")


class ProblemError(_Out):
    """One failing input of a 422 problem."""

    field: str = Field(description="dotted name of the input (e.g. dataset.root, cursor, Authorization)")
    message: str


class ProblemDetail(BaseModel):
    """An RFC 9457 problem (every error response, as ``application/problem+json``)."""

    model_config = ConfigDict(extra="allow")
    type: str = Field(description="the problem type, a URI reference resolved against the server (GET /problems)")
    title: str
    status: int = Field(ge=400, le=599)
    detail: str
    instance: str | None = Field(default=None, description="the request path")
    field: str | None = Field(default=None, description="the failing input, where there is one")
    errors: list[ProblemError] | None = Field(default=None, description="every failing input (422)")
    request_id: str | None = Field(default=None, description="matches the server's log line (X-Request-ID)")


class ProblemTypeOut(_Out):
    """One problem type of ``GET /problems``."""

    type: str
    status: int
    title: str
    advice: str = Field(description="what a client should do on this problem")
