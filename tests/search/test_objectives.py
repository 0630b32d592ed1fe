"""Objectives and constraints: units, CNAS's tiny_ml penalty (checked on a real CNAS run), hard-mode G."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from search.objectives import OBJECTIVES, Objectives
from search.spec import SECOND_OBJECTIVES, load_spec
from tests.search.conftest import small_spec


def _obj(oracle: Path, **kw: object) -> Objectives:
    return Objectives(load_spec(small_spec(oracle, **kw)))


def test_registry_covers_the_spec() -> None:
    assert set(SECOND_OBJECTIVES) | {"top1_err"} <= set(OBJECTIVES)


def test_tiny_ml_reproduces_a_real_cnas_run(shared_data: Path, oracle_path: Path) -> None:
    """CNAS's tinyml run (pmax 3 M, mmax 200 M, amax 5 M, weights 1, 1/40, 1, factor 1e10): obj2 to the float."""
    rows = list(csv.DictReader((shared_data / "cnas_cifar10" / "cnas_msunas_c10_r192-256_tinyml.csv").open()))
    obj = _obj(
        oracle_path, objectives=["top1_err", "tiny_ml"], constraints={"params": 3e6, "macs": 200e6, "activations": 5e6}
    )
    costs = {
        "params": np.array([float(r["params_M"]) for r in rows]) * 1e6,
        "macs": np.array([float(r["macs_or_flops_M"]) for r in rows]) * 1e6,
        "activations": np.array([float(r["activations"]) for r in rows]) * 1e6,
    }
    f2 = obj.second_objective(costs, {})
    want = np.array([float(r["obj2"]) for r in rows])
    assert np.allclose(f2, want, rtol=1e-9)
    assert (f2 > 1e9).sum() > 100  # most of that run violated a limit: the penalty is not vacuous


def test_tiny_ml_defaults_and_penalty_on_other_objectives(oracle_path: Path) -> None:
    obj = _obj(oracle_path, objectives=["top1_err", "tiny_ml"])
    costs = {"params": np.array([1.5e6, 2.5e6]), "macs": np.array([80e6, 80e6]), "activations": np.array([4e6, 4e6])}
    f2 = obj.second_objective(costs, {})
    assert f2[0] == pytest.approx(1.5 + 80 / 40 + 4)  # within pmax 2 M, amax 5 M
    assert f2[1] == pytest.approx(2.5 + 2 + 4 + 1e10 * 0.5)
    # CNAS's --mmax default is 10**10 M: no MACs cap unless the spec gives one
    big = {"params": np.array([1.5e6]), "macs": np.array([5e9]), "activations": np.array([4e6])}
    assert obj.second_objective(big, {})[0] == pytest.approx(1.5 + 5000 / 40 + 4)
    capped = _obj(oracle_path, objectives=["top1_err", "tiny_ml"], constraints={"macs": 100e6})
    assert capped.second_objective(big, {})[0] == pytest.approx(1.5 + (5000 + 1e10 * 4900) / 40 + 4)
    obj = _obj(oracle_path, constraints={"macs": 100e6}, penalty={"factor": 10.0, "weights": {"macs": 0.5}})
    costs["macs"] = np.array([90e6, 130e6])
    assert np.allclose(obj.second_objective(costs, {}), [90.0, 130.0 + 10 * 0.5 * 30])


def test_hard_constraints_are_relative_and_feasible_at_most_zero(oracle_path: Path) -> None:
    obj = _obj(oracle_path, constraint_mode="hard", constraints={"macs": 200e6, "params": 5e6})
    assert obj.n_constr == 2 and obj.constraint_keys == ["macs", "params"]
    costs = {"macs": np.array([100e6, 200e6, 300e6]), "params": np.array([5e6, 1e6, 1e6])}
    G = obj.constraint_values(costs, {})
    assert np.allclose(G, [[-0.5, 0.0], [0.0, -0.8], [0.5, -0.8]])
    assert list(obj.violation(costs, {}) > 0) == [False, False, True]
    F, G2 = obj.evaluate(np.array([80.0, 70.0, 60.0]), costs, {})
    assert np.allclose(F, [[20, 100], [30, 200], [40, 300]])  # no penalty in hard mode, MACs in millions
    assert G2.shape == (3, 2)


def test_units_of_second_objectives(oracle_path: Path) -> None:
    costs = {k: np.array([3e6]) for k in ("params", "macs", "activations", "peak_activation")}
    for name in ("params", "macs", "activations", "peak_activation"):
        assert _obj(oracle_path, objectives=["top1_err", name]).second_objective(costs, {})[0] == pytest.approx(3.0)
    robust = Objectives(load_spec(small_spec(oracle_path, objectives=["top1_err", "top1_robust"])))
    robust.alpha_norm = 4.0  # FlatNAS: 0.5 * top1_err + alpha_norm * 0.5 * R
    f2 = robust.second_objective(costs, {"robustness": np.array([2.0])}, f1=np.array([30.0]))
    assert f2[0] == pytest.approx(0.5 * 30.0 + 4.0 * 0.5 * 2.0)
    assert robust.needs_metric_prediction() == ["robustness"]


def test_reference_point_uses_the_largest_network(oracle_path: Path) -> None:
    from search.objectives import exact_costs
    from supernets import get_search_space

    obj = _obj(oracle_path)
    sp = get_search_space("mobilenetv3", lr=160, ur=224, width_mult=1.2)
    largest = sp.decode(sp.xu)
    ref = obj.reference_point(largest)
    assert ref[0] == 100.0
    assert ref[1] == pytest.approx(1.01 * exact_costs([largest], 1.2, 1000)["macs"][0] / 1e6)
    configs = sp.sample(50, np.random.default_rng(0))
    assert (exact_costs(configs, 1.2, 1000)["macs"] / 1e6 < ref[1]).all()


def test_bad_objectives_and_constraints_are_named(oracle_path: Path) -> None:
    with pytest.raises(ValueError, match="objectives"):
        load_spec(small_spec(oracle_path, objectives=["top1_err", "flops"]))
    with pytest.raises(ValueError, match="bogus"):
        load_spec(small_spec(oracle_path, constraints={"bogus": 1.0}))
    with pytest.raises(ValueError, match="latency_table"):
        load_spec(small_spec(oracle_path, objectives=["top1_err", "latency"]))
    with pytest.raises(ValueError, match="engine.operators"):
        load_spec(json.loads(json.dumps(small_spec(oracle_path, engine={"operators": "magic"}))))


def test_constraint_lines_are_in_the_objective_unit() -> None:
    from search.objectives import constraint_lines

    cons = {"params": 2.5e6, "macs": 100e6, "latency_ms": 12.0, "activations": 5e6}
    assert constraint_lines(["top1_err", "macs"], cons) == [
        {"axis": 1, "objective": "macs", "constraint": "macs", "value": 100.0}]
    assert constraint_lines(["top1_err", "latency"], cons)[0]["value"] == 12.0
    assert constraint_lines(["top1_err", "tiny_ml"], cons) == []  # no single bound on a weighted penalty
    assert constraint_lines(["top1_err", "params"], {}) == [] and constraint_lines(["top1_err"], None) == []
