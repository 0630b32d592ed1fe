"""Gaussian-process regression with a Matern-5/2 kernel, a learned noise level and tied (group) ARD.

``k(x, x') = sf2 * matern52(r) + sn2 * [x == x']`` with ``r^2 = sum_g ||x_g - x'_g||^2 / l_g^2``: one length
scale per *group* of features -- depth genes, kernel genes, expand genes, and each other gene (the resolution)
-- rather than per feature. Full ARD over 46..200 columns overfits the marginal likelihood at n = 50..300 and
takes seconds to optimise; the groups keep what ARD is for here (resolution matters differently from kernel
size) with 4-6 hyperparameters. ``ard="full"`` gives one scale per feature, ``"none"`` one scale in all.
Accuracies measured after short fine-tuning are noisy, so the white-noise term keeps the mean from chasing noise.
Hyperparameters maximise the log marginal likelihood (L-BFGS-B on exact torch gradients, float64).
``predict(X, return_std=True)`` also returns the posterior std of the latent function in target units.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.optimize
import scipy.sparse
import torch
from sklearn.utils.validation import check_is_fitted

from acc_predictor.base import GenomePredictor
from supernets.errors import InputError

SQRT5 = float(np.sqrt(5.0))


def _sqdist(A: torch.Tensor, B: torch.Tensor, idx: list[torch.Tensor]) -> torch.Tensor:
    """(n_groups, len(A), len(B)) squared distances restricted to each group's columns."""
    out = []
    for cols in idx:
        a, b = A[:, cols], B[:, cols]
        d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
        out.append(d2.clamp_min(0.0))
    return torch.stack(out) if out else torch.zeros((0, len(A), len(B)), dtype=A.dtype)


def _matern52(D2: torch.Tensor, log_ls: torch.Tensor) -> torch.Tensor:
    r2 = (D2 / torch.exp(2.0 * log_ls)[:, None, None]).sum(0)
    r = torch.sqrt(r2 + 1e-12)
    return (1.0 + SQRT5 * r + 5.0 / 3.0 * r2) * torch.exp(-SQRT5 * r)


class GPPredictor(GenomePredictor):
    """Exact GP regressor (Matern-5/2 + noise); ``ard`` in ``group`` (default), ``full``, ``none``."""

    _default_encoding = "int"

    def __init__(self, search_space: Any = None, encoding: str = "auto", mask_inactive: bool = True,
                 ard: str = "group", max_iter: int = 100, n_restarts: int = 0, init: Any = None,
                 random_state: int | None = 0) -> None:
        self.search_space = search_space
        self.init = init
        self.encoding = encoding
        self.mask_inactive = mask_inactive
        self.ard = ard
        self.max_iter = max_iter
        self.n_restarts = n_restarts
        self.random_state = random_state

    def _group_index(self, d: int) -> list[np.ndarray]:
        if self.ard not in ("group", "full", "none"):
            raise InputError("ard", f"expected 'group', 'full' or 'none', got {self.ard!r}")
        if d == 0:
            return []
        if self.ard == "none":
            return [np.arange(d)]
        if self.ard == "full":
            return [np.array([i]) for i in range(d)]
        labels = self.encoder_.groups()
        if self.layout_ != "mobilenetv3" and len(np.unique(labels)) > 20:  # generic wide data: one scale
            return [np.arange(d)]
        return [np.flatnonzero(labels == g) for g in dict.fromkeys(labels)]

    def _fit(self, F: np.ndarray, y: np.ndarray) -> None:
        n, d = F.shape
        groups = self._group_index(d)
        self.groups_ = groups
        X = torch.from_numpy(np.ascontiguousarray(F, dtype=np.float64))
        Y = torch.from_numpy(y.astype(np.float64))
        idx = [torch.from_numpy(g) for g in groups]
        D2 = _sqdist(X, X, idx)
        n_g = len(groups)
        eye = torch.eye(n, dtype=torch.float64)

        def nll(theta: np.ndarray) -> tuple[float, np.ndarray]:
            t = torch.from_numpy(theta).requires_grad_()
            K = torch.exp(t[n_g]) * _matern52(D2, t[:n_g]) + (torch.exp(t[n_g + 1]) + 1e-8) * eye
            try:
                L = torch.linalg.cholesky(K)
            except RuntimeError:
                return 1e10, np.zeros_like(theta)
            a = torch.cholesky_solve(Y[:, None], L)[:, 0]
            val = 0.5 * (Y @ a) + torch.log(torch.diagonal(L)).sum()
            val.backward()
            return float(val.detach()), t.grad.numpy().copy()  # type: ignore[union-attr]

        sizes = np.array([max(len(g), 1) for g in groups], dtype=np.float64)
        bounds = [(np.log(1e-2), np.log(1e2))] * n_g + [(np.log(1e-2), np.log(1e2)), (np.log(1e-6), np.log(1.0))]
        rng = np.random.default_rng(self.random_state)
        starts = [np.concatenate([0.5 * np.log(sizes), [0.0, np.log(0.1)]])]
        if self.init is not None:  # warm start (e.g. the previous CV fold's optimum): fewer L-BFGS iterations
            x0 = np.asarray(self.init, dtype=np.float64).reshape(-1)
            if x0.shape != (n_g + 2,) or not np.all(np.isfinite(x0)):
                raise InputError("init", f"expected {n_g + 2} finite log-hyperparameters (theta_), got {x0.shape}")
            starts[0] = np.clip(x0, [lo for lo, _ in bounds], [hi for _, hi in bounds])
        for _ in range(int(self.n_restarts)):
            starts.append(np.array([rng.uniform(lo, hi) for lo, hi in bounds]))
        best: tuple[float, np.ndarray] | None = None
        self.n_iter_ = 0
        for x0 in starts:
            res = scipy.optimize.minimize(nll, x0, jac=True, method="L-BFGS-B", bounds=bounds,
                                          options={"maxiter": int(self.max_iter)})
            self.n_iter_ = max(self.n_iter_, int(res.nit))
            if best is None or res.fun < best[0]:
                best = (float(res.fun), res.x)
        assert best is not None
        theta = torch.from_numpy(best[1])
        self.theta_ = best[1]
        self.length_scales_ = np.exp(best[1][:n_g])
        self.signal_var_, self.noise_var_ = float(np.exp(best[1][n_g])), float(np.exp(best[1][n_g + 1]))
        with torch.no_grad():
            K = self.signal_var_ * _matern52(D2, theta[:n_g]) + (self.noise_var_ + 1e-8) * eye
            L = torch.linalg.cholesky(K)
            self.L_ = L
            self.alpha_ = torch.cholesky_solve(Y[:, None], L)[:, 0]
        self.X_train_ = X
        self.idx_ = idx

    def _latent(self, F: np.ndarray, return_std: bool) -> tuple[np.ndarray, np.ndarray | None]:
        # r^2 = sum_g ||a_g - b_g||^2 / l_g^2 = ||a/l - b/l||^2: scale the columns once, then one distance matrix
        inv = np.zeros(self.X_train_.shape[1])
        for g, cols in enumerate(self.idx_):
            inv[cols.numpy()] = np.exp(-self.theta_[g])
        # float64 throughout (predictions must not depend on the batch they come in), in-place kernel algebra
        inv_t = torch.from_numpy(inv)
        B = self.X_train_ * inv_t
        bb = (B * B).sum(1)[None, :]
        alpha = self.alpha_
        Xq = torch.from_numpy(np.ascontiguousarray(F, dtype=np.float64)) * inv_t
        mean = np.empty(len(F))
        std = np.empty(len(F)) if return_std else None
        c5 = float(np.sqrt(5.0))
        with torch.no_grad():
            for s in range(0, len(F), 4096):
                A = Xq[s : s + 4096]
                # r2 = |a|^2 + |b|^2 - 2 a.b, then the Matern-5/2 polynomial and exponential, all in place
                r2 = torch.addmm(bb, A, B.T, alpha=-2.0).add_((A * A).sum(1)[:, None]).clamp_min_(0.0)
                r = torch.sqrt(r2)
                Ks = r2.mul_(5.0 / 3.0).add_(r, alpha=c5).add_(1.0).mul_(torch.exp_(r.mul_(-c5)))
                mean[s : s + 4096] = (Ks @ alpha).mul_(self.signal_var_).numpy()
                if std is not None:
                    Ks.mul_(self.signal_var_)
                    V = torch.linalg.solve_triangular(self.L_, Ks.T, upper=False)
                    var = self.signal_var_ - (V * V).sum(0)
                    std[s : s + 4096] = torch.sqrt(var.clamp_min(0.0)).numpy()
        return mean, std

    def _predict(self, F: np.ndarray) -> np.ndarray:
        return self._latent(F, False)[0]

    def predict(self, X: Any, return_std: bool = False) -> Any:  # type: ignore[override]
        """Posterior mean; with ``return_std=True`` also the latent posterior std (target units)."""
        check_is_fitted(self, "encoder_")
        if scipy.sparse.issparse(X):
            raise TypeError("X: sparse input is not supported (sparse data passed, dense genome array required)")
        G = self._to_genomes(X, reset=False)
        mean, std = self._latent(self.encoder_.transform(G), return_std)
        mean = mean * self.y_scale_ + self.y_mean_
        if not return_std:
            return mean
        assert std is not None
        return mean, std * self.y_scale_
