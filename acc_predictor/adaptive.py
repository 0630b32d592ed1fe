"""Adaptive switching (MSuNAS): cross-validation picks the member that ranks best, refitted on all data.

Every member is fitted on k-1 folds and predicts the held-out fold; the out-of-fold predictions of all folds are
pooled and scored by Kendall tau against the targets (one tau over all n points is steadier than the mean of k
small-fold taus at n = 50..100). At small n the k-fold split is repeated with other shuffles (``n_repeats``) and
the pooled taus averaged, which halves the split-to-split noise of the choice. ``cv_scores_`` holds each
candidate's score, ``cv_fold_scores_`` the per-fold taus (all repeats), ``winner_`` the chosen name, ``model_``
the winner refitted on everything.

With ``ensemble=k`` (default 3) one more candidate competes: ``"ensemble"``, the mean of the standardised
predictions of the ``k`` members with the best CV tau (scored from the same out-of-fold predictions, so it costs
nothing to score). When it wins, those ``k`` members are refitted on all data (``ensemble_members_``).

Selection is noise-aware: the highest score wins unless the ``prefer``-red member (default ``gp``, the member
that is best or tied for best on every benchmark setting) scores within ``margin`` of it; ``margin="auto"`` is
the standard error of the paired per-fold tau differences between the top candidate and the preferred one (at
n = 50 that is ~0.02-0.04, at n = 300 under 0.01), so a lead inside the fold noise does not switch models.

Cost: ``n_folds="auto"`` uses 5 folds below 200 samples and 3 from there (the 3-fold training sets of >= 133
points rank as well, at 40% less time); ``n_repeats="auto"`` repeats the split twice up to 100 samples. Inside
the CV a member with an ``init`` option (``gp``) starts its hyperparameter search from the previous fold's
optimum, and so does the refit on all data (each fit still optimises its own likelihood).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse
from sklearn.model_selection import KFold
from sklearn.utils.validation import check_is_fitted

from acc_predictor.base import GenomePredictor
from acc_predictor.metrics import kendall_tau
from supernets.errors import InputError

DEFAULT_MEMBERS = ("rbf", "gp", "mlp", "bilinear", "quadratic")
MIN_CV_SAMPLES = 6  # 2 folds of 3 training samples (the mlp member needs 3): below it "as" fits its preferred member
#: cheaper settings used only inside the CV (the refit uses the member's own): the MLP's early stopping is what
#: costs at n = 300 on smooth targets (ImageNet: ~1.2 s a fit, 400 epochs); 2 nets and a lower epoch cap rank
#: about as well for choosing
DEFAULT_CV_PARAMS: dict[str, dict[str, Any]] = {"mlp": {"n_models": 2, "max_epochs": 150, "patience": 20}}


def _auto_int(value: Any, name: str, auto: int, low: int) -> int:
    if isinstance(value, str):
        if value != "auto":
            raise InputError(f"{name}", f"expected 'auto' or an integer >= {low}, got {value!r}")
        return auto
    if int(value) < low:
        raise InputError(f"{name}", f"expected >= {low}, got {value!r}")
    return int(value)


class AdaptiveSwitching(GenomePredictor):
    """Pick the best of ``members`` (registry names) by cross-validated Kendall tau; refit it on all the data."""

    def __init__(self, search_space: Any = None, members: Any = DEFAULT_MEMBERS, n_folds: int | str = "auto",
                 n_repeats: int | str = "auto", ensemble: int = 3, prefer: str | None = "gp",
                 margin: float | str = "auto", force: str | None = None,
                 member_params: dict[str, dict[str, Any]] | None = None,
                 cv_params: dict[str, dict[str, Any]] | str | None = "auto", random_state: int | None = 0) -> None:
        self.search_space = search_space
        self.members = members
        self.n_folds = n_folds
        self.n_repeats = n_repeats
        self.ensemble = ensemble
        self.prefer = prefer
        self.margin = margin
        self.force = force
        self.member_params = member_params
        self.cv_params = cv_params
        self.random_state = random_state

    def _make(self, name: str, cv: bool = False) -> GenomePredictor:
        from acc_predictor import get_predictor  # the registry imports this module: import it when used

        kw = dict((self.member_params or {}).get(name, {}))
        if cv:
            cvp = self.cv_params
            if isinstance(cvp, str):
                if cvp != "auto":
                    raise InputError("cv_params", f"expected 'auto', None or a dict name -> options, got {cvp!r}")
                cvp = DEFAULT_CV_PARAMS
            kw.update((cvp or {}).get(name, {}))
        kw.setdefault("search_space", self.search_space)
        return get_predictor(name, **kw)

    def _refit(self, name: str, warm: dict[str, np.ndarray], G: np.ndarray, y: np.ndarray) -> GenomePredictor:
        mdl = self._make(name)
        if name in warm and "init" not in (self.member_params or {}).get(name, {}):
            mdl.set_params(init=warm[name])  # start from the last fold's optimum (fewer iterations)
        return mdl.fit(G, y)

    def _n_samples(self, X: Any) -> int:
        return int(X.shape[0]) if hasattr(X, "shape") and len(X.shape) else (len(X) if hasattr(X, "__len__") else 0)

    def fit(self, X: Any, y: Any) -> AdaptiveSwitching:
        """Cross-validate every member, choose ``winner_``, refit it on all of ``X``, ``y``."""
        members = [self.members] if isinstance(self.members, str) else list(self.members)
        if not members:
            raise InputError("members", "expected at least one predictor name")
        if "as" in members:
            raise InputError("members", "'as' cannot be a member of itself")
        n_x = self._n_samples(X)
        k = _auto_int(self.n_folds, "n_folds", 5 if n_x < 200 else 3, 2)
        reps = _auto_int(self.n_repeats, "n_repeats", 2 if n_x <= 100 else 1, 1)
        if int(self.ensemble) < 0:
            raise InputError("ensemble", f"expected 0 (off) or how many top members to average, got {self.ensemble!r}")
        if not isinstance(self.margin, str) and not float(self.margin) >= 0:
            raise InputError("margin", f"expected 'auto' or a number >= 0, got {self.margin!r}")
        if isinstance(self.margin, str) and self.margin != "auto":
            raise InputError("margin", f"expected 'auto' or a number >= 0, got {self.margin!r}")
        if self.prefer is not None and self.prefer not in members:
            prefer = None  # preferring a model that does not compete has no effect
        else:
            prefer = self.prefer
        if self.n_folds == "auto":  # small archives (a short initial design): as many folds as fit
            k = max(2, min(k, n_x // 2))
            if n_x < MIN_CV_SAMPLES and self.force is None:  # too few to cross-validate: the preferred member
                return self._fit_without_switching(X, y, prefer or members[0])
        G, y = self._check_fit_input(X, y, 2 * k, f"for {k}-fold cross-validation (2 per fold)")
        for m in members:
            self._make(m)  # unknown names / bad options fail before any fitting
            self._make(m, cv=True)
        self.layout_ = self._layout_for(G)
        self.n_folds_, self.n_repeats_ = k, reps
        oofs = {m: np.empty((reps, len(G))) for m in members}
        fold_scores: dict[str, list[float]] = {m: [] for m in members}
        fold_index: list[np.ndarray] = []
        seed = self.random_state
        warm: dict[str, np.ndarray] = {}  # GP hyperparameters of the previous fold: its next fit starts there
        for r in range(reps):
            rs = None if seed is None else int(seed) + r
            for trn, tst in KFold(k, shuffle=True, random_state=rs).split(G):
                fold_index.append(tst + r * len(G))
                for m in members:
                    mdl = self._make(m, cv=True)
                    if m in warm and "init" not in (self.member_params or {}).get(m, {}):
                        mdl.set_params(init=warm[m])
                    pred = mdl.fit(G[trn], y[trn]).predict(G[tst])
                    if "init" in mdl.get_params() and hasattr(mdl, "theta_"):
                        warm[m] = mdl.theta_
                    oofs[m][r, tst] = pred
                    fold_scores[m].append(kendall_tau(y[tst], pred))
        self.cv_scores_ = {m: float(np.mean([kendall_tau(y, oofs[m][r]) for r in range(reps)])) for m in members}
        ranked = sorted(members, key=lambda m: -self.cv_scores_[m])
        k_ens = int(self.ensemble)
        if 2 <= k_ens <= len(members):
            top = ranked[:k_ens]
            ens = np.mean([(oofs[m] - oofs[m].mean(1, keepdims=True)) / np.maximum(oofs[m].std(1, keepdims=True),
                                                                                  1e-12) for m in top], axis=0)
            self.cv_scores_["ensemble"] = float(np.mean([kendall_tau(y, ens[r]) for r in range(reps)]))
            fold_scores["ensemble"] = [kendall_tau(y[idx % len(G)], ens.reshape(-1)[idx]) for idx in fold_index]
        else:
            top = []
        self.cv_fold_scores_ = fold_scores
        best = max(self.cv_scores_, key=lambda m: self.cv_scores_[m])
        self.margin_ = 0.0
        winner = best
        if prefer is not None and best != prefer:
            if self.margin == "auto":
                d = np.asarray(fold_scores[best]) - np.asarray(fold_scores[prefer])
                self.margin_ = float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else 0.0
            else:
                self.margin_ = float(self.margin)
            if self.cv_scores_[prefer] >= self.cv_scores_[best] - self.margin_:
                winner = prefer
        if self.force is not None:
            if self.force not in self.cv_scores_:
                raise InputError("force", f"{self.force!r} is not one of the candidates {sorted(self.cv_scores_)}")
            winner = self.force
        self.winner_ = winner
        self.ensemble_members_: list[str] = top if winner == "ensemble" else []
        if winner == "ensemble":
            self.models_ = [self._refit(m, warm, G, y) for m in self.ensemble_members_]
            self.model_ = self.models_[0]
            # standardise each member's prediction with its in-sample mean/std, average, map back to the target
            # scale; folded into one affine map (a, b) of each member's internal (standardised-target) output
            self.y_mean_, self.y_scale_ = float(y.mean()), max(float(y.std()), 1e-12)
            self.ens_stats_ = []
            self.ens_affine_ = []
            for mdl in self.models_:
                p = mdl.predict(G)
                mu, sd = float(p.mean()), max(float(p.std()), 1e-12)
                self.ens_stats_.append((mu, sd))
                self.ens_affine_.append((mdl.y_scale_ / sd, (mdl.y_mean_ - mu) / sd))
        else:
            self.models_ = []
            self.model_ = self._refit(winner, warm, G, y)
        return self

    def _fit_without_switching(self, X: Any, y: Any, name: str) -> AdaptiveSwitching:
        """Fit ``name`` alone (fewer than ``MIN_CV_SAMPLES``: nothing to cross-validate; reported as the winner)."""
        G, y = self._check_fit_input(X, y, 2, "to fit")
        self.layout_ = self._layout_for(G)
        self.n_folds_, self.n_repeats_, self.margin_ = 0, 0, 0.0
        self.cv_scores_, self.cv_fold_scores_ = {}, {}
        self.winner_, self.ensemble_members_, self.models_ = name, [], []
        self.model_ = self._make(name).fit(G, y)
        return self

    def predict(self, X: Any, **kw: Any) -> np.ndarray:
        """The winner's predictions (``return_std=True`` passes through when the winner is ``gp``).

        For the ensemble the input is checked once and each distinct feature encoding computed once.
        """
        check_is_fitted(self, "model_")
        if scipy.sparse.issparse(X):
            raise TypeError("X: sparse input is not supported (sparse data passed, dense genome array required)")
        G = self._to_genomes(X, reset=False)
        if self.winner_ != "ensemble":
            return self.model_.predict(G, **kw)
        if kw:
            raise InputError("predict", f"options {sorted(kw)} are not available for the ensemble winner")
        feats: dict[tuple[Any, ...], np.ndarray] = {}
        z = np.zeros(len(G))
        for mdl, (a, b) in zip(self.models_, self.ens_affine_, strict=True):
            if type(mdl)._predict_scaled is not GenomePredictor._predict_scaled:  # works on genomes (bilinear)
                s = mdl._predict_scaled(G)
            else:  # members fitted on the same data with the same encoding options share the features
                enc = mdl.encoder_
                key = (enc.encoding, enc.mask, enc.layout, enc.lo_.tobytes(), enc.span_.tobytes())
                if key not in feats:
                    feats[key] = enc.transform(G)
                s = np.asarray(mdl._predict(feats[key]), dtype=np.float64).reshape(-1)
            z += a * s + b
        return z / len(self.models_) * self.y_scale_ + self.y_mean_
