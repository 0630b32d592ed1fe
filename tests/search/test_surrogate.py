"""The engine's surrogate: every registry predictor runs a search end to end (the default `as` crashed a search
once while each predictor passed its own unit tests), and the held-out statistics of an `as` whose winner is the
averaged ensemble are computed without refitting a name the registry does not know."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from acc_predictor import predictor_names
from search.engine import make_engine
from search.evaluator import get_evaluator
from search.spec import PREDICTORS, JobSpec, load_spec
from search.surrogate import Surrogate, make_predictor
from supernets import get_search_space
from tests.search.conftest import small_spec

SPEC_PREDICTORS = list(PREDICTORS)  # the names `predictor:` takes (short form, or PredictorSpec.name)


def test_the_spec_offers_every_registry_predictor_but_the_quadratic_one() -> None:
    assert set(SPEC_PREDICTORS) == set(predictor_names()) - {"quadratic"}
    assert JobSpec().predictor == "as"


@pytest.mark.parametrize("predictor", SPEC_PREDICTORS)
def test_every_predictor_runs_a_search(predictor: str, oracle_path: Path) -> None:
    spec = load_spec(small_spec(oracle_path, predictor=predictor, iterations=2, n_doe=12))
    eng, ev = make_engine(spec), get_evaluator(spec)
    while eng.has_next():
        stats = eng.tell([ev.evaluate(c) for c in eng.ask()])
        if stats["iteration"] > 0:
            sur = stats["surrogate"]
            assert sur["model"] == predictor and np.isfinite(sur["tau"]), sur
    assert len(eng.archive) == 12 + 2 * 3 and eng.hv() > 0


def test_cross_validating_an_ensemble_winner(oracle_path: Path) -> None:
    space = get_search_space("mobilenetv3", lr=160, ur=224, width_mult=1.2)
    rng = np.random.default_rng(0)
    X = np.array([space.encode(c) for c in space.sample(40, rng)])
    y = X[:, :45].sum(axis=1) + rng.normal(0, 1, len(X))
    sur = Surrogate("as", space, seed=0)
    sur.model_ = make_predictor("as", space, force="ensemble").fit(X, y)  # what `as` fits when the ensemble wins
    assert sur.winner == "ensemble"
    stats = sur.cross_validate(X, y, folds=3, rng=np.random.default_rng(1))
    assert all(np.isfinite(stats[k]) for k in ("rmse", "rho", "tau")) and stats["tau"] > 0.3


@pytest.mark.parametrize("predictor", ["rbf", "gp", "mlp", "carts", "as"])
def test_every_cnas_variant_runs_a_search(predictor: str, oracle_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``predictor: {name, variant: cnas}`` reaches the engine: CNAS's model predicts (and is what the statistics
    name); CNAS fits on more points than genes, so the design has 47 nets (46 genes). CNAS's MLP epochs, trees and
    folds are cut for the CPU suite."""
    from acc_predictor.cnas import CnasAS, CnasCARTS, CnasMLP

    monkeypatch.setattr(CnasMLP, "epochs", 100)
    monkeypatch.setattr(CnasCARTS, "n_tree", 100)
    monkeypatch.setattr(CnasAS, "n_fold", 3)
    spec = load_spec(small_spec(oracle_path, predictor={"name": predictor, "variant": "cnas"}, iterations=1,
                                n_doe=47, engine={"pop_size": 12, "n_gen": 3, "cv_folds": 2}))
    eng, ev = make_engine(spec), get_evaluator(spec)
    fitted: list[str] = []
    real_fit = Surrogate.fit

    def spy(self: Surrogate, X: np.ndarray, y: np.ndarray) -> Surrogate:
        out = real_fit(self, X, y)
        fitted.append(type(self.model_).__name__)
        return out

    monkeypatch.setattr(Surrogate, "fit", spy)
    while eng.has_next():
        stats = eng.tell([ev.evaluate(c) for c in eng.ask()])
        if stats["iteration"] > 0:
            sur = stats["surrogate"]
            assert sur["model"] == predictor and sur["variant"] == "cnas" and sur["n_train"] == 47, sur
            tau = sur["tau"]  # NaN (JSON null) where the held-out folds are too small for CNAS's rbf (23 < 47 points)
            assert (tau is not None and np.isfinite(tau)) or predictor in ("rbf", "as"), sur
    assert fitted and all(f.startswith("Cnas") for f in fitted), fitted
    assert len(eng.archive) == 47 + 3 and eng.hv() > 0
