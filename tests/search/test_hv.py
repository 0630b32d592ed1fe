"""Hypervolume helpers: pymoo's indicator in the normalised box, and the fast exact 2-D gains."""

from __future__ import annotations

import numpy as np
import pytest

from search.hv import hv2d, hv2d_gains, hypervolume, rank_order


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
