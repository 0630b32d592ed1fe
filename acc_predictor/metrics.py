"""Honest quality figures for surrogates: rank correlations and RMSE on data the model was not fitted on.

CNAS logs Kendall tau of the surrogate on its own training archive (in-sample), which overstates how well it
ranks new candidates. :func:`heldout_scores` always fits on one part and scores on the rest.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.stats
from sklearn.base import clone

from supernets.errors import InputError


def _pair(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(y_true, dtype=np.float64).reshape(-1)
    b = np.asarray(y_pred, dtype=np.float64).reshape(-1)
    if len(a) != len(b):
        raise InputError("y_pred", f"{len(b)} predictions for {len(a)} targets")
    if len(a) < 2:
        raise InputError("y_true", f"rank correlations need at least 2 values, got {len(a)}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("y_true/y_pred: values must be finite (NaN or inf found)")
    return a, b


def kendall_tau(y_true: Any, y_pred: Any) -> float:
    """Kendall's tau-b between targets and predictions (0.0 when either side is constant)."""
    a, b = _pair(y_true, y_pred)
    t = scipy.stats.kendalltau(a, b).statistic
    return 0.0 if not np.isfinite(t) else float(t)


def spearman_rho(y_true: Any, y_pred: Any) -> float:
    """Spearman's rank correlation (0.0 when either side is constant)."""
    a, b = _pair(y_true, y_pred)
    r = scipy.stats.spearmanr(a, b).statistic
    return 0.0 if not np.isfinite(r) else float(r)


def rmse(y_true: Any, y_pred: Any) -> float:
    """Root-mean-square error in the targets' units."""
    a, b = _pair(y_true, y_pred)
    return float(np.sqrt(np.mean((a - b) ** 2)))


def scores(y_true: Any, y_pred: Any) -> dict[str, float]:
    """``{"rmse", "rho", "tau"}`` of predictions (the fields of an iteration's surrogate statistics)."""
    return {"rmse": rmse(y_true, y_pred), "rho": spearman_rho(y_true, y_pred), "tau": kendall_tau(y_true, y_pred)}


def heldout_scores(estimator: Any, X: np.ndarray, y: Any, n_train: int | float = 0.8, *,
                   n_splits: int = 1, random_state: int | None = 0,
                   on_split: Callable[[int, Any, np.ndarray, np.ndarray], None] | None = None) -> dict[str, Any]:
    """Fit a clone of ``estimator`` on ``n_train`` random rows and score on all the others, ``n_splits`` times.

    ``n_train`` is a count (int) or a fraction (float in (0, 1)). Returns the per-split and mean ``rmse``,
    ``rho`` and ``tau``; training rows are never scored. ``on_split(i, fitted, train_idx, test_idx)`` is
    called after each fit (for timing or inspection).
    """
    X = np.asarray(X)
    y = np.asarray(y, dtype=np.float64)
    n = len(X)
    if len(y) != n:
        raise InputError("y", f"{len(y)} targets for {n} rows")
    k = int(round(n_train * n)) if isinstance(n_train, float) and 0 < n_train < 1 else int(n_train)
    if not 2 <= k <= n - 2:
        raise InputError("n_train", f"need 2 <= n_train <= {n - 2} so both parts have 2+ rows, got {n_train!r}")
    rng = np.random.default_rng(random_state)
    per: list[dict[str, float]] = []
    for i in range(int(n_splits)):
        perm = rng.permutation(n)
        trn, tst = perm[:k], perm[k:]
        est = clone(estimator).fit(X[trn], y[trn])
        per.append(scores(y[tst], est.predict(X[tst])))
        if on_split is not None:
            on_split(i, est, trn, tst)
    out: dict[str, Any] = {m: float(np.mean([p[m] for p in per])) for m in ("rmse", "rho", "tau")}
    out["splits"] = per
    out["n_train"], out["n_test"] = k, n - k
    return out
