"""The job spec's ``robustness`` section: flatness (R) and corruption-metric options.

Used by :mod:`search.spec` (``JobSpec.robustness``). R is measured for every evaluated candidate when the
job's second objective is ``top1_robust`` or ``measure: true``; corruption metrics only when a
``corruptions`` section is given (they cost 15 x 5 extra validation passes per candidate).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

from robustness.names import CORRUPTIONS, SEVERITIES
from supernets.errors import InputError


class CorruptionSpec(BaseModel):
    """Which corruptions to evaluate each candidate on (generated on the fly from the validation split)."""

    model_config = ConfigDict(extra="forbid")

    types: list[str] = Field(default_factory=lambda: list(CORRUPTIONS), min_length=1, max_length=len(CORRUPTIONS),
                             json_schema_extra={"items": {"type": "string", "enum": list(CORRUPTIONS)}})
    severities: list[Annotated[int, Field(ge=1, le=5)]] = Field(default_factory=lambda: list(SEVERITIES), min_length=1)
    n_images: int = Field(default=500, ge=1, le=100_000, description="validation images corrupted per (type, severity)")
    preset: Literal["auto", "cifar", "imagenet"] = Field(default="auto", description="severity table")
    seed: int = Field(default=0, ge=0, le=2**32 - 1)
    cifar_c_root: str | None = Field(
        default=None,
        description="read the published CIFAR-10-C/CIFAR-100-C .npy files from this folder instead of generating",
    )
    baseline: dict[str, dict[int, Annotated[float, Field(ge=0, le=100)]]] | None = Field(
        default=None,
        description="baseline architecture's accuracy (%) per type and severity, for mCE (Hendrycks)",
        json_schema_extra={"propertyNames": {"enum": list(CORRUPTIONS)}, "additionalProperties": {
            "type": "object", "propertyNames": {"enum": [str(v) for v in SEVERITIES]},
            "additionalProperties": {"type": "number", "minimum": 0, "maximum": 100}}},
    )
    baseline_clean_acc: float | None = Field(default=None, ge=0, le=100)

    @field_validator("types")
    @classmethod
    def _types(cls, v: list[str]) -> list[str]:
        for t in v:
            if t not in CORRUPTIONS:
                raise ValueError(f"{t!r} is not one of {list(CORRUPTIONS)}")
        return v

    @field_validator("severities")
    @classmethod
    def _sev(cls, v: list[int]) -> list[int]:
        for s in v:
            if s not in SEVERITIES:
                raise ValueError(f"{s!r} is not a severity in 1..5")
        return v

    @field_validator("preset")
    @classmethod
    def _preset(cls, v: str) -> str:
        if v not in ("auto", "cifar", "imagenet"):
            raise ValueError(f"must be auto, cifar or imagenet, got {v!r}")
        return v

    @field_validator("baseline")
    @classmethod
    def _baseline(cls, v: dict[str, dict[int, float]] | None) -> dict[str, dict[int, float]] | None:
        for t, per_sev in (v or {}).items():
            if t not in CORRUPTIONS:
                raise ValueError(f"{t!r} is not one of {list(CORRUPTIONS)}")
            for s, acc in per_sev.items():
                if s not in SEVERITIES or not 0 <= acc <= 100:
                    raise InputError(f"{t}.{s}", f"need severity 1..5 -> accuracy in [0, 100], got {s}: {acc}")
        return v


class RobustnessSpec(BaseModel):
    """FlatNAS options: ``top1_robust = alpha * top1_err + alpha_norm * (1 - alpha) * R``."""

    model_config = ConfigDict(extra="forbid")

    alpha: float = Field(default=0.5, ge=0, le=1)
    sigma: float = Field(default=0.05, ge=0, le=10, description="relative weight-noise scale")
    n_draws: int = Field(default=20, ge=1, le=1000, description="M, perturbations averaged in R")
    seed: int | None = Field(default=None, ge=0, le=2**32 - 1, description="noise seed; default: the job's seed")
    vld_images: int | None = Field(
        default=None, ge=1, le=1_000_000, description="validation images used for R; default: all"
    )
    measure: bool = Field(default=False, description="measure R even when top1_robust is not an objective")
    corruptions: CorruptionSpec | None = None


class RobustJob(Protocol):
    """What robustness reads of a job spec (``search.spec.JobSpec`` satisfies it; robustness sits below search)."""

    @property
    def objectives(self) -> Sequence[str]: ...

    @property
    def robustness(self) -> RobustnessSpec: ...

    @property
    def seed(self) -> int: ...
