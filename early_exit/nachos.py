"""NACHOS's cost-aware joint training of exits (``early_exit.training: nachos``), with a cost term that acts.

The seed: AI-Tech-Research-Lab/EarlyExits ``trainer.py`` ``binary_bernulli_trainer`` (CNAS@HEAD ``ee_train.py``
``--method bernulli``). Each exit has a confidence gate ``b_i`` in [0, 1]; ``normalize_weights`` turns the gates
into the probability of leaving at each exit, ``q_i = b_i prod_{j<i} (1 - b_j)`` (the final exit takes the
rest); the loss is ``w_alpha * classification + beta * BCE(b, "exit i is right", class-balanced) + w_beta *
energy_loss``, where ``energy_loss`` is the normalised violation ``max(0, E[MACs] - mmax) / |MACs_final - mmax|``
of the gates' expected MACs ``E[MACs] = mean_n sum_i q_i MACs_i``. There that term is built from
``avg_macs.item()`` into a new tensor: it carries no gradient, so it never changes a weight.

Here the same three terms, the cost one differentiable:

* gates: the exit's own score under the job's exit rule (max-softmax, or the margin), i.e. what the deployed
  policy thresholds -- not a separate sigmoid head (our networks have none); the final exit's gate is 1;
* classification: our joint loss (weighted cross-entropy of every exit; NACHOS mixes the gated logits);
* gate prior: NACHOS's ``prior_mode='ones'`` BCE with its class balancing, weight ``gate_prior`` (its ``beta``,
  default 1e-3), early exits only;
* cost: ``cost_weight`` (its ``w_beta``) times the normalised expected MACs computed from the gate
  probabilities in closed form (the expectation of its Bernoulli gates; no sampling needed), with gradient. With
  a budget (``constraints.avg_macs``) it is NACHOS's normalised violation (zero when the final exit is within the
  budget, as there); without one it is ``E[MACs] / MACs_final`` (NACHOS would add nothing).

Backbone and exits train together as in our joint training (NACHOS freezes the backbone in this phase).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from early_exit.network import exit_score, joint_loss
from supernets.errors import InputError

TRAININGS = ("joint", "nachos")


@dataclass(frozen=True)
class CostAware:
    """The cost-aware terms: MACs of each present exit path (final last, counts), weights, budget, exit rule."""

    exit_macs: tuple[float, ...]
    cost_weight: float = 1.0
    gate_prior: float = 1e-3
    budget: float | None = None
    rule: str = "confidence"

    def __post_init__(self) -> None:
        if len(self.exit_macs) < 1 or any(not m > 0 for m in self.exit_macs):
            raise InputError("exit_macs", f"expected positive MACs per exit, got {list(self.exit_macs)}")
        if self.cost_weight < 0 or self.gate_prior < 0:
            raise InputError("cost_weight", "cost_weight and gate_prior must be >= 0")


def gates(logits: Sequence[torch.Tensor], rule: str = "confidence") -> torch.Tensor:
    """(N, E) gate probabilities: each early exit's score under ``rule``, 1 for the final exit."""
    cols = [exit_score(torch.softmax(lo.float(), dim=1), rule) for lo in logits[:-1]]
    cols.append(torch.ones(logits[-1].shape[0], device=logits[-1].device))
    return torch.stack(cols, dim=1)


def leave_probs(g: torch.Tensor) -> torch.Tensor:
    """(N, E) probability of leaving at each exit under independent gates ``g`` (NACHOS's ``normalize_weights``)."""
    stay = torch.cumprod(1.0 - g[:, :-1], dim=1)
    before = torch.cat([torch.ones_like(g[:, :1]), stay], dim=1)
    return g * before


def expected_macs(g: torch.Tensor, exit_macs: Sequence[float]) -> torch.Tensor:
    """Mean over the batch of the expected MACs under gates ``g`` (differentiable)."""
    w = torch.as_tensor(list(exit_macs), dtype=g.dtype, device=g.device)
    return (leave_probs(g) @ w).mean()


def cost_term(g: torch.Tensor, ca: CostAware) -> torch.Tensor:
    """NACHOS's normalised violation of the budget by the expected MACs (with gradient), or the expected MACs
    over the final exit's without a budget."""
    e = expected_macs(g, ca.exit_macs)
    last = float(ca.exit_macs[-1])
    if ca.budget is None:
        return e / last
    if last <= ca.budget:  # NACHOS: no cost term when the whole network is within the budget
        return torch.zeros((), device=g.device)
    return torch.relu(e - ca.budget) / abs(last - ca.budget)


def gate_prior(g: torch.Tensor, logits: Sequence[torch.Tensor], target: torch.Tensor) -> torch.Tensor:
    """NACHOS's ``prior_mode='ones'`` term on the early exits: BCE of the gate against "this exit is right",
    each exit's right and wrong samples weighted to equal halves."""
    if g.shape[1] < 2:
        return torch.zeros((), device=g.device)
    with torch.no_grad():
        right = torch.stack([(lo.argmax(1) == target).float() for lo in logits[:-1]], dim=1)
        n = float(right.shape[0])
        ones = right.sum(0, keepdim=True)
        w1 = torch.nan_to_num(n / (2 * ones), nan=0.0, posinf=0.0)
        w0 = torch.nan_to_num(n / (2 * (n - ones)), nan=0.0, posinf=0.0)
        weight = w1 * right + w0 * (1 - right)
    bce = nn.functional.binary_cross_entropy(g[:, :-1].clamp(1e-4, 1 - 1e-4), right, weight=weight)
    return bce


def cost_aware_loss(ca: CostAware) -> Callable[[Sequence[torch.Tensor], torch.Tensor, Sequence[float] | None],
                                                torch.Tensor]:
    """The training loss of ``training: nachos`` (a drop-in for :func:`early_exit.network.joint_loss`)."""
    def loss(logits: Sequence[torch.Tensor], target: torch.Tensor, weights: Sequence[float] | None) -> torch.Tensor:
        if len(logits) != len(ca.exit_macs):
            raise InputError("exit_macs", f"{len(ca.exit_macs)} exit costs for {len(logits)} exits")
        g = gates(logits, ca.rule)
        out = joint_loss(logits, target, weights)
        if ca.gate_prior:
            out = out + ca.gate_prior * gate_prior(g, logits, target)
        if ca.cost_weight:
            out = out + ca.cost_weight * cost_term(g, ca)
        return out

    return loss


__all__ = ["TRAININGS", "CostAware", "cost_aware_loss", "cost_term", "expected_macs", "gate_prior", "gates",
           "leave_probs"]
