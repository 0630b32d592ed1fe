"""Static plots of a search: the archive with its Pareto front, and the hypervolume history (matplotlib, Agg)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from search.objectives import OBJECTIVES
from supernets.errors import InputError


def _label(name: str) -> str:
    unit = OBJECTIVES[name].unit if name in OBJECTIVES else ""
    return f"{name} ({unit})" if unit else name


def plot_search(
    records: Sequence[Mapping[str, Any]],
    out: str | Path,
    *,
    objectives: Sequence[str] = ("top1_err", "macs"),
    history: Sequence[Mapping[str, Any]] = (),
    selected: Sequence[Mapping[str, Any]] = (),
    constraint: float | None = None,
    title: str = "",
) -> Path:
    """Write a PNG: archive scatter coloured by iteration, the front as a step line, ``selected`` circled,
    an optional vertical constraint line on the second objective, and (when ``history`` is given) HV per iteration.
    """
    import matplotlib  # heavy, and only plots need it (with the non-interactive backend set first)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in records if r.get("status", "ok") == "ok" and r.get("objectives")]
    if not ok or len(ok[0]["objectives"]) < 2:
        raise InputError("plot", "needs a two-objective archive with at least one successful evaluation")
    F = np.array([r["objectives"][:2] for r in ok], dtype=np.float64)
    its = np.array([r.get("iteration") or 0 for r in ok])
    ncols = 2 if history else 1
    fig, axes = plt.subplots(1, ncols, figsize=(6.2 * ncols, 4.6), squeeze=False)
    ax = axes[0][0]
    if its.min() < its.max():
        sc = ax.scatter(F[:, 1], F[:, 0], c=its, cmap="viridis", s=18, alpha=0.8, label="evaluated")
        fig.colorbar(sc, ax=ax, label="iteration")
    else:
        ax.scatter(F[:, 1], F[:, 0], color="tab:blue", s=18, alpha=0.6, label="evaluated")
    front = _front_points(F)
    ax.step(front[:, 1], front[:, 0], where="post", color="crimson", lw=1.5, label="Pareto front")
    ax.scatter(front[:, 1], front[:, 0], color="crimson", s=26, zorder=3)
    if selected:
        S = np.array([r["objectives"][:2] for r in selected], dtype=np.float64)
        ax.scatter(S[:, 1], S[:, 0], s=140, facecolors="none", edgecolors="black", lw=1.6, label="selected")
    if constraint is not None:
        ax.axvline(constraint, color="grey", ls="--", lw=1, label="constraint")
    ax.set_xlabel(_label(objectives[1]))
    ax.set_ylabel(_label(objectives[0]))
    ax.legend(loc="upper right", fontsize=8)
    ax.grid(alpha=0.3)
    if history:
        hx = [int(h["iteration"]) for h in history]
        hy = [float(h["hv"]) for h in history]
        ax2 = axes[0][1]
        ax2.plot(hx, hy, marker="o", color="tab:blue")
        ax2.set_xlabel("iteration")
        ax2.set_ylabel("hypervolume (normalised)")
        ax2.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    p = Path(out)
    p.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(p, dpi=110)
    plt.close(fig)
    return p


def _front_points(F: np.ndarray) -> np.ndarray:
    """Non-dominated points of a 2-objective minimisation, sorted by the second objective."""
    order = np.lexsort((F[:, 0], F[:, 1]))
    best = np.inf
    keep = []
    for i in order:
        if F[i, 0] < best:
            keep.append(i)
            best = F[i, 0]
    return F[keep]
