"""Reading EDANAS early-exit archives as the networks CNAS built, and cross-checking their average MACs.

An EDANAS record (``edanas_ee_c10_r32.csv``) holds a compact config with ``t`` thresholds, the measured exit
utilisation (one fraction per *present* exit, final last), ``obj2`` = their average MACs in millions and
``params_M``. It was produced by the CNAS repository at commit 012c164 (``nsganetv2/``, June-August 2023; the
script ``scripts/search_cifar10_eembv3_w1_0.sh`` runs ``msunas.py ... --supernet_path ./ofa_nets/ofa_eembv3
--lr 32 --ur 32``). What that code did, read from it (not from the paper):

- **Configs were built unpadded** (:func:`as_built`). ``evaluator.py`` ``main`` hands the compact ``ks``/``e``
  lists (``sum(d)`` entries) to ``OFAEEMobileNetV3.set_active_subnet``
  (``nsganetv2/ofa/elastic_nn/networks/ofa_mbv3.py``), which zips them with ``self.blocks[1:]``: the first
  ``sum(d)`` of the 20 slots receive the values in order, whatever stage they belong to, and the other slots keep
  the supernet's initial active values, the largest choices (kernel 7, expand 6). The network measured is therefore
  not the per-stage reading of the config (stage ``s`` takes the next ``d_s`` values), except when every stage has
  depth 4. ``validate_config``/``pad_none`` in the same file would have padded per stage, but ``main`` never calls
  it. The records' ``params_M`` match the built reading on every record that has one (and the per-stage reading
  on almost none): tested.
- **Exit heads** are ``ExitBlock`` (``nsganetv2/ofa/elastic_nn/modules/dynamic_layers.py``): MobileNetV3's final
  part scaled to the stage, :class:`early_exit.network.EdanasExitHead` (``head="edanas"``).
- **Exit rule**: ``ExitBlock.confidence`` is the softmax margin ``p_top1 - p_top2``; a sample leaves when it is
  ``>= t`` (``EEMobileNetV3.forward``, ``nsganetv2/ofa/imagenet_codebase/networks/mobilenet_v3.py``):
  ``exit_rule: margin``.
- **MACs**: ``utils.get_adapt_net_info`` profiles each exit with ``torchprofile.profile_macs`` (batch of 1, every
  sample leaving at that exit), ``evaluator.get_adapt_net_info`` rounds each to 0.01 M, and
  ``OFAEvaluator.adaptive_eval`` weights them by the utilisation: ``macs = sum_b u_b * round(m_b / 1e6, 2)``.
  torchprofile (0.0.4) counts once-for-all's conv/linear MACs plus one multiply per element of every
  ``aten::mul`` (h_swish, SE) and ``aten::mean`` (pooling): ``count="torchprofile"`` of
  :func:`early_exit.network.exit_macs` counts the same, analytically (tested equal to torchprofile itself).

:func:`crosscheck` recomputes ``avg_macs = sum_b u_b * macs_b`` from the records' own utilisation with our exact
per-exit MACs and reports how far the two agree. With ``reading="built"``, ``head="edanas"`` and
once-for-all's counting, theirs / ours is 1.008 (median; 1.005-1.011): torchprofile's extra multiplies. With
``count="torchprofile"`` it is 1.0000 on every record (rounding included). docs/early_exit.md has the table.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from early_exit.metrics import avg_macs
from early_exit.network import (
    COUNTS,
    DEFAULT_HEAD_WIDTH,
    HEADS,
    N_EARLY_EXITS,
    check_head,
    exit_macs,
    exits_of,
    head_params,
    stage_shapes,
)
from supernets import codec, get_search_space
from supernets.cost import config_cost
from supernets.errors import InputError

READINGS: tuple[str, ...] = ("built", "stage")
SUPERNET_DEFAULT_KS = max(codec.KERNELS)  # an OFA supernet's initial active kernel size (7)
SUPERNET_DEFAULT_E = max(codec.EXPANDS)  # and expand ratio (6): what unfilled slots keep


def as_built(config: Mapping[str, Any]) -> dict[str, Any]:
    """The per-slot config of the network CNAS's EDANAS code built from a compact ``config`` (module doc).

    Slot ``i`` (0..19, stage ``i // 4``) gets the ``i``-th compact value when there is one, else the supernet's
    default (kernel 7, expand 6); the depths, resolution and exit genes are kept. A config already in per-slot
    form (20 values) is returned as it is (CNAS built it slot by slot too).
    """
    d = [int(v) for v in config["d"]]
    ks, e = [int(v) for v in config["ks"]], [int(v) for v in config["e"]]
    if len(ks) != len(e):
        raise InputError("config", f"ks has {len(ks)} values and e {len(e)}")
    if len(ks) not in (sum(d), codec.N_SLOTS):
        raise InputError("config", f"expected {sum(d)} (compact) or {codec.N_SLOTS} kernel sizes, got {len(ks)}")
    pad = codec.N_SLOTS - len(ks)
    out = dict(config)
    out["ks"] = ks + [SUPERNET_DEFAULT_KS] * pad
    out["e"] = e + [SUPERNET_DEFAULT_E] * pad
    out["d"] = d
    return out


def load_records(path: str | Path, *, reading: str = "built") -> list[dict[str, Any]]:
    """Valid rows of an EDANAS csv as dicts: ``config`` (canonical, t-mode, under ``reading``: ``built`` = the
    network CNAS measured, :func:`as_built`; ``stage`` = the per-stage reading of the compact lists),
    ``exit_util``, ``avg_macs`` (their value, MACs), ``params`` (theirs, or None), ``top1`` (%).
    Rows of failed nets (no utilisation, err = 100) are skipped."""
    if reading not in READINGS:
        raise InputError("reading", f"expected one of {list(READINGS)}, got {reading!r}")
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
            config["r"] = r
            space = get_search_space("eemobilenetv3", lr=r, ur=r, exit_mode="t")
            cfg = as_built(config) if reading == "built" else config
            out.append(
                {
                    "config": space.validate(cfg),
                    "exit_util": [float(v) for v in json.loads(util)],
                    "avg_macs": float(row["obj2"]) * 1e6,
                    "params": float(row["params_M"]) * 1e6 if row.get("params_M") else None,
                    "top1": float(row["top1"]) if row.get("top1") else float("nan"),
                }
            )
    return out


def ee_params(config: Mapping[str, Any], *, n_classes: int = 10, head: str = "edanas", head_width: int = 128) -> int:
    """Parameters of the early-exit network of ``config``: the subnet with a ``n_classes`` classifier plus the
    heads of its present exits (what EDANAS's ``count_parameters`` reports as ``params``)."""
    shapes = stage_shapes(int(config["r"]))
    heads = sum(
        head_params(shapes[s][0], n_classes, head_width, head) for s, p in enumerate(exits_of(config)) if p
    )
    backbone = {k: config[k] for k in ("ks", "e", "d", "r")}
    return int(config_cost(backbone, n_classes=n_classes)["params"]) + heads


def crosscheck(
    path: str | Path,
    *,
    head: str = "edanas",
    reading: str = "built",
    count: str = "ofa",
    round_millions: bool = True,
    n_classes: int = 10,
    head_width: int = DEFAULT_HEAD_WIDTH,
) -> dict[str, Any]:
    """Agreement between EDANAS's recorded avg MACs (and params) and ours recomputed from their exit utilisation.

    ``head``/``reading``/``count``: the exit heads (:data:`early_exit.network.HEADS`), the reading of the configs
    (:data:`READINGS`) and the MAC counting (:data:`early_exit.network.COUNTS`). ``round_millions``: round each
    exit's MACs to 0.01 M before weighting, as EDANAS's evaluator did. Returns ``n`` records used, ``pearson``,
    ``spearman``, ``ratio_median``/``ratio_min``/``ratio_max``/``ratio_worst`` (largest ``|ratio - 1|``) of theirs
    over ours, ``ratio_backbone_median`` (theirs over our single-exit backbone MACs), ``params_checked`` /
    ``params_match`` (records whose ``params_M`` equals our count of the same network to its 0.01 M rounding)
    and the settings.
    """
    check_head(head)
    if count not in COUNTS:
        raise InputError("count", f"expected one of {list(COUNTS)}, got {count!r}")
    recs = load_records(path, reading=reading)
    if not recs:
        raise InputError("path", f"no valid EDANAS record in {path}")
    theirs, ours, backbone = [], [], []
    p_checked = p_match = 0
    for rec in recs:
        cfg = rec["config"]
        m = exit_macs(cfg, n_classes=n_classes, head_width=head_width, head=head, count=count)
        if len(m) != len(rec["exit_util"]):
            raise InputError("exit_util", f"{len(rec['exit_util'])} fractions for a config with {len(m)} exits")
        mm = [round(v / 1e6, 2) * 1e6 for v in m] if round_millions else [float(v) for v in m]
        theirs.append(rec["avg_macs"])
        ours.append(avg_macs(rec["exit_util"], mm))
        backbone.append(float(m[-1]))
        if rec["params"] is not None:
            p_checked += 1
            mine = ee_params(cfg, n_classes=n_classes, head=head, head_width=head_width)
            p_match += int(round(mine / 1e6, 2) == round(rec["params"] / 1e6, 2))
    t, o, b = np.array(theirs), np.array(ours), np.array(backbone)
    ratio = t / o

    def _rank(v: np.ndarray) -> np.ndarray:
        return np.argsort(np.argsort(v)).astype(float)

    worst = ratio[int(np.argmax(np.abs(ratio - 1.0)))]
    return {
        "n": len(recs),
        "pearson": float(np.corrcoef(t, o)[0, 1]),
        "spearman": float(np.corrcoef(_rank(t), _rank(o))[0, 1]),
        "ratio_median": float(np.median(ratio)),
        "ratio_min": float(ratio.min()),
        "ratio_max": float(ratio.max()),
        "ratio_worst": float(worst),
        "ratio_backbone_median": float(np.median(t / b)),
        "ours_over_backbone_median": float(np.median(o / b)),
        "params_checked": p_checked,
        "params_match": p_match,
        "head": head,
        "reading": reading,
        "count": count,
        "round_millions": round_millions,
        "head_width": head_width,
    }


__all__ = ["HEADS", "N_EARLY_EXITS", "READINGS", "as_built", "crosscheck", "ee_params", "load_records"]
