"""Post-search selection: pick the architectures a user wants from an archive (ours or a CNAS ``iter_K.stats``).

``select(records, n=3, prefer=None, n_exits=None, constraints=None)``:

- ``prefer=None``: the ``n`` most accurate of the front.
- ``prefer="macs"`` (any metric): the most accurate of the front, then the ``n - 1`` lowest of that metric among
  the front (CNAS's ``--prefer params``). ``top1``/``top1_robust`` are maximised, everything else minimised.
- ``prefer="trade-off"``: the most accurate, then the front points of highest trade-off: for each point of the
  front *normalised to [0, 1] per objective* (CNAS computes neighbourhoods in raw units, which lets the objective
  with the larger numbers decide), its neighbours along the front, and the least ratio of what a neighbour loses
  to what it gains; knees score high.
- ``prefer="top1#80+macs#150"``: a preference point (top-1 80 %, 150 M MACs); the ``n`` front points closest by the
  achievement scalarising function ``max_k (f_k - z_k) / range_k`` (normalised by the front's ranges).
- ``n_exits=K``: keep only early-exit configs with K early exits (``t`` thresholds < 1, or ``b`` genes = 1; the
  final classifier not counted, as CNAS's ``post_search.py --n_exits``); configs without exits pass unchanged.

Failed records and records violating ``constraints`` (maxima in counts, ms for ``latency_ms``) or flagged
infeasible are never returned. Metric values are read in display units: ``top1``/``top1_err`` %, ``params``,
``macs``, ``activations``, ``peak_activation``, ``avg_macs`` in millions, ``latency_ms`` in ms, ``f1``/``f2``
the record's objectives.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator, model_validator

from search.hv import non_dominated
from search.spec import CONSTRAINT_KEYS, JobSpec
from supernets.errors import InputError

MILLION_METRICS = ("params", "macs", "activations", "peak_activation", "avg_macs")
MAXIMISED = ("top1", "top1_robust")


def metric_value(record: Mapping[str, Any], name: str) -> float:
    """Value of ``name`` for a record in display units (see the module docstring); ``ValueError`` if absent."""
    m = record.get("metrics") or {}
    obj = record.get("objectives") or []
    if name == "f1" and len(obj) >= 1:
        return float(obj[0])
    if name == "f2" and len(obj) >= 2:
        return float(obj[1])
    if name == "top1_err":
        if "top1" in m:
            return 100.0 - float(m["top1"])
    elif name in m:
        v = float(m[name])
        return v / 1e6 if name in MILLION_METRICS and name != "f2" else v
    raise InputError("prefer", f"metric {name!r} is not recorded for these architectures",
                     hint=f"choose one of {available_metrics([record])}, trade-off, or METRIC#VALUE+...")


def available_metrics(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """The metric names ``prefer`` accepts for these records (their numeric metrics, top1_err, f1, f2)."""
    names: set[str] = set()
    for r in records:
        m = r.get("metrics") or {}
        names.update(k for k, v in m.items() if isinstance(v, int | float) and not isinstance(v, bool))
        if "top1" in m:
            names.add("top1_err")
        names.update(f"f{j + 1}" for j in range(len(r.get("objectives") or [])))
    return sorted(names)


def _minimised(record: Mapping[str, Any], name: str) -> float:
    v = metric_value(record, name)
    return -v if name in MAXIMISED else v


def n_exits_of(config: Mapping[str, Any]) -> int | None:
    """Early exits of a config, the final classifier not counted, as CNAS's ``post_search.py --n_exits`` counts
    them (``len(t) - t.count(1)`` for EDANAS's thresholds ``t``, ``b != 0`` for NACHOS's ``b``); 0..4, None for a
    config without exit genes."""
    if "t" in config:
        return int(sum(float(t) < 1.0 for t in config["t"]))
    if "b" in config:
        return int(sum(int(b) != 0 for b in config["b"]))
    return None


def violates(record: Mapping[str, Any], constraints: Mapping[str, float] | None) -> bool:
    """True when the record breaks a maximum (counts; ms for latency_ms) or is flagged infeasible."""
    if record.get("feasible") is False:
        return True
    m = record.get("metrics") or {}
    for k, vmax in (constraints or {}).items():
        if k not in m:
            raise InputError(f"constraints.{k}", "not recorded for these architectures, cannot check the maximum")
        if float(m[k]) > float(vmax):
            return True
    return False


def parse_preference(prefer: str) -> dict[str, float]:
    """``"top1#80+macs#150"`` -> ``{"top1": 80.0, "macs": 150.0}``; ``ValueError`` naming the bad part."""
    out: dict[str, float] = {}
    for part in prefer.split("+"):
        name, sep, val = part.partition("#")
        if not sep or not name.strip():
            raise InputError("prefer", f"{part!r} is not METRIC#VALUE (e.g. top1#80+macs#150)")
        try:
            v = float(val)
        except ValueError:
            raise InputError("prefer", f"{val!r} in {part!r} is not a number") from None
        if not np.isfinite(v):
            raise InputError("prefer", f"{val!r} in {part!r} is not a finite number")
        out[name.strip()] = v
    return out


def parse_target(target: str) -> tuple[str, float]:
    """``"latency_ms=12.5"`` -> ``("latency_ms", 12.5)``; ``InputError`` naming what is wrong."""
    name, sep, val = target.partition("=")
    if not sep or not name.strip():
        raise InputError("target", f"{target!r} is not METRIC=VALUE (e.g. latency_ms=12.5)")
    try:
        x = float(val)
    except ValueError:
        raise InputError("target", f"{val!r} in {target!r} is not a number") from None
    if not (np.isfinite(x) and x > 0):
        raise InputError("target", f"{val!r} in {target!r} is not a finite number > 0")
    return name.strip(), x


def _front(records: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    F = np.array([r["objectives"] for r in records], dtype=np.float64)
    idx = non_dominated(F)
    return [records[i] for i in sorted(idx, key=lambda i: tuple(F[i]))]


def tradeoff_scores(F: np.ndarray) -> np.ndarray:
    """Trade-off of each point of a front (minimisation) in the normalised objective space.

    For point i and neighbour j: sacrifice = sum(max(0, F_j - F_i)), gain = sum(max(0, F_i - F_j)) (normalised);
    the score is the least sacrifice/gain over the neighbours (the 2 nearest, or all points within the mean
    nearest-neighbour distance x 2 beyond two objectives). High = leaving the point costs much for little.
    """
    F = np.asarray(F, dtype=np.float64)
    n = len(F)
    if n <= 2:
        return np.zeros(n)
    lo, hi = F.min(axis=0), F.max(axis=0)
    Fn = (F - lo) / np.where(hi > lo, hi - lo, 1.0)
    D = np.linalg.norm(Fn[:, None, :] - Fn[None, :, :], axis=2)
    np.fill_diagonal(D, np.inf)
    scores = np.zeros(n)
    for i in range(n):
        nb = np.argsort(D[i])[:2]
        diff = Fn[nb] - Fn[i]
        sacrifice = np.maximum(0.0, diff).sum(axis=1)
        gain = np.maximum(0.0, -diff).sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(gain > 0, sacrifice / gain, np.inf)
        scores[i] = float(np.min(ratio))
    return scores


def select(
    records: Sequence[Mapping[str, Any]],
    n: int = 3,
    prefer: str | None = None,
    n_exits: int | None = None,
    constraints: Mapping[str, float] | None = None,
    target: tuple[str, float] | None = None,
) -> list[dict[str, Any]]:
    """Pick up to ``n`` records of the front as ``prefer`` says (module docstring); never a violator.

    ``target=("latency_ms", X)`` (TF-NAS's precise target): the ``n`` records whose figure is closest to X from
    below (``<= X``, display units), closest first, the more accurate first on a tie; the whole qualifying archive
    is searched (not only the front), as TF-NAS aims at the target itself. ``prefer`` is then ignored."""
    if n < 1:
        raise InputError("n", f"expected at least 1, got {n}")
    pool = [r for r in records if r.get("status", "ok") == "ok" and r.get("objectives")]
    pool = [r for r in pool if not violates(r, constraints)]
    if n_exits is not None:
        pool = [r for r in pool if n_exits_of(r["config"]) in (None, n_exits)]
    if not pool:
        return []
    if target is not None:
        name, x = target
        vals = np.array([metric_value(r, name) for r in pool], dtype=np.float64)
        err = np.array([-metric_value(r, "top1") if "top1" in (r.get("metrics") or {}) else r["objectives"][0]
                        for r in pool], dtype=np.float64)
        below = np.flatnonzero(vals <= x)
        order = below[np.lexsort((err[below], x - vals[below]))]
        return [dict(pool[i]) for i in order[:n]]
    front = _front(pool)
    acc = [-metric_value(r, "top1") if "top1" in (r.get("metrics") or {}) else r["objectives"][0] for r in front]
    most_accurate = front[int(np.argmin(acc))]
    if prefer is None:
        order = np.argsort(acc, kind="stable")
        chosen = [front[i] for i in order[:n]]
    elif prefer == "trade-off":
        F = np.array([r["objectives"] for r in front], dtype=np.float64)
        scores = tradeoff_scores(F)
        rest = [i for i in np.argsort(-scores, kind="stable") if front[i] is not most_accurate]
        chosen = [most_accurate] + [front[i] for i in rest[: n - 1]]
    elif "#" in prefer:
        point = parse_preference(prefer)
        names = list(point)
        V = np.array([[_minimised(r, k) for k in names] for r in front], dtype=np.float64)
        z = np.array([-point[k] if k in MAXIMISED else point[k] for k in names])
        rng = V.max(axis=0) - V.min(axis=0)
        scale = np.where(rng > 0, rng, 1.0)
        asf = np.max((V - z) / scale, axis=1)
        chosen = [front[i] for i in np.argsort(asf, kind="stable")[:n]]
    else:
        vals = np.array([_minimised(r, prefer) for r in front])
        rest = [i for i in np.argsort(vals, kind="stable") if front[i] is not most_accurate]
        chosen = [most_accurate] + [front[i] for i in rest[: n - 1]]
    return [dict(r) for r in chosen]


class SelectOptions(BaseModel):
    """What to pick (the options of ``msunas select`` and the body of ``POST /jobs/{id}/select``)."""

    model_config = ConfigDict(extra="forbid")

    n: StrictInt = Field(default=3, ge=1, le=1000, description="how many architectures")
    prefer: str | None = Field(
        default=None, min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_+#.\-]+$",
        description="None: most accurate first; a METRIC: the lowest of it (plus the most accurate); 'trade-off': "
        "high trade-off points; a preference point like 'top1#80+macs#150': the closest to it",
    )
    n_exits: StrictInt | None = Field(default=None, ge=0, le=4, description="early-exit nets with this many early "
                                "exits (the final classifier not counted, as CNAS counts them)")
    target: str | None = Field(
        default=None, min_length=3, max_length=100, pattern=r"^[A-Za-z0-9_]+=[0-9.eE+\-]+$",
        description="METRIC=X, e.g. 'latency_ms=12.5' (TF-NAS): the nets whose METRIC is closest to X from below "
        "(display units: ms, M for counts), closest first; prefer is then not allowed",
    )
    constraints: dict[str, float] | None = Field(
        default=None, max_length=len(CONSTRAINT_KEYS),
        description="extra maxima on recorded metrics (counts; latency_ms in ms), on top of the job's own",
    )

    @field_validator("target")
    @classmethod
    def _target(cls, v: str | None) -> str | None:
        if v is not None:
            parse_target(v)
        return v

    @model_validator(mode="after")
    def _one_rule(self) -> SelectOptions:
        if self.target is not None and self.prefer is not None:
            raise InputError("target", "give either --target (closest from below) or --prefer, not both")
        return self

    @field_validator("constraints")
    @classmethod
    def _known(cls, v: dict[str, float] | None) -> dict[str, float] | None:
        for k, x in (v or {}).items():
            if k not in CONSTRAINT_KEYS:
                raise InputError(f"{k}", f"unknown constraint (allowed: {', '.join(CONSTRAINT_KEYS)})")
            if not (np.isfinite(x) and x > 0):
                raise InputError(f"{k}", f"a maximum must be a finite number > 0, got {x}")
        return v


def _resolve_names(prefer: str, records: Sequence[Mapping[str, Any]], spec: JobSpec | None) -> str:
    """``prefer`` with every objective or constraint name of the job mapped onto what the records hold: a
    recorded metric of that name, else ``latency`` -> ``latency_ms``, else the objective's position (``f1``/
    ``f2``); a name that is none of these is an ``InputError`` listing what is accepted."""
    known = available_metrics(records)
    objectives = list(spec.objectives) if spec is not None else []
    accepted = sorted(set(known) | set(objectives) | set(spec.constraints if spec is not None else ()))

    def one(name: str) -> str:
        if name in known or not records:
            return name
        if name == "latency" and "latency_ms" in known:
            return "latency_ms"
        if name in objectives:
            return f"f{objectives.index(name) + 1}"
        raise InputError("prefer", f"{name!r} is not recorded for this search",
                         hint=f"choose one of {accepted}, trade-off, or a preference point METRIC#VALUE+...")

    if "#" in prefer:
        return "+".join(f"{one(part.partition('#')[0].strip())}#{part.partition('#')[2]}"
                        for part in prefer.split("+"))
    return one(prefer)


def select_records(records: Sequence[Mapping[str, Any]], spec: JobSpec | None, options: SelectOptions
                   ) -> list[dict[str, Any]]:
    """:func:`select` under the job's constraints (``spec``) and the options' own: the one selection behind
    ``msunas select`` (runs and jobs) and ``POST /jobs/{id}/select``. ``prefer`` accepts every metric the records
    hold and every objective or constraint of the job."""
    constraints = {**(spec.constraints if spec is not None else {}), **(options.constraints or {})}
    prefer = options.prefer
    if prefer is not None and prefer != "trade-off":
        if "#" in prefer:
            parse_preference(prefer)  # the grammar first: its errors name the bad part
        prefer = _resolve_names(prefer, records, spec)
    target = None
    if options.target is not None:
        name, x = parse_target(options.target)
        try:
            target = (_resolve_names(name, records, spec), x)
        except InputError as e:
            raise InputError("target", e.message.split(";")[0],
                             hint=f"choose one of {available_metrics(records)}=VALUE") from None
    return select(records, n=options.n, prefer=prefer, n_exits=options.n_exits, constraints=constraints,
                  target=target)


# figure -> (metric read with metric_value, column name with its unit)
ROW_FIGURES = (
    ("top1", "top1_pct"),
    ("top1_err", "top1_err_pct"),
    ("params", "params_M"),
    ("macs", "macs_M"),
    ("activations", "activations_M"),
    ("peak_activation", "peak_activation_M"),
    ("avg_macs", "avg_macs_M"),
    ("latency_ms", "latency_ms"),
    ("top1_robust", "top1_robust"),
)
TABLE_COLUMNS = ("rank", "id", "top1_pct", "params_M", "macs_M", "activations_M", "latency_ms", "avg_macs_M",
                 "n_exits", "r", "d")


def to_rows(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Flat rows of selected records, every figure named with its unit (``top1_pct``, ``macs_M``,
    ``latency_ms``...): the same rows for the table, ``--json`` and ``--csv``."""
    rows = []
    for i, r in enumerate(records):
        row: dict[str, Any] = {"rank": i + 1}
        if r.get("id") is not None:
            row["id"] = r["id"]
        for metric, col in ROW_FIGURES:
            try:
                row[col] = metric_value(r, metric)
            except ValueError:
                continue
        ne = n_exits_of(r["config"])
        if ne is not None:
            row["n_exits"] = ne
        row["r"], row["d"] = r["config"].get("r"), r["config"].get("d")
        row["objectives"] = list(r.get("objectives") or [])
        row["config"] = json.dumps({k: v for k, v in r["config"].items() if k != "artefact"})
        rows.append(row)
    return rows
