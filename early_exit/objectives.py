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

In a search the engine predicts ``avg_macs`` with :class:`ExitRateSurrogate` (this model behind the engine's
surrogate interface: fitted on the archive's measured utilisation, predicting genomes), for the ``avg_macs``
objective and for NACHOS' ``avg_macs`` constraint alike (``search/engine.py``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from early_exit.network import DEFAULT_HEAD_WIDTH, N_EARLY_EXITS, exit_macs, exits_of
from supernets.errors import InputError


def exit_macs_table(
    configs: Sequence[Mapping[str, Any]],
    *,
    n_classes: int = 1000,
    width_mult: float = 1.0,
    head_width: int = DEFAULT_HEAD_WIDTH,
    head: str = "ours",
) -> np.ndarray:
    """(N, 5) float64 MACs of the exits after stages 1..4 (NaN where absent) and of the final exit."""
    out = np.full((len(configs), N_EARLY_EXITS + 1), np.nan)
    for i, c in enumerate(configs):
        present = exits_of(c)
        m = exit_macs(c, n_classes=n_classes, width_mult=width_mult, head_width=head_width, head=head)
        cols = [s for s in range(N_EARLY_EXITS) if present[s]] + [N_EARLY_EXITS]
        out[i, cols] = m
    return out


def avg_macs_of_metrics(metrics: Mapping[str, Any]) -> float:
    """The ``avg_macs`` of an evaluated candidate's metrics (``ValueError`` naming the field if absent)."""
    v = metrics.get("avg_macs")
    if v is None:
        raise InputError("metrics.avg_macs", "missing (evaluate the candidate with the early-exit evaluator)")
    return float(v)


def _exit_key(config: Mapping[str, Any], s: int) -> tuple[int, float]:
    if "t" in config:
        return (s, float(config["t"][s]))
    return (s, 1.0)


class ExitRateModel:
    """Predicts exit utilisation and ``avg_macs`` of unevaluated configs from evaluated ones (see module doc)."""

    def __init__(
        self,
        *,
        n_classes: int = 1000,
        width_mult: float = 1.0,
        head_width: int = DEFAULT_HEAD_WIDTH,
        head: str = "ours",
    ):
        self.n_classes = n_classes
        self.width_mult = width_mult
        self.head_width = head_width
        self.head = head
        self.rates_: dict[tuple[int, float], float] = {}
        self.stage_rates_: dict[int, float] = {}

    def fit(self, configs: Sequence[Mapping[str, Any]], exit_utils: Sequence[Sequence[float]]) -> ExitRateModel:
        """Learn conditional leave rates from evaluated configs and their measured ``exit_util``."""
        if len(configs) != len(exit_utils):
            raise InputError("exit_utils", f"expected {len(configs)} utilisation lists, got {len(exit_utils)}")
        acc: dict[tuple[int, float], list[float]] = defaultdict(list)
        by_stage: dict[int, list[float]] = defaultdict(list)
        for c, util in zip(configs, exit_utils, strict=True):
            stages = [s for s, p in enumerate(exits_of(c)) if p]
            if len(util) != len(stages) + 1:
                raise InputError("exit_utils", f"{len(util)} fractions for a config with {len(stages) + 1} exits")
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
            configs, n_classes=self.n_classes, width_mult=self.width_mult, head_width=self.head_width, head=self.head
        )
        res = np.empty(len(configs))
        for i, util in enumerate(self.predict_util(configs)):
            m = table[i][~np.isnan(table[i])]
            res[i] = float(np.dot(util, m))
        return res


def exit_util_of_metrics(config: Mapping[str, Any], metrics: Mapping[str, Any]) -> list[float] | None:
    """Measured utilisation of a config's exits (present early exits in stage order, final last) from an evaluated
    candidate's metrics: the ``exit_util`` list, else the flat ``exit_util_s1`` .. ``exit_util_final`` numbers
    (archives keep only numbers); ``None`` when the metrics do not hold them all."""
    names = [f"exit_util_s{s + 1}" for s, p in enumerate(exits_of(config)) if p] + ["exit_util_final"]
    util = metrics.get("exit_util")
    if isinstance(util, (list, tuple)) and len(util) == len(names):
        return [float(v) for v in util]
    vals = [metrics.get(n) for n in names]
    if any(not isinstance(v, (int, float)) or isinstance(v, bool) for v in vals):
        return None
    return [float(v) for v in vals]  # type: ignore[arg-type]


def thresholds_of_metrics(config: Mapping[str, Any], metrics: Mapping[str, Any]) -> list[float] | None:
    """Max-softmax thresholds of a config's present early exits (stage order) from an evaluated candidate's
    metrics (``thresholds``, else the flat ``threshold_s*``); ``None`` when they are not all there."""
    names = [f"threshold_s{s + 1}" for s, p in enumerate(exits_of(config)) if p]
    thr = metrics.get("thresholds")
    if isinstance(thr, (list, tuple)) and len(thr) == len(names):
        return [float(v) for v in thr]
    vals = [metrics.get(n) for n in names]
    if any(not isinstance(v, (int, float)) or isinstance(v, bool) for v in vals):
        return None
    return [float(v) for v in vals]  # type: ignore[arg-type]


class ExitRateSurrogate:
    """:class:`ExitRateModel` behind the engine's surrogate interface (``predict(genomes)``).

    ``fit(configs, metrics)`` learns the leave rates from the evaluated candidates that report their utilisation
    (others are skipped; ``n_train_`` counts the used ones); ``predict(X)`` decodes integer genomes of ``space``
    and returns their predicted ``avg_macs`` (MACs); ``cross_validate`` gives held-out predictions.
    """

    def __init__(
        self,
        space: Any,
        *,
        n_classes: int,
        width_mult: float = 1.0,
        head_width: int = DEFAULT_HEAD_WIDTH,
        head: str = "ours",
    ) -> None:
        self.space = space
        self.kw: dict[str, Any] = {
            "n_classes": n_classes,
            "width_mult": width_mult,
            "head_width": head_width,
            "head": head,
        }
        self.model_ = ExitRateModel(**self.kw)
        self.n_train_ = 0

    def _usable(
        self, configs: Sequence[Mapping[str, Any]], metrics: Sequence[Mapping[str, Any]]
    ) -> tuple[list[Mapping[str, Any]], list[list[float]], list[int]]:
        cs, us, idx = [], [], []
        for i, (c, m) in enumerate(zip(configs, metrics, strict=True)):
            u = exit_util_of_metrics(c, m)
            if u is not None:
                cs.append(c)
                us.append(u)
                idx.append(i)
        return cs, us, idx

    def fit(self, configs: Sequence[Mapping[str, Any]], metrics: Sequence[Mapping[str, Any]]) -> ExitRateSurrogate:
        """Fit the leave rates on the candidates whose metrics hold their exit utilisation."""
        cs, us, _ = self._usable(configs, metrics)
        self.model_ = ExitRateModel(**self.kw).fit(cs, us)
        self.n_train_ = len(cs)
        return self

    def predict_configs(self, configs: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Predicted ``avg_macs`` (MACs) of configs."""
        return self.model_.predict(configs)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predicted ``avg_macs`` (MACs) of integer genomes of ``space``."""
        X = np.asarray(X, dtype=np.int64)
        if len(X) == 0:
            return np.zeros(0)
        return self.model_.predict([self.space.decode(x) for x in X])

    def cross_validate(
        self,
        configs: Sequence[Mapping[str, Any]],
        metrics: Sequence[Mapping[str, Any]],
        folds: int,
        rng: np.random.Generator,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(measured, held-out predicted)`` avg_macs of the usable candidates over ``folds`` random folds
        (empty arrays when fewer than 2 candidates report their utilisation)."""
        cs, us, idx = self._usable(configs, metrics)
        k = min(folds, len(cs))
        if k < 2:
            return np.zeros(0), np.zeros(0)
        y = np.array([float(metrics[i]["avg_macs"]) for i in idx])
        fold = rng.permutation(len(cs)) % k
        pred = np.empty(len(cs))
        for f in range(k):
            tr, te = np.flatnonzero(fold != f), np.flatnonzero(fold == f)
            m = ExitRateModel(**self.kw).fit([cs[i] for i in tr], [us[i] for i in tr])
            pred[te] = m.predict([cs[i] for i in te])
        return y, pred
