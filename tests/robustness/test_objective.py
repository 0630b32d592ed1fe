"""top1_robust: the formula, alpha_norm re-estimation, and re-scoring that never touches stored raw values."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from robustness.objective import (
    estimate_alpha_norm,
    raw_values,
    rescore,
    rescored_records,
    top1_robust,
)


def _archive() -> list[dict]:
    return [
        {"key": "a", "status": "ok", "metrics": {"top1": 90.0, "robustness": 2.0}, "objectives": [10.0, 0.0]},
        {"key": "b", "status": "ok", "metrics": {"top1": 80.0, "robustness": 1.0}, "objectives": [20.0, 0.0]},
        {"key": "c", "status": "failed", "metrics": {}, "objectives": [100.0, math.inf], "error": "oom"},
        {"key": "d", "status": "ok", "metrics": {"top1_err": 30.0, "robustness": 3.0}, "objectives": [30.0, 0.0]},
    ]


def test_formula_and_alpha_norm() -> None:
    assert estimate_alpha_norm([10, 20, 30], [2, 1, 3]) == pytest.approx(20 / 2)
    assert top1_robust(10.0, 2.0, alpha=0.5, alpha_norm=10.0) == pytest.approx(0.5 * 10 + 10 * 0.5 * 2)
    assert top1_robust(10.0, 2.0, alpha=1.0, alpha_norm=10.0) == pytest.approx(10.0)  # alpha 1: plain error
    v = top1_robust(np.array([10.0, 20.0]), np.array([2.0, 1.0]), alpha=0.25, alpha_norm=4.0)
    assert np.allclose(v, [0.25 * 10 + 4 * 0.75 * 2, 0.25 * 20 + 4 * 0.75 * 1])


def test_alpha_norm_degenerate_cases() -> None:
    assert estimate_alpha_norm([], []) == 1.0
    assert estimate_alpha_norm([10.0, 20.0], [0.0, 0.0]) == 1.0  # R all zero: term vanishes anyway
    assert estimate_alpha_norm([10.0, float("nan")], [2.0, 5.0]) == pytest.approx(5.0)  # non-finite pair ignored
    assert estimate_alpha_norm([50.0], [5e-324]) == 1.0  # ratio overflows: R is zero in effect (found by hypothesis)
    with pytest.raises(ValueError, match="r:"):
        estimate_alpha_norm([1.0, 2.0], [1.0])


def test_rescore_is_pure_and_scores_failures_worst() -> None:
    archive = _archive()
    snapshot = copy.deepcopy(archive)
    res = rescore(archive, alpha=0.5)
    assert res.alpha_norm == pytest.approx(20.0 / 2.0) and res.n_used == 3
    assert res.values[0] == pytest.approx(0.5 * 10 + 10 * 0.5 * 2)
    assert res.values[2] == math.inf
    assert archive == snapshot


def test_rescoring_as_the_archive_grows_leaves_raw_values_untouched() -> None:
    archive = _archive()[:2]
    snapshot = copy.deepcopy(archive)
    new1, n1 = rescored_records(archive, alpha=0.5)
    assert archive == snapshot  # inputs never mutated
    archive_grown = new1 + [
        {"key": "e", "status": "ok", "metrics": {"top1": 50.0, "robustness": 0.5}, "objectives": [50.0, 0.0]}
    ]
    new2, n2 = rescored_records(archive_grown, alpha=0.5)
    assert n2 != n1  # alpha_norm moved with the archive ...
    assert new2[0]["objectives"][1] != new1[0]["objectives"][1]  # ... so stored objectives were re-scored
    for before, after in zip(snapshot, new2, strict=False):  # ... but the raw measurements are the same
        assert after["metrics"]["top1"] == before["metrics"]["top1"]
        assert after["metrics"]["robustness"] == before["metrics"]["robustness"]
        assert after["objectives"][0] == before["objectives"][0]
    # re-scoring from the re-scored records equals re-scoring from the originals (no drift)
    again, n3 = rescored_records(new2, alpha=0.5)
    assert n3 == n2 and [r["objectives"] for r in again] == [r["objectives"] for r in new2]
    assert new2[0]["metrics"]["top1_robust"] == new2[0]["objectives"][1]


def test_failed_records_keep_their_objectives() -> None:
    new, _ = rescored_records(_archive(), alpha=0.5)
    assert new[2]["objectives"] == [100.0, math.inf]
    assert raw_values(_archive()[2]) is None
    assert raw_values({"top1": 75.0, "robustness": 1.5}) == (25.0, 1.5)  # a bare metrics dict works too


@pytest.mark.parametrize("alpha", [-0.1, 1.5, float("nan"), "0.5", True])
def test_bad_alpha_names_the_field(alpha) -> None:
    with pytest.raises(ValueError, match="alpha"):
        rescore(_archive(), alpha=alpha)


@settings(max_examples=50, deadline=None)
@given(
    # R is 0 or resolves at least 100/N points (no subnormal means)
    st.lists(st.tuples(st.floats(0, 100), st.one_of(st.just(0.0), st.floats(1e-6, 50))), min_size=1, max_size=30),
    st.floats(0, 1),
)
def test_property_alpha_norm_balances_the_means(pairs, alpha) -> None:
    err = [p[0] for p in pairs]
    r = [p[1] for p in pairs]
    n = estimate_alpha_norm(err, r)
    recs = [{"metrics": {"top1_err": e, "robustness": x}} for e, x in pairs]
    vals = rescore(recs, alpha=alpha).values
    if np.mean(r) > 0:
        # the R term has the same mean as the error term after normalisation
        assert np.mean(n * np.array(r)) == pytest.approx(np.mean(err), rel=1e-9, abs=1e-9)
    assert np.allclose(vals, [alpha * e + n * (1 - alpha) * x for e, x in pairs])
    assert all(v >= 0 for v in vals)
