"""Reading EDANAS early-exit archives and cross-checking their average MACs against ours.

An EDANAS record (``edanas_ee_c10_r32.csv``) holds a config with ``t`` thresholds, the measured exit
utilisation (one fraction per *present* exit, final last) and ``obj2`` = their average MACs in millions.
:func:`crosscheck` recomputes ``avg_macs = sum_b r_b * macs_b`` from their utilisation with our exact
per-exit MACs and reports how far the two agree (EDANAS' exit heads are not ours, so equality is not expected:
the agreement says whether the definition and the backbone counting match).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from early_exit.metrics import avg_macs
from early_exit.network import DEFAULT_HEAD_WIDTH, exit_macs
from supernets import get_search_space
from supernets.errors import InputError


def load_records(path: str | Path) -> list[dict[str, Any]]:
    """Valid rows of an EDANAS csv as dicts: ``config`` (canonical, t-mode), ``exit_util``, ``avg_macs``
    (their value, MACs), ``top1`` (%). Rows of failed nets (no utilisation, err = 100) are skipped."""
    p = Path(path)
    if not p.is_file():
        raise InputError("path", f"no such EDANAS csv {p}")
    out = []
    with p.open(newline="") as f:
        for row in csv.DictReader(f):
            util = row.get("exit_util") or ""
            if not util.startswith("["):
                continue
            config = json.loads(row["config_json"])
            r = int(config["r"][0] if isinstance(config["r"], list) else config["r"])
            space = get_search_space("eemobilenetv3", lr=r, ur=r, exit_mode="t")
            out.append(
                {
                    "config": space.validate(config),
                    "exit_util": [float(v) for v in json.loads(util)],
                    "avg_macs": float(row["obj2"]) * 1e6,
                    "top1": float(row["top1"]) if row.get("top1") else float("nan"),
                }
            )
    return out


def crosscheck(path: str | Path, *, n_classes: int = 10, head_width: int = DEFAULT_HEAD_WIDTH) -> dict[str, Any]:
    """Agreement between EDANAS' recorded avg MACs and ours recomputed from their exit utilisation.

    Returns ``n`` records used, ``pearson`` correlation, ``spearman`` rank correlation, ``ratio_median``/
    ``ratio_min``/``ratio_max`` of theirs over ours, and ``ratio_backbone_median`` (theirs over our
    single-exit backbone MACs, i.e. the saving EDANAS reports relative to the backbone we count).
    """
    recs = load_records(path)
    theirs, ours, backbone = [], [], []
    for rec in recs:
        m = exit_macs(rec["config"], n_classes=n_classes, head_width=head_width)
        if len(m) != len(rec["exit_util"]):
            raise InputError("exit_util", f"{len(rec['exit_util'])} fractions for a config with {len(m)} exits")
        theirs.append(rec["avg_macs"])
        ours.append(avg_macs(rec["exit_util"], m))
        backbone.append(m[-1])
    t, o, b = np.array(theirs), np.array(ours), np.array(backbone)
    ratio = t / o

    def _rank(v: np.ndarray) -> np.ndarray:
        return np.argsort(np.argsort(v)).astype(float)

    return {
        "n": len(recs),
        "pearson": float(np.corrcoef(t, o)[0, 1]),
        "spearman": float(np.corrcoef(_rank(t), _rank(o))[0, 1]),
        "ratio_median": float(np.median(ratio)),
        "ratio_min": float(ratio.min()),
        "ratio_max": float(ratio.max()),
        "ratio_backbone_median": float(np.median(t / b)),
        "ours_over_backbone_median": float(np.median(o / b)),
        "head_width": head_width,
    }
