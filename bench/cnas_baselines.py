"""The CNAS/MSuNAS surrogate configurations, re-implemented as baselines for ``bench/predictors.py``.

They take the raw CNAS integer genome (no scaling, no masking of inactive genes), as CNAS feeds them:

* ``cnas_rbf``: pySOT ``RBFInterpolant`` -- cubic kernel, linear tail, exact saddle-point system (tiny nugget).
* ``cnas_gp``: pydacefit ``DACE(regr_constant, corr_gauss)`` -- constant mean, isotropic Gaussian correlation on
  z-scored inputs, theta in [1e-5, 100], no noise term; here scikit-learn's GP with the equivalent kernel.
* ``cnas_mlp``: ``Net(n_feature, n_layers=2, n_hidden=300, drop=0.2)``, Adam lr 8e-4, SmoothL1 loss, cosine
  schedule over 2000 full-batch epochs on a random 80 % split, the best-validation snapshot kept.
* ``cnas_carts``: full-depth ``DecisionTreeRegressor`` s, each on a random feature subset of uniform size, averaged;
  1000 trees (MSuNAS's default; CNAS's factory asks for 5000, which averages the same way at 5x the cost).
"""

from __future__ import annotations

import copy
import warnings
from typing import Any

import numpy as np
import scipy.linalg
import torch
from scipy.spatial.distance import cdist
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF, ConstantKernel
from sklearn.tree import DecisionTreeRegressor


class CNASRBF(RegressorMixin, BaseEstimator):
    """Cubic RBF, linear tail, exact interpolation (pySOT ``RBFInterpolant`` as MSuNAS uses it)."""

    def __init__(self, eta: float = 1e-8) -> None:
        self.eta = eta

    def fit(self, X: Any, y: Any) -> CNASRBF:
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        n, d = X.shape
        P = np.hstack([np.ones((n, 1)), X])
        A = np.zeros((n + d + 1, n + d + 1))
        A[:n, :n] = cdist(X, X) ** 3 + self.eta * np.eye(n)
        A[:n, n:] = P
        A[n:, :n] = P.T
        rhs = np.concatenate([y, np.zeros(d + 1)])
        try:
            sol = np.linalg.solve(A, rhs)
        except np.linalg.LinAlgError:
            sol = scipy.linalg.lstsq(A, rhs)[0]
        self.X_, self.w_, self.c_ = X, sol[:n], sol[n:]
        return self

    def predict(self, X: Any) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        return (cdist(X, self.X_) ** 3) @ self.w_ + self.c_[0] + X @ self.c_[1:]


class CNASGP(RegressorMixin, BaseEstimator):
    """DACE kriging: constant mean, isotropic Gaussian correlation on z-scored inputs, no noise term."""

    def __init__(self, random_state: int = 0) -> None:
        self.random_state = random_state

    def fit(self, X: Any, y: Any) -> CNASGP:
        X = np.asarray(X, dtype=np.float64)
        self.mu_, sd = X.mean(0), X.std(0)
        self.sd_ = np.where(sd > 0, sd, 1.0)
        # corr = exp(-theta * d^2), theta in [1e-5, 100]  <=>  length_scale = 1/sqrt(2 theta) in [0.0707, 223.6]
        kernel = ConstantKernel(1.0, (1e-3, 1e3)) * RBF(1.0, (0.0707, 223.6))
        self.gp_ = GaussianProcessRegressor(kernel, alpha=1e-6, normalize_y=True, random_state=self.random_state)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.gp_.fit((X - self.mu_) / self.sd_, np.asarray(y, dtype=np.float64))
        return self

    def predict(self, X: Any) -> np.ndarray:
        return self.gp_.predict((np.asarray(X, dtype=np.float64) - self.mu_) / self.sd_)


class _Net(torch.nn.Module):
    def __init__(self, n_feature: int, n_layers: int = 2, n_hidden: int = 300, drop: float = 0.2) -> None:
        super().__init__()
        self.stem = torch.nn.Sequential(torch.nn.Linear(n_feature, n_hidden), torch.nn.ReLU())
        layers: list[torch.nn.Module] = []
        for _ in range(n_layers):
            layers += [torch.nn.Linear(n_hidden, n_hidden), torch.nn.ReLU()]
        self.hidden = torch.nn.Sequential(*layers)
        self.regressor = torch.nn.Linear(n_hidden, 1)
        self.drop = torch.nn.Dropout(p=drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.regressor(self.drop(self.hidden(self.stem(x))))


class CNASMLP(RegressorMixin, BaseEstimator):
    """The MSuNAS MLP: 2x300 hidden + stem, dropout 0.2, Adam 8e-4, SmoothL1, cosine, 2000 epochs, best val."""

    def __init__(self, epochs: int = 2000, random_state: int = 0) -> None:
        self.epochs = epochs
        self.random_state = random_state

    def fit(self, X: Any, y: Any) -> CNASMLP:
        torch.manual_seed(self.random_state)
        x = torch.from_numpy(np.asarray(X, dtype=np.float32))
        t = torch.from_numpy(np.asarray(y, dtype=np.float32))[:, None]
        n = len(x)
        perm = torch.randperm(n)
        trn, vld = perm[: int(n * 0.8)], perm[int(n * 0.8) :]
        net = _Net(x.shape[1])
        opt = torch.optim.Adam(net.parameters(), lr=8e-4)
        crit = torch.nn.SmoothL1Loss()
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, int(self.epochs), eta_min=0)
        best, best_net = 1e33, copy.deepcopy(net)
        for _ in range(int(self.epochs)):
            net.train()
            opt.zero_grad()
            crit(net(x[trn]), t[trn]).backward()
            opt.step()
            net.eval()
            with torch.no_grad():
                v = float(crit(net(x[vld]), t[vld]))
            sched.step()
            if v < best:
                best, best_net = v, copy.deepcopy(net)
        self.net_ = best_net.eval()
        return self

    def predict(self, X: Any) -> np.ndarray:
        with torch.no_grad():
            return self.net_(torch.from_numpy(np.asarray(X, dtype=np.float32)))[:, 0].numpy().astype(np.float64)


class CNASCarts(RegressorMixin, BaseEstimator):
    """Average of full-depth CART trees, each on a random feature subset of size uniform in 1..d."""

    def __init__(self, n_tree: int = 1000, random_state: int = 0) -> None:
        self.n_tree = n_tree
        self.random_state = random_state

    def fit(self, X: Any, y: Any) -> CNASCarts:
        rng = np.random.default_rng(self.random_state)
        X = np.asarray(X, dtype=np.float32)
        y = np.asarray(y, dtype=np.float64)
        d = X.shape[1]
        self.trees_, self.feats_ = [], []
        for _ in range(int(self.n_tree)):
            f = rng.permutation(d)[: rng.integers(1, d + 1)]
            self.trees_.append(DecisionTreeRegressor(random_state=int(rng.integers(2**31 - 1))).fit(X[:, f], y))
            self.feats_.append(f)
        return self

    def predict(self, X: Any) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        return np.mean([t.predict(X[:, f]) for t, f in zip(self.trees_, self.feats_, strict=True)], axis=0)


BASELINES = {"cnas_rbf": CNASRBF, "cnas_gp": CNASGP, "cnas_mlp": CNASMLP, "cnas_carts": CNASCarts}
