"""Cubic radial-basis-function interpolant with a linear polynomial tail (the MSuNAS/pySOT surrogate, made robust).

``s(x) = sum_i w_i ||x - x_i||^3 + c_0 + c^T x``. MSuNAS solves the saddle-point system
``[[Phi, P], [P^T, 0]] [w; c] = [y; 0]`` exactly. With 46 genes and n = 50 points the linear tail has almost as
many terms as there are points and soaks up the data (held-out Kendall tau ~0.4 on CIFAR-10 at n = 50). Here the
tail is ridge-penalised -- the lower-right block becomes ``-tail_reg * I``, i.e. the tail coefficients get a
Gaussian prior (``tail_reg -> 0`` is MSuNAS's exact system) -- and ``smoothing`` adds to the diagonal of ``Phi``
(0 = exact interpolation; noisy accuracies rank better smoothed). With ``tail_reg="auto"``/``smoothing="auto"``
both are picked from small grids by exact leave-one-out error (Rippa's formula: ``e_i = z_i / (A^-1)_ii``, one
inverse per grid point). Repeated genomes are averaged first (an interpolant cannot pass through two values at
one point). Both knobs are relative: ``smoothing`` to ``mean(Phi)``, ``tail_reg`` to ``mean(Phi) / mean(PP^T)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.linalg
from scipy.spatial.distance import cdist

from acc_predictor.base import GenomePredictor, average_duplicates
from supernets.errors import InputError

TAIL_GRID = np.logspace(-3, 1, 5)
SMOOTH_GRID = np.array([1e-4, 1e-2, 1e-1])


class RBFPredictor(GenomePredictor):
    """Cubic RBF + ridge-penalised linear tail; ``tail_reg``/``smoothing`` a number or ``"auto"`` (LOO)."""

    _default_encoding = "int"

    def __init__(self, search_space: Any = None, encoding: str = "auto", mask_inactive: bool = True,
                 tail_reg: float | str = "auto", smoothing: float | str = "auto") -> None:
        self.search_space = search_space
        self.encoding = encoding
        self.mask_inactive = mask_inactive
        self.tail_reg = tail_reg
        self.smoothing = smoothing

    @staticmethod
    def _grid(value: float | str, name: str, grid: np.ndarray) -> np.ndarray:
        if isinstance(value, str):
            if value != "auto":
                raise InputError(f"{name}", f"expected a number >= 0 or 'auto', got {value!r}")
            return grid
        if not np.isfinite(value) or value < 0:
            raise InputError(f"{name}", f"expected a finite value >= 0 or 'auto', got {value!r}")
        return np.array([float(value)])

    def _fit(self, F: np.ndarray, y: np.ndarray) -> None:
        tails = self._grid(self.tail_reg, "tail_reg", TAIL_GRID)
        smooths = self._grid(self.smoothing, "smoothing", SMOOTH_GRID)
        C, t = average_duplicates(F, y)
        n, d = C.shape
        Phi = cdist(C, C) ** 3
        P = np.hstack([np.ones((n, 1)), C])
        m_phi = max(float(Phi.mean()), 1e-12)
        m_p = max(float((P @ P.T).mean()), 1e-12)
        A = np.zeros((n + d + 1, n + d + 1))
        A[:n, n:] = P
        A[n:, :n] = P.T
        rhs = np.concatenate([t, np.zeros(d + 1)])
        best: tuple[float, float, float, np.ndarray] | None = None
        for tr in tails:
            for sm in smooths:
                A[:n, :n] = Phi + sm * m_phi * np.eye(n)
                A[n:, n:] = -tr * (m_phi / m_p) * np.eye(d + 1)
                try:
                    Ainv = np.linalg.inv(A)
                except np.linalg.LinAlgError:
                    continue
                z = Ainv @ rhs
                loo = float(np.mean((z[:n] / Ainv[np.arange(n), np.arange(n)]) ** 2))
                if not np.isfinite(loo):
                    loo = np.inf
                if best is None or loo < best[0]:
                    best = (loo, float(tr), float(sm), z)
        if best is None:  # every candidate system singular (e.g. tail_reg=0 with too few points): least squares
            tr, sm = float(tails[-1]), float(smooths[-1])
            A[:n, :n] = Phi + sm * m_phi * np.eye(n)
            A[n:, n:] = -tr * (m_phi / m_p) * np.eye(d + 1)
            best = (np.inf, tr, sm, scipy.linalg.lstsq(A, rhs, lapack_driver="gelsy")[0])
        _, self.tail_reg_, self.smoothing_, sol = best
        self.centers_, self.weights_, self.poly_ = C, sol[:n], sol[n:]

    def _predict(self, F: np.ndarray) -> np.ndarray:
        out = np.empty(len(F))
        C = self.centers_
        cc = (C * C).sum(1)[None, :]
        for s in range(0, len(F), 4096):  # chunks bound the (chunk x n_centres) distance matrix
            Fs = F[s : s + 4096]
            # |a - c|^2 = |a|^2 + |c|^2 - 2 a.c as one BLAS product (scipy's cdist loops: 2x slower at 10k x 300)
            r2 = Fs @ C.T
            r2 *= -2.0
            r2 += cc
            r2 += (Fs * Fs).sum(1)[:, None]
            np.maximum(r2, 0.0, out=r2)
            r3 = np.sqrt(r2)
            r3 *= r2
            out[s : s + 4096] = r3 @ self.weights_ + self.poly_[0] + Fs @ self.poly_[1:]
        return out
