"""Shared machinery of the predictors: input checks, genome encoding, target scaling (scikit-learn API).

Every predictor is a scikit-learn regressor over integer genomes ``(N, n_var)``; with ``search_space`` set it
also accepts a list of config dicts (encoded with ``search_space.encode_many``) and checks genomes against the
space's bounds. The layout (:mod:`acc_predictor.features`) is ``mobilenetv3`` when the search space is a
MobileNetV3 one or, without a search space, when the genomes have 45/46 columns inside the MobileNetV3 gene
bounds; anything else is encoded generically.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import scipy.sparse
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.exceptions import DataConversionWarning
from sklearn.utils.validation import check_is_fitted, validate_data

from acc_predictor.features import N_BACKBONE, GenomeEncoder, backbone_in_bounds
from supernets.errors import InputError


def is_mobilenetv3_space(space: Any) -> bool:
    """Whether ``space`` uses the MobileNetV3 genome layout (its first 45 genes are the CNAS backbone genes)."""
    return space is not None and (
        getattr(space, "name", None) in ("mobilenetv3", "eemobilenetv3") or hasattr(space, "n_backbone_var")
    ) and int(getattr(space, "n_var", 0)) >= N_BACKBONE


def _is_config_list(X: Any) -> bool:
    return isinstance(X, (list, tuple)) and len(X) > 0 and isinstance(X[0], Mapping)


class GenomePredictor(RegressorMixin, BaseEstimator):
    """Base class: subclasses set hyperparameters in ``__init__`` and implement ``_fit(F, y)`` / ``_predict(F)``.

    ``F`` is the encoded feature matrix and ``y`` the standardised target; predictions are mapped back to the
    target's scale here. Subclasses declare ``search_space``, ``encoding`` and ``mask_inactive`` parameters.
    """

    _min_samples = 2
    _default_encoding = "both"
    search_space: Any
    encoding: str
    mask_inactive: bool

    # ------------------------------------------------------------------ inputs
    def _to_genomes(self, X: Any, *, reset: bool) -> np.ndarray:
        space = self.search_space
        if _is_config_list(X):
            if space is None:
                raise InputError("X", "a list of config dicts needs search_space=... (or pass integer genomes)")
            X = space.encode_many(list(X))
        G = validate_data(self, X, reset=reset, dtype=np.float64, ensure_min_samples=1)
        if space is not None:
            if G.shape[1] != space.n_var:
                raise InputError("X", f"expected {space.n_var} genes per genome for {space.name}, got {G.shape[1]}")
            bad = np.argwhere((G != np.round(G)) | (G < space.xl) | (G > space.xu))
            if len(bad):
                i, j = bad[0]
                raise ValueError(
                    f"X[{i}, {j}]: gene {G[i, j]!r} is not an integer in {int(space.xl[j])}..{int(space.xu[j])}"
                )
        elif not reset and getattr(self, "layout_", "generic") == "mobilenetv3" and not backbone_in_bounds(G):
            raise InputError("X", "genomes outside the MobileNetV3 gene bounds (backbone genes must be 0, 1 or 2)")
        return G

    def _check_y(self, y: Any, n: int) -> np.ndarray:
        y = np.asarray(y, dtype=np.float64)
        if y.ndim == 2 and y.shape[1] == 1:
            warnings.warn("A column-vector y was passed when a 1d array was expected (y: raveled to 1-D)",
                          DataConversionWarning, stacklevel=3)
            y = y[:, 0]
        if y.ndim != 1:
            raise InputError("y", f"expected a 1-D array of targets, got shape {y.shape}")
        if len(y) != n:
            raise InputError("y", f"{len(y)} targets for {n} genomes (X and y must have the same length)")
        bad = np.flatnonzero(~np.isfinite(y))
        if len(bad):
            raise InputError("y", f"target {bad[0]} is {y[bad[0]]} (targets must be finite; NaN/inf found)")
        return y

    def _layout_for(self, G: np.ndarray) -> str:
        if self.search_space is not None:
            return "mobilenetv3" if is_mobilenetv3_space(self.search_space) else "generic"
        return "mobilenetv3" if G.shape[1] in (N_BACKBONE, N_BACKBONE + 1) and backbone_in_bounds(G) else "generic"

    def _encoding(self) -> str:
        return self._default_encoding if self.encoding == "auto" else self.encoding

    # ------------------------------------------------------------------ API
    def _check_fit_input(self, X: Any, y: Any, min_samples: int, why: str = "to fit") -> tuple[np.ndarray, np.ndarray]:
        """Genomes and float targets of a ``fit`` call, or ``ValueError``/``TypeError`` with the reason."""
        if y is None:
            raise InputError("y", f"{type(self).__name__} requires y to be passed, but the target y is None")
        if scipy.sparse.issparse(X):
            raise TypeError("X: sparse input is not supported (sparse data passed, dense genome array required)")
        n_x = X.shape[0] if hasattr(X, "shape") and len(X.shape) else (len(X) if hasattr(X, "__len__") else -1)
        if hasattr(y, "__len__") and n_x >= 0 and len(y) != n_x:
            raise InputError("y", f"{len(y)} targets for {n_x} genomes (X and y must have the same length)")
        G = self._to_genomes(X, reset=True)
        y = self._check_y(y, len(G))
        if len(G) < min_samples:
            raise InputError(
                "X",
                f"{type(self).__name__} needs at least {min_samples} samples {why}, got n_samples={len(G)}"
            )
        return G, y

    def fit(self, X: Any, y: Any) -> GenomePredictor:
        """Fit on genomes (or configs, with ``search_space``) ``X`` and targets ``y`` (e.g. top-1 %)."""
        G, y = self._check_fit_input(X, y, self._min_samples)
        self.layout_ = self._layout_for(G)
        bounds = None
        if self.search_space is not None:
            bounds = (np.asarray(self.search_space.xl), np.asarray(self.search_space.xu))
        self.encoder_ = GenomeEncoder(self._encoding(), bool(self.mask_inactive), self.layout_, bounds).fit(G)
        F = self.encoder_.transform(G)
        self.y_mean_ = float(y.mean())
        sd = float(y.std())
        self.y_scale_ = sd if sd > 0 else 1.0
        self._fit_genomes = G  # for subclasses that need the raw genome (bilinear); removed below
        try:
            self._fit(F, (y - self.y_mean_) / self.y_scale_)
        finally:
            del self._fit_genomes
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Predicted targets for genomes (or configs) ``X``; ``NotFittedError`` before ``fit``."""
        check_is_fitted(self, "encoder_")
        if scipy.sparse.issparse(X):
            raise TypeError("X: sparse input is not supported (sparse data passed, dense genome array required)")
        G = self._to_genomes(X, reset=False)
        return self._predict_scaled(G) * self.y_scale_ + self.y_mean_

    def _predict_scaled(self, G: np.ndarray) -> np.ndarray:
        return np.asarray(self._predict(self.encoder_.transform(G)), dtype=np.float64).reshape(-1)

    def _fit(self, F: np.ndarray, y: np.ndarray) -> None:
        raise NotImplementedError

    def _predict(self, F: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags


def average_duplicates(F: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unique rows of ``F`` and the mean target of each (interpolants need distinct points)."""
    U, inv = np.unique(F, axis=0, return_inverse=True)
    inv = inv.reshape(-1)
    if len(U) == len(F):
        return F, y
    sums = np.bincount(inv, weights=y, minlength=len(U))
    return U, sums / np.bincount(inv, minlength=len(U))


def as_genome_array(X: Sequence[Sequence[int]] | np.ndarray) -> np.ndarray:
    """``X`` as a 2-D int64 array (helper for callers holding lists of genomes)."""
    return np.asarray(X, dtype=np.int64).reshape(len(X), -1)
