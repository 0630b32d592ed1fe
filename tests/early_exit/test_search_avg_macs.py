"""The engine predicts avg_macs of unevaluated early-exit candidates with the exit-rate model (NACHOS' constraint
on predicted cost): results whose exit utilisation follows fixed leave rates per (exit, threshold) are told to
the engine, which must then predict the avg_macs of the candidates it proposes exactly and keep them within the
budget in hard mode."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest

from early_exit.network import exit_macs, exits_of
from early_exit.objectives import ExitRateSurrogate, exit_util_of_metrics, thresholds_of_metrics
from search.engine import Engine
from search.evaluator import EvalResult
from search.spec import load_spec
from tests.early_exit.conftest import ee_space

# conditional leave rate of the inputs reaching an exit, per (stage, t): the "true" behaviour of the networks
LEAVE = {(0, 0.1): 0.5, (0, 0.2): 0.3, (1, 0.1): 0.6, (1, 0.2): 0.35, (2, 0.1): 0.7, (2, 0.2): 0.5}
LEAVE |= {(3, 0.1): 0.8, (3, 0.2): 0.55}
BUDGET = 4.0e6
SPEC: dict[str, Any] = {
    "search_space": "eemobilenetv3",
    "resolution": [32, 48],
    "dataset": {"name": "digits"},
    "objectives": ["top1_err", "avg_macs"],
    "constraints": {"avg_macs": BUDGET},
    "constraint_mode": "hard",
    "predictor": "rbf",
    "n_doe": 16,
    "n_iter": 4,
    "iterations": 2,
    "engine": {"pop_size": 20, "n_gen": 5},
}


def _truth(config: Mapping[str, Any]) -> dict[str, float]:
    """Metrics of a config as an early-exit evaluator would report them (utilisation from LEAVE)."""
    reach, util = 1.0, []
    for s, present in enumerate(exits_of(config)):
        if present:
            q = LEAVE[(s, float(config["t"][s]))]
            util.append(reach * q)
            reach *= 1.0 - q
    util.append(reach)
    macs = exit_macs(config, n_classes=10)
    avg = float(np.dot(util, macs))
    names = [f"s{s + 1}" for s, p in enumerate(exits_of(config)) if p] + ["final"]
    m = {"top1": 80.0 + 15.0 * (1.0 - np.exp(-avg / 3.0e6)), "avg_macs": avg}
    m |= {f"exit_util_{n}": u for n, u in zip(names, util, strict=True)}
    return m


def test_engine_predicts_avg_macs_with_the_exit_rate_model() -> None:
    eng = Engine(load_spec(SPEC))
    predicted, true = [], []
    while eng.has_next():
        cands = eng.ask()
        stats = eng.tell([EvalResult(c, "ok", metrics=_truth(c)) for c in cands])
        for c in stats["candidates"]:
            if "predicted" in c:
                predicted.append(c["predicted"][1])
                true.append(c["objectives"][1])
                # hard mode with exact predictions: every proposed candidate meets the budget
                assert c["objectives"][1] <= BUDGET / 1e6 + 1e-9
        if stats["iteration"] >= 1:
            sur = stats["surrogate"]["avg_macs"]
            assert sur["model"] == "exit_rate" and sur["n_train"] == stats["n_archive"] - len(cands)
            assert sur["tau"] > 0.95  # held-out (a fold may miss an (exit, t) pair: then the exit's mean rate)
    assert len(predicted) == 8
    # leave rates are learnt per (exit, threshold): the proposed candidates' avg_macs is predicted exactly
    # (a generic surrogate fitted on 16-20 points is off by percents)
    assert predicted == pytest.approx(true, rel=1e-9)
    assert min(true) < max(true)


def test_imported_archive_without_utilisation_falls_back_to_the_predictor() -> None:
    ss = ee_space(lr=32, ur=48, exit_mode="t")
    configs = ss.sample(12, np.random.default_rng(0))
    keep = ("top1", "avg_macs")  # as a CNAS/EDANAS archive: no exit utilisation
    rows = [{"config": c, "metrics": {k: v for k, v in _truth(c).items() if k in keep}} for c in configs]
    eng = Engine(load_spec(SPEC | {"iterations": 3})).load_archive(rows, 1)
    cands = eng.ask()
    stats = eng.tell([EvalResult(c, "ok", metrics=_truth(c)) for c in cands])
    assert "avg_macs" not in stats["surrogate"]  # the job's predictor (rbf) predicted avg_macs
    eng.ask()
    assert eng.pending is not None and eng.pending["surrogate"]["avg_macs"]["model"] == "exit_rate"


def test_exit_rate_surrogate_reads_archived_metrics_and_genomes() -> None:
    ss = ee_space(lr=32, ur=48, exit_mode="t")
    configs = ss.sample(30, np.random.default_rng(1))
    metrics = [_truth(c) for c in configs]
    ers = ExitRateSurrogate(ss, n_classes=10).fit(configs, metrics)
    assert ers.n_train_ == 30
    X = ss.encode_many(configs)
    assert ers.predict(X) == pytest.approx([m["avg_macs"] for m in metrics], rel=1e-9)
    y, p = ers.cross_validate(configs, metrics, 5, np.random.default_rng(0))
    assert len(y) == 30 and np.corrcoef(y, p)[0, 1] > 0.99
    # utilisation / thresholds: from the lists or the flat numbers (archives keep numbers only)
    c = dict(configs[0], t=[0.1, 1.0, 0.2, 1.0])
    m = _truth(c) | {"threshold_s1": 0.19, "threshold_s3": 0.28}
    assert exit_util_of_metrics(c, m) == [m["exit_util_s1"], m["exit_util_s3"], m["exit_util_final"]]
    assert exit_util_of_metrics(c, {"exit_util": [0.5, 0.25, 0.25]}) == [0.5, 0.25, 0.25]
    assert exit_util_of_metrics(c, {"exit_util_s1": 0.5, "exit_util_final": 0.5}) is None
    assert thresholds_of_metrics(c, m) == [0.19, 0.28] and thresholds_of_metrics(c, {}) is None
    assert ExitRateSurrogate(ss, n_classes=10).fit(configs, [{"top1": 1.0}] * 30).n_train_ == 0
