"""R and corruption metrics from the real ``supernet`` evaluator (digits, OFA supernet, tiny budgets), and a tiny
end-to-end search with ``objectives: [top1_err, top1_robust]``."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from robustness.corruptions import mean_corruption_error
from robustness.evaluation import corruption_table
from search.engine import Engine
from search.evaluators.supernet import SupernetEvaluator
from search.spec import load_spec
from supernets import get_search_space
from supernets.datasets import load_dataset
from supernets.ofa_supernet import build_supernet

TINY = {"kind": "supernet", "n_epochs": 1, "batch_size": 32, "bn_calib_images": 64, "train_images": 96, "lr": 0.02}


def _job(**kw: Any) -> Any:
    spec = {"dataset": {"name": "digits", "vld_size": 64}, "resolution": [32, 40], "evaluator": TINY, "seed": 3}
    return load_spec({**spec, **kw})


@pytest.fixture(scope="module")
def digits() -> Any:
    return load_dataset("digits", vld_size=64)


@pytest.fixture(scope="module")
def supernet() -> torch.nn.Module:
    return build_supernet(1.0, 10, seed=0)


def _config(seed: int = 0) -> dict[str, Any]:
    return get_search_space("mobilenetv3", lr=32, ur=40).sample(1, np.random.default_rng(seed))[0]


def test_top1_robust_job_records_R_reproducibly(digits, supernet) -> None:  # type: ignore[no-untyped-def]
    job = _job(objectives=["top1_err", "top1_robust"], robustness={"n_draws": 3, "sigma": 0.1})
    before = {k: v.clone() for k, v in supernet.state_dict().items()}
    a = SupernetEvaluator(job, supernet=supernet, data=digits).evaluate(_config(0))
    b = SupernetEvaluator(job, supernet=supernet, data=digits).evaluate(_config(0))
    assert a.status == "ok", a.error
    assert a.metrics["robustness"] >= 0 and "robustness_loss_increase" in a.metrics
    assert a.metrics["robustness"] == b.metrics["robustness"]  # seeded: the same R twice
    assert a.metrics["robustness_loss_increase"] == b.metrics["robustness_loss_increase"]
    assert a.metrics["top1"] == b.metrics["top1"]
    assert not any(k.startswith("corruption") for k in a.metrics)  # not asked for
    assert all(torch.equal(v, supernet.state_dict()[k]) for k, v in before.items())


def test_plain_job_has_no_robustness_cost(digits, supernet) -> None:  # type: ignore[no-untyped-def]
    ev = SupernetEvaluator(_job(), supernet=supernet, data=digits)
    assert ev.robust is None
    res = ev.evaluate(_config(1))
    assert res.status == "ok" and "robustness" not in res.metrics


def test_corruption_metrics_and_mce(digits, supernet) -> None:  # type: ignore[no-untyped-def]
    types, sevs = ["gaussian_noise", "contrast"], [1, 5]
    baseline = {t: {s: 50.0 for s in sevs} for t in types}
    job = _job(
        robustness={
            "measure": True,
            "n_draws": 2,
            "corruptions": {
                "types": types,
                "severities": sevs,
                "n_images": 32,
                "baseline": baseline,
                "baseline_clean_acc": 60.0,
            },
        }
    )
    res = SupernetEvaluator(job, supernet=supernet, data=digits).evaluate(_config(2))
    assert res.status == "ok", res.error
    m = res.metrics
    assert "robustness" in m  # measure: true without the objective
    table = corruption_table(m, types, sevs)
    for t in types:
        assert m[f"corruption_acc_{t}"] == pytest.approx(np.mean(list(table[t].values())))
    assert m["corruption_acc"] == pytest.approx(np.mean([m[f"corruption_acc_{t}"] for t in types]))
    expected = mean_corruption_error(table, baseline, clean_acc=m["corruption_clean_acc"], baseline_clean_acc=60.0)
    assert m["mce"] == pytest.approx(expected["mCE"]) and m["relative_mce"] == pytest.approx(expected["relative_mCE"])
    assert 0 <= m["corruption_clean_acc"] <= 100 and m["corruption_time"] > 0


def test_tiny_search_with_top1_robust(digits, supernet) -> None:  # type: ignore[no-untyped-def]
    job = _job(
        objectives=["top1_err", "top1_robust"],
        robustness={"n_draws": 2},
        predictor="rbf",
        n_doe=4,
        n_iter=2,
        iterations=1,
        engine={"pop_size": 8, "n_gen": 2, "cv_folds": 2},
    )
    ev = SupernetEvaluator(job, supernet=supernet, data=digits)
    eng = Engine(job)
    while eng.has_next():
        stats = eng.tell([ev.evaluate(c) for c in eng.ask()])
        assert stats["alpha_norm"] > 0
    ok = [r for r in eng.archive if r["status"] == "ok"]
    assert len(ok) >= 5
    for r in ok:
        err, rr = 100.0 - r["metrics"]["top1"], r["metrics"]["robustness"]
        assert r["objectives"][1] == pytest.approx(0.5 * err + eng.objectives.alpha_norm * 0.5 * rr)
        assert r["metrics"]["top1_robust"] == pytest.approx(r["objectives"][1])
