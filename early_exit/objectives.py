"""What the search needs for the ``avg_macs`` objective and constraint.

``avg_macs`` is measured (it depends on how many samples leave early), so an evaluated candidate carries it in
its metrics (:func:`avg_macs_of_metrics`). For candidates not yet evaluated -- NSGA-II on the surrogate, and
NACHOS' constraint on predicted cost -- :class:`ExitRateModel` predicts it from exact per-exit MACs
(:func:`exit_macs_table`, nothing built) and exit rates learnt from the archive:

- the *conditional* leave rate of an exit, ``q = r_b / (1 - sum_{j<b} r_j)`` (the fraction of the samples
  reaching exit ``b`` that leave there), is averaged per (exit position, threshold) over the evaluated
  configs (t-mode), or per exit position (b-mode);
- a config's utilisation follows as ``r_b = q_b * prod_{j<b} (1 - q_j)``, the final exit taking the rest, and
  ``avg_macs = sum_b r_b * macs_b``.

Before any data the leave rates are 0, so the prediction is the backbone's MACs, an upper bound
(conservative for a constraint).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from early_exit.network import DEFAULT_HEAD_WIDTH, N_EARLY_EXITS, exit_macs, exits_of


def exit_macs_table(
    configs: Sequence[Mapping[str, Any]],
    *,
    n_classes: int = 1000,
    width_mult: float = 1.0,
    head_width: int = DEFAULT_HEAD_WIDTH,
) -> np.ndarray:
    """(N, 5) float64 MACs of the exits after stages 1..4 (NaN where absent) and of the final exit."""
    out = np.full((len(configs), N_EARLY_EXITS + 1), np.nan)
    for i, c in enumerate(configs):
        present = exits_of(c)
        m = exit_macs(c, n_classes=n_classes, width_mult=width_mult, head_width=head_width)
        cols = [s for s in range(N_EARLY_EXITS) if present[s]] + [N_EARLY_EXITS]
        out[i, cols] = m
    return out


def avg_macs_of_metrics(metrics: Mapping[str, Any]) -> float:
    """The ``avg_macs`` of an evaluated candidate's metrics (``ValueError`` naming the field if absent)."""
    v = metrics.get("avg_macs")
    if v is None:
        raise ValueError("metrics.avg_macs: missing (evaluate the candidate with the early-exit evaluator)")
    return float(v)


def _exit_key(config: Mapping[str, Any], s: int) -> tuple[int, float]:
    if "t" in config:
        return (s, float(config["t"][s]))
    return (s, 1.0)


class ExitRateModel:
    """Predicts exit utilisation and ``avg_macs`` of unevaluated configs from evaluated ones (see module doc)."""

    def __init__(self, *, n_classes: int = 1000, width_mult: float = 1.0, head_width: int = DEFAULT_HEAD_WIDTH):
        self.n_classes = n_classes
        self.width_mult = width_mult
        self.head_width = head_width
        self.rates_: dict[tuple[int, float], float] = {}
        self.stage_rates_: dict[int, float] = {}

    def fit(self, configs: Sequence[Mapping[str, Any]], exit_utils: Sequence[Sequence[float]]) -> ExitRateModel:
        """Learn conditional leave rates from evaluated configs and their measured ``exit_util``."""
        if len(configs) != len(exit_utils):
            raise ValueError(f"exit_utils: expected {len(configs)} utilisation lists, got {len(exit_utils)}")
        acc: dict[tuple[int, float], list[float]] = defaultdict(list)
        by_stage: dict[int, list[float]] = defaultdict(list)
        for c, util in zip(configs, exit_utils, strict=True):
            stages = [s for s, p in enumerate(exits_of(c)) if p]
            if len(util) != len(stages) + 1:
                raise ValueError(f"exit_utils: {len(util)} fractions for a config with {len(stages) + 1} exits")
            reach = 1.0
            for k, s in enumerate(stages):
                if reach > 1e-9:
                    q = min(max(float(util[k]) / reach, 0.0), 1.0)
                    acc[_exit_key(c, s)].append(q)
                    by_stage[s].append(q)
                reach -= float(util[k])
        self.rates_ = {k: float(np.mean(v)) for k, v in acc.items()}
        self.stage_rates_ = {k: float(np.mean(v)) for k, v in by_stage.items()}
        return self

    def predict_util(self, configs: Sequence[Mapping[str, Any]]) -> list[list[float]]:
        """Predicted utilisation of each config's exits (present early exits in order, final last)."""
        out = []
        for c in configs:
            reach, util = 1.0, []
            for s, p in enumerate(exits_of(c)):
                if not p:
                    continue
                q = self.rates_.get(_exit_key(c, s), self.stage_rates_.get(s, 0.0))
                util.append(reach * q)
                reach *= 1.0 - q
            util.append(reach)
            out.append(util)
        return out

    def predict(self, configs: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Predicted ``avg_macs`` (float64, MACs) of each config."""
        table = exit_macs_table(
            configs, n_classes=self.n_classes, width_mult=self.width_mult, head_width=self.head_width
        )
        res = np.empty(len(configs))
        for i, util in enumerate(self.predict_util(configs)):
            m = table[i][~np.isnan(table[i])]
            res[i] = float(np.dot(util, m))
        return res
