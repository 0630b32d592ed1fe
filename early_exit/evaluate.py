"""True evaluation of one early-exit config: build on the supernet, train jointly, measure on the validation
split, choose thresholds, and report the metrics the search stores.

Thresholds: in t-mode (EDANAS) they follow from the config's normalised ``t`` genes (one per present exit; in
max-softmax units ``1/K + t (1 - 1/K)``, :func:`early_exit.metrics.confidence_threshold`). In b-mode (NACHOS) they are
calibrated after training on the validation outputs (:func:`early_exit.metrics.calibrate_thresholds`):
with a budget ``max_avg_macs`` the most accurate thresholds meeting it; without one the fewest average MACs
whose deployed accuracy is within ``tolerance`` percentage points of the best achievable.

``exit_rule`` and ``head`` of :class:`EarlyExitSettings` choose the policy's score (max-softmax, or EDANAS's
softmax margin) and the exit heads (ours, or EDANAS's), everywhere here: training, measuring, thresholds, MACs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from early_exit import metrics as eem
from early_exit.metrics import check_rule
from early_exit.nachos import TRAININGS, CostAware, cost_aware_loss
from early_exit.network import (
    DEFAULT_HEAD_WIDTH,
    N_EARLY_EXITS,
    backbone_macs,
    build_early_exit_net,
    check_head,
    exit_macs,
    exits_of,
    predict_exits,
    train_joint,
)
from supernets.errors import InputError

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]


@dataclass
class EarlyExitSettings:
    """How one early-exit candidate is trained and measured.

    ``loss_weights`` has 5 entries: the exits after stages 1..4 and the final classifier (weights of absent
    exits are ignored). ``max_avg_macs`` is the NACHOS budget (b-mode calibration); ``tolerance`` (percentage
    points) is used by b-mode calibration when there is no budget.
    """

    n_classes: int
    width_mult: float = 1.0
    head_width: int = DEFAULT_HEAD_WIDTH
    epochs: int = 1
    lr: float = 0.05
    weight_decay: float = 4e-5
    loss_weights: Sequence[float] = field(default_factory=lambda: [1.0] * (N_EARLY_EXITS + 1))
    max_steps: int | None = None
    calib_grid: Sequence[float] = eem.DEFAULT_CALIBRATION_GRID
    max_avg_macs: float | None = None
    tolerance: float = 0.5
    device: str = "cpu"
    exit_rule: str = "confidence"
    head: str = "ours"
    calibration: str = "exhaustive"
    top1_min: float = 0.0
    training: str = "joint"
    cost_weight: float = 1.0
    gate_prior: float = 1e-3

    def __post_init__(self) -> None:
        if self.calibration not in ("exhaustive", "nachos"):
            raise ValueError(f"calibration: expected exhaustive or nachos, got {self.calibration!r}")
        if self.training not in TRAININGS:
            raise InputError("training", f"expected one of {list(TRAININGS)}, got {self.training!r}")
        check_rule(self.exit_rule)
        check_head(self.head)
        if len(self.loss_weights) != N_EARLY_EXITS + 1:
            raise InputError(
                "loss_weights",
                f"expected {N_EARLY_EXITS + 1} weights (exits after stages 1-4, final), "
                f"got {len(self.loss_weights)}"
            )
        if any(w < 0 for w in self.loss_weights):
            raise InputError("loss_weights", f"expected non-negative weights, got {list(self.loss_weights)}")


def training_loss(config: Mapping[str, Any], settings: EarlyExitSettings) -> Any:
    """The loss ``train_joint`` uses for ``config``: ``None`` (our joint loss) or NACHOS's cost-aware one
    (``training: nachos``: exit MACs of the config, the avg_macs budget, the exit rule)."""
    if settings.training != "nachos":
        return None
    macs = exit_macs(config, n_classes=settings.n_classes, width_mult=settings.width_mult,
                     head_width=settings.head_width, head=settings.head)
    ca = CostAware(tuple(float(m) for m in macs), settings.cost_weight, settings.gate_prior, settings.max_avg_macs,
                   settings.exit_rule)
    return cost_aware_loss(ca)


def present_loss_weights(config: Mapping[str, Any], loss_weights: Sequence[float]) -> list[float]:
    """The loss weights of the exits ``config`` has (from the 5 per position: stages 1-4, final)."""
    if len(loss_weights) != N_EARLY_EXITS + 1:
        raise InputError("loss_weights", f"expected {N_EARLY_EXITS + 1} weights, got {len(loss_weights)}")
    return [float(w) for w, p in zip(loss_weights, [*exits_of(config), True], strict=True) if p]


def exit_thresholds(config: Mapping[str, Any], n_classes: int, rule: str = "confidence") -> list[float] | None:
    """Thresholds of the present early exits of a t-mode config in ``rule``'s units (max-softmax: its normalised
    ``t`` genes mapped by :func:`early_exit.metrics.confidence_threshold`; margin: ``t`` itself);
    ``None`` for b-mode (to be calibrated)."""
    if "t" in config:
        return [eem.gene_threshold(float(t), n_classes, rule) for t in config["t"] if float(t) < 1.0]
    return None


def evaluate_early_exit(
    config: Mapping[str, Any],
    train: Batches,
    valid: Batches,
    settings: EarlyExitSettings,
    *,
    supernet: Any = None,
) -> dict[str, Any]:
    """Build ``config`` on ``supernet`` (inherited weights), train backbone and exits jointly on ``train``,
    and return the early-exit metrics on ``valid``.

    Keys: ``top1``, ``top1_err``, ``avg_macs``, ``macs`` (single-exit backbone), ``exit_util``, ``exit_acc``,
    ``exit_acc_taken``, ``exit_macs``, ``thresholds``, ``n_exits``, ``train_loss`` and, when a budget
    applies, ``feasible``.
    """
    net = build_early_exit_net(
        config,
        n_classes=settings.n_classes,
        width_mult=settings.width_mult,
        head_width=settings.head_width,
        supernet=supernet,
        head=settings.head,
    )
    weights = present_loss_weights(config, settings.loss_weights)
    history: list[float] = []
    if settings.epochs > 0:
        history = train_joint(
            net,
            train,
            epochs=settings.epochs,
            lr=settings.lr,
            weight_decay=settings.weight_decay,
            loss_weights=weights,
            device=settings.device,
            max_steps=settings.max_steps,
            loss_fn=training_loss(config, settings),
        )
    probs, labels = predict_exits(net, valid, device=settings.device)
    out = score_exits(config, probs, labels, settings)
    out["train_loss"] = history[-1] if history else None
    return out


def score_exits(config: Mapping[str, Any], probs: Any, labels: Any, settings: EarlyExitSettings) -> dict[str, Any]:
    """Thresholds (from ``t``, or calibrated for ``b``) and every early-exit metric of stored exit outputs.

    ``thresholds`` are in max-softmax units (what the deployed policy compares). Besides
    :func:`early_exit.metrics.evaluate_policy`'s keys (lists over the present exits) the result has flat
    numbers per exit position -- ``exit_util_s1``..``exit_util_s4``, ``exit_util_final`` and likewise
    ``exit_acc_*``, ``exit_macs_*``, ``threshold_s*`` for the present exits -- so that archives that keep only
    numeric metrics keep them too; ``macs`` is the single-exit backbone's MACs and ``n_exits`` counts the early
    exits (not the final one, as CNAS counts them).
    """
    macs = exit_macs(
        config,
        n_classes=settings.n_classes,
        width_mult=settings.width_mult,
        head_width=settings.head_width,
        head=settings.head,
    )
    rule = settings.exit_rule
    thr = exit_thresholds(config, settings.n_classes, rule)
    if thr is not None:
        out = eem.evaluate_policy(probs, labels, thr, macs, rule)
        if settings.max_avg_macs is not None:
            out["feasible"] = out["avg_macs"] <= settings.max_avg_macs
    elif settings.calibration == "nachos":  # NACHOS's epsilon tuning + top1min repair (b-mode)
        out = eem.nachos_thresholds(
            probs, labels, macs, max_avg_macs=settings.max_avg_macs, min_top1=settings.top1_min, rule=rule
        )
        out["repaired"] = float(out["repaired"])
        out["top1_ok"] = float(out["top1_ok"])
        if settings.max_avg_macs is None:
            out.pop("feasible", None)
    elif settings.max_avg_macs is not None:
        out = eem.calibrate_thresholds(
            probs, labels, macs, max_avg_macs=settings.max_avg_macs, grid=settings.calib_grid, rule=rule
        )
    else:
        best = eem.calibrate_thresholds(probs, labels, macs, grid=settings.calib_grid, rule=rule)
        out = eem.calibrate_thresholds(
            probs, labels, macs, min_top1=best["top1"] - settings.tolerance, grid=settings.calib_grid, rule=rule
        )
        out.pop("feasible", None)
    out["macs"] = float(backbone_macs(config, n_classes=settings.n_classes, width_mult=settings.width_mult))
    out["n_exits"] = len(macs) - 1  # early exits only (CNAS's count); len(macs) classifiers
    names = [f"s{s + 1}" for s, p in enumerate(exits_of(config)) if p] + ["final"]
    for k, name in enumerate(names):
        out[f"exit_util_{name}"] = out["exit_util"][k]
        out[f"exit_acc_{name}"] = out["exit_acc"][k]
        out[f"exit_macs_{name}"] = float(macs[k])
        if name != "final":
            out[f"threshold_{name}"] = out["thresholds"][k]
    return out
