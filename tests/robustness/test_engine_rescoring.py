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


def test_flatnas_as_cnas_runs_it_top1_robust_first_against_tiny_ml(oracle_path: Path) -> None:  # noqa: F811
    """``objectives: [top1_robust, tiny_ml]`` (cnas.py ``--first_obj top1_robust --sec_obj tiny_ml``): f1 is the
    re-scored combination, f2 CNAS's tiny_ml of the exact costs (with its penalty), both on every record."""
    spec = load_spec(small_spec(oracle_path, objectives=["top1_robust", "tiny_ml"], iterations=2,
                                robustness={"alpha": 0.4}))
    eng, ev = Engine(spec), _WithR(spec)
    while eng.has_next():
        eng.tell([ev.evaluate(c) for c in eng.ask()])
    ok = [r for r in eng.archive if r["status"] == "ok"]
    assert len(ok) == 12 + 2 * 3
    err = np.array([100.0 - r["metrics"]["top1"] for r in ok])
    rr = np.array([r["metrics"]["robustness"] for r in ok])
    norm = estimate_alpha_norm(err, rr)
    assert eng.objectives.alpha_norm == pytest.approx(norm)
    for r, e, x in zip(ok, err, rr, strict=True):
        m = r["metrics"]
        tiny = m["params"] / 1e6 + m["macs"] / 1e6 / 40 + m["activations"] / 1e6
        tiny += 1e10 * (max(0.0, m["params"] / 1e6 - 2) + max(0.0, m["activations"] / 1e6 - 5))
        assert r["objectives"][0] == pytest.approx(0.4 * e + norm * 0.6 * x)
        assert r["objectives"][1] == pytest.approx(tiny, rel=1e-9)
    assert "alpha_norm" in eng.history[-1]


@pytest.mark.parametrize(
    ("objectives", "extra", "message"),
    [
        (["params", "macs"], {}, "first objective must be one of"),
        (["top1_robust", "top1_robust"], {}, "must differ"),
        (["top1_robust", "params"], {"optimizer": "milp", "predictor": "bilinear"}, "first objective must be top1_err"),
    ],
)
def test_first_objective_is_top1_err_or_top1_robust(
    oracle_path: Path, objectives: list[str], extra: dict[str, Any], message: str  # noqa: F811
) -> None:
    with pytest.raises(Exception, match=message):
        load_spec(small_spec(oracle_path, objectives=objectives, **extra))


def test_a_cnas_flatnas_archive_gives_top1_and_robustness() -> None:
    """CNAS's FlatNAS rows ``[config, top1_robust, f2, top1_err, R]`` (with ``alpha_norm`` in the stats)."""
    from search.io import records_from_stats

    cfg = {"ks": [3] * 10, "e": [3] * 10, "d": [2] * 5, "r": 192}
    recs = records_from_stats({"archive": [[cfg, 7.5, 3.1, 11.0, 2.0]], "alpha_norm": 1.7})
    assert recs[0]["metrics"] == {"top1": 89.0, "top1_robust": 7.5, "robustness": 2.0, "f2": 3.1}
    assert recs[0]["objectives"] == [7.5, 3.1]
