"""The engine's surrogate: an ``acc_predictor`` model on an encoding of the genome, with held-out statistics.

Encodings
---------
- ``genome``: CNAS's integer genome as is.
- ``onehot``: per stage the depth one-hot, per slot the kernel and expand one-hots with inactive slots all-zero
  (once-for-all's own predictor encoding), then the remaining genes (resolution, exits) scaled to [0, 1].
  Every architecture has exactly one encoding, and the features a slot contributes mean the same thing in every
  network, which is what distance-based surrogates (RBF, GP) need.

Held-out statistics: k-fold cross-validation on the training archive (each point predicted by a model that did
not see it), reported as rmse (objective units), Spearman rho and Kendall tau.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats as sps

from supernets import codec


def encode_features(X: np.ndarray, xu: np.ndarray, encoding: str) -> np.ndarray:
    """Surrogate features of integer genomes ``X`` (N, n_var) of a MobileNetV3-based space."""
    X = np.asarray(X, dtype=np.int64)
    if encoding == "genome":
        return X.astype(np.float64)
    if encoding != "onehot":
        raise ValueError(f"engine.encoding: {encoding!r} is not one of ['onehot', 'genome']")
    n = len(X)
    cols: list[np.ndarray] = []
    for s in range(codec.N_STAGES):
        b = s * codec.N_STAGE_GENES
        d_idx = X[:, b]
        cols.append(np.eye(len(codec.DEPTHS))[d_idx])
        depth = np.asarray(codec.DEPTHS)[d_idx]
        for j in range(codec.MAX_DEPTH):
            active = (depth > j).astype(np.float64)[:, None]
            cols.append(np.eye(len(codec.KERNELS))[X[:, b + 1 + j]] * active)
            cols.append(np.eye(len(codec.EXPANDS))[X[:, b + 5 + j]] * active)
    rest = X[:, codec.N_BACKBONE_GENES :].astype(np.float64)
    if rest.shape[1]:
        span = np.maximum(np.asarray(xu[codec.N_BACKBONE_GENES :], dtype=np.float64), 1.0)
        cols.append(rest / span)
    return np.concatenate(cols, axis=1) if cols else np.zeros((n, 0))


def _make(name: str, seed: int) -> Any:
    """A fresh predictor of the registry, seeded when it takes a ``random_state``."""
    from acc_predictor import get_predictor  # type: ignore[attr-defined]

    try:
        return get_predictor(name, random_state=seed)
    except TypeError:
        return get_predictor(name)


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
    """One predictor of the registry fitted on encoded genomes."""

    def __init__(self, name: str, xu: np.ndarray, encoding: str = "onehot", seed: int = 0) -> None:
        self.name = name
        self.xu = np.asarray(xu)
        self.encoding = encoding
        self.seed = int(seed)
        self.model_: Any = None

    def features(self, X: np.ndarray) -> np.ndarray:
        """Encoded features of genomes."""
        return encode_features(X, self.xu, self.encoding)

    def _fit_model(self, Z: np.ndarray, y: np.ndarray, seed: int) -> Any:
        m = _make(self.name, seed)
        return m.fit(Z, y)

    def fit(self, X: np.ndarray, y: np.ndarray) -> Surrogate:
        """Fit on genomes ``X`` and targets ``y``."""
        self.model_ = self._fit_model(self.features(X), np.asarray(y, dtype=np.float64), self.seed)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predicted targets of genomes ``X``."""
        if len(X) == 0:
            return np.zeros(0)
        return np.asarray(self.model_.predict(self.features(X)), dtype=np.float64).reshape(-1)

    @property
    def winner(self) -> str:
        """The model that predicts (``as`` reports the one it switched to)."""
        w = getattr(self.model_, "winner_", None)
        return str(w) if w is not None else self.name

    def cross_validate(self, X: np.ndarray, y: np.ndarray, folds: int, rng: np.random.Generator) -> dict[str, float]:
        """Held-out rmse/rho/tau by k-fold cross-validation (each point predicted by a model blind to it)."""
        y = np.asarray(y, dtype=np.float64)
        n = len(y)
        k = min(folds, n)
        if k < 2:
            return {"rmse": float("nan"), "rho": float("nan"), "tau": float("nan")}
        Z = self.features(X)
        perm = rng.permutation(n)
        pred = np.empty(n)
        for f in range(k):
            test = perm[f::k]
            train = np.setdiff1d(perm, test)
            m = self._fit_model(Z[train], y[train], self.seed + 1 + f)
            pred[test] = np.asarray(m.predict(Z[test]), dtype=np.float64).reshape(-1)
        return rank_stats(y, pred)
