"""The per-candidate steps of true evaluation: BN recalibration, fine-tuning and validation of a static subnet.

Shared by the ``supernet`` evaluator, supernet training (epoch-end checks) and the benchmark. Everything takes
pre-built batches or an :class:`supernets.datasets.ImageSet`, so data order is fixed by a seeded generator.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from supernets.errors import InputError
from supernets.interrupt import check
from supernets.ofa_supernet import bn_modules


@torch.no_grad()
def recalibrate_bn(net: nn.Module, batches: Iterable[torch.Tensor | tuple[torch.Tensor, Any]]) -> int:
    """Re-estimate every BatchNorm's running mean/var on ``batches`` (inherited stats belong to the supernet).

    One forward pass per batch with the native batch-norm kernel in training mode; the momentum of batch ``k``
    is ``n_k / (n_1 + ... + n_k)``, so the running statistics end as the image-weighted average of the batch
    statistics (as once-for-all's ``set_running_statistics`` computes them, without its copy of the network and
    its Python-level per-layer statistics). Returns the number of images seen.
    """
    return _calibrate(net, net, batches)


def _calibrate(net: nn.Module, run: Any, batches: Iterable[torch.Tensor | tuple[torch.Tensor, Any]]) -> int:
    bns = list(bn_modules(net))
    saved = [m.momentum for m in bns]
    was_training = net.training
    net.eval()
    for m in bns:
        m.reset_running_stats()
        m.train()
    n = 0
    try:
        for b in batches:
            check()
            x = b[0] if isinstance(b, (tuple, list)) else b
            k = int(x.shape[0])
            for m in bns:
                m.momentum = k / (n + k)
            run(x)
            n += k
    finally:
        for m, mom in zip(bns, saved, strict=True):
            m.momentum = mom
        net.train(was_training)
    return n


def stem(net: nn.Module) -> nn.Sequential:
    """The fixed (non-elastic) stem of an ``ofa`` MobileNetV3 subnet: first conv + first block."""
    return nn.Sequential(net.first_conv, net.blocks[0])  # type: ignore[index, arg-type]


@dataclass
class StemCache:
    """A stem's calibrated BN statistics and its training-mode outputs for fixed calibration batches.

    The stem (first conv + first block) is the same in every subnet of a supernet, and in training mode its
    output depends only on its weights and the input, so for one resolution it is computed once and reused by
    every candidate's BN recalibration (exactly the same statistics as a full pass).
    """

    state: dict[str, torch.Tensor]
    outputs: list[torch.Tensor]

    @classmethod
    @torch.no_grad()
    def build(cls, net: nn.Module, batches: Iterable[torch.Tensor | tuple[torch.Tensor, Any]]) -> StemCache:
        s = copy.deepcopy(stem(net))
        outs: list[torch.Tensor] = []
        _calibrate(s, lambda x: outs.append(s(x)), batches)
        return cls({k: v.clone() for k, v in s.state_dict().items()}, outs)


@torch.no_grad()
def recalibrate_bn_cached(net: nn.Module, cache: StemCache) -> int:
    """:func:`recalibrate_bn` of an ``ofa`` MobileNetV3 subnet, starting from a :class:`StemCache`.

    Only the elastic blocks and the final expand layer run (the feature mix layer and classifier have no BN).
    """
    st = stem(net)
    st.load_state_dict(cache.state)
    blocks = net.blocks[1:]  # type: ignore[index]
    body = nn.Sequential(*blocks, net.final_expand_layer)  # type: ignore[arg-type]

    def run(x: torch.Tensor) -> None:
        body(x)

    was = st.training
    n = _calibrate(body, run, cache.outputs)
    st.train(was)
    return n


def param_groups(net: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on conv/linear weights only (BN and biases excluded, as once-for-all trains)."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for name, p in net.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 or name.endswith(".bias") else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def cosine_lr(base_lr: float, step: int, total: int) -> float:
    """Cosine schedule from ``base_lr`` at step 0 down to 0 after ``total`` steps."""
    return 0.5 * base_lr * (1.0 + math.cos(math.pi * min(step, total) / max(total, 1)))


def finetune(
    net: nn.Module,
    epochs_batches: Iterator[Iterable[tuple[torch.Tensor, torch.Tensor]]],
    *,
    n_epochs: int,
    steps_per_epoch: int,
    lr: float,
    momentum: float = 0.9,
    weight_decay: float = 4e-5,
    nesterov: bool = True,
    channels_last: bool = False,
    sam_rho: float = 0.0,
    sam_adaptive: bool = False,
) -> dict[str, float]:
    """SGD with momentum and a per-step cosine schedule over ``n_epochs`` epochs of (images, labels) batches.

    ``sam_rho > 0``: sharpness-aware minimisation (Foret et al. 2021; ``sam_adaptive``: ASAM, Kwon et al. 2021), as
    FlatNAS fine-tunes (CNAS@HEAD ``train_utils.py`` ``SAM``, ``train.py --optim SAM --rho --adaptive``): each step
    takes the gradient at ``w + e`` with ``e = rho * s * g / ||s * g||`` (``s = |w|`` adaptive, else 1; ``e`` scaled
    once more by ``s``), restores ``w`` and lets SGD step with that gradient. The reported loss is at ``w``.

    ``epochs_batches`` yields one iterable of batches per epoch. The learning rate of step ``s`` (0-based, over
    all epochs) is ``cosine_lr(lr, s, total)``, set before that step, so the schedule ends exactly at 0 after the
    last step. A non-finite loss raises ``FloatingPointError`` (the evaluator records it as a failure).
    """
    total = n_epochs * steps_per_epoch
    opt = torch.optim.SGD(param_groups(net, weight_decay), lr=lr, momentum=momentum, nesterov=nesterov and momentum > 0)
    net.train()
    step, loss_sum, n_seen = 0, 0.0, 0
    for epoch in range(n_epochs):
        batches = next(epochs_batches)
        for x, y in batches:
            check()
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            for g in opt.param_groups:
                g["lr"] = cosine_lr(lr, step, total)
            out = net(x)
            loss = F.cross_entropy(out, y)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss is {loss.item()} at epoch {epoch} step {step} (lr {lr})")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if sam_rho > 0:
                _sam_second_gradient(net, x, y, sam_rho, sam_adaptive, opt)
            opt.step()
            step += 1
            loss_sum += float(loss.detach()) * int(y.shape[0])
            n_seen += int(y.shape[0])
    return {"train_loss": loss_sum / max(n_seen, 1), "train_steps": float(step), "train_images": float(n_seen)}


def _sam_second_gradient(net: nn.Module, x: torch.Tensor, y: torch.Tensor, rho: float, adaptive: bool,
                         opt: torch.optim.Optimizer) -> None:
    """Replace the gradients at ``w`` by those at ``w + e`` (SAM/ASAM's ascent step), leaving ``w`` unchanged."""
    params = [p for g in opt.param_groups for p in g["params"] if p.grad is not None]
    with torch.no_grad():
        norm = torch.norm(torch.stack([((p.abs() if adaptive else 1.0) * p.grad).norm(p=2) for p in params]), p=2)
        scale = rho / (norm + 1e-12)
        eps = []
        for p in params:
            e = (p.pow(2) if adaptive else 1.0) * p.grad * scale
            p.add_(e)
            eps.append(e)
    opt.zero_grad(set_to_none=True)
    F.cross_entropy(net(x), y).backward()
    with torch.no_grad():
        for p, e in zip(params, eps, strict=True):
            p.sub_(e)


@torch.no_grad()
def validate(
    net: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    *,
    channels_last: bool = False,
) -> dict[str, float]:
    """Top-1 and top-5 accuracy (%) and mean cross-entropy on ``batches``; non-finite outputs raise."""
    net.eval()
    n, c1, c5, loss = 0, 0, 0, 0.0
    for x, y in batches:
        check()
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        out = net(x)
        if not torch.isfinite(out).all():
            raise FloatingPointError("validation produced non-finite outputs")
        loss += float(F.cross_entropy(out, y, reduction="sum"))
        k = min(5, out.shape[1])
        top = out.topk(k, dim=1).indices
        hit = top.eq(y.view(-1, 1))
        c1 += int(hit[:, 0].sum())
        c5 += int(hit.any(dim=1).sum())
        n += int(y.shape[0])
    if n == 0:
        raise InputError("validate", "no validation images")
    return {"top1": 100.0 * c1 / n, "top5": 100.0 * c5 / n, "loss": loss / n, "n_valid": float(n)}
