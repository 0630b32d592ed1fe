"""Bagged regression trees on random feature subsets (the CNAS/MSuNAS ``carts`` surrogate, made faster).

CNAS fits thousands of full-depth ``DecisionTreeRegressor`` s, each on a random subset of the features (size
uniform in 1..d), and averages them. Here the same, with fewer trees by default (the average converges well before
1000), optional bootstrap rows, and prediction that calls each tree's compiled ``tree_.predict`` on the whole
matrix at once (CNAS looped over rows in Python).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.tree import DecisionTreeRegressor

from acc_predictor.base import GenomePredictor
from supernets.errors import InputError


class CartsPredictor(GenomePredictor):
    """Average of ``n_trees`` full-depth CART trees, each on a random feature subset (and bootstrap rows)."""

    _default_encoding = "int"

    def __init__(self, search_space: Any = None, encoding: str = "auto", mask_inactive: bool = False,
                 n_trees: int = 100, bootstrap: bool = True, min_samples_leaf: int = 1,
                 random_state: int | None = 0) -> None:
        self.search_space = search_space
        self.encoding = encoding
        self.mask_inactive = mask_inactive
        self.n_trees = n_trees
        self.bootstrap = bootstrap
        self.min_samples_leaf = min_samples_leaf
        self.random_state = random_state

    def _fit(self, F: np.ndarray, y: np.ndarray) -> None:
        if int(self.n_trees) < 1:
            raise InputError("n_trees", f"expected >= 1, got {self.n_trees!r}")
        rng = np.random.default_rng(self.random_state)
        n, d = F.shape
        F32 = np.ascontiguousarray(F, dtype=np.float32)
        self.trees_: list[Any] = []
        self.features_: list[np.ndarray] = []
        for _ in range(int(self.n_trees)):
            feats = np.sort(rng.permutation(d)[: rng.integers(1, d + 1)]) if d else np.zeros(0, dtype=np.int64)
            rows = np.asarray(rng.integers(0, n, size=n)) if self.bootstrap else np.arange(n)
            tree = DecisionTreeRegressor(min_samples_leaf=self.min_samples_leaf,
                                         random_state=int(rng.integers(2**31 - 1)))
            Xt = F32[rows][:, feats] if d else np.zeros((n, 1), dtype=np.float32)
            tree.fit(Xt, y[rows])
            self.trees_.append(tree.tree_)
            self.features_.append(feats)

    def _predict(self, F: np.ndarray) -> np.ndarray:
        F32 = np.ascontiguousarray(F, dtype=np.float32)
        out = np.zeros(len(F))
        for tree, feats in zip(self.trees_, self.features_, strict=True):
            Xt = np.ascontiguousarray(F32[:, feats]) if len(feats) else np.zeros((len(F), 1), dtype=np.float32)
            out += tree.predict(Xt)[:, 0]
        return out / len(self.trees_)
