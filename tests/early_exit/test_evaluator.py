"""The supernet evaluator on eemobilenetv3 jobs: real digits data, joint training, and an engine run with
the avg_macs objective end to end (small: r = 32, a handful of candidates)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from early_exit.metrics import avg_macs
from early_exit.network import backbone_macs
from search.evaluator import get_evaluator
from search.evaluators.early_exit import EarlyExitEvaluator
from search.spec import load_spec
from supernets.datasets import load_dataset
from supernets.ofa_supernet import build_supernet, save_supernet
from tests.early_exit.conftest import ee_space

torch.set_num_threads(1)

SPEC: dict[str, Any] = {
    "search_space": "eemobilenetv3",
    "resolution": [32, 32],
    "dataset": {"name": "digits", "vld_size": 200},
    "evaluator": {
        "kind": "supernet",
        "n_epochs": 1,
        "batch_size": 50,
        "lr": 0.05,
        "bn_calib_images": 100,
        "train_images": 200,
    },
    "objectives": ["top1_err", "avg_macs"],
}


@pytest.fixture(scope="module")
def parts() -> dict[str, Any]:
    return {"supernet": build_supernet(1.0, 10, seed=0), "data": load_dataset("digits", None, 200)}


def _evaluator(spec: dict[str, Any], parts: dict[str, Any]) -> EarlyExitEvaluator:
    return EarlyExitEvaluator(load_spec(spec), supernet=parts["supernet"], data=parts["data"])


def test_registry_routes_eemobilenetv3_to_the_early_exit_evaluator(parts: dict[str, Any], tmp_path: Path) -> None:
    path = save_supernet(parts["supernet"], tmp_path / "ofa.pth")
    ev = get_evaluator(load_spec(SPEC | {"supernet": {"path": str(path)}}))
    assert isinstance(ev, EarlyExitEvaluator)


def test_t_and_b_candidates(parts: dict[str, Any]) -> None:
    ev = _evaluator(SPEC, parts)
    ss = ee_space(lr=32, ur=32)
    config = ss.backbone(ss.sample(1, np.random.default_rng(0))[0]) | {"t": [0.2, 1.0, 0.1, 1.0]}
    res = ev.evaluate(config)
    assert res.status == "ok", res.error
    m: dict[str, Any] = dict(res.metrics)
    assert m["thresholds"] == pytest.approx([0.28, 0.19]) and m["n_exits"] == 2 and len(m["exit_util"]) == 3
    assert m["avg_macs"] == pytest.approx(avg_macs(m["exit_util"], m["exit_macs"]))
    assert m["macs"] == backbone_macs(config, n_classes=10) and m["params_ee"] > m["params"]
    assert 0.0 <= m["top1"] <= 100.0 and np.isfinite(m["train_loss"])
    # NACHOS: b-mode under an avg_macs budget, thresholds calibrated after training
    spec_b = SPEC | {"early_exit": {"exit_mode": "b"}, "constraints": {"avg_macs": 3.0e6}}
    evb = _evaluator(spec_b, parts)
    res_b = evb.evaluate(ss.backbone(config) | {"b": [1, 1, 0, 0]})
    assert res_b.status == "ok", res_b.error
    mb: dict[str, Any] = dict(res_b.metrics)
    assert mb["feasible"] is (mb["avg_macs"] <= 3.0e6)
    assert len(mb["thresholds"]) == 2


def test_engine_runs_with_the_avg_macs_objective(parts: dict[str, Any]) -> None:
    from search.engine import Engine

    spec = load_spec(SPEC | {"n_doe": 4, "n_iter": 2, "iterations": 1, "predictor": "rbf"})
    ev = EarlyExitEvaluator(spec, supernet=parts["supernet"], data=parts["data"])
    eng = Engine(spec)
    while eng.has_next():
        cands = eng.ask()
        stats = eng.tell([ev.evaluate(c) for c in cands])
    res = eng.result()
    assert len(res["archive"]) == 6 and stats["iteration"] == 1
    for rec in res["archive"]:
        assert rec["status"] == "ok", rec["error"]
        assert rec["objectives"][1] == pytest.approx(rec["metrics"]["avg_macs"] / 1e6)
        assert "t" in rec["config"]
