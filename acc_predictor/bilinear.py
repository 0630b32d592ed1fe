"""BINAS's interpretable accuracy estimator (bilinear) and its quadratic extension, fitted in closed form.

Bilinear (BINAS, Nayman et al. 2022): with ``beta[s, b]`` the one-hot of stage ``s``'s depth and
``alpha[s, j, c]`` the one-hot of layer ``j``'s operator ``c`` (a kernel/expand pair, 9 per layer)::

    acc = A0 + sum_s sum_b beta[s, b] * (D[s, b] + sum_{j < b} sum_c alpha[s, j, c] * D[s, j, c]) + res terms

which is bilinear in (alpha, beta) and linear in the features ``beta`` and ``alpha[s, j, c] * [j < depth_s]``
(an operator counts only on layers the depth keeps). It is fitted by ridge least squares in closed form, the
ridge strength picked by exact leave-one-out error over a grid (the SVD gives every LOO residual at once).

After fitting, ``contributions_`` holds the per-choice effects in *reference coding* (the same predictions):
``base`` is the predicted accuracy of the smallest network (depth 2 everywhere, k3/e3 layers, lowest
resolution); ``depth[s, b]`` the gain of depth ``(2, 3, 4)[b]`` over 2 in stage ``s`` (with k3/e3 layers);
``op[slot, c]`` the gain of operator ``c`` over k3/e3 on an active layer; ``extra[g][v]`` the gain of value ``v``
of a non-backbone gene (the resolution) over its first value. :func:`format_contributions` prints them.

Quadratic: kernel ridge with the degree-2 polynomial kernel on the same features (all pairwise interactions of
choices, BINAS's quadratic estimator) -- closed form in the dual, ridge strength by exact LOO as well.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.utils.validation import check_is_fitted

from acc_predictor.base import GenomePredictor
from acc_predictor.features import active_mask, split_backbone
from supernets import codec
from supernets.errors import InputError

OPS = [(k, e) for k in codec.KERNELS for e in codec.EXPANDS]
N_OPS = len(OPS)
ALPHAS = np.logspace(-3, 3, 13)


def bilinear_features(G: np.ndarray) -> np.ndarray:
    """BINAS features of MobileNetV3 genomes: depth one-hot (5x3) and masked operator one-hot (20x9)."""
    d, k, e = split_backbone(G)
    act = active_mask(G)
    depth = (d[..., None] == np.arange(3)).astype(np.float64).reshape(len(G), -1)
    op = k * len(codec.EXPANDS) + e
    ops = ((op[..., None] == np.arange(N_OPS)) & act[..., None]).astype(np.float64).reshape(len(G), -1)
    return np.hstack([depth, ops])


def ridge_loo(X: np.ndarray, y: np.ndarray, alphas: np.ndarray = ALPHAS) -> tuple[np.ndarray, float, float, float]:
    """Ridge with an unpenalised intercept, ``alpha`` chosen by exact leave-one-out MSE.

    Returns ``(coef, intercept, alpha, loo_mse)``.
    """
    n = len(X)
    xm, ym = X.mean(0), float(y.mean())
    Xc, yc = X - xm, y - ym
    U, s, Vt = np.linalg.svd(Xc, full_matrices=False)
    Uy = U.T @ yc
    U2 = U**2
    best = (np.inf, float(alphas[0]))
    for a in alphas:
        f = s**2 / (s**2 + a)
        resid = yc - U @ (f * Uy)
        h = U2 @ f + 1.0 / n
        loo = resid / np.maximum(1.0 - h, 1e-9)
        mse = float(np.mean(loo**2))
        if mse < best[0]:
            best = (mse, float(a))
    a = best[1]
    coef = Vt.T @ (s / (s**2 + a) * Uy)
    return coef, ym - float(xm @ coef), a, best[0]


class _ChoiceFeatures(GenomePredictor):
    """Shared feature construction: BINAS features on the MobileNetV3 layout, one-hot genes otherwise."""

    _default_encoding = "onehot"

    def _choice_features(self, G: np.ndarray) -> np.ndarray:
        rest = self.encoder_.transform(G, backbone=False)  # non-backbone genes, or all genes (generic layout)
        if self.layout_ == "mobilenetv3":
            return np.hstack([bilinear_features(G), rest])
        return rest

    def fit(self, X: Any, y: Any) -> _ChoiceFeatures:
        """Fit on genomes (or configs, with ``search_space``) and targets."""
        return super().fit(X, y)  # type: ignore[return-value]

    def _fit(self, F: np.ndarray, y: np.ndarray) -> None:
        self._fit_choices(self._choice_features(self._fit_genomes), y)

    def _predict_scaled(self, G: np.ndarray) -> np.ndarray:
        return self._predict_choices(self._choice_features(G))

    def _fit_choices(self, Z: np.ndarray, y: np.ndarray) -> None:
        raise NotImplementedError

    def _predict_choices(self, Z: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class BilinearPredictor(_ChoiceFeatures):
    """BINAS bilinear estimator (closed-form ridge, LOO-chosen strength); see ``contributions_``."""

    def __init__(self, search_space: Any = None, encoding: str = "auto", mask_inactive: bool = True,
                 alphas: Any = None) -> None:
        self.search_space = search_space
        self.encoding = encoding
        self.mask_inactive = mask_inactive
        self.alphas = alphas

    def _fit_choices(self, Z: np.ndarray, y: np.ndarray) -> None:
        alphas = ALPHAS if self.alphas is None else np.atleast_1d(np.asarray(self.alphas, dtype=np.float64))
        if len(alphas) == 0 or np.any(~np.isfinite(alphas)) or np.any(alphas <= 0):
            raise InputError("alphas", f"expected positive finite ridge strengths, got {self.alphas!r}")
        self.coef_, self.intercept_, self.alpha_, self.loo_mse_ = ridge_loo(Z, y, alphas)
        self.contributions_ = self._contributions() if self.layout_ == "mobilenetv3" else None

    def _predict_choices(self, Z: np.ndarray) -> np.ndarray:
        return Z @ self.coef_ + self.intercept_

    def _contributions(self) -> dict[str, Any]:
        """Re-express the coefficients in reference coding (target units); predictions are unchanged."""
        sc = self.y_scale_
        n_depth = codec.N_STAGES * 3
        depth = self.coef_[:n_depth].reshape(codec.N_STAGES, 3).copy()
        op = self.coef_[n_depth : n_depth + codec.N_SLOTS * N_OPS].reshape(codec.N_SLOTS, N_OPS).copy()
        base = self.intercept_
        for slot in range(codec.N_SLOTS):
            s, j = divmod(slot, codec.MAX_DEPTH)
            ref = op[slot, 0]
            op[slot] -= ref
            if j < codec.DEPTHS[0]:
                base += ref  # layers 1-2 exist in every network
            else:
                depth[s, [b for b, dv in enumerate(codec.DEPTHS) if dv > j]] += ref
        base += depth[:, 0].sum()
        depth -= depth[:, :1]
        extra: dict[str, dict[str, float]] = {}
        rest = self.coef_[n_depth + codec.N_SLOTS * N_OPS :]
        enc = self.encoder_
        pos = 0
        n_rest = len(enc.cats_)
        if enc.encoding in ("int", "both"):  # numeric columns of extra genes: linear effect per unit of the index
            for g in range(n_rest):
                extra[f"gene{enc.start_ + g}_per_step"] = {"slope": float(rest[pos] / enc.span_[g] * sc)}
                pos += 1
        if enc.encoding in ("onehot", "both"):
            for g, cats in enumerate(enc.cats_):
                name = self._extra_name(enc.start_ + g)
                if cats is None:
                    if enc.encoding == "onehot":
                        pos += 1
                    continue
                vals = rest[pos : pos + len(cats)]
                pos += len(cats)
                base += vals[0]
                extra[name] = {self._extra_value(enc.start_ + g, c): float((v - vals[0]) * sc)
                               for c, v in zip(cats, vals, strict=True)}
        min_extra = {name: next(iter(vals)) for name, vals in extra.items() if not name.endswith("_per_step")}
        return {
            "base": float(base * sc + self.y_mean_),
            "base_config": {"d": [codec.DEPTHS[0]] * codec.N_STAGES, "ks": 3, "e": 3, **min_extra},
            "depth": depth * sc,
            "depth_values": list(codec.DEPTHS),
            "op": op * sc,
            "op_labels": [f"k{k}e{e}" for k, e in OPS],
            "extra": extra,
        }

    def _extra_name(self, gene: int) -> str:
        if gene == codec.N_BACKBONE_GENES and self._space_resolutions() is not None:
            return "r"
        return f"gene{gene}"

    def _extra_value(self, gene: int, c: float) -> str:
        res = self._space_resolutions()
        if gene == codec.N_BACKBONE_GENES and res is not None and 0 <= int(c) < len(res):
            return str(res[int(c)])
        return str(int(c)) if float(c).is_integer() else str(c)

    def _space_resolutions(self) -> list[int] | None:
        res = getattr(self.search_space, "resolutions", None)
        return list(res) if res is not None and len(res) > 1 else None

    def contributions_table(self) -> str:
        """The fitted per-choice contributions as a text table (see :func:`format_contributions`)."""
        return format_contributions(self)


def format_contributions(model: BilinearPredictor, digits: int = 3) -> str:
    """Text tables of a fitted bilinear model's contributions: base, depth gains, operator gains, extras."""
    check_is_fitted(model, "coef_")
    c = model.contributions_
    if c is None:
        raise InputError("model", "contributions need the MobileNetV3 genome layout (fit on its genomes)")
    f = f"{{:+.{digits}f}}"
    lines = [f"base accuracy (depth 2 everywhere, k3 e3 layers, first value of other genes): {c['base']:.{digits}f}",
             "", "depth gain over 2 layers (with k3 e3 layers)", "stage   " + "  ".join(f"d={v:<6}" for v in
                                                                                       c["depth_values"])]
    for s in range(codec.N_STAGES):
        lines.append(f"{s + 1:<7} " + "  ".join(f"{f.format(v):<8}" for v in c["depth"][s]))
    lines += ["", "operator gain over k3e3 on an active layer (stage.layer)",
              "layer   " + " ".join(f"{lab:>7}" for lab in c["op_labels"])]
    for slot in range(codec.N_SLOTS):
        s, j = divmod(slot, codec.MAX_DEPTH)
        lines.append(f"{s + 1}.{j + 1:<5} " + " ".join(f"{f.format(v):>7}" for v in c["op"][slot]))
    for name, vals in c["extra"].items():
        lines += ["", f"{name}: gain over its first value" if not name.endswith("_per_step") else name,
                  "  ".join(f"{k}: {f.format(v)}" for k, v in vals.items())]
    return "\n".join(lines)


class QuadraticPredictor(_ChoiceFeatures):
    """BINAS quadratic estimator: kernel ridge, kernel ``(1 + z.z'/m)^2`` on the bilinear features."""

    def __init__(self, search_space: Any = None, encoding: str = "auto", mask_inactive: bool = True,
                 alphas: Any = None) -> None:
        self.search_space = search_space
        self.encoding = encoding
        self.mask_inactive = mask_inactive
        self.alphas = alphas

    def _kernel(self, A: np.ndarray, B: np.ndarray) -> np.ndarray:
        return (1.0 + (A @ B.T) / self.kscale_) ** 2

    def _fit_choices(self, Z: np.ndarray, y: np.ndarray) -> None:
        alphas = ALPHAS if self.alphas is None else np.atleast_1d(np.asarray(self.alphas, dtype=np.float64))
        if len(alphas) == 0 or np.any(~np.isfinite(alphas)) or np.any(alphas <= 0):
            raise InputError("alphas", f"expected positive finite ridge strengths, got {self.alphas!r}")
        self.kscale_ = max(float(np.mean(np.sum(Z * Z, axis=1))), 1e-12)
        K = self._kernel(Z, Z)
        lam, Q = np.linalg.eigh(K)
        lam = np.maximum(lam, 0.0)
        Qy = Q.T @ y
        best = (np.inf, float(alphas[0]))
        for a in alphas:
            f = lam / (lam + a)
            resid = y - Q @ (f * Qy)
            h = (Q**2) @ f
            mse = float(np.mean((resid / np.maximum(1.0 - h, 1e-9)) ** 2))
            if mse < best[0]:
                best = (mse, float(a))
        self.alpha_, self.loo_mse_ = best[1], best[0]
        self.dual_coef_ = Q @ (Qy / (lam + self.alpha_))
        self.Z_ = Z

    def _predict_choices(self, Z: np.ndarray) -> np.ndarray:
        out = np.empty(len(Z))
        for s in range(0, len(Z), 4096):
            out[s : s + 4096] = self._kernel(Z[s : s + 4096], self.Z_) @ self.dual_coef_
        return out
