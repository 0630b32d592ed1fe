"""SAM / ASAM fine-tuning (``finetune(..., sam_rho=...)``), checked by hand on a linear model."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from supernets.finetune import finetune


def _grad(w: torch.Tensor, b: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    w, b = w.clone().requires_grad_(True), b.clone().requires_grad_(True)
    F.cross_entropy(x @ w.T + b, y).backward()
    assert w.grad is not None and b.grad is not None
    return w.grad, b.grad


@pytest.mark.parametrize("adaptive", [False, True])
def test_one_sam_step_by_hand(adaptive: bool) -> None:
    torch.manual_seed(0)
    net = nn.Linear(4, 3)
    x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))
    w0, b0 = net.weight.detach().clone(), net.bias.detach().clone()
    rho, lr = 0.5, 0.1
    gw, gb = _grad(w0, b0, x, y)
    s_w, s_b = (w0.abs(), b0.abs()) if adaptive else (torch.ones_like(w0), torch.ones_like(b0))
    norm = torch.sqrt(((s_w * gw) ** 2).sum() + ((s_b * gb) ** 2).sum())
    ew = (w0.pow(2) if adaptive else 1.0) * gw * rho / norm
    eb = (b0.pow(2) if adaptive else 1.0) * gb * rho / norm
    hw, hb = _grad(w0 + ew, b0 + eb, x, y)  # the gradient at the perturbed weights drives the step
    finetune(net, itertools.repeat([(x, y)]), n_epochs=1, steps_per_epoch=1, lr=lr, momentum=0.0,
             weight_decay=0.0, sam_rho=rho, sam_adaptive=adaptive)
    assert torch.allclose(net.weight.detach(), w0 - lr * hw, atol=1e-6)
    assert torch.allclose(net.bias.detach(), b0 - lr * hb, atol=1e-6)
    assert not torch.allclose(hw, gw)  # the ascent step matters: plain SGD would differ


def test_spec_selects_sam() -> None:
    from search.spec import SupernetEvaluatorSpec

    o = SupernetEvaluatorSpec(optimizer="sam")
    assert (o.sam_rho, o.sam_adaptive) == (2.0, True)  # CNAS's train.py defaults
    with pytest.raises(Exception, match="sam_rho"):
        SupernetEvaluatorSpec(optimizer="sam", sam_rho=0)
