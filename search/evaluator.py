"""The evaluator interface: a canonical config in, a metrics dict (or a failure with its reason) out.

Evaluators are registered by ``kind`` (the job spec's ``evaluator.kind``) and built from the job spec with
:func:`get_evaluator`. An evaluator never raises for a bad candidate: exceptions, NaN losses and
out-of-memory become ``EvalResult(status="failed", error=...)`` so the search goes on.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from supernets.errors import InputError

if TYPE_CHECKING:
    from search.spec import JobSpec


@dataclass
class EvalResult:
    """Outcome of one true evaluation. ``metrics`` holds at least ``top1`` (%) when ``status == "ok"``."""

    config: dict[str, Any]
    status: Literal["ok", "failed"] = "ok"
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (stored in the database and in ``net_i.stats``)."""
        return {
            "config": self.config,
            "status": self.status,
            "metrics": self.metrics,
            "error": self.error,
            "seconds": self.seconds,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EvalResult:
        """Inverse of :meth:`to_dict`."""
        return cls(
            config=dict(d["config"]),
            status=d.get("status", "ok"),
            metrics=dict(d.get("metrics") or {}),
            error=d.get("error"),
            seconds=float(d.get("seconds", 0.0)),
        )


class Evaluator:
    """Base class: subclasses implement :meth:`_evaluate`; :meth:`evaluate` captures failures."""

    def _evaluate(self, config: dict[str, Any]) -> dict[str, float]:
        raise NotImplementedError

    def evaluate(self, config: dict[str, Any]) -> EvalResult:
        """Evaluate one canonical config; never raises for a failing candidate."""
        t0 = time.perf_counter()
        try:
            metrics = self._evaluate(config)
        except MemoryError as e:
            return EvalResult(config, "failed", error=f"out of memory: {e}", seconds=time.perf_counter() - t0)
        except Exception as e:  # noqa: BLE001 - a failed candidate is recorded, not fatal
            if "out of memory" in str(e).lower():
                reason = f"out of memory: {e}"
            else:
                reason = f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=3)}"
            return EvalResult(config, "failed", error=reason, seconds=time.perf_counter() - t0)
        return EvalResult(config, "ok", metrics=metrics, seconds=time.perf_counter() - t0)


_REGISTRY: dict[str, Callable[[JobSpec], Evaluator]] = {}


def register_evaluator(kind: str) -> Callable[[Callable[[JobSpec], Evaluator]], Callable[[JobSpec], Evaluator]]:
    """Decorator registering a factory ``(job_spec) -> Evaluator`` for ``evaluator.kind == kind``."""

    def deco(factory: Callable[[JobSpec], Evaluator]) -> Callable[[JobSpec], Evaluator]:
        _REGISTRY[kind] = factory
        return factory

    return deco


def get_evaluator(job: JobSpec) -> Evaluator:
    """Build the evaluator a job spec asks for."""
    import search.evaluators  # noqa: F401  (registers the built-in kinds)

    kind = job.evaluator.kind
    if kind not in _REGISTRY:
        raise InputError("evaluator.kind", f"{kind!r} is not one of {sorted(_REGISTRY)}")
    return _REGISTRY[kind](job)
