"""True evaluation of early-exit candidates (``search_space: eemobilenetv3``, ``evaluator.kind: supernet``).

The ``supernet`` evaluator kind hands eemobilenetv3 jobs to :class:`EarlyExitEvaluator`, which reuses the
supernet evaluator's data, supernet, BN calibration batches and seeded epochs, and per candidate:

1. extracts the backbone subnet with inherited weights and recalibrates its BN statistics;
2. attaches the exit heads (:class:`early_exit.network.EarlyExitNet`) and trains backbone and exits jointly for
   ``evaluator.n_epochs`` (weighted exit losses, ``early_exit.loss_weights``);
3. runs every exit once on the validation split and scores the exit policy (``early_exit.exit_rule``:
   max-softmax ``confidence`` or EDANAS's softmax ``margin``; heads by ``early_exit.head``): thresholds from ``t``
   (EDANAS; for ``confidence`` normalised, ``1/K + t (1 - 1/K)`` in max-softmax units), or calibrated for ``b``
   (NACHOS: under ``constraints.avg_macs`` when given, else the fewest average MACs within
   ``early_exit.tolerance`` points of the best accuracy).

Metrics: ``top1`` (as deployed: each sample scored at the exit it leaves), ``avg_macs``, ``exit_util``/``exit_acc``/
``exit_macs``/``thresholds`` (lists) and their flat per-position numbers (``exit_util_s1`` ... ``_final``),
``macs`` and the other exact costs of the single-exit backbone, ``params_ee`` (with the heads), ``n_exits`` (early
exits, the final classifier not counted),
``train_loss`` and phase times.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import torch

from early_exit.evaluate import EarlyExitSettings, present_loss_weights, score_exits, training_loss
from early_exit.network import EarlyExitNet, exits_of, predict_exits, train_joint
from search.evaluators.supernet import SupernetEvaluator
from search.spec import EarlyExitSpec
from supernets.errors import InputError
from supernets.finetune import recalibrate_bn
from supernets.ofa_supernet import extract_subnet

if TYPE_CHECKING:
    from search.spec import JobSpec

_BACKBONE = ("ks", "e", "d", "r")


class EarlyExitEvaluator(SupernetEvaluator):
    """Joint training of backbone + exits and the early-exit metrics for ``eemobilenetv3`` candidates."""

    def __init__(self, job: JobSpec, *, supernet: Any = None, data: Any = None) -> None:
        if job.search_space != "eemobilenetv3":
            raise InputError("search_space", f"the early-exit evaluator needs eemobilenetv3, got {job.search_space!r}")
        super().__init__(job, supernet=supernet, data=data)

        self.ee = job.early_exit or EarlyExitSpec()
        self.settings = EarlyExitSettings(
            n_classes=self.n_classes,
            width_mult=float(job.width_mult),
            head_width=self.ee.head_width,
            epochs=self.opts.n_epochs,
            lr=self.opts.lr,
            weight_decay=self.opts.weight_decay,
            loss_weights=list(self.ee.loss_weights),
            calib_grid=list(self.ee.calib_grid),
            max_avg_macs=job.constraints.get("avg_macs"),
            tolerance=self.ee.tolerance,
            device=str(self.device),
            exit_rule=self.ee.exit_rule,
            head=self.ee.head,
            calibration=self.ee.calibration,
            top1_min=self.ee.top1_min,
            training=self.ee.training,
            cost_weight=self.ee.cost_weight,
            gate_prior=self.ee.gate_prior,
        )

    def prepare(self, config: dict[str, Any]) -> tuple[EarlyExitNet, dict[str, float]]:  # type: ignore[override]
        """Extract + recalibrate the backbone, attach the heads, train jointly; (network, metrics + times)."""
        o = self.opts
        cfg, r, seed = self.begin(config)
        t0 = time.perf_counter()
        sub = extract_subnet(self.supernet, {k: cfg[k] for k in _BACKBONE}).to(self.device)
        t1 = time.perf_counter()
        if self._calib_idx:
            recalibrate_bn(sub, self.calibration_batches(r))
        t2 = time.perf_counter()
        torch.manual_seed(seed)
        st = self.settings
        net = EarlyExitNet(sub, cfg["d"], exits_of(cfg), self.n_classes, st.head_width, st.head).to(self.device)
        metrics: dict[str, Any] = {"train_loss": None}
        if o.n_epochs > 0:
            g = torch.Generator().manual_seed(seed)
            epochs = self._epochs(r, g)
            hist = train_joint(
                net,
                lambda: next(epochs),
                epochs=o.n_epochs,
                lr=o.lr,
                momentum=o.momentum,
                weight_decay=o.weight_decay,
                loss_weights=present_loss_weights(cfg, self.settings.loss_weights),
                device=self.device,
                steps_per_epoch=self.steps_per_epoch(),
                loss_fn=training_loss(cfg, self.settings),
            )
            metrics["train_loss"] = hist[-1]
        t3 = time.perf_counter()
        metrics.update(time_extract=t1 - t0, time_bn=t2 - t1, time_train=t3 - t2)
        return net, metrics

    def measure(self, net: EarlyExitNet, config: dict[str, Any]) -> dict[str, Any]:
        """Every exit once on the validation split, then the policy's metrics (thresholds from ``t``, or
        calibrated for ``b``): what :meth:`evaluate` reports and ``msunas export`` writes into the file."""
        cfg = self.space.validate(config)
        probs, labels = predict_exits(net, self._fixed_batches("valid", int(cfg["r"])), device=self.device)
        return score_exits(cfg, probs, labels, self.settings)

    def _evaluate(self, config: dict[str, Any]) -> dict[str, Any]:  # type: ignore[override]
        cfg = self.space.validate(config)
        net, metrics = self.prepare(cfg)
        t0 = time.perf_counter()
        metrics.update(self.measure(net, cfg))
        metrics["time_valid"] = time.perf_counter() - t0
        backbone = {k: cfg[k] for k in _BACKBONE}
        costs = self._costs(backbone, net)
        costs.pop("macs", None)  # the backbone's MACs are score_exits' ``macs`` (equal by construction)
        metrics.update(costs)
        metrics["params_ee"] = float(sum(p.numel() for p in net.parameters()))
        return metrics
