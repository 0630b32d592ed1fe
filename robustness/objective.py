"""The ``top1_robust`` objective (FlatNAS): accuracy and flatness in one figure of merit.

::

    top1_robust = alpha * top1_err + alpha_norm * (1 - alpha) * R
    alpha_norm  = mean(top1_err) / mean(R)        over the archive's successfully evaluated records

``top1_err`` is the top-1 error (%) and ``R`` the flatness robustness of :mod:`robustness.flatness`
(percentage points lost under weight perturbation); both are minimised. ``alpha_norm`` puts ``R`` on the
scale of ``top1_err`` so ``alpha`` (default 0.5) really is the weight between the two. Because the archive
grows every iteration, ``alpha_norm`` is re-estimated each iteration and every archived candidate's
``top1_robust`` is recomputed from its stored raw ``top1_err`` and ``R``; those raw values are never changed
(the functions here are pure: they return new values/records and never mutate their inputs).

Where the raw values live: an evaluator's metrics dict holds ``top1`` (%, so ``top1_err = 100 - top1``,
or ``top1_err`` directly) and ``robustness`` (R). Records are either such metrics dicts or archive records
``{"metrics": {...}, "status": ..., "objectives": [...]}`` as the engine stores them.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from supernets.errors import InputError

ROBUSTNESS_KEY = "robustness"
"""Metric name of ``R`` in an evaluation's metrics."""
TOP1_ROBUST_KEY = "top1_robust"
"""Metric/objective name of the combined figure."""
DEFAULT_ALPHA = 0.5


def check_alpha(alpha: float) -> float:
    """``alpha`` as a float in [0, 1]; ``ValueError`` naming the field otherwise."""
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not (0.0 <= float(alpha) <= 1.0):
        raise InputError("alpha", f"must be a number in [0, 1], got {alpha!r}")
    return float(alpha)


def estimate_alpha_norm(top1_err: Sequence[float] | np.ndarray, r: Sequence[float] | np.ndarray) -> float:
    """``mean(top1_err) / mean(R)`` over the finite pairs; 1.0 when there are none, ``mean(R) == 0`` or it overflows.

    With ``mean(R) == 0`` every R is 0 (R >= 0), so the R term vanishes whatever ``alpha_norm`` is; 1.0 is
    a neutral finite choice that keeps the objective finite.
    """
    e = np.asarray(top1_err, dtype=np.float64).ravel()
    rr = np.asarray(r, dtype=np.float64).ravel()
    if e.shape != rr.shape:
        raise InputError("r", f"{rr.size} values for {e.size} top1_err values")
    ok = np.isfinite(e) & np.isfinite(rr)
    if not ok.any():
        return 1.0
    mean_r = float(rr[ok].mean())
    if mean_r <= 0.0:
        return 1.0
    ratio = float(e[ok].mean()) / mean_r
    return ratio if np.isfinite(ratio) else 1.0  # mean(R) so tiny the ratio overflows: R is zero in effect


def top1_robust(
    top1_err: float | Sequence[float] | np.ndarray,
    r: float | Sequence[float] | np.ndarray,
    *,
    alpha: float = DEFAULT_ALPHA,
    alpha_norm: float,
) -> Any:
    """``alpha * top1_err + alpha_norm * (1 - alpha) * R`` (scalars or arrays, elementwise)."""
    a = check_alpha(alpha)
    if not (isinstance(alpha_norm, int | float) and math.isfinite(alpha_norm) and alpha_norm >= 0):
        raise InputError("alpha_norm", f"must be a finite number >= 0, got {alpha_norm!r}")
    e = np.asarray(top1_err, dtype=np.float64)
    rr = np.asarray(r, dtype=np.float64)
    out = a * e + float(alpha_norm) * (1.0 - a) * rr
    return float(out) if out.ndim == 0 else out


def raw_values(record: Mapping[str, Any]) -> tuple[float, float] | None:
    """The stored raw ``(top1_err, R)`` of a metrics dict or an archive record; None when not available.

    A record whose ``status`` is not ``"ok"`` or that lacks either value (a failed evaluation) gives None.
    """
    if record.get("status", "ok") != "ok":
        return None
    metrics = record.get("metrics", record)
    if not isinstance(metrics, Mapping):
        return None
    if "top1_err" in metrics:
        err = metrics["top1_err"]
    elif "top1" in metrics:
        err = 100.0 - float(metrics["top1"])
    else:
        return None
    r = metrics.get(ROBUSTNESS_KEY)
    if err is None or r is None:
        return None
    err, r = float(err), float(r)
    if not (math.isfinite(err) and math.isfinite(r)):
        return None
    return err, r


@dataclass(frozen=True)
class Rescored:
    """Result of :func:`rescore`: ``values[i]`` is record i's ``top1_robust`` (inf when it has no raw values)."""

    values: list[float]
    alpha_norm: float
    alpha: float
    n_used: int


def rescore(
    records: Sequence[Mapping[str, Any]],
    *,
    alpha: float = DEFAULT_ALPHA,
    alpha_norm: float | None = None,
) -> Rescored:
    """Re-estimate ``alpha_norm`` from ``records`` (unless given) and score every record; pure.

    This is what the engine calls once per iteration on its whole archive: the returned values replace the
    previous ``top1_robust`` objective of every record, the raw ``top1_err``/``R`` stay as they were.
    Records without raw values (failed evaluations) score ``inf`` (worst under minimisation).
    """
    a = check_alpha(alpha)
    raws = [raw_values(rec) for rec in records]
    pairs = [p for p in raws if p is not None]
    if alpha_norm is None:
        alpha_norm = estimate_alpha_norm([p[0] for p in pairs], [p[1] for p in pairs])
    values = [math.inf if p is None else top1_robust(p[0], p[1], alpha=a, alpha_norm=alpha_norm) for p in raws]
    return Rescored(values=values, alpha_norm=float(alpha_norm), alpha=a, n_used=len(pairs))


def rescored_records(
    records: Sequence[Mapping[str, Any]],
    *,
    alpha: float = DEFAULT_ALPHA,
    objective_index: int = 1,
) -> tuple[list[dict[str, Any]], float]:
    """Deep copies of archive records with ``objectives[objective_index]`` (and ``metrics.top1_robust``) re-scored.

    Records without raw values keep their objectives as they were. Returns ``(new_records, alpha_norm)``;
    ``records`` are left untouched.
    """
    res = rescore(records, alpha=alpha)
    out: list[dict[str, Any]] = []
    for rec, v in zip(records, res.values, strict=True):
        new = copy.deepcopy(dict(rec))
        if math.isfinite(v):
            objs = list(new.get("objectives") or [])
            while len(objs) <= objective_index:
                objs.append(math.inf)
            objs[objective_index] = v
            new["objectives"] = objs
            if isinstance(new.get("metrics"), dict):
                new["metrics"][TOP1_ROBUST_KEY] = v
        out.append(new)
    return out, res.alpha_norm
