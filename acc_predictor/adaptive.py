"""Adaptive switching (MSuNAS): k-fold cross-validation picks the member that ranks best, refitted on all data.

Every member is fitted on k-1 folds and predicts the held-out fold; the out-of-fold predictions of all folds are
pooled and scored by Kendall tau against the targets (one tau over all n points is steadier than the mean of k
small-fold taus at n = 50..100). ``cv_scores_`` holds each member's pooled tau (``cv_fold_scores_`` the per-fold
ones), ``winner_`` the chosen name, ``model_`` the winner refitted on everything.

With ``ensemble=k`` (default 3) one more candidate competes: ``"ensemble"``, the mean of the standardised
predictions of the ``k`` members with the best CV tau (its CV score comes from the same out-of-fold predictions,
so it costs nothing to score; it is chosen only when it beats every single member). When it wins, those ``k``
members are refitted on all data (``ensemble_members_``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse
from sklearn.model_selection import KFold
from sklearn.utils.validation import check_is_fitted

from acc_predictor.base import GenomePredictor
from acc_predictor.metrics import kendall_tau

DEFAULT_MEMBERS = ("rbf", "gp", "mlp", "bilinear", "quadratic")


class AdaptiveSwitching(GenomePredictor):
    """Pick the best of ``members`` (registry names) by k-fold CV Kendall tau; refit it on all the data."""

    def __init__(self, search_space: Any = None, members: Any = DEFAULT_MEMBERS, n_folds: int = 5,
                 ensemble: int = 3, member_params: dict[str, dict[str, Any]] | None = None,
                 random_state: int | None = 0) -> None:
        self.search_space = search_space
        self.members = members
        self.n_folds = n_folds
        self.ensemble = ensemble
        self.member_params = member_params
        self.random_state = random_state

    def _make(self, name: str) -> GenomePredictor:
        from acc_predictor import get_predictor

        kw = dict((self.member_params or {}).get(name, {}))
        kw.setdefault("search_space", self.search_space)
        return get_predictor(name, **kw)

    def fit(self, X: Any, y: Any) -> AdaptiveSwitching:
        """Cross-validate every member, choose ``winner_``, refit it on all of ``X``, ``y``."""
        members = [self.members] if isinstance(self.members, str) else list(self.members)
        if not members:
            raise ValueError("members: expected at least one predictor name")
        if "as" in members:
            raise ValueError("members: 'as' cannot be a member of itself")
        k = int(self.n_folds)
        if k < 2:
            raise ValueError(f"n_folds: expected >= 2, got {self.n_folds!r}")
        if int(self.ensemble) < 0:
            raise ValueError(f"ensemble: expected 0 (off) or how many top members to average, got {self.ensemble!r}")
        G, y = self._check_fit_input(X, y, 2 * k, f"for {k}-fold cross-validation (2 per fold)")
        for m in members:
            self._make(m)  # unknown names fail before any fitting
        self.layout_ = self._layout_for(G)
        oof = {m: np.empty(len(G)) for m in members}
        fold_scores: dict[str, list[float]] = {m: [] for m in members}
        folds = KFold(k, shuffle=True, random_state=self.random_state).split(G)
        for trn, tst in folds:
            for m in members:
                pred = self._make(m).fit(G[trn], y[trn]).predict(G[tst])
                oof[m][tst] = pred
                fold_scores[m].append(kendall_tau(y[tst], pred))
        self.cv_scores_ = {m: kendall_tau(y, oof[m]) for m in members}
        self.cv_fold_scores_ = fold_scores
        ranked = sorted(members, key=lambda m: -self.cv_scores_[m])
        self.winner_ = ranked[0]
        self.ensemble_members_: list[str] = []
        k_ens = int(self.ensemble)
        if 2 <= k_ens <= len(members):
            top = ranked[:k_ens]
            ens = np.mean([(oof[m] - oof[m].mean()) / max(float(oof[m].std()), 1e-12) for m in top], axis=0)
            self.cv_scores_["ensemble"] = kendall_tau(y, ens)
            if self.cv_scores_["ensemble"] > self.cv_scores_[self.winner_]:
                self.winner_, self.ensemble_members_ = "ensemble", top
        if self.winner_ == "ensemble":
            self.models_ = [self._make(m).fit(G, y) for m in self.ensemble_members_]
            self.model_ = self.models_[0]
            # map each member's standardised prediction back to the target scale: mean/std of y
            self.ens_stats_ = [(float(p.mean()), max(float(p.std()), 1e-12))
                               for p in (mdl.predict(G) for mdl in self.models_)]
            self.y_mean_, self.y_scale_ = float(y.mean()), max(float(y.std()), 1e-12)
        else:
            self.models_ = []
            self.model_ = self._make(self.winner_).fit(G, y)
        return self

    def predict(self, X: Any, **kw: Any) -> np.ndarray:
        """The winner's predictions (``return_std=True`` passes through when the winner is ``gp``)."""
        check_is_fitted(self, "model_")
        if scipy.sparse.issparse(X):
            raise TypeError("X: sparse input is not supported (sparse data passed, dense genome array required)")
        G = self._to_genomes(X, reset=False)
        if self.winner_ != "ensemble":
            return self.model_.predict(G, **kw)
        if kw:
            raise ValueError(f"predict: options {sorted(kw)} are not available for the ensemble winner")
        z = np.mean([(mdl.predict(G) - m) / s for mdl, (m, s) in zip(self.models_, self.ens_stats_, strict=True)],
                    axis=0)
        return z * self.y_scale_ + self.y_mean_
