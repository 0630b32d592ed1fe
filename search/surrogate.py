"""The engine's surrogate: an ``acc_predictor`` model of the genome, with held-out statistics.

The predictor owns its feature encoding (``acc_predictor.features``): ``int`` (one scaled column per gene),
``onehot`` (once-for-all's encoding: a one-hot block per slot, all-zero for inactive slots) or ``both``. The
engine's ``engine.encoding`` picks it (``auto`` = the predictor's default) for every predictor that has an
``encoding`` parameter, members of ``as`` included.

Held-out statistics: k-fold cross-validation on the training archive (each point predicted by a model that did
not see it), reported as rmse (objective units), Spearman rho and Kendall tau. For ``as`` the folds refit the
member it switched to (re-running the whole switch per fold would cost k times its own k-fold selection).

``variant="cnas"`` builds CNAS@HEAD's definition of the predictor (:mod:`acc_predictor.cnas`: its own features,
so ``encoding`` does not apply).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats as sps

from acc_predictor import get_predictor
from supernets.errors import InputError


def make_predictor(name: str, space: Any, encoding: str = "auto", seed: int = 0, variant: str = "ours",
                   **options: Any) -> Any:
    """A fresh ``acc_predictor`` model: seeded and with ``encoding`` set where the model has those parameters
    (``options``: further hyperparameters; ``variant="cnas"``: CNAS's definition, which has its own encoding)."""
    m = get_predictor(name, variant=variant, search_space=space, **options)
    params = m.get_params()
    kw: dict[str, Any] = {}
    if "random_state" in params:
        kw["random_state"] = int(seed)
    if encoding != "auto" and "encoding" in params:
        kw["encoding"] = encoding
    if encoding != "auto" and "member_params" in params:
        members = params.get("members") or ()
        members = [members] if isinstance(members, str) else list(members)
        mp: dict[str, dict[str, Any]] = {}
        for mem in members:
            if "encoding" in get_predictor(mem).get_params():
                mp[mem] = {"encoding": encoding}
        kw["member_params"] = mp
    return m.set_params(**kw) if kw else m


def rank_stats(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """rmse, Spearman rho and Kendall tau of predictions ``p`` against truth ``y``."""
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    if len(y) < 2 or np.ptp(y) == 0 or np.ptp(p) == 0:
        rho = tau = float("nan")
    else:
        rho = float(sps.spearmanr(y, p).statistic)
        tau = float(sps.kendalltau(y, p).statistic)
    return {"rmse": float(np.sqrt(np.mean((y - p) ** 2))) if len(y) else float("nan"), "rho": rho, "tau": tau}


class Surrogate:
    """One predictor of the registry fitted on genomes of ``space``."""

    def __init__(self, name: str, space: Any, encoding: str = "auto", seed: int = 0, variant: str = "ours") -> None:
        self.name = name
        self.variant = variant
        self.space = space
        self.encoding = encoding
        self.seed = int(seed)
        self.model_: Any = None

    def _fit_model(self, name: str, X: np.ndarray, y: np.ndarray, seed: int, **options: Any) -> Any:
        m = make_predictor(name, self.space, self.encoding, seed, self.variant, **options)
        return m.fit(np.asarray(X, dtype=np.int64), y)

    def _winning_model(self) -> tuple[str, dict[str, Any]]:
        """The registry name and options of the model that predicts: ``as`` reports the member it switched to, or
        its averaged ``ensemble`` of members (not a registry name: it is rebuilt as ``as`` forced to that
        ensemble of the same members)."""
        w = self.winner if self.model_ is not None else self.name
        if w == "ensemble":
            members = list(self.model_.ensemble_members_)
            return "as", {"members": members, "ensemble": len(members), "force": "ensemble"}
        return w, {}

    def fit(self, X: np.ndarray, y: np.ndarray) -> Surrogate:
        """Fit on genomes ``X`` and targets ``y``."""
        self.model_ = self._fit_model(self.name, X, np.asarray(y, dtype=np.float64), self.seed)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predicted targets of genomes ``X``."""
        if len(X) == 0:
            return np.zeros(0)
        return np.asarray(self.model_.predict(np.asarray(X, dtype=np.int64)), dtype=np.float64).reshape(-1)

    @property
    def winner(self) -> str:
        """The model that predicts (``as`` reports the member it switched to)."""
        w = getattr(self.model_, "winner_", None)
        return str(w) if w is not None else self.name

    def cross_validate(self, X: np.ndarray, y: np.ndarray, folds: int, rng: np.random.Generator) -> dict[str, float]:
        """Held-out rmse/rho/tau by k-fold cross-validation (each point predicted by a model blind to it)."""
        y = np.asarray(y, dtype=np.float64)
        X = np.asarray(X, dtype=np.int64)
        n = len(y)
        k = min(folds, n // 3)  # every fold trains on at least 3 points (the smallest any member fits)
        if k < 2 or n < 6:
            return {"rmse": float("nan"), "rho": float("nan"), "tau": float("nan")}
        name, options = self._winning_model()
        if self.variant == "cnas":  # folds train on fewer points than CNAS's fit asks for: not refused there
            options = {**options, "check_rows": False}
        perm = rng.permutation(n)
        pred = np.empty(n)
        for f in range(k):
            test = perm[f::k]
            train = np.setdiff1d(perm, test)
            try:
                m = self._fit_model(name, X[train], y[train], self.seed + 1 + f, **options)
            except InputError:  # CNAS's rbf on a fold with fewer points than its tail has terms
                if self.variant != "cnas":
                    raise
                return {"rmse": float("nan"), "rho": float("nan"), "tau": float("nan")}
            pred[test] = np.asarray(m.predict(X[test]), dtype=np.float64).reshape(-1)
        return rank_stats(y, pred)
