"""Quality helpers: agree with scipy, reject bad input, and never score training rows."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats

from acc_predictor import get_predictor
from acc_predictor.metrics import heldout_scores, kendall_tau, rmse, scores, spearman_rho


def test_against_scipy():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=40), rng.normal(size=40)
    assert kendall_tau(a, b) == pytest.approx(scipy.stats.kendalltau(a, b).statistic)
    assert spearman_rho(a, b) == pytest.approx(scipy.stats.spearmanr(a, b).statistic)
    assert rmse(a, b) == pytest.approx(np.sqrt(np.mean((a - b) ** 2)))
    assert kendall_tau(a, a) == pytest.approx(1.0)
    assert kendall_tau(a, np.ones(40)) == 0.0
    assert set(scores(a, b)) == {"rmse", "rho", "tau"}


def test_bad_input():
    with pytest.raises(ValueError, match="predictions"):
        kendall_tau([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="finite"):
        rmse([1, np.nan], [1, 2])
    with pytest.raises(ValueError, match="at least 2"):
        spearman_rho([1], [1])


def test_heldout_never_scores_training_rows():
    rng = np.random.default_rng(0)
    X = rng.integers(0, 3, size=(60, 5))
    y = X.sum(1) + rng.normal(0, 0.1, 60)
    seen = []

    def record(i, est, trn, tst):
        assert not set(trn) & set(tst)
        assert len(trn) + len(tst) == 60
        seen.append(i)

    res = heldout_scores(get_predictor("bilinear"), X, y, 40, n_splits=3, on_split=record)
    assert seen == [0, 1, 2] and res["n_train"] == 40 and res["n_test"] == 20 and len(res["splits"]) == 3
    # a pure interpolant is perfect in-sample but the held-out figure is not
    est = get_predictor("rbf", smoothing=0.0, tail_reg=1e-6).fit(X[:40], y[:40])
    assert kendall_tau(y[:40], est.predict(X[:40])) > heldout_scores(get_predictor("rbf"), X, y, 40)["tau"]
    with pytest.raises(ValueError, match="n_train"):
        heldout_scores(get_predictor("bilinear"), X, y, 59)
