"""BINAS-style MILP: exact additive costs, feasibility under the exact cost model, optimality vs random search."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from search import milp
from search.evaluators.oracle import OracleEvaluator
from supernets import codec, cost
from supernets.spaces import get_search_space
from tests.conftest import shared_data_dir

W = 1.2
ORACLE = shared_data_dir() / "ofa_imagenet_predictor" / "acc_predictor.npz"


@pytest.fixture(scope="module")
def space():
    return get_search_space("mobilenetv3", lr=160, ur=224, width_mult=W)


@pytest.fixture(scope="module")
def costs(space):
    return {m: milp.cost_model(m, space.resolutions, width_mult=W) for m in ("params", "macs")}


@pytest.fixture(scope="module")
def bilinear(space, shared_data):
    """BINAS's bilinear predictor fitted on 300 configs labelled by once-for-all's ImageNet predictor."""
    import acc_predictor

    train = space.sample(300, np.random.default_rng(1))
    y = ofa_oracle(shared_data / "ofa_imagenet_predictor" / "acc_predictor.npz", train)
    model = acc_predictor.get_predictor("bilinear", search_space=space).fit(space.encode_many(train), y)
    return model


def ofa_oracle(path, configs) -> np.ndarray:
    """once-for-all's ImageNet accuracy predictor (top-1 %), through the oracle evaluator."""
    return OracleEvaluator(path).predict_top1(configs)


def _acc_model(model, space):
    return milp.additive_model(lambda cs: model.predict(space.encode_many(list(cs))), space.resolutions)



def _milp_spec(shared_data: Path, **kw: Any) -> Any:
    """A small hard-constrained oracle job solved by the MILP with the bilinear predictor."""
    from search.spec import load_spec

    oracle = shared_data / "ofa_imagenet_predictor" / "acc_predictor.npz"
    return load_spec({"width_mult": 1.2, "resolution": [160, 224], "evaluator": {"kind": "oracle", "path": str(oracle)},
                      "constraint_mode": "hard", "predictor": "bilinear", "optimizer": "milp", "n_doe": 30,
                      "n_iter": 4, "iterations": 2, **kw})

def test_cost_decomposition_is_exact(space, costs) -> None:
    cs = space.sample(2000, np.random.default_rng(0))
    m = cost.cost_metrics(cs, width_mult=W)
    for name, model in costs.items():
        np.testing.assert_array_equal(model.value(cs), m[name])
        assert model.max_error == 0.0


def test_non_additive_function_is_rejected(space, costs) -> None:
    with pytest.raises(ValueError, match="not additive"):
        milp.additive_model(lambda cs: costs["macs"].value(cs) * costs["params"].value(cs), space.resolutions)
    with pytest.raises(ValueError, match="not additive"):  # the OFA MLP oracle is not bilinear
        milp.additive_model(lambda cs: ofa_oracle(ORACLE, cs), space.resolutions)
    with pytest.raises(ValueError, match="constraints"):
        milp.cost_model("activations", space.resolutions)


def test_solver_feasible_and_beats_10000_random(space, costs, bilinear) -> None:
    acc = _acc_model(bilinear, space)
    rng = np.random.default_rng(7)
    pool = space.sample(40000, rng)
    m = cost.cost_metrics(pool, width_mult=W)
    macs_max, params_max = np.quantile(m["macs"], 0.4), np.quantile(m["params"], 0.7)
    feasible = [c for c, a, p in zip(pool, m["macs"], m["params"], strict=True) if a <= macs_max and p <= params_max]
    assert len(feasible) >= 10000
    feasible = feasible[:10000]
    sol = milp.solve(acc, {"macs": (costs["macs"], macs_max), "params": (costs["params"], params_max)})
    assert sol.status == "optimal" and sol.config is not None
    got = cost.cost_metrics([sol.config], width_mult=W)
    assert got["macs"][0] <= macs_max and got["params"][0] <= params_max
    pred = float(bilinear.predict(space.encode_many([sol.config]))[0])
    assert pred == pytest.approx(sol.value, abs=1e-9)
    rand = bilinear.predict(space.encode_many(feasible))
    assert pred >= rand.max() - 1e-12
    assert space.validate(sol.config) == sol.config
    free = milp.solve(acc)  # the constraints bind: without them the optimum is different and infeasible
    assert free.value > sol.value
    assert cost.cost_metrics([free.config], width_mult=W)["macs"][0] > macs_max


def test_exclusion_and_infeasible(space, costs, bilinear) -> None:
    acc = _acc_model(bilinear, space)
    bound = {"macs": (costs["macs"], 250e6)}
    first = milp.solve(acc, bound)
    second = milp.solve(acc, bound, exclude=[first.config])
    assert second.config is not None and second.config != first.config
    assert second.value <= first.value + 1e-12
    small = float(costs["macs"].value([{"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": 160}])[0])
    none = milp.solve(acc, {"macs": (costs["macs"], small - 1)})
    assert none.config is None and none.status == "infeasible"
    just = milp.solve(acc, {"macs": (costs["macs"], small)})
    assert just.config == codec.normalize_backbone({"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": 160})


def test_front_is_distinct_and_ordered(space, costs, bilinear) -> None:
    acc = _acc_model(bilinear, space)
    front = milp.solve_front(acc, costs["macs"], 6)
    assert len(front) == 6
    keys = {codec.config_key(s.config) for s in front}
    assert len(keys) == 6
    macs = costs["macs"].value([s.config for s in front])
    vals = [s.value for s in front]
    assert np.all(np.diff(macs) >= 0) or np.all(np.diff(vals) >= -1e-9)
    assert vals[-1] == pytest.approx(max(vals))


def test_engine_with_milp_optimizer(shared_data) -> None:
    """A whole (small) search with ``optimizer: milp`` on the OFA oracle: feasible, fresh candidates."""
    from search.engine import Engine
    from search.evaluator import get_evaluator

    spec = _milp_spec(shared_data, objectives=["top1_err", "macs"], constraints={"macs": 350e6})
    eng = Engine(spec)
    ev = get_evaluator(spec)
    keys: set[str] = set()
    it = 0
    while eng.has_next():
        cands = eng.ask()
        new = {codec.config_key(c) for c in cands}
        assert not (new & keys)  # never proposes an archived config
        keys |= new
        if it > 0:
            assert len(cands) == 4
            macs = cost.cost_metrics(cands, width_mult=W, n_classes=1000)["macs"]
            assert np.all(macs <= 350e6)
        eng.tell([ev.evaluate(c) for c in cands])
        it += 1
    assert it == 3


# ---------------------------------------------------------------------------------------------------------------
# latency from a table: additive (block sums) with an affine bias correction


@pytest.fixture(scope="module")
def note10(shared_data):
    """once-for-all's Samsung Note10 table (w1.2, one file per resolution 160..224), read by LatencyTable."""
    from supernets.latency import LatencyTable

    folder = shared_data / "latency_luts" / "note10"
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent")
    return LatencyTable.load(folder)


def test_latency_decomposition_matches_the_table(space, note10, ort_lut) -> None:
    from supernets.latency import LatencyTable

    cs = space.sample(2000, np.random.default_rng(5))
    lat = milp.latency_model(note10, space.resolutions, width_mult=W)
    np.testing.assert_allclose(lat.value(cs), note10.predict(cs), rtol=1e-10)
    np.testing.assert_array_equal(lat.exact(cs), note10.predict(cs))
    # a table built here carries a fitted bias correction (scale * block sum + offset): still additive
    ort = LatencyTable.load(ort_lut)
    assert ort.correction is not None and ort.correction["offset_ms"] != 0.0
    c160 = get_search_space("mobilenetv3", lr=160, ur=160, width_mult=W).sample(2000, np.random.default_rng(6))
    corrected = milp.latency_model(ort, [160], width_mult=W)
    np.testing.assert_allclose(corrected.value(c160), ort.predict(c160), rtol=1e-10)
    assert not np.allclose(ort.predict(c160), ort.predict(c160, raw=True))
    with pytest.raises(ValueError, match="latency_table"):  # the table has no r=228 entries
        milp.latency_model(note10, [224, 228])
    with pytest.raises(ValueError, match="latency_table"):  # a width-1.2 table for a width-1.0 search
        milp.latency_model(note10, [160], width_mult=1.0)
    with pytest.raises(ValueError, match="latency_table: the function is not additive"):
        milp.latency_model(lambda cs: note10.predict(cs) ** 2, [160])


@pytest.mark.parametrize("table", ["note10", "ort"])
def test_solver_latency_bound_feasible_and_beats_10000_random(table, space, costs, bilinear, note10, ort_lut) -> None:
    """The MILP under a latency bound (and a MACs bound): within both by LatencyTable.predict and the exact cost
    model, and no worse under the bilinear predictor than any of 10,000 random configs within both."""
    from supernets.latency import LatencyTable

    if table == "note10":
        lut, sp = note10, space  # 17 resolutions, no correction
    else:
        lut, sp = LatencyTable.load(ort_lut), get_search_space("mobilenetv3", lr=160, ur=160, width_mult=W)
    lat = milp.latency_model(lut, sp.resolutions, width_mult=W)
    acc = milp.additive_model(lambda cs: bilinear.predict(space.encode_many(list(cs))), sp.resolutions)
    pool = sp.sample(50000, np.random.default_rng(8))
    ms = lut.predict(pool)
    macs = cost.cost_metrics(pool, width_mult=W)["macs"]
    ms_max, macs_max = float(np.quantile(ms, 0.35)), float(np.quantile(macs, 0.9))
    feasible = [c for c, t, m in zip(pool, ms, macs, strict=True) if t <= ms_max and m <= macs_max]
    assert len(feasible) >= 10000
    feasible = feasible[:10000]
    sol = milp.solve(acc, {"latency_ms": (lat, ms_max), "macs": (costs["macs"], macs_max)})
    assert sol.status == "optimal" and sol.config is not None
    assert float(lut.predict([sol.config])[0]) <= ms_max
    assert float(cost.cost_metrics([sol.config], width_mult=W)["macs"][0]) <= macs_max
    pred = float(bilinear.predict(space.encode_many([sol.config]))[0])
    assert pred == pytest.approx(sol.value, abs=1e-9)
    assert pred >= bilinear.predict(space.encode_many(feasible)).max() - 1e-12
    free = milp.solve(acc, {"macs": (costs["macs"], macs_max)})  # the latency bound binds
    assert free.value > sol.value and float(lut.predict([free.config])[0]) > ms_max


def test_solution_over_a_bound_by_rounding_is_cut_off(space, costs, bilinear) -> None:
    """A bound exactly at a config's cost, checked with the constraint's own function: never exceeded."""
    acc = _acc_model(bilinear, space)
    first = milp.solve(acc)
    macs = costs["macs"]
    at = float(macs.value([first.config])[0])
    # the model claims 1 MAC less than the exact cost model for every config: the rows accept the optimum, the
    # check with the exact function (fn) rejects it, and the solver returns the best config strictly below
    shifted = milp.AdditiveModel(macs.resolutions, macs.base - 1.0, macs.depth, macs.op, fn=macs.fn)
    sol = milp.solve(acc, {"macs": (shifted, at - 0.5)})
    assert sol.config is not None and sol.config != first.config
    assert float(cost.cost_metrics([sol.config], width_mult=W)["macs"][0]) <= at - 0.5


def test_engine_milp_with_latency(shared_data, note10) -> None:
    """``optimizer: milp`` with a latency objective and a latency_ms bound (note10 table): every proposal fits."""
    from search.engine import Engine
    from search.evaluator import get_evaluator

    folder = shared_data / "latency_luts" / "note10"
    spec = _milp_spec(shared_data, objectives=["top1_err", "latency"], latency_table=str(folder),
                      constraints={"latency_ms": 30.0})
    eng = Engine(spec)
    ev = get_evaluator(spec)
    it = 0
    while eng.has_next():
        cands = eng.ask()
        if it > 0:
            assert len(cands) == 4
            assert np.all(note10.predict(cands) <= 30.0)
        eng.tell([ev.evaluate(c) for c in cands])
        it += 1
    assert it == 3
