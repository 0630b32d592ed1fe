"""The ``proxy`` evaluator kind and the spec fields of this area (``evaluator.kind: proxy``, ``optimizer``)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from search import proxies
from search.evaluators.proxy import pseudo_top1
from search.spec import load_spec


def test_pseudo_top1_is_strictly_monotone_and_bounded() -> None:
    s = np.concatenate([np.linspace(-1e6, 1e6, 2001), np.linspace(90, 110, 2001)])
    s.sort()
    t = np.array([pseudo_top1(float(v), 100.0, 5.0) for v in s])
    assert np.all(np.diff(t) > 0)
    assert t.min() > 0 and t.max() < 100
    assert pseudo_top1(100.0, 100.0, 5.0) == 50.0


def test_spec_accepts_proxy_evaluator() -> None:
    spec = load_spec({"evaluator": {"kind": "proxy", "name": "naswot", "batch_size": 8}})
    assert spec.evaluator.kind == "proxy" and spec.evaluator.name == "naswot"
    assert spec.optimizer == "nsga2"


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"evaluator": {"kind": "proxy", "name": "snip"}}, "evaluator.name"),
        ({"evaluator": {"kind": "proxy", "batch_size": 1}}, "evaluator.batch_size"),
        ({"evaluator": {"kind": "proxy", "scale": 0}}, "evaluator.scale"),
        ({"optimizer": "milp"}, "optimizer"),
        ({"optimizer": "milp", "predictor": "bilinear", "objectives": ["top1_err", "activations"]}, "optimizer"),
        ({"optimizer": "milp", "predictor": "bilinear", "constraints": {"activations": 5e6}}, "optimizer"),
        ({"optimizer": "cmaes"}, "optimizer"),
    ],
)
def test_spec_errors_name_the_field(data: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        load_spec(data)


def test_milp_spec_ok() -> None:
    spec = load_spec({"optimizer": "milp", "predictor": "bilinear", "constraints": {"macs": 3e8}})
    assert spec.optimizer == "milp"
    lat = {"latency_table": "lut.json", "constraints": {"latency_ms": 20.0, "params": 5e6}}
    for f2 in ("latency", "params", "macs"):  # latency from a table is additive too
        spec = load_spec({"optimizer": "milp", "predictor": "bilinear", "objectives": ["top1_err", f2], **lat})
        assert spec.optimizer == "milp" and spec.constraints["latency_ms"] == 20.0


def test_evaluator_reports_score_and_pseudo_top1() -> None:
    from search.evaluator import get_evaluator

    job = load_spec(
        {
            "resolution": [32, 40],
            "dataset": {"name": "digits"},
            "evaluator": {"kind": "proxy", "name": "zen", "batch_size": 4, "seed": 5, "num_threads": 1},
        }
    )
    ev = get_evaluator(job)
    c = {"ks": [5] * 20, "e": [4] * 20, "d": [3] * 5, "r": 32}
    res = ev.evaluate(c)
    assert res.status == "ok", res.error
    score = proxies.compute_proxy("zen", c, batch_size=4, seed=5, n_classes=10)
    assert res.metrics["proxy_score"] == score
    assert 0 < res.metrics["top1"] < 100 and math.isfinite(res.metrics["top1"])
    assert res.metrics["proxy_top1_is_pseudo"] == 1.0
    assert res.metrics["macs"] > 0 and res.metrics["params"] > 0
    bad = ev.evaluate({"ks": [4] * 20, "e": [4] * 20, "d": [3] * 5, "r": 32})
    assert bad.status == "failed" and "ks" in (bad.error or "")


def test_training_free_search_end_to_end() -> None:
    """A whole search driven by a proxy: the engine runs unchanged and its archive ranks by the proxy."""
    from search.engine import Engine
    from search.evaluator import get_evaluator

    spec = load_spec(
        {
            "resolution": [32, 40],
            "evaluator": {"kind": "proxy", "name": "synflow", "batch_size": 2, "num_threads": 1},
            "objectives": ["top1_err", "params"],
            "predictor": "rbf",
            "n_doe": 6,
            "n_iter": 2,
            "iterations": 1,
        }
    )
    eng, ev = Engine(spec), get_evaluator(spec)
    while eng.has_next():
        eng.tell([ev.evaluate(c) for c in eng.ask()])
    recs = [r for r in eng.result()["archive"] if r["status"] == "ok"]
    assert len(recs) == 8
    score = np.array([r["metrics"]["proxy_score"] for r in recs])
    f1 = np.array([r["objectives"][0] for r in recs])
    assert np.array_equal(np.argsort(score), np.argsort(-f1))  # top1_err orders exactly as the proxy
