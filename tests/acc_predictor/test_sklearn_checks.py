"""scikit-learn's estimator checks over the registry (generic float data: the encoders' generic layout).

Expected failures: none at present. Checks run on small, fast settings of each model (see ``FAST``).
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from sklearn.utils.estimator_checks import parametrize_with_checks

from acc_predictor import get_predictor, predictor_names

torch.set_num_threads(1)
pytestmark = pytest.mark.slow  # ~360 checks; about a minute on an idle core

FAST: dict[str, dict[str, Any]] = {"mlp": {"max_epochs": 60, "n_models": 2}, "carts": {"n_trees": 10},
        "as": {"members": ("bilinear", "rbf"), "n_folds": 2}}
ESTIMATORS = [get_predictor(n, **FAST.get(n, {})) for n in predictor_names()]
EXPECTED_FAILED: dict[str, dict[str, str]] = {}


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=lambda est: EXPECTED_FAILED.get(type(est).__name__, {}))
def test_sklearn_compatible(estimator, check):
    check(estimator)
