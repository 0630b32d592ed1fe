"""The gradient engine (HardCoRe-NAS / TF-NAS over the OFA supernet) on digits with tiny budgets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from search.engine import Engine, make_engine
from search.engine_gradient import GradientEngine, LatencyModel, fw_oracle
from search.spec import load_spec
from supernets.errors import InputError
from supernets.latency import LatencyTable, build_table

torch.set_num_threads(1)
R = 32


@pytest.fixture(scope="module")
def lut(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A latency table measured here (ONNX Runtime CPU, w1.0, 10 classes, r 32, thread CPU time)."""
    out = tmp_path_factory.mktemp("lut") / "lut32.json"
    build_table(out, device="onnxruntime-cpu", width_mult=1.0, resolutions=[R], n_classes=10, clock="cpu",
                repeat=2, warmup=1, calibrate=0, progress=False)
    return out


def _spec(lut: Path, method: str = "hardcore", limit: float | None = None, **eng: Any) -> dict[str, Any]:
    table = LatencyTable.load(lut)
    lo, hi = table.predict([{"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": R},
                            {"ks": [7] * 20, "e": [6] * 20, "d": [4] * 5, "r": R}])
    limit = limit if limit is not None else float(lo + 0.3 * (hi - lo))
    return {
        "dataset": {"name": "digits", "vld_size": 64}, "resolution": [R, R], "supernet": {"random_init": True},
        "evaluator": {"kind": "supernet", "n_epochs": 0, "batch_size": 32, "bn_calib_images": 64},
        "objectives": ["top1_err", "latency"], "latency_table": str(lut), "constraints": {"latency_ms": limit},
        "constraint_mode": "hard", "seed": 1,
        "engine": {"kind": "gradient", "method": method, "steps": 4, "batch_size": 32, "lr": 0.2, **eng},
    }


def test_expected_latency_gradient_matches_finite_differences(lut: Path) -> None:
    lat = LatencyModel(LatencyTable.load(lut), R)
    rng = np.random.default_rng(0)
    P = [torch.tensor(rng.dirichlet([1, 1, 1], size=n), dtype=torch.float64, requires_grad=True) for n in (20, 20, 5)]
    grads = torch.autograd.grad(lat.expected(*P), P)
    h = 1e-6
    for w, n in ((0, 20), (1, 20), (2, 5)):
        for i, j in ((0, 1), (n - 1, 2), (n // 2, 0)):
            up = [p.detach().clone() for p in P]
            dn = [p.detach().clone() for p in P]
            up[w][i, j] += h
            dn[w][i, j] -= h
            fd = (float(lat.expected(*up)) - float(lat.expected(*dn))) / (2 * h)
            assert fd == pytest.approx(float(grads[w][i, j]), rel=1e-5, abs=1e-8)
    # at a vertex (one architecture) the expectation is the table's exact latency
    cfg = {"ks": [5] * 20, "e": [4] * 20, "d": [3, 2, 4, 3, 2], "r": R}
    one = [torch.zeros(20, 3, dtype=torch.float64), torch.zeros(20, 3, dtype=torch.float64),
           torch.zeros(5, 3, dtype=torch.float64)]
    one[0][:, 1] = 1
    one[1][:, 1] = 1
    for s, d in enumerate(cfg["d"]):
        one[2][s, d - 2] = 1
    assert float(lat.expected(*one)) == pytest.approx(lat.exact(cfg), rel=1e-9)


def test_fw_oracle_is_the_constrained_minimum() -> None:
    g, coef = np.array([-1.0, 0.0, 1.0]), np.array([3.0, 2.0, 1.0])
    s = fw_oracle(g, coef, 2.5)  # the best vertex (0) is too heavy: the edge point where coef.s = 2.5
    assert coef @ s == pytest.approx(2.5) and s.sum() == pytest.approx(1) and (s >= 0).all()
    assert g @ s == pytest.approx(-0.5)
    assert np.array_equal(fw_oracle(g, coef, 5.0), [1, 0, 0])


def test_bcfw_keeps_the_expected_latency_under_the_limit(lut: Path) -> None:
    eng = make_engine(_spec(lut))
    assert isinstance(eng, GradientEngine)
    P = [a.copy() for a in eng._feasible_start()]
    assert eng._elat(*P) <= eng.T + 1e-9
    rng = np.random.default_rng(0)
    for t in range(15):  # adversarial gradients: pull towards the heaviest choices
        G = [-np.abs(rng.normal(size=a.shape)) * np.array([1, 2, 3]) for a in P]
        eng.bcfw_step(P, G, min(1.0, 2 / (t + 2)))
        assert eng._elat(*P) <= eng.T + 1e-9
        assert all(np.allclose(a.sum(1), 1) and (a >= -1e-12).all() for a in P)


@pytest.mark.parametrize("method", ["hardcore", "tfnas"])
def test_gradient_search_end_to_end_respects_the_hard_limit(lut: Path, tmp_path: Path, method: str) -> None:
    from search.runner import run_search

    spec = _spec(lut, method)
    run_search(spec, tmp_path / "run", threads=1)
    doc = json.loads((tmp_path / "run" / "iter_0.stats").read_text())
    assert len(doc["archive"]) == 1 and not (tmp_path / "run" / "iter_1.stats").exists()
    row = doc["archive"][0]
    cfg = row[0] if isinstance(row, list) else row["config"]
    assert float(LatencyTable.load(lut).predict([cfg])[0]) <= spec["constraints"]["latency_ms"]


@pytest.mark.parametrize("method", ["hardcore", "tfnas"])
def test_gradient_engine_ask_tell_and_resume(lut: Path, method: str) -> None:
    from search.evaluator import get_evaluator

    eng = make_engine(_spec(lut, method))
    cands = eng.ask()
    assert len(cands) == 1 and eng.ask() == cands  # asking again returns the pending one
    g = eng.pending["gradient"]  # type: ignore[index]
    limit = eng.spec.constraints["latency_ms"]
    assert g["latency_ms"] <= limit and g["method"] == method
    if method == "hardcore":
        assert g["max_expected_latency_ms"] <= limit + 1e-9  # every Frank-Wolfe step stayed feasible
    state = json.loads(json.dumps(eng.state_dict()))
    again = Engine.from_state(state)
    assert isinstance(again, GradientEngine) and again.ask() == cands
    stats = again.tell([get_evaluator(again.spec).evaluate(c) for c in cands])
    assert stats["gradient"]["method"] == method and not again.has_next()
    rec = again.result()["archive"][0]
    assert rec["status"] == "ok" and rec["feasible"] and rec["objectives"][1] <= limit


def test_tfnas_pulls_towards_its_target(lut: Path) -> None:
    spec = _spec(lut, "tfnas", steps=8, lambda_lat=20.0, lr=0.3)
    target = spec["constraints"]["latency_ms"] * 0.9
    spec["engine"]["target"] = {"latency_ms": target}
    eng = make_engine(spec)
    assert eng.T == target  # type: ignore[attr-defined]
    eng.ask()
    tr = eng.pending["gradient"]["trace"]  # type: ignore[index]
    assert abs(tr[-1]["expected_latency_ms"] - target) < abs(tr[0]["expected_latency_ms"] - target)


def test_gradient_spec_refusals(lut: Path) -> None:
    spec = _spec(lut)
    spec["constraints"] = {}
    with pytest.raises(InputError) as e:
        load_spec(spec)
    assert e.value.field == "engine.method"
    spec = _spec(lut, "tfnas")
    spec["constraints"] = {}
    with pytest.raises(InputError) as e:
        load_spec(spec)
    assert e.value.field == "engine.target"
    spec = _spec(lut)
    spec["evaluator"] = {"kind": "oracle", "path": "x.json"}
    with pytest.raises(InputError) as e:
        load_spec(spec)
    assert e.value.field == "engine.kind"
    with pytest.raises(InputError) as e:
        make_engine(_spec(lut, limit=0.01)).ask()
    assert e.value.field == "constraints.latency_ms"
