"""The engine with ``objectives: [top1_err, top1_robust]``: alpha_norm re-estimated from the archive every
iteration, every archived record re-scored, the stored raw ``top1`` and ``robustness`` never changed, resume exact.

Top-1 comes from the oracle evaluator (once-for-all's real ImageNet accuracy predictor when ../shared/data is
there). R is given as test data per config (a fixed function of its MACs), because the engine, not R's
measurement, is under test here; R itself is measured on real networks in test_flatness.py.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from robustness.objective import estimate_alpha_norm
from search.engine import Engine
from search.evaluator import EvalResult, get_evaluator
from search.spec import load_spec
from tests.search.conftest import small_spec


class _WithR:
    """The oracle's result plus ``robustness`` (test data: 0.5 + MACs in units of 100 M, so R varies)."""

    def __init__(self, spec: Any) -> None:
        self.inner = get_evaluator(spec)

    def evaluate(self, config: dict[str, Any]) -> EvalResult:
        res = self.inner.evaluate(config)
        res.metrics["robustness"] = 0.5 + res.metrics["macs"] / 1e8
        return res


def _spec(oracle: Path, **kw: Any) -> Any:
    return load_spec(small_spec(oracle, objectives=["top1_err", "top1_robust"], iterations=2, **kw))


def _check_scores(eng: Engine, alpha: float) -> float:
    ok = [r for r in eng.archive if r["status"] == "ok"]
    err = np.array([100.0 - r["metrics"]["top1"] for r in ok])
    rr = np.array([r["metrics"]["robustness"] for r in ok])
    norm = estimate_alpha_norm(err, rr)
    assert eng.objectives.alpha_norm == pytest.approx(norm)
    for r, e, x in zip(ok, err, rr, strict=True):
        expected = alpha * e + norm * (1 - alpha) * x
        assert r["objectives"] == pytest.approx([e, expected])
        assert r["metrics"]["top1_robust"] == pytest.approx(expected)
    return norm


def test_archive_is_rescored_each_iteration_raw_values_untouched(oracle_path: Path) -> None:  # noqa: F811
    spec = _spec(oracle_path, robustness={"alpha": 0.3})
    eng, ev = Engine(spec), _WithR(spec)
    raw: dict[str, tuple[float, float]] = {}
    norms = []
    while eng.has_next():
        cands = eng.ask()
        results = [ev.evaluate(c) for c in cands]
        for res in results:
            raw[eng.space.key(res.config)] = (res.metrics["top1"], res.metrics["robustness"])
        stats = eng.tell(results)
        norms.append(_check_scores(eng, 0.3))
        assert stats["alpha_norm"] == pytest.approx(norms[-1])
        assert all("robustness" in c and "top1_robust" in c for c in stats["candidates"] if c["status"] == "ok")
        for r in eng.archive:  # raw measurements exactly as the evaluator reported them
            assert (r["metrics"]["top1"], r["metrics"]["robustness"]) == raw[r["key"]]
    assert len(set(norms)) == len(norms)  # alpha_norm moved as the archive grew ...
    first = [r for r in eng.archive if r["iteration"] == 0][0]
    assert first["objectives"][1] != pytest.approx(  # ... and old records were re-scored with it
        0.3 * (100 - first["metrics"]["top1"]) + norms[0] * 0.7 * first["metrics"]["robustness"]
    )


def test_resume_restores_alpha_norm_and_continues_identically(oracle_path: Path) -> None:  # noqa: F811
    spec = _spec(oracle_path)
    ev = _WithR(spec)
    full = Engine(spec)
    while full.has_next():
        full.tell([ev.evaluate(c) for c in full.ask()])
    part = Engine(spec)
    part.tell([ev.evaluate(c) for c in part.ask()])
    state = json.loads(json.dumps(part.state_dict()))
    saved = copy.deepcopy(state)
    resumed = Engine(spec).load_state_dict(state)
    assert state == saved  # loading does not alter the stored state
    assert resumed.objectives.alpha_norm == pytest.approx(part.objectives.alpha_norm)
    while resumed.has_next():
        resumed.tell([ev.evaluate(c) for c in resumed.ask()])
    assert [(r["key"], r["objectives"]) for r in resumed.archive] == [(r["key"], r["objectives"]) for r in full.archive]
    _check_scores(resumed, 0.5)


def test_missing_robustness_fails_the_candidate(oracle_path: Path) -> None:  # noqa: F811
    spec = _spec(oracle_path)
    eng = Engine(spec)
    plain = get_evaluator(spec)  # reports no robustness
    cands = eng.ask()
    results = [plain.evaluate(c) for c in cands[:1]] + [_WithR(spec).evaluate(c) for c in cands[1:]]
    eng.tell(results)
    bad = [r for r in eng.archive if r["status"] == "failed"]
    assert len(bad) == 1 and "metrics.robustness" in bad[0]["error"]
    _check_scores(eng, 0.5)  # alpha_norm over the successful records only
