"""Early-exit metrics: the confidence policy on stored outputs, exit utilisation, average MACs, accuracy as
deployed, per-exit accuracy, and NACHOS-style threshold calibration under an average-MACs budget.

Definitions (EDANAS/NACHOS):

- exit utilisation ``r_b``: the fraction of validation samples that leave at exit ``b`` (final exit last);
  ``sum_b r_b = 1``.
- ``avg_macs = sum_b r_b * macs_b``, with ``macs_b`` the MACs of the backbone up to exit ``b`` plus its head
  (:func:`early_exit.network.exit_macs`).
- accuracy as deployed (``top1``): every sample scored by the exit it leaves at.
- per-exit accuracy: ``exit_acc[b]`` is exit ``b``'s classifier on *all* validation samples (how good the
  head is), ``exit_acc_taken[b]`` on the samples that actually left there (``None`` when none did).

All inputs are arrays computed once per network (:func:`early_exit.network.predict_exits`): the policy,
utilisation and calibration are then pure numpy, so any thresholds can be tried without another forward pass.

Thresholds: the policy compares an exit's max-softmax probability with a threshold in probability units
(``thresholds`` of :func:`apply_policy`, the calibration ``grid``, what a deployed network applies). The EDANAS
genes ``t`` of ``eemobilenetv3`` are *normalised* confidence thresholds: the max-softmax probability rescaled so
that the uniform (chance) output is 0 and certainty is 1, ``c = (K max_p - 1) / (K - 1)``; an input leaves when
``c >= t``, i.e. when its max-softmax probability reaches :func:`confidence_threshold` ``= 1/K + t (1 - 1/K)``.
Raw max-softmax thresholds cannot serve as EDANAS genes: with K classes ``max_p >= 1/K`` always, so a raw
``t <= 1/K`` (``0.1`` for 10 classes, the default grid's first value) would send every input out at that exit.
On the normalised scale every ``t < 1`` is a real test for any K, ``t`` means the same for 10 or 1000 classes,
a smaller ``t`` lets more inputs leave (the direction of EDANAS's own records: docs/early_exit.md), and
``t = 1`` (certainty) is the limit that never fires, which is the gene's "no exit".

Exit rules (``early_exit.exit_rule``): the score compared with a threshold is the max-softmax probability
(``confidence``, the default, above) or EDANAS's softmax margin ``p_top1 - p_top2`` (``margin``: CNAS repository,
``ExitBlock.confidence`` in ``nsganetv2/ofa/elastic_nn/modules/dynamic_layers.py`` at commit 012c164, the code
of the EDANAS runs). Under ``margin`` the genes ``t`` are thresholds on the margin itself (EDANAS's reading:
0 = leave always, 1 = certainty, the "no exit" value) and ``calib_grid`` is in margin units. Every function
below takes ``rule``; :func:`gene_threshold` maps a gene to the threshold of either rule.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from supernets.errors import InputError

DEFAULT_CALIBRATION_GRID: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98, 0.99, 1.0)
EXIT_RULES: tuple[str, ...] = ("confidence", "margin")


def check_rule(rule: str) -> str:
    """``rule`` if it names an exit rule (:data:`EXIT_RULES`), else ``ValueError`` naming the field."""
    if rule not in EXIT_RULES:
        raise InputError("exit_rule", f"expected one of {list(EXIT_RULES)}, got {rule!r}")
    return rule


def confidence_threshold(t: float, n_classes: int) -> float:
    """The max-softmax threshold of a normalised confidence threshold ``t``: ``1/K + t (1 - 1/K)``.

    ``t = 0`` is the chance level (always reached), ``t = 1`` certainty (the "no exit" gene value; any ``t >= 1``
    gives a threshold ``>= 1.0``, which :func:`apply_policy` treats as a disabled exit). See the module doc.
    """
    if n_classes < 2:
        raise InputError("n_classes", f"expected at least 2 classes, got {n_classes}")
    tf = float(t)
    if math.isnan(tf) or tf < 0:
        raise InputError("t", f"expected a normalised threshold >= 0, got {t!r}")
    if tf >= 1.0:
        return 1.0
    k = float(n_classes)
    return 1.0 / k + tf * (1.0 - 1.0 / k)


def gene_threshold(t: float, n_classes: int, rule: str = "confidence") -> float:
    """The threshold a ``t`` gene gives under ``rule``: :func:`confidence_threshold` for ``confidence``, ``t``
    itself for ``margin`` (EDANAS compares the margin with ``t`` directly); ``t >= 1`` gives 1.0 (no exit)."""
    if check_rule(rule) == "confidence":
        return confidence_threshold(t, n_classes)
    tf = float(t)
    if math.isnan(tf) or tf < 0:
        raise InputError("t", f"expected a threshold >= 0, got {t!r}")
    return min(tf, 1.0)


def exit_scores(probs: Any, rule: str = "confidence") -> np.ndarray:
    """Scores compared with the thresholds, over the last axis (K classes): max-softmax (``confidence``) or
    ``p_top1 - p_top2`` (``margin``)."""
    p = np.asarray(probs)
    if check_rule(rule) == "margin":
        if p.shape[-1] < 2:
            raise InputError("probs", f"the margin rule needs at least 2 classes, got {p.shape[-1]}")
        top2 = np.partition(p, p.shape[-1] - 2, axis=-1)[..., -2:]
        return top2[..., 1] - top2[..., 0]  # type: ignore[no-any-return]
    return p.max(axis=-1)  # type: ignore[no-any-return]


def normalised_confidence(probs: Any) -> np.ndarray:
    """``(K max_p - 1) / (K - 1)`` of softmax outputs (last axis = K classes): 0 at chance, 1 at certainty."""
    p = np.asarray(probs, dtype=np.float64)
    k = p.shape[-1]
    if k < 2:
        raise InputError("probs", f"expected at least 2 classes on the last axis, got {k}")
    return (k * p.max(axis=-1) - 1.0) / (k - 1.0)


def _probs(probs: Any) -> np.ndarray:
    p = np.asarray(probs)
    if p.ndim != 3 or p.shape[0] < 1:
        raise InputError("probs", f"expected an (exits, samples, classes) array, got shape {p.shape}")
    return p


def _thresholds(thresholds: Sequence[float], n_early: int) -> np.ndarray:
    t = np.asarray(list(thresholds), dtype=np.float64)
    if t.shape != (n_early,):
        raise InputError("thresholds", f"expected {n_early} values (one per early exit), got {t.size}")
    if np.any(np.isnan(t)) or np.any(t < 0):
        raise InputError("thresholds", f"expected values >= 0 (>= 1.0 disables an exit), got {t.tolist()}")
    return t


def apply_policy(
    probs: Any, thresholds: Sequence[float], rule: str = "confidence"
) -> tuple[np.ndarray, np.ndarray]:
    """``(exit index, prediction)`` per sample: the first early exit whose score (``rule``: :func:`exit_scores`)
    is ``>= threshold``, else the final exit. A threshold ``>= 1.0`` disables its exit (as in
    :meth:`EarlyExitNet.forward_early_exit`)."""
    p = _probs(probs)
    n_exits, n = p.shape[0], p.shape[1]
    t = _thresholds(thresholds, n_exits - 1)
    conf = exit_scores(p, rule)
    pred_all = p.argmax(axis=2)
    where = np.full(n, n_exits - 1, dtype=np.int64)
    undecided = np.ones(n, dtype=bool)
    for b in range(n_exits - 1):
        if t[b] >= 1.0:
            continue
        leave = undecided & (conf[b] >= t[b])
        where[leave] = b
        undecided &= ~leave
    return where, pred_all[where, np.arange(n)]


def exit_utilisation(exit_index: Any, n_exits: int) -> np.ndarray:
    """Fraction of samples leaving at each exit (length ``n_exits``, sums to 1)."""
    idx = np.asarray(exit_index, dtype=np.int64)
    if idx.size == 0:
        raise InputError("exit_index", "no samples")
    if idx.min() < 0 or idx.max() >= n_exits:
        raise InputError("exit_index", f"values must lie in 0..{n_exits - 1}")
    return np.bincount(idx, minlength=n_exits) / idx.size


def avg_macs(exit_util: Sequence[float], macs: Sequence[float]) -> float:
    """``sum_b r_b * macs_b``; ``exit_util`` and ``macs`` list the same exits (final last)."""
    r = np.asarray(list(exit_util), dtype=np.float64)
    m = np.asarray(list(macs), dtype=np.float64)
    if r.shape != m.shape or r.ndim != 1 or r.size == 0:
        raise InputError("exit_util", f"expected {m.size} fractions (one per exit, final last), got {r.size}")
    if np.any(r < 0) or not np.isclose(r.sum(), 1.0, atol=1e-3):
        raise InputError("exit_util", f"expected non-negative fractions summing to 1, got {r.tolist()}")
    if np.any(m < 0):
        raise InputError("macs", f"expected non-negative counts, got {m.tolist()}")
    return float(r @ m)


def evaluate_policy(
    probs: Any, labels: Any, thresholds: Sequence[float], macs: Sequence[float], rule: str = "confidence"
) -> dict[str, Any]:
    """All early-exit metrics of one network and one set of thresholds (in ``rule``'s units) on a validation split.

    Returns ``top1`` (% as deployed), ``top1_err``, ``avg_macs``, ``exit_util``, ``exit_acc`` (% per exit on
    all samples), ``exit_acc_taken`` (% on the samples leaving there, ``None`` where none did), ``exit_macs``
    and ``thresholds``.
    """
    p = _probs(probs)
    y = np.asarray(labels, dtype=np.int64)
    if y.shape != (p.shape[1],):
        raise InputError("labels", f"expected {p.shape[1]} labels, got shape {y.shape}")
    if len(macs) != p.shape[0]:
        raise InputError("macs", f"expected {p.shape[0]} values (one per exit, final last), got {len(macs)}")
    where, pred = apply_policy(p, thresholds, rule)
    util = exit_utilisation(where, p.shape[0])
    correct = pred == y
    per_exit = (p.argmax(axis=2) == y[None, :]).mean(axis=1) * 100.0
    taken: list[float | None] = []
    for b in range(p.shape[0]):
        m = where == b
        taken.append(float(correct[m].mean() * 100.0) if m.any() else None)
    top1 = float(correct.mean() * 100.0)
    return {
        "top1": top1,
        "top1_err": 100.0 - top1,
        "avg_macs": avg_macs(util.tolist(), macs),
        "exit_util": [float(v) for v in util],
        "exit_acc": [float(v) for v in per_exit],
        "exit_acc_taken": taken,
        "exit_macs": [float(m) for m in macs],
        "thresholds": [float(t) for t in thresholds],
    }


def calibrate_thresholds(
    probs: Any,
    labels: Any,
    macs: Sequence[float],
    *,
    max_avg_macs: float | None = None,
    min_top1: float | None = None,
    grid: Sequence[float] = DEFAULT_CALIBRATION_GRID,
    rule: str = "confidence",
) -> dict[str, Any]:
    """Choose one threshold per early exit from ``grid`` (exhaustively, in ``rule``'s units) after training.

    - ``max_avg_macs`` (NACHOS): the thresholds with the best deployed accuracy among those whose
      ``avg_macs <= max_avg_macs`` (ties: fewer MACs).
    - ``min_top1``: the thresholds with the fewest average MACs among those whose deployed top-1 (%) is
      ``>= min_top1`` (ties: better accuracy) -- "MACs saved at equal accuracy".
    - neither: the best deployed accuracy (ties: fewer MACs).

    Returns :func:`evaluate_policy`'s metrics for the choice plus ``feasible`` (False when no thresholds meet
    the constraint; then the choice closest to it -- fewest MACs, resp. best accuracy -- is returned).
    """
    if max_avg_macs is not None and min_top1 is not None:
        raise InputError("calibrate_thresholds", "give max_avg_macs or min_top1, not both")
    p = _probs(probs)
    y = np.asarray(labels, dtype=np.int64)
    g = sorted({float(v) for v in grid})
    if not g or min(g) < 0:
        raise InputError("grid", f"expected non-negative thresholds, got {list(grid)}")
    n_early, n = p.shape[0] - 1, p.shape[1]
    if len(macs) != p.shape[0]:
        raise InputError("macs", f"expected {p.shape[0]} values (one per exit, final last), got {len(macs)}")
    m = np.asarray(list(macs), dtype=np.float64)
    conf = exit_scores(p, rule)
    correct = p.argmax(axis=2) == y[None, :]
    leave = np.stack([[conf[b] >= t if t < 1.0 else np.zeros(n, bool) for t in g] for b in range(n_early)])
    if n_early == 0:
        combos: list[tuple[int, ...]] = [()]
    else:
        combos = list(itertools.product(range(len(g)), repeat=n_early))
    best: tuple[Any, ...] | None = None
    fallback: tuple[Any, ...] | None = None
    for combo in combos:
        undecided = np.ones(n, dtype=bool)
        n_correct, macs_sum = 0, 0.0
        for b, gi in enumerate(combo):
            lv = leave[b, gi] & undecided
            k = int(lv.sum())
            if k:
                n_correct += int(correct[b][lv].sum())
                macs_sum += k * m[b]
                undecided &= ~lv
        k = int(undecided.sum())
        n_correct += int(correct[-1][undecided].sum())
        macs_sum += k * m[-1]
        acc, am = n_correct / n * 100.0, macs_sum / n
        if min_top1 is not None:
            ok = acc >= min_top1 - 1e-9
            score = (-am, acc)
            fb = (acc, -am)
        else:
            ok = max_avg_macs is None or am <= max_avg_macs
            score = (acc, -am)
            fb = (-am, acc)
        if ok and (best is None or score > best[0]):
            best = (score, combo)
        if fallback is None or fb > fallback[0]:
            fallback = (fb, combo)
    assert fallback is not None
    feasible = best is not None
    choice = best[1] if best is not None else fallback[1]
    out = evaluate_policy(p, y, [g[i] for i in choice], m.tolist(), rule)
    out["feasible"] = feasible
    return out


NACHOS_EPSILONS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.5, 0.6, 0.7, 0.8)
NACHOS_FIRST_MIN = 0.7  # NACHOS's first exit never uses a threshold below 0.7
NACHOS_STEP = 0.1


def nachos_thresholds(
    probs: Any,
    labels: Any,
    macs: Sequence[float],
    *,
    max_avg_macs: float | None = None,
    min_top1: float = 0.0,
    rule: str = "confidence",
    epsilons: Sequence[float] = NACHOS_EPSILONS,
) -> dict[str, Any]:
    """NACHOS's threshold tuning with its ``top1min`` repair, on stored exit outputs.

    Reproduces CNAS's ``ee_train.py`` (``--tune_epsilon``): (1) one threshold ``e`` for every early exit from
    ``epsilons`` (the first exit ``max(0.7, e)``) with the best deployed accuracy (first best kept); (2) the repair:
    when that accuracy is ``>= min_top1`` (%) and ``avg_macs > max_avg_macs``, walk the early exits from the last
    to the first, lowering the current exit's threshold by 0.1 (more samples leave there) and re-measuring; a step
    that drops accuracy below ``min_top1`` is undone and the walk moves to the previous exit, a threshold at or below
    0.11 moves it too; it stops as soon as ``avg_macs <= max_avg_macs``.

    Differences, kept on purpose: NACHOS compares its Bernoulli gates' cumulative confidences with the thresholds
    (``binary_eval``); here they are compared with the exit rule's scores (``rule``). NACHOS's list aliasing keeps
    the step that broke the accuracy bound in the thresholds it returns (``best_epsilon = epsilon`` before the
    loop); here it is undone, so the returned thresholds are the ones measured. Returns
    :func:`evaluate_policy`'s metrics plus ``feasible`` (budget met; True without a budget), ``repaired`` (the
    repair brought it under the budget) and ``top1_ok`` (accuracy ``>= min_top1``).
    """
    p = _probs(probs)
    n_early = p.shape[0] - 1
    if n_early == 0:
        out = evaluate_policy(p, labels, [], macs, rule)
        out.update(feasible=max_avg_macs is None or out["avg_macs"] <= max_avg_macs, repaired=False)
        out["top1_ok"] = out["top1"] >= min_top1
        return out
    best: dict[str, Any] | None = None
    for e in epsilons:
        thr = [max(NACHOS_FIRST_MIN, float(e))] + [float(e)] * (n_early - 1)
        cur = evaluate_policy(p, labels, thr, macs, rule)
        if best is None or cur["top1"] > best["top1"]:
            best = cur
    assert best is not None
    repaired = False
    if max_avg_macs is not None and best["top1"] >= min_top1:
        thr = list(best["thresholds"])
        i = n_early - 1
        while i >= 0 and best["avg_macs"] > max_avg_macs:
            trial = list(thr)
            trial[i] = round(trial[i] - NACHOS_STEP, 10)
            if trial[i] < 0:
                i -= 1
                continue
            cur = evaluate_policy(p, labels, trial, macs, rule)
            if cur["top1"] < min_top1:  # undone (NACHOS keeps it by aliasing), then the previous exit
                i -= 1
                continue
            thr, best = trial, cur
            if best["avg_macs"] <= max_avg_macs:
                repaired = True
                break
            if thr[i] <= 0.11:
                i -= 1
    best["feasible"] = max_avg_macs is None or best["avg_macs"] <= max_avg_macs
    best["repaired"] = repaired
    best["top1_ok"] = best["top1"] >= min_top1
    return best
