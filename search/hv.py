"""Hypervolume and Pareto helpers (minimisation).

The recorded hypervolume is pymoo's HV indicator on objectives divided by a reference point fixed at the start
of the search (so the box is ``[0, 1]^m`` and HV is the dominated fraction of it). A fast exact 2-D routine serves
the greedy candidate selection, which evaluates thousands of HV gains per iteration.

:func:`hv_cnas` is CNAS's own figure (``cnas.py`` ``MSuNAS._calc_hv``, AI-Tech-Research-Lab/CNAS): the reference
point is fixed once as 1.01 x the per-objective maximum over the initial design, HV is taken on the non-dominated
points and divided by the reference point's product. It makes our runs comparable with CNAS's published ``hv``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pymoo.indicators.hv import HV
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting


def normalise(F: np.ndarray, ref: Sequence[float]) -> np.ndarray:
    """Objectives divided by the reference point (the reference becomes all ones)."""
    return np.asarray(F, dtype=np.float64) / np.asarray(ref, dtype=np.float64)


def hypervolume(F: np.ndarray, ref: Sequence[float]) -> float:
    """HV of the points ``F`` (N, m) w.r.t. ``ref``, in the normalised box (0 when no point dominates ``ref``)."""
    F = np.asarray(F, dtype=np.float64)
    if F.size == 0:
        return 0.0
    Fn = normalise(F, ref)
    Fn = Fn[np.all(Fn < 1.0, axis=1)]
    if len(Fn) == 0:
        return 0.0
    if Fn.shape[1] == 1:
        return float(1.0 - Fn.min())
    return float(HV(ref_point=np.ones(Fn.shape[1]))(Fn))


def cnas_ref_point(F_initial: np.ndarray) -> np.ndarray:
    """CNAS's reference point: 1.01 x the per-objective maximum over the initial design ``F_initial`` (N, m)."""
    F0 = np.asarray(F_initial, dtype=np.float64)
    if F0.ndim != 2 or len(F0) == 0:
        raise ValueError("the initial design holds no evaluated point")
    return 1.01 * F0.max(axis=0)


def hv_cnas(F: np.ndarray, F_initial: np.ndarray) -> float:
    """CNAS's hypervolume of ``F`` (N, m): reference point from :func:`cnas_ref_point` of ``F_initial``, HV of the
    non-dominated points of ``F`` divided by the reference point's product (``cnas.py`` ``_calc_hv``)."""
    ref = cnas_ref_point(F_initial)
    F = np.asarray(F, dtype=np.float64)
    if F.size == 0:
        return 0.0
    nd = F[non_dominated(F)]
    nd = nd[np.all(nd < ref, axis=1)]  # pymoo ignores points that do not dominate the reference: same figure
    if len(nd) == 0:
        return 0.0
    return float(HV(ref_point=ref)(nd) / np.prod(ref))


def hv2d(Fn: np.ndarray) -> float:
    """Exact 2-D HV of normalised points w.r.t. (1, 1) (fast path for candidate selection)."""
    if len(Fn) == 0:
        return 0.0
    P = Fn[(Fn[:, 0] < 1.0) & (Fn[:, 1] < 1.0)]
    if len(P) == 0:
        return 0.0
    P = P[np.lexsort((P[:, 1], P[:, 0]))]
    best = np.minimum.accumulate(P[:, 1])
    keep = np.ones(len(P), dtype=bool)
    keep[1:] = P[1:, 1] < best[:-1]
    P = P[keep]
    x_next = np.append(P[1:, 0], 1.0)
    return float(np.sum((x_next - P[:, 0]) * (1.0 - P[:, 1])))


def hv2d_gains(front: np.ndarray, cands: np.ndarray) -> np.ndarray:
    """Exact 2-D HV gain of adding each row of ``cands`` alone to ``front`` (normalised, reference (1, 1)).

    The front's dominated region is a staircase ``h(x)``; a candidate ``p`` adds the area between ``p2`` and
    ``h(x)`` for ``x`` from ``p1`` to 1, computed for all candidates at once.
    """
    C = np.asarray(cands, dtype=np.float64)
    if len(C) == 0:
        return np.zeros(0)
    P = np.asarray(front, dtype=np.float64).reshape(-1, 2)
    P = P[(P[:, 0] < 1.0) & (P[:, 1] < 1.0)]
    if len(P):
        P = P[np.lexsort((P[:, 1], P[:, 0]))]
        best = np.minimum.accumulate(P[:, 1])
        keep = np.ones(len(P), dtype=bool)
        keep[1:] = P[1:, 1] < best[:-1]
        P = P[keep]
    starts = np.concatenate([[-np.inf], P[:, 0]])
    ends = np.concatenate([P[:, 0], [1.0]])
    heights = np.concatenate([[1.0], P[:, 1]])
    c1 = np.minimum(C[:, 0:1], 1.0)
    c2 = np.minimum(C[:, 1:2], 1.0)
    length = np.maximum(0.0, ends[None, :] - np.maximum(starts[None, :], c1))
    return np.sum(length * np.maximum(0.0, heights[None, :] - c2), axis=1)


def non_dominated(F: np.ndarray) -> np.ndarray:
    """Indices of the non-dominated rows of ``F`` (first front)."""
    F = np.asarray(F, dtype=np.float64)
    if len(F) == 0:
        return np.zeros(0, dtype=int)
    return np.asarray(NonDominatedSorting().do(F, only_non_dominated_front=True), dtype=int)


def rank_order(F: np.ndarray, cv: np.ndarray | None = None) -> np.ndarray:
    """Indices ordered feasible first (by violation), then by non-domination rank, then by the first objective."""
    F = np.asarray(F, dtype=np.float64)
    n = len(F)
    if n == 0:
        return np.zeros(0, dtype=int)
    cv = np.zeros(n) if cv is None else np.asarray(cv, dtype=np.float64)
    rank = np.zeros(n, dtype=int)
    feas = cv <= 0
    if feas.any():
        idx = np.flatnonzero(feas)
        fronts = NonDominatedSorting().do(F[idx])
        for r, fr in enumerate(fronts):
            rank[idx[fr]] = r
    return np.lexsort((F[:, 0], rank, cv))
