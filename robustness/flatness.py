"""Flatness of the loss landscape by random multiplicative weight perturbation (FlatNAS's robustness R).

Definition
----------
For a trained network with parameters ``theta`` and validation data ``D``::

    R = 1/M * sum_m | acc(theta; D) - acc(theta + sigma * |theta| * eps_m; D) |,   eps_m ~ N(0, I)

i.e. every parameter tensor (conv/linear weights and biases, BN affine ``weight``/``bias``) gets Gaussian
noise scaled by its own magnitude, so the perturbation is relative (a weight of 0 stays 0) and comparable
across layers and architectures. ``acc`` is top-1 in percent, so ``R`` is in percentage points -- the same
unit as ``top1_err`` (the ``top1_robust`` objective normalises the scale anyway). A flat minimum loses little
accuracy under perturbation (small ``R``); FlatNAS shows this tracks out-of-distribution robustness.

Also reported: the mean loss increase ``1/M * sum_m (L(theta + ...) - L(theta))`` (signed, mean
cross-entropy over ``D``), the per-draw accuracies and the clean accuracy/loss.

Batch-norm statistics
---------------------
The network is evaluated in ``eval()`` mode with the **unperturbed running statistics** (buffers are never
perturbed or recomputed). Reasons: (1) R measures how the *function* ``f(x; theta)`` changes when ``theta``
moves; re-estimating BN statistics per draw would renormalise away most of a multiplicative perturbation of
the preceding conv weights (BN is scale-invariant in its input), measuring a different, much smaller
quantity; (2) re-calibration needs extra forward passes on training data per draw (M times the cost) and its
own sample noise; (3) eval mode makes every draw deterministic given the noise, so seeded runs repeat
bit-for-bit. BN's affine parameters ``weight``/``bias`` are parameters and are perturbed like the rest.

Reproducibility and restoration
-------------------------------
Noise comes from a private ``torch.Generator`` seeded with ``seed`` and drawn on the CPU (then moved to the
model's device), so the draws do not touch or depend on the global RNG and are the same on any device.
The original parameters are kept as a copy and copied back after every draw and in a ``finally`` block, so
the model leaves :func:`flatness` bit-identical to how it came in (also every submodule's train/eval
mode), even on error.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, cast

import torch
from torch import nn
from torch.utils.data import DataLoader

from supernets.errors import InputError

Batches = list[tuple[torch.Tensor, torch.Tensor]]


@dataclass
class FlatnessResult:
    """Outcome of :func:`flatness`. Accuracies in percent, losses are mean cross-entropy (nats)."""

    robustness: float  # R, percentage points
    loss_increase: float  # mean over draws of L(perturbed) - L(clean)
    acc_clean: float
    loss_clean: float
    acc_draws: list[float] = field(default_factory=list)
    loss_draws: list[float] = field(default_factory=list)
    sigma: float = 0.05
    n_draws: int = 20
    seed: int = 0
    n_samples: int = 0
    seconds: float = 0.0  # wall clock
    cpu_seconds: float = 0.0  # process CPU time (all threads): the cost on a shared machine

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return asdict(self)


def as_batches(
    data: DataLoader[Any] | tuple[torch.Tensor, torch.Tensor] | Iterable[Sequence[torch.Tensor]],
    batch_size: int = 256,
) -> Batches:
    """Materialise validation data once as a list of ``(x, y)`` batches.

    ``data`` is a ``DataLoader`` (or any iterable of ``(x, y[, ...])`` batches) or a pair of tensors
    ``(x, y)``, which is split into ``batch_size`` chunks. Materialising once means every one of the
    ``M + 1`` passes sees exactly the same inputs (no augmentation, no reshuffling).
    """
    if batch_size < 1:
        raise InputError("batch_size", f"must be >= 1, got {batch_size}")
    if isinstance(data, tuple) and len(data) == 2 and all(isinstance(t, torch.Tensor) for t in data):
        x, y = cast(torch.Tensor, data[0]), cast(torch.Tensor, data[1])
        if x.shape[0] != y.shape[0]:
            raise InputError("data", f"x has {x.shape[0]} samples but y has {y.shape[0]}")
        return [(x[i : i + batch_size], y[i : i + batch_size]) for i in range(0, x.shape[0], batch_size)]
    out: Batches = []
    for b in data:
        if not isinstance(b, list | tuple) or len(b) < 2:
            raise InputError("data", "each batch must be a (inputs, labels) pair")
        out.append((b[0], b[1]))
    return out


@torch.no_grad()
def evaluate_batches(
    model: nn.Module, batches: Batches, device: torch.device | str | None = None
) -> tuple[float, float]:
    """Top-1 accuracy (%) and mean cross-entropy of ``model`` over ``batches`` (no grad, current mode)."""
    n = 0
    correct = 0
    loss_sum = 0.0
    for x, y in batches:
        if device is not None:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        logits = model(x)
        loss_sum += float(nn.functional.cross_entropy(logits, y, reduction="sum"))
        correct += int((logits.argmax(dim=1) == y).sum())
        n += int(y.shape[0])
    if n == 0:
        raise InputError("data", "the validation data is empty")
    return 100.0 * correct / n, loss_sum / n


def _device_of(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


@torch.no_grad()
def flatness(
    model: nn.Module,
    data: DataLoader[Any] | tuple[torch.Tensor, torch.Tensor] | Iterable[Sequence[torch.Tensor]],
    *,
    sigma: float = 0.05,
    n_draws: int = 20,
    seed: int = 0,
    batch_size: int = 256,
    device: torch.device | str | None = None,
) -> FlatnessResult:
    """FlatNAS robustness ``R`` of ``model`` on validation ``data`` (see the module docstring).

    ``sigma`` is the relative noise scale, ``n_draws`` the number M of perturbations, ``seed`` seeds the
    private noise generator. The model is evaluated in eval mode; its parameters and mode are restored
    exactly afterwards. ``device`` defaults to the device of the model's parameters.
    """
    if not (isinstance(sigma, int | float) and math.isfinite(sigma) and sigma >= 0):
        raise InputError("sigma", f"must be a finite number >= 0, got {sigma!r}")
    if not isinstance(n_draws, int) or n_draws < 1:
        raise InputError("n_draws", f"must be an int >= 1, got {n_draws!r}")
    if not isinstance(seed, int) or seed < 0:
        raise InputError("seed", f"must be an int >= 0, got {seed!r}")
    t0, c0 = time.perf_counter(), time.process_time()
    dev = torch.device(device) if device is not None else _device_of(model)
    batches = as_batches(data, batch_size)
    params = [p for p in model.parameters()]
    originals = [p.detach().clone() for p in params]
    scales = [sigma * o.abs() for o in originals]
    gen = torch.Generator(device="cpu")
    gen.manual_seed(seed)
    modes = [(m, m.training) for m in model.modules()]
    acc_draws: list[float] = []
    loss_draws: list[float] = []
    try:
        model.eval()
        acc0, loss0 = evaluate_batches(model, batches, dev)
        for _ in range(n_draws):
            for p, o, s in zip(params, originals, scales, strict=True):
                eps = torch.randn(o.shape, generator=gen, dtype=o.dtype, device="cpu").to(o.device)
                p.copy_(o).addcmul_(s, eps)
            acc, loss = evaluate_batches(model, batches, dev)
            acc_draws.append(acc)
            loss_draws.append(loss)
    finally:
        for p, o in zip(params, originals, strict=True):
            p.copy_(o)
        for m, mode in modes:
            m.training = mode
    r = sum(abs(acc0 - a) for a in acc_draws) / n_draws
    dl = sum(loss - loss0 for loss in loss_draws) / n_draws
    return FlatnessResult(
        robustness=r,
        loss_increase=dl,
        acc_clean=acc0,
        loss_clean=loss0,
        acc_draws=acc_draws,
        loss_draws=loss_draws,
        sigma=float(sigma),
        n_draws=n_draws,
        seed=seed,
        n_samples=sum(int(y.shape[0]) for _, y in batches),
        seconds=time.perf_counter() - t0,
        cpu_seconds=time.process_time() - c0,
    )
