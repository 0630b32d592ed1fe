"""The ask/tell engine: initial design, candidates, failures, resume equality, patience, state errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from search.engine import Engine, canonicalise_genomes
from search.evaluator import EvalResult, Evaluator, get_evaluator
from search.spec import load_spec
from tests.search.conftest import small_spec


def run(engine: Engine, evaluator: Evaluator, stop_after: int | None = None) -> Engine:
    while engine.has_next():
        if stop_after is not None and engine.iteration > stop_after:
            break
        cands = engine.ask()
        engine.tell([evaluator.evaluate(c) for c in cands])
    return engine


def comparable(archive: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(r["key"], r["iteration"], r["status"], tuple(r["objectives"] or ()), r["error"]) for r in archive]


def test_initial_design_is_distinct_canonical_with_extremes(oracle_path: Path) -> None:
    eng = Engine(load_spec(small_spec(oracle_path)))
    cands = eng.ask()
    assert len(cands) == 12
    keys = [eng.space.key(c) for c in cands]
    assert len(set(keys)) == 12
    assert all(eng.space.validate(c) == c for c in cands)  # canonical already
    assert eng.space.decode(eng.space.xl) in cands and eng.space.decode(eng.space.xu) in cands
    assert eng.ask() == cands  # asking again before tell gives the same candidates


def test_candidates_are_new_distinct_and_stats_recorded(oracle_path: Path) -> None:
    spec = load_spec(small_spec(oracle_path))
    ev = get_evaluator(spec)
    eng = Engine(spec)
    eng.tell([ev.evaluate(c) for c in eng.ask()])
    known = {r["key"] for r in eng.archive}
    cands = eng.ask()
    keys = [eng.space.key(c) for c in cands]
    assert len(cands) == 3 and len(set(keys)) == 3 and not (set(keys) & known)
    stats = eng.tell([ev.evaluate(c) for c in reversed(cands)])  # any order
    assert [r["key"] for r in eng.archive[-3:]] == keys  # matched by key, stored in ask order
    assert stats["iteration"] == 1 and stats["n_archive"] == 15
    sur = stats["surrogate"]
    assert sur["model"] == "rbf" and sur["n_train"] == 12 and sur["cv_folds"] == 3
    assert np.isfinite(sur["rmse"]) and -1 <= sur["tau"] <= 1 and -1 <= sur["rho"] <= 1
    for k in ("fit", "cv", "search", "select", "overhead"):
        assert stats["timing"][k] >= 0
    assert 0 < stats["hv"] <= 1 and stats["hv"] >= eng.history[0]["hv"]
    assert len(stats["candidates"]) == 3 and all("predicted" in c for c in stats["candidates"])


def test_hv_is_nondecreasing_and_reference_fixed(oracle_path: Path) -> None:
    spec = load_spec(small_spec(oracle_path))
    eng = run(Engine(spec), get_evaluator(spec))
    hvs = [h["hv"] for h in eng.history]
    assert len(hvs) == 5 and all(b >= a for a, b in zip(hvs, hvs[1:], strict=False))
    assert eng.ref_point[0] == 100.0 and eng.state_dict()["ref_point"] == eng.ref_point
    assert len(eng.archive) == 12 + 4 * 3
    assert not eng.has_next()
    with pytest.raises(ValueError, match="finished"):
        eng.ask()


def test_resume_after_iteration_k_gives_the_same_archive(oracle_path: Path) -> None:
    spec = load_spec(small_spec(oracle_path))
    ev = get_evaluator(spec)
    full = run(Engine(spec), ev)
    part = run(Engine(spec), ev, stop_after=2)
    assert part.iteration == 3
    blob = json.dumps(part.state_dict())  # through a JSON string, as the database holds it
    resumed = Engine(load_spec(small_spec(oracle_path))).load_state_dict(json.loads(blob))
    run(resumed, ev)
    assert comparable(resumed.archive) == comparable(full.archive)
    assert [h["hv"] for h in resumed.history] == [h["hv"] for h in full.history]


def test_resume_between_ask_and_tell(oracle_path: Path) -> None:
    spec = load_spec(small_spec(oracle_path))
    ev = get_evaluator(spec)
    full = run(Engine(spec), ev)
    part = run(Engine(spec), ev, stop_after=1)
    asked = part.ask()
    resumed = Engine.from_state(json.loads(json.dumps(part.state_dict())))
    assert resumed.ask() == asked
    run(resumed, ev)
    assert comparable(resumed.archive) == comparable(full.archive)


class _FailOnLowRes(Evaluator):
    """A real evaluator that fails (raises) for r < 180: the engine must record, exclude and not re-propose."""

    def __init__(self, inner: Evaluator) -> None:
        self.inner = inner

    def _evaluate(self, config: dict[str, Any]) -> dict[str, float]:
        if config["r"] < 180:
            raise RuntimeError("CUDA out of memory (simulated by resolution)")
        return self.inner._evaluate(config)  # type: ignore[attr-defined]


def test_failed_results_are_recorded_and_excluded(oracle_path: Path) -> None:
    spec = load_spec(small_spec(oracle_path, iterations=2))
    ev = _FailOnLowRes(get_evaluator(spec))
    eng = run(Engine(spec), ev)
    failed = [r for r in eng.archive if r["status"] == "failed"]
    assert failed and all("out of memory" in r["error"] and r["objectives"] is None for r in failed)
    assert eng.history[-1]["n_failed"] == len(failed)
    assert len({r["key"] for r in eng.archive}) == len(eng.archive)  # failures are never proposed again
    sur = eng.history[-1]["surrogate"]
    last = eng.history[-1]["iteration"]
    assert sur["n_train"] == sum(r["status"] == "ok" and r["iteration"] < last for r in eng.archive)
    assert all(r["status"] == "ok" for r in eng.front())


def test_tell_rejects_misaligned_results(oracle_path: Path) -> None:
    spec = load_spec(small_spec(oracle_path))
    ev = get_evaluator(spec)
    eng = Engine(spec)
    cands = eng.ask()
    res = [ev.evaluate(c) for c in cands]
    with pytest.raises(ValueError, match="no result"):
        eng.tell(res[:-1])
    stranger = eng.space.decode(np.ones(eng.space.n_var, dtype=int))
    with pytest.raises(ValueError, match="not asked"):
        eng.tell(res + [ev.evaluate(stranger)])
    with pytest.raises(ValueError, match="twice"):
        eng.tell(res + res[:1])
    bad = EvalResult(cands[0], "ok", metrics={"top1": float("nan")})
    eng.tell([bad] + res[1:])  # a result without a finite top1 is a failure with its reason
    assert eng.archive[0]["status"] == "failed" and "top1" in eng.archive[0]["error"]
    with pytest.raises(ValueError, match="without a pending"):
        eng.tell(res)


def test_hv_patience_stops_early(oracle_path: Path) -> None:
    # a budget this small cannot improve a front that already holds both extremes every iteration
    spec = load_spec(small_spec(oracle_path, iterations=30, n_iter=1, hv_patience=1, engine={"hv_tol": 1.0}))
    eng = run(Engine(spec), get_evaluator(spec))
    assert eng.stopped and "no hypervolume gain" in (eng.stop_reason or "")
    assert len(eng.history) == 2 and not eng.has_next()


def test_state_errors_name_the_field(oracle_path: Path) -> None:
    spec = load_spec(small_spec(oracle_path))
    eng = Engine(spec)
    state = eng.state_dict()
    with pytest.raises(ValueError, match="state.version"):
        Engine(spec).load_state_dict({**state, "version": 99})
    with pytest.raises(ValueError, match="state.archive"):
        Engine(spec).load_state_dict({k: v for k, v in state.items() if k != "archive"})
    with pytest.raises(ValueError, match="state.spec.objectives"):
        Engine(load_spec(small_spec(oracle_path, objectives=["top1_err", "params"]))).load_state_dict(state)
    with pytest.raises(ValueError, match="state.rng"):
        Engine(spec).load_state_dict({**state, "rng": {"bit_generator": "nope"}})
    with pytest.raises(ValueError, match="ref_point"):
        Engine(load_spec(small_spec(oracle_path, engine={"ref_point": [1.0]})))


def test_canonical_genomes_dedup_inactive_slots(oracle_path: Path) -> None:
    eng = Engine(load_spec(small_spec(oracle_path)))
    rng = np.random.default_rng(0)
    X = rng.integers(eng.space.xl, eng.space.xu + 1, size=(200, eng.space.n_var))
    C = canonicalise_genomes(X)
    assert (eng.space.encode_many(eng.space.decode_many(X)) == C).all()


def test_single_objective_mode(oracle_path: Path) -> None:
    spec = load_spec(small_spec(oracle_path, objectives=["top1_err"], iterations=2))
    eng = run(Engine(spec), get_evaluator(spec))
    assert all(len(r["objectives"]) == 1 for r in eng.archive)
    assert len(eng.front()) == 1 and eng.history[-1]["hv"] > 0


@pytest.mark.slow
def test_adaptive_switching_reports_its_winner(oracle_path: Path) -> None:
    spec = load_spec(small_spec(oracle_path, predictor="as", iterations=1, n_doe=14))
    eng = run(Engine(spec), get_evaluator(spec))
    sur = eng.history[-1]["surrogate"]
    assert sur["model"] == "as" and sur["winner"] in ("rbf", "gp", "mlp", "carts", "bilinear")
    assert np.isfinite(sur["rmse"])
