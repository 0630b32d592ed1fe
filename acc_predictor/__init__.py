"""Surrogate accuracy predictors with the scikit-learn estimator API, and the factory ``get_predictor``.

Names: ``rbf`` (cubic RBF + linear tail), ``gp`` (Gaussian process), ``mlp`` (small torch MLP ensemble),
``carts`` (bagged regression trees), ``as`` (adaptive switching), ``bilinear`` (BINAS estimator),
``quadratic`` (BINAS quadratic estimator); ``variant="cnas"`` builds CNAS@HEAD's own definition of ``rbf``, ``gp``,
``mlp``, ``carts`` or ``as`` (:mod:`acc_predictor.cnas`). Every predictor takes ``search_space=None``;
``fit``/``predict`` accept integer genomes ``(N, n_var)``, and config dicts when ``search_space`` is given.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from acc_predictor.adaptive import AdaptiveSwitching
from acc_predictor.base import GenomePredictor
from acc_predictor.bilinear import BilinearPredictor, QuadraticPredictor, format_contributions
from acc_predictor.carts import CartsPredictor
from acc_predictor.cnas import CNAS_NAMES, get_cnas_predictor
from acc_predictor.gp import GPPredictor
from acc_predictor.mlp import MLPPredictor
from acc_predictor.rbf import RBFPredictor
from supernets.errors import InputError

_REGISTRY: dict[str, Callable[..., GenomePredictor]] = {
    "rbf": RBFPredictor,
    "gp": GPPredictor,
    "mlp": MLPPredictor,
    "carts": CartsPredictor,
    "as": AdaptiveSwitching,
    "bilinear": BilinearPredictor,
    "quadratic": QuadraticPredictor,
}


def register_predictor(name: str) -> Callable[[Callable[..., GenomePredictor]], Callable[..., GenomePredictor]]:
    """Decorator registering a predictor class (scikit-learn API, ``search_space`` keyword) under ``name``."""

    def deco(cls: Callable[..., GenomePredictor]) -> Callable[..., GenomePredictor]:
        _REGISTRY[name] = cls
        return cls

    return deco


def predictor_names() -> list[str]:
    """Names ``get_predictor`` accepts."""
    return sorted(_REGISTRY)


def get_predictor(name: str, variant: str = "ours", **kw: Any) -> GenomePredictor:
    """A new unfitted predictor ``name`` with hyperparameters ``kw`` (``ValueError`` for unknown names/options);
    ``variant="cnas"``: CNAS's definition of it."""
    if variant == "cnas":
        return get_cnas_predictor(name, **kw)
    if variant != "ours":
        raise InputError("predictor.variant", f"expected 'ours' or 'cnas', got {variant!r}")
    if name not in _REGISTRY:
        raise InputError("predictor", f"{name!r} is not one of {predictor_names()}")
    try:
        return _REGISTRY[name](**kw)
    except TypeError as exc:
        raise InputError("predictor", f"bad option for {name!r}: {exc}") from None


__all__ = [
    "CNAS_NAMES", "AdaptiveSwitching", "BilinearPredictor",
    "CartsPredictor", "GPPredictor", "GenomePredictor", "MLPPredictor",
    "QuadraticPredictor", "RBFPredictor", "format_contributions", "get_predictor", "predictor_names",
    "register_predictor",
]
