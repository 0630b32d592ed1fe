"""avg_macs, utilisation, policy and NACHOS threshold calibration on hand-made outputs."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from early_exit import metrics


def _probs(conf_and_pred: list[list[tuple[float, int]]], k: int = 4) -> np.ndarray:
    """(E, N, K) softmax-like outputs with the given max confidence and argmax per exit and sample."""
    e, n = len(conf_and_pred), len(conf_and_pred[0])
    p = np.zeros((e, n, k))
    for b, i in itertools.product(range(e), range(n)):
        c, cls = conf_and_pred[b][i]
        p[b, i, :] = (1 - c) / (k - 1)
        p[b, i, cls] = c
    return p


def test_hand_made_utilisation() -> None:
    macs = [1.0e6, 3.0e6, 10.0e6]
    assert metrics.avg_macs([0.5, 0.25, 0.25], macs) == pytest.approx(0.5e6 + 0.75e6 + 2.5e6)
    assert metrics.avg_macs([0.0, 0.0, 1.0], macs) == 10.0e6
    assert list(metrics.exit_utilisation([0, 0, 2, 1, 0, 2, 2, 2], 3)) == [0.375, 0.125, 0.5]
    with pytest.raises(ValueError, match="exit_util: expected non-negative fractions summing to 1"):
        metrics.avg_macs([0.5, 0.6, 0.0], macs)
    with pytest.raises(ValueError, match="exit_util: expected 3 fractions"):
        metrics.avg_macs([0.5, 0.5], macs)
    with pytest.raises(ValueError, match="exit_index: values must lie in 0..2"):
        metrics.exit_utilisation([0, 3], 3)


def test_policy_and_metrics_by_hand() -> None:
    labels = np.array([0, 1, 2, 3])
    p = _probs(
        [
            [(0.9, 0), (0.5, 2), (0.95, 1), (0.3, 3)],  # exit 0 (threshold 0.8): samples 0 and 2 leave
            [(0.6, 1), (0.7, 1), (0.9, 2), (0.5, 0)],  # exit 1 (threshold 0.7): sample 1 leaves
            [(0.6, 0), (0.6, 1), (0.6, 2), (0.6, 3)],  # final: sample 3
        ]
    )
    where, pred = metrics.apply_policy(p, [0.8, 0.7])
    assert where.tolist() == [0, 1, 0, 2] and pred.tolist() == [0, 1, 1, 3]
    m = metrics.evaluate_policy(p, labels, [0.8, 0.7], [10, 20, 100])
    assert m["exit_util"] == [0.5, 0.25, 0.25]
    assert m["avg_macs"] == pytest.approx(0.5 * 10 + 0.25 * 20 + 0.25 * 100)
    assert m["top1"] == 75.0 and m["top1_err"] == 25.0  # sample 2 leaves early with a wrong answer
    assert m["exit_acc"] == [50.0, 50.0, 100.0]
    assert m["exit_acc_taken"] == [50.0, 100.0, 100.0]
    # threshold >= 1.0 disables an exit, even for a sample whose softmax rounds to exactly 1.0
    p1 = p.copy()
    p1[0, 3] = [0, 0, 0, 1.0]
    where, _ = metrics.apply_policy(p1, [1.0, 1.0])
    assert where.tolist() == [2, 2, 2, 2]
    assert metrics.evaluate_policy(p1, labels, [1.0, 1.0], [10, 20, 100])["avg_macs"] == 100.0
    with pytest.raises(ValueError, match="thresholds: expected 2 values"):
        metrics.apply_policy(p, [0.5])


def test_calibration_meets_the_budget_at_the_best_accuracy() -> None:
    rng = np.random.default_rng(0)
    n, k = 400, 5
    labels = rng.integers(0, k, n)
    # exits get better with depth; confidence correlates with correctness
    probs = np.zeros((3, n, k))
    for b, acc in enumerate([0.55, 0.75, 0.9]):
        right = rng.random(n) < acc
        pred = np.where(right, labels, (labels + 1 + rng.integers(0, k - 1, n)) % k)
        conf = np.clip(np.where(right, 0.75, 0.45) + rng.normal(0, 0.15, n), 0.21, 0.999)
        probs[b] = ((1 - conf) / (k - 1))[:, None]
        probs[b, np.arange(n), pred] = conf
    macs = [2.0e6, 5.0e6, 9.0e6]
    grid = (0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
    budget = 6.0e6
    cal = metrics.calibrate_thresholds(probs, labels, macs, max_avg_macs=budget, grid=grid)
    assert cal["feasible"] and cal["avg_macs"] <= budget
    # brute force: no thresholds on the grid meeting the budget are more accurate
    best = max(
        (m["top1"], -m["avg_macs"])
        for t in itertools.product(grid, repeat=2)
        if (m := metrics.evaluate_policy(probs, labels, list(t), macs))["avg_macs"] <= budget
    )
    assert (cal["top1"], -cal["avg_macs"]) == best
    # unconstrained: the best accuracy; min_top1: the fewest MACs at that accuracy or better
    free = metrics.calibrate_thresholds(probs, labels, macs, grid=grid)
    assert free["top1"] >= cal["top1"]
    eq = metrics.calibrate_thresholds(probs, labels, macs, min_top1=free["top1"] - 0.5, grid=grid)
    assert eq["top1"] >= free["top1"] - 0.5 and eq["avg_macs"] <= free["avg_macs"]
    # an impossible budget: reported infeasible, the cheapest thresholds returned
    low = metrics.calibrate_thresholds(probs, labels, macs, max_avg_macs=1.0e6, grid=grid)
    assert not low["feasible"] and low["avg_macs"] == min(
        metrics.evaluate_policy(probs, labels, list(t), macs)["avg_macs"] for t in itertools.product(grid, repeat=2)
    )
    with pytest.raises(ValueError, match="give max_avg_macs or min_top1, not both"):
        metrics.calibrate_thresholds(probs, labels, macs, max_avg_macs=1.0, min_top1=1.0)


def test_n_exits() -> None:
    from early_exit.network import n_exits

    base = {"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": 32}
    assert n_exits(base) == 0  # CNAS's count: early exits, the final classifier not counted
    assert n_exits(base | {"t": [0.1, 1.0, 0.2, 1.0]}) == 2
    assert n_exits(base | {"b": [1, 1, 1, 1]}) == 4
    with pytest.raises(ValueError, match="either t"):
        n_exits(base | {"t": [1.0] * 4, "b": [1, 0, 0, 0]})


def test_normalised_thresholds_make_the_default_grid_a_real_test() -> None:
    # t is a normalised confidence: 0 = the uniform output (chance), 1 = certainty; max-softmax 1/K + t (1 - 1/K)
    assert metrics.confidence_threshold(0.1, 10) == pytest.approx(0.19)
    assert metrics.confidence_threshold(0.2, 10) == pytest.approx(0.28)
    assert metrics.confidence_threshold(0.0, 10) == pytest.approx(0.1)
    assert metrics.confidence_threshold(1.0, 10) == 1.0 and metrics.confidence_threshold(1.0, 1000) == 1.0
    assert metrics.confidence_threshold(0.5, 1000) == pytest.approx(0.5005)
    assert metrics.confidence_threshold(0.5, 2) == pytest.approx(0.75)
    ts = [0.0, 0.1, 0.2, 0.5, 0.9, 0.99]
    thr = [metrics.confidence_threshold(t, 10) for t in ts]
    assert all(a < b for a, b in itertools.pairwise(thr))  # a larger t is a stricter test
    p = np.array([[0.1] * 10, [0.19] + [0.09] * 9, [1.0] + [0.0] * 9])
    assert metrics.normalised_confidence(p) == pytest.approx([0.0, 0.1, 1.0])
    with pytest.raises(ValueError, match="t: expected a normalised threshold >= 0"):
        metrics.confidence_threshold(-0.1, 10)
    with pytest.raises(ValueError, match="n_classes: expected at least 2"):
        metrics.confidence_threshold(0.1, 1)
    # 10 classes: a raw threshold 0.1 would be reached by every output (max-softmax >= 1/10); t = 0.1 is not.
    labels = np.array([0, 1, 2, 3])
    conf = [(0.12, 0), (0.25, 1), (0.3, 2), (0.15, 3)]  # max-softmax of exit 0 per sample
    p = _probs([conf, [(0.9, 0), (0.9, 1), (0.9, 2), (0.9, 3)]], k=10)
    raw, _ = metrics.apply_policy(p, [0.1])
    assert raw.tolist() == [0, 0, 0, 0]  # the raw reading: every input leaves at the first exit
    t01, _ = metrics.apply_policy(p, [metrics.confidence_threshold(0.1, 10)])
    t02, _ = metrics.apply_policy(p, [metrics.confidence_threshold(0.2, 10)])
    assert t01.tolist() == [1, 0, 0, 1] and t02.tolist() == [1, 1, 0, 1]  # 0.19 and 0.28 in max-softmax units
    m = metrics.evaluate_policy(p, labels, [metrics.confidence_threshold(0.1, 10)], [1.0, 3.0])
    assert m["exit_util"] == [0.5, 0.5] and m["avg_macs"] == pytest.approx(2.0)
