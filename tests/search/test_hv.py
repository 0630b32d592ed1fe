"""Hypervolume helpers: pymoo's indicator in the normalised box, and the fast exact 2-D gains."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from search.hv import cnas_ref_point, hv2d, hv2d_gains, hv_cnas, hypervolume, rank_order


def test_hypervolume_known_values() -> None:
    assert hypervolume(np.array([[1.0, 1.0]]), [2.0, 2.0]) == pytest.approx(0.25)
    assert hypervolume(np.array([[0.0, 1.0], [1.0, 0.0]]), [2.0, 2.0]) == pytest.approx(0.75)
    assert hypervolume(np.array([[3.0, 1.0]]), [2.0, 2.0]) == 0.0  # outside the reference box
    assert hypervolume(np.zeros((0, 2)), [1.0, 1.0]) == 0.0
    assert hypervolume(np.array([[0.5], [0.2]]), [1.0]) == pytest.approx(0.8)  # single objective


def test_fast_2d_gains_equal_pymoo() -> None:
    rng = np.random.default_rng(0)
    for _ in range(30):
        P = rng.random((int(rng.integers(0, 15)), 2))
        C = rng.random((20, 2)) * 1.1
        base = hypervolume(P, [1.0, 1.0]) if len(P) else 0.0
        want = [hypervolume(np.vstack([P, c[None]]), [1.0, 1.0]) - base for c in C]
        assert np.allclose(hv2d_gains(P, C), want, atol=1e-12)
        if len(P):
            assert hv2d(P) == pytest.approx(base)


def test_rank_order_is_feasible_first() -> None:
    F = np.array([[1.0, 1.0], [0.0, 0.0], [2.0, 0.5], [0.5, 2.0]])
    cv = np.array([0.0, 0.3, 0.0, 0.0])
    order = rank_order(F, cv)
    assert order[-1] == 1  # the infeasible point is last although it dominates everything
    assert set(order[:3]) == {0, 2, 3}


def test_hv_cnas_reproduces_cnas_own_hv_on_its_real_record(shared_data: Path) -> None:
    """CNAS's iter_30.stats records hv 0.3166552104974714; its reference point comes from the initial design (the
    first n_doe = 100 rows of the archive, in CNAS's append order)."""
    doc = json.loads((shared_data / "cnas_cifar10" / "iter_30.stats").read_text())
    F = np.array([row[1:3] for row in doc["archive"]], dtype=np.float64)
    assert hv_cnas(F, F[:100]) == pytest.approx(doc["hv"], rel=1e-12)
    assert cnas_ref_point(F[:100]) == pytest.approx(1.01 * F[:100].max(axis=0))
    # a different reference point gives a different figure: the test can fail
    assert abs(hv_cnas(F, F[:100] * 1.2) - doc["hv"]) > 1e-3
    assert hv_cnas(np.zeros((0, 2)), F[:100]) == 0.0
    with pytest.raises(ValueError):
        cnas_ref_point(np.zeros((0, 2)))


def test_engine_reports_hv_cnas_on_a_cnas_warm_start(shared_data: Path, oracle_path: Path) -> None:
    """Warm-started from CNAS's archive with CNAS's objectives (top-1 error, params with the 10-class head), the
    engine's ``hv_cnas`` statistic is CNAS's own figure (params recomputed exactly: the records' 2-decimal
    rounding moves it by < 1e-3)."""
    from search.engine import make_engine
    from search.io import read_stats, records_from_stats
    from search.spec import JobSpec
    from tests.search.conftest import small_spec

    spec = JobSpec.model_validate(
        small_spec(oracle_path, width_mult=1.0, resolution=[192, 256], objectives=["top1_err", "params"],
                   dataset={"name": "cifar10", "root": "/nonexistent", "n_classes": 10}, iterations=31)
    )
    doc = read_stats(shared_data / "cnas_cifar10" / "iter_30.stats")
    eng = make_engine(spec)
    eng.load_archive([{"config": r["config"], "metrics": r["metrics"]} for r in records_from_stats(doc)], 30)
    stats = eng.history[-1]
    assert stats["hv_cnas"] == pytest.approx(doc["hv"], abs=1e-3)
    assert stats["hv_cnas"] == pytest.approx(eng.hv_cnas())
    assert stats["hv"] != pytest.approx(stats["hv_cnas"], abs=1e-2)  # ours: the fixed reference point
