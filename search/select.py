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
- ``n_exits=K``: keep only early-exit configs with K early exits (``t`` thresholds < 1, or ``b`` genes = 1);
  configs without exits pass unchanged.

Failed records and records violating ``constraints`` (maxima in counts, ms for ``latency_ms``) or flagged
infeasible are never returned. Metric values are read in display units: ``top1``/``top1_err`` %, ``params``,
``macs``, ``activations``, ``peak_activation``, ``avg_macs`` in millions, ``latency_ms`` in ms, ``f1``/``f2``
the record's objectives.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from search.hv import non_dominated

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
    raise ValueError(f"prefer: metric {name!r} is not recorded for these architectures")


def _minimised(record: Mapping[str, Any], name: str) -> float:
    v = metric_value(record, name)
    return -v if name in MAXIMISED else v


def n_exits_of(config: Mapping[str, Any]) -> int | None:
    """Exits of an early-exit config including the final classifier (CNAS's ``--n_exits`` convention: early exits
    are ``t`` < 1 or ``b`` = 1 after stages 1-4, plus one); None for a config without exit genes."""
    if "t" in config:
        return int(sum(float(t) < 1.0 for t in config["t"])) + 1
    if "b" in config:
        return int(sum(int(b) == 1 for b in config["b"])) + 1
    return None


def violates(record: Mapping[str, Any], constraints: Mapping[str, float] | None) -> bool:
    """True when the record breaks a maximum (counts; ms for latency_ms) or is flagged infeasible."""
    if record.get("feasible") is False:
        return True
    m = record.get("metrics") or {}
    for k, vmax in (constraints or {}).items():
        if k not in m:
            raise ValueError(f"constraints.{k}: not recorded for these architectures, cannot check the maximum")
        if float(m[k]) > float(vmax):
            return True
    return False


def parse_preference(prefer: str) -> dict[str, float]:
    """``"top1#80+macs#150"`` -> ``{"top1": 80.0, "macs": 150.0}``; ``ValueError`` naming the bad part."""
    out: dict[str, float] = {}
    for part in prefer.split("+"):
        name, sep, val = part.partition("#")
        if not sep or not name.strip():
            raise ValueError(f"prefer: {part!r} is not METRIC#VALUE (e.g. top1#80+macs#150)")
        try:
            out[name.strip()] = float(val)
        except ValueError:
            raise ValueError(f"prefer: {val!r} in {part!r} is not a number") from None
    return out


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
) -> list[dict[str, Any]]:
    """Pick up to ``n`` records of the front as ``prefer`` says (module docstring); never a violator."""
    if n < 1:
        raise ValueError(f"n: expected at least 1, got {n}")
    pool = [r for r in records if r.get("status", "ok") == "ok" and r.get("objectives")]
    pool = [r for r in pool if not violates(r, constraints)]
    if n_exits is not None:
        pool = [r for r in pool if n_exits_of(r["config"]) in (None, n_exits)]
    if not pool:
        return []
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


CSV_METRICS = ("top1", "params", "macs", "activations", "peak_activation", "latency_ms", "avg_macs", "top1_robust")


def to_rows(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Flat rows (display units) of selected records, for tables and CSV."""
    rows = []
    for i, r in enumerate(records):
        row: dict[str, Any] = {"rank": i + 1}
        obj = r.get("objectives") or []
        for j, v in enumerate(obj):
            row[f"f{j + 1}"] = v
        for k in CSV_METRICS:
            try:
                row[k] = metric_value(r, k)
            except ValueError:
                row[k] = None
        ne = n_exits_of(r["config"])
        if ne is not None:
            row["n_exits"] = ne
        row["config"] = json.dumps(r["config"])
        rows.append(row)
    return rows


def write_csv(records: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """Write the selected records as CSV (display units; ``config`` as JSON)."""
    rows = to_rows(records)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    cols: list[str] = []
    for row in rows:
        cols += [c for c in row if c not in cols]
    with p.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols or ["rank"])
        w.writeheader()
        for row in rows:
            w.writerow(row)
    return p
