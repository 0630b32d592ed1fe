"""CNAS's own surrogate definitions: ``predictor: {name: rbf|gp|mlp|carts|as, variant: cnas}``.

Each class reproduces one file of CNAS@HEAD's ``acc_predictor/`` (AI-Tech-Research-Lab/CNAS), built by its
``factory.py`` ``get_acc_predictor`` and fitted by ``cnas.py`` ``_fit_first_predictor``: same model, same
hyperparameters, same features and targets, same training procedure. Re-written with the libraries this project
has (numpy, scipy, scikit-learn, torch); where CNAS calls a library we do not ship, the library's algorithm is
reproduced from its source at the version CNAS pins (``requirements.txt``):

* ``rbf`` -- ``rbf.py``: pySOT 0.2.3 ``RBFInterpolant`` with ``CubicKernel`` and ``LinearTail``: the exact
  saddle-point system ``[[0, P^T], [P, Phi + eta I]] [lambda; c] = [0; f]``, ``Phi = r^3``, ``P = [1, x]``,
  ``eta = 1e-6``, solved by one LU factorisation (pySOT's own triangular solves; ``scipy.linalg.lu_solve``
  here). pySOT asserts at least ``d + 1`` points (the tail's terms): fewer is refused.
* ``gp`` -- ``gp.py``: pydacefit 1.0.1 ``DACE(regr=regr_linear, corr=corr_gauss, theta=1.0, thetaL=1e-5,
  thetaU=100)``: Kriging with a linear trend and one (isotropic) Gaussian correlation parameter, inputs and
  targets standardised (std with ddof=1), theta chosen by DACE's ``boxmin`` pattern search on the likelihood
  objective ``sigma^2 det(R)^(1/n)``, nugget ``(10 + n) eps``. Difference: a gene constant in the training
  set has std 0 and pydacefit divides by it (NaN features); here it is left unscaled (it then carries no
  information, as it should).
* ``mlp`` -- ``mlp.py``: ``Net(n_feature, n_layers=2, n_hidden=300, drop=0.2)`` (Linear+ReLU stem, two
  Linear+ReLU hidden layers, dropout, linear output; torch's default init), one random 80/20 split, 2000
  full-batch epochs of Adam (lr 8e-4) on ``SmoothL1Loss`` with a cosine schedule, the weights of the best
  validation loss kept. CNAS seeds torch's global generator; here a private fork of it seeded from
  ``random_state``.
* ``carts`` -- ``carts.py`` with the factory's ``n_tree=5000``: full-depth ``DecisionTreeRegressor`` s, each
  on the rows reshuffled and a random feature subset (size uniform in 1..d), averaged. CNAS draws from numpy's
  global generator; here one ``RandomState(random_state)`` stream serves the same draws (trees included).
  Prediction calls each tree once on the whole matrix (CNAS loops over rows; same numbers).
* ``as`` -- ``adaptive_switching.py``: pool ``rbf``, ``carts``, ``mlp`` (the factory's definitions above),
  10-fold cross-validation on one permutation, Kendall tau per fold, winner ``argmax(mean - std)`` over folds,
  refitted on all data; ``winner_`` names it. Difference: a member that cannot be fitted on a fold (``rbf`` on
  fewer points than its tail has terms, where pySOT's assertion stops CNAS) scores tau = NaN there, and a NaN
  score never wins (numpy's ``argmax`` would pick it).

Features: CNAS's ``search_space.encode`` -- the raw integer genome (depth, kernel and expand indices, the
resolution index; early-exit genes after), inactive slots' kernel/expand genes set to 0, unscaled. Targets:
the objective as given (top-1 error in %), unscaled. CNAS pads inactive slots when it fits (archive configs
are encoded) but predicts the inner optimiser's raw genomes, so two genomes of one network can get two
predictions; here predictions pad too (the network, not its unused genes, is predicted). ``cnas.py`` asserts
more archive points than genes before fitting; :func:`check_rows` is that check (``fit(..., check_rows=True)``
is the default; cross-validation folds turn it off). CNAS's constants are class attributes (``CnasMLP.epochs``,
``CnasCARTS.n_tree``, ``CnasAS.n_fold``), not options: the spec selects CNAS's definition, not a tuned one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.linalg
import torch
from scipy import stats as sps
from scipy.spatial.distance import cdist
from sklearn.tree import DecisionTreeRegressor
from sklearn.utils.validation import check_is_fitted

from acc_predictor.base import GenomePredictor
from acc_predictor.features import N_BACKBONE, active_mask
from supernets import codec
from supernets.errors import InputError

CNAS_NAMES = ("rbf", "gp", "mlp", "carts", "as")
EPS = 2.220446049250313e-16


def cnas_features(G: np.ndarray, layout: str) -> np.ndarray:
    """CNAS's ``encode``: the integer genome with inactive slots' kernel/expand genes 0, as floats."""
    F = np.array(G, dtype=np.float64)
    if layout == "mobilenetv3" and len(F):
        act = active_mask(F).reshape(len(F), codec.N_STAGES, codec.MAX_DEPTH)
        S = F[:, :N_BACKBONE].reshape(len(F), codec.N_STAGES, codec.N_STAGE_GENES)
        S[:, :, 1:5] *= act
        S[:, :, 5:9] *= act
        F[:, :N_BACKBONE] = S.reshape(len(F), -1)
    return F


def check_rows(n: int, d: int) -> None:
    """CNAS@HEAD ``cnas.py`` ``_fit_first_predictor``: ``assert len(inputs) > len(inputs[0])``."""
    if n <= d:
        raise InputError("X", f"CNAS fits its surrogates on more points than genes: {n} points for {d} genes "
                              f"(evaluate at least {d + 1}, e.g. n_doe >= {d + 1})")


class _CnasPredictor(GenomePredictor):
    """Common input handling: genomes checked as every predictor's, CNAS's features, raw targets."""

    _min_samples = 2
    encoding = "int"
    mask_inactive = True

    def __init__(self, search_space: Any = None, random_state: int | None = 0, check_rows: bool = True) -> None:
        self.search_space = search_space
        self.random_state = random_state
        self.check_rows = check_rows

    def _rng(self) -> np.random.RandomState:
        return np.random.RandomState(None if self.random_state is None else int(self.random_state) % 2**32)

    def fit(self, X: Any, y: Any) -> _CnasPredictor:
        """Fit on genomes (or configs, with ``search_space``) ``X`` and targets ``y`` (top-1 error %)."""
        G, yy = self._check_fit_input(X, y, self._min_samples)
        self.layout_ = self._layout_for(G)
        F = cnas_features(G, self.layout_)
        if self.check_rows:
            check_rows(*F.shape)
        self._fit_raw(F, yy, self._rng())
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Predicted targets of genomes (or configs) ``X``."""
        check_is_fitted(self, "layout_")
        G = self._to_genomes(X, reset=False)
        return np.asarray(self._predict_raw(cnas_features(G, self.layout_)), dtype=np.float64).reshape(-1)

    def _fit_raw(self, F: np.ndarray, y: np.ndarray, rng: np.random.RandomState) -> None:
        raise NotImplementedError

    def _predict_raw(self, F: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class CnasRBF(_CnasPredictor):
    """CNAS ``rbf.py``: pySOT 0.2.3 cubic RBF interpolant with a linear tail (eta = 1e-6), exact solve."""

    eta = 1e-6

    def _fit_raw(self, F: np.ndarray, y: np.ndarray, rng: np.random.RandomState) -> None:
        n, d = F.shape
        nt = d + 1
        if n < nt:  # pySOT RBFInterpolant._fit: assert self.num_pts >= ntail
            raise InputError("X", f"CNAS's rbf (pySOT, linear tail) needs at least {nt} points, got {n}")
        P = np.hstack([np.ones((n, 1)), F])
        A = np.zeros((nt + n, nt + n))
        A[:nt, nt:] = P.T
        A[nt:, :nt] = P
        A[nt:, nt:] = cdist(F, F) ** 3 + self.eta * np.eye(n)
        rhs = np.concatenate([np.zeros(nt), y])
        self.coef_ = scipy.linalg.lu_solve(scipy.linalg.lu_factor(A, check_finite=False), rhs)
        self.centers_ = F

    def _predict_raw(self, F: np.ndarray) -> np.ndarray:
        nt = F.shape[1] + 1
        return cdist(F, self.centers_) ** 3 @ self.coef_[nt:] + np.hstack([np.ones((len(F), 1)), F]) @ self.coef_[:nt]


def _gauss(A: np.ndarray, B: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """pydacefit ``calc_kernel_matrix`` with ``corr_gauss``: ``exp(sum(-theta (a - b)^2))``, summed as it sums
    (the likelihood is flat in theta: a different rounding can move the pattern search elsewhere)."""
    out = np.empty((len(A), len(B)))
    step = max(1, 2_000_000 // max(1, len(B) * A.shape[1]))
    for s in range(0, len(A), step):
        D = A[s : s + step, None, :] - B[None, :, :]
        out[s : s + step] = np.exp(np.sum(np.square(D) * -theta, axis=2))
    return out


def _dace_fit(X: np.ndarray, Y: np.ndarray, theta: np.ndarray) -> dict[str, Any]:
    """pydacefit ``fit.fit`` with ``regr_linear`` and ``corr_gauss`` (raises ``LinAlgError`` when R is not SPD)."""
    n = len(X)
    R = _gauss(X, X, theta) + np.eye(n) * (10 + n) * EPS
    C = np.linalg.cholesky(R)
    Fm = np.hstack([np.ones((n, 1)), X])
    Ft = np.linalg.lstsq(C, Fm, rcond=None)[0]
    Q, G = np.linalg.qr(Ft)
    Yt = np.linalg.solve(C, Y)
    beta = np.linalg.lstsq(G, Q.T @ Yt, rcond=None)[0]
    rho = Yt - Ft @ beta
    sigma2 = np.sum(rho**2, axis=0) / n
    obj = float(np.sum(sigma2) * np.prod(np.diag(C) ** (2.0 / n)))
    if not np.isfinite(obj):
        raise np.linalg.LinAlgError("non-finite DACE objective")
    return {"theta": np.array(theta, dtype=np.float64), "beta": beta, "gamma": np.linalg.solve(C.T, rho), "f": obj}


class CnasGP(_CnasPredictor):
    """CNAS ``gp.py``: pydacefit DACE, linear regression, Gaussian correlation, theta 1 in [1e-5, 100]."""

    theta0, lo, up = 1.0, 1e-5, 100.0

    def _fit_raw(self, F: np.ndarray, y: np.ndarray, rng: np.random.RandomState) -> None:
        if len(F) < 2:
            raise InputError("X", "CNAS's gp (DACE) needs at least 2 points")
        mX, sX = F.mean(0), F.std(0, ddof=1)
        sX = np.where(sX > 0, sX, 1.0)  # pydacefit divides by 0 on a constant gene (documented difference)
        Y = y[:, None]
        mY, sY = float(Y.mean()), float(Y.std(ddof=1))
        sY = sY if sY > 0 else 1.0
        self.mX_, self.sX_, self.mY_, self.sY_ = mX, sX, mY, sY
        self.nX_ = (F - mX) / sX
        self.model_ = self._boxmin(self.nX_, (Y - mY) / sY)
        self.theta_ = float(self.model_["theta"][0])

    def _boxmin(self, X: np.ndarray, Y: np.ndarray) -> dict[str, Any]:
        """pydacefit ``DACE.boxmin`` (``boxmin.start``/``explore``/``move``) for one theta."""
        lo, up = np.array([self.lo]), np.array([self.up])
        best = _dace_fit(X, Y, np.array([self.theta0]))  # the start is not guarded in pydacefit either
        D = np.array([2.0 ** (1.0 / 3.0)])  # 2 ** (arange(1, p + 1) / (p + 2)), p = 1

        def try_theta(tt: np.ndarray) -> bool:
            nonlocal best
            try:
                m = _dace_fit(X, Y, tt)
            except (np.linalg.LinAlgError, ValueError):
                return False
            if m["f"] < best["f"]:
                best = m
                return True
            return False

        for _ in range(2):  # kmax = 2 when p <= 2
            last = best["theta"].copy()
            t = best["theta"]  # explore, coordinate 0
            tt = t.copy()
            if t[0] == up[0]:
                tt[0] = t[0] / np.sqrt(D[0])
            elif t[0] == lo[0]:
                tt[0] = t[0] * np.sqrt(D[0])
            else:
                tt[0] = min(up[0], t[0] * D[0])
            if not try_theta(tt) and t[0] != up[0] and t[0] != lo[0]:
                tt = t.copy()
                tt[0] = max(lo[0], t[0] / D[0])
                try_theta(tt)
            v = best["theta"] / last  # move
            if np.all(v == 1):
                D = D ** 0.2
                continue
            cont = True
            while cont:
                tt = np.clip(best["theta"] * v, lo, up)
                cont = try_theta(tt)
                if cont:
                    v = v**2
                if np.any((tt == lo) | (tt == up)):
                    cont = False
            D = D ** 0.25
        return best

    def _predict_raw(self, F: np.ndarray) -> np.ndarray:
        nX = (F - self.mX_) / self.sX_
        m = self.model_
        R = _gauss(nX, self.nX_, m["theta"])
        s = np.hstack([np.ones((len(F), 1)), nX]) @ m["beta"] + R @ m["gamma"]
        return s[:, 0] * self.sY_ + self.mY_


class _Net(torch.nn.Module):
    """CNAS ``mlp.py`` ``Net``: stem Linear+ReLU, ``n_layers`` x (Linear+ReLU), dropout, linear regressor."""

    def __init__(self, n_feature: int, n_layers: int = 2, n_hidden: int = 300, n_output: int = 1,
                 drop: float = 0.2) -> None:
        super().__init__()
        self.stem = torch.nn.Sequential(torch.nn.Linear(n_feature, n_hidden), torch.nn.ReLU())
        hidden: list[torch.nn.Module] = []
        for _ in range(n_layers):
            hidden += [torch.nn.Linear(n_hidden, n_hidden), torch.nn.ReLU()]
        self.hidden = torch.nn.Sequential(*hidden)
        self.regressor = torch.nn.Linear(n_hidden, n_output)
        self.drop = torch.nn.Dropout(p=drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.regressor(self.drop(self.hidden(self.stem(x))))


class CnasMLP(_CnasPredictor):
    """CNAS ``mlp.py``: 300x3 ReLU MLP, dropout 0.2, 80/20 split, Adam 8e-4, SmoothL1, cosine, 2000 epochs."""

    _min_samples = 5  # the 80/20 split leaves a validation row from 5 points on (CNAS fails below)
    epochs, lr, trn_split = 2000, 8e-4, 0.8

    def _fit_raw(self, F: np.ndarray, y: np.ndarray, rng: np.random.RandomState) -> None:
        if len(F) < self._min_samples:
            raise InputError("X", f"CNAS's mlp needs at least {self._min_samples} points (80/20 split)")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(rng.randint(2**31 - 1)))
            net = _Net(F.shape[1])  # built in MLP.__init__, before train() draws the split
            n = len(F)
            perm = torch.randperm(n)
            trn, vld = perm[: int(n * self.trn_split)], perm[int(n * self.trn_split):]
            X = torch.from_numpy(F).float()
            T = torch.from_numpy(y).float()[:, None]
            opt = torch.optim.Adam(net.parameters(), lr=self.lr)
            crit = torch.nn.SmoothL1Loss()
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, self.epochs, eta_min=0)
            best_loss, best = 1e33, None
            for _ in range(self.epochs):
                net.train()
                opt.zero_grad()
                crit(net(X[trn]), T[trn]).backward()
                opt.step()
                net.eval()
                with torch.no_grad():
                    loss_vld = float(crit(net(X[vld]), T[vld]))
                sched.step()
                if loss_vld < best_loss:
                    best_loss, best = loss_vld, {k: v.clone() for k, v in net.state_dict().items()}
        if best is not None:
            net.load_state_dict(best)
        net.eval()
        self.net_, self.val_loss_ = net, best_loss

    def _predict_raw(self, F: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self.net_(torch.from_numpy(F).float()).numpy()[:, 0]


class CnasCARTS(_CnasPredictor):
    """CNAS ``carts.py`` with the factory's 5000 trees: full trees on random feature subsets, averaged."""

    n_tree = 5000

    def _fit_raw(self, F: np.ndarray, y: np.ndarray, rng: np.random.RandomState) -> None:
        n, d = F.shape
        data, label = F.astype(np.float32), y.copy()
        self.trees_: list[Any] = []
        self.features_: list[np.ndarray] = []
        for _ in range(int(self.n_tree)):
            idx = np.arange(n)
            rng.shuffle(idx)
            data, label = data[idx], label[idx]  # cumulative, as CNAS reassigns train_data each tree
            feats = np.arange(d)
            rng.shuffle(feats)
            sel = feats[: rng.randint(1, d + 1)]
            tree = DecisionTreeRegressor(random_state=rng).fit(data[:, sel], label)
            self.trees_.append(tree.tree_)
            self.features_.append(sel)

    def _predict_raw(self, F: np.ndarray) -> np.ndarray:
        F32 = F.astype(np.float32)
        out = np.zeros(len(F))
        for tree, sel in zip(self.trees_, self.features_, strict=True):
            out += tree.predict(np.ascontiguousarray(F32[:, sel]))[:, 0]
        return out / len(self.trees_)


class CnasAS(_CnasPredictor):
    """CNAS ``adaptive_switching.py``: rbf/carts/mlp by 10-fold Kendall tau (mean - std), winner refitted."""

    pool = ("rbf", "carts", "mlp")
    n_fold = 10

    def _member(self, name: str) -> _CnasPredictor:
        return CNAS_PREDICTORS[name](search_space=self.search_space, check_rows=False)

    def _fit_raw(self, F: np.ndarray, y: np.ndarray, rng: np.random.RandomState) -> None:
        n = len(F)
        perm = rng.permutation(n)
        tau = np.full((int(self.n_fold), len(self.pool)), np.nan)
        for i, tst in enumerate(np.array_split(perm, int(self.n_fold))):
            trn = np.setdiff1d(perm, tst, assume_unique=True)
            for j, name in enumerate(self.pool):
                m = self._member(name)
                try:
                    m._fit_raw(F[trn], y[trn], rng)
                    p = m._predict_raw(F[tst])
                except (InputError, np.linalg.LinAlgError, ValueError):
                    continue  # tau stays NaN: this member cannot be fitted on this fold
                if len(tst) > 1 and np.all(np.isfinite(p)):
                    tau[i, j] = sps.kendalltau(p, y[tst]).statistic
        score = np.mean(tau, axis=0) - np.std(tau, axis=0)
        self.scores_ = dict(zip(self.pool, score.tolist(), strict=True))
        self.taus_ = tau
        w = int(np.argmax(np.where(np.isfinite(score), score, -np.inf)))
        self.winner_ = self.pool[w]
        self.model_ = self._member(self.winner_)
        self.model_._fit_raw(F, y, rng)

    def _predict_raw(self, F: np.ndarray) -> np.ndarray:
        return self.model_._predict_raw(F)


CNAS_PREDICTORS: dict[str, type[_CnasPredictor]] = {
    "rbf": CnasRBF, "gp": CnasGP, "mlp": CnasMLP, "carts": CnasCARTS, "as": CnasAS,
}


def get_cnas_predictor(name: str, **kw: Any) -> _CnasPredictor:
    """CNAS@HEAD's predictor ``name`` (``factory.py`` ``get_acc_predictor``), unfitted."""
    if name not in CNAS_PREDICTORS:
        raise InputError("predictor.variant", f"CNAS defines {list(CNAS_NAMES)}, not {name!r}")
    try:
        return CNAS_PREDICTORS[name](**kw)
    except TypeError as exc:
        raise InputError("predictor", f"bad option for CNAS's {name!r}: {exc}") from None


__all__ = ["CNAS_NAMES", "CNAS_PREDICTORS", "CnasAS", "CnasCARTS", "CnasGP", "CnasMLP", "CnasRBF", "check_rows",
           "cnas_features", "get_cnas_predictor"]
