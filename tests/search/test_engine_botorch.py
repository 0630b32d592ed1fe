"""The BoTorch engine (engine kind botorch): end to end, exact resume, qNParEGO, hard constraints, bad knobs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from search.engine import Engine, make_engine
from search.engine_botorch import BotorchEngine
from search.evaluator import get_evaluator
from search.objectives import exact_costs
from search.runner import run_search
from search.spec import load_spec
from supernets.errors import InputError
from tests.search.conftest import small_spec
from tests.search.test_engine import comparable, run

# small knobs: a few hundred pool designs and a short GP fit keep an iteration around a second
KNOBS = {"kind": "botorch", "pool_size": 200, "pop_size": 16, "n_gen": 4, "fit_maxiter": 30, "mc_samples": 16}


def bo_spec(oracle: Path, **kw: Any) -> dict[str, Any]:
    spec = small_spec(oracle, **{k: v for k, v in kw.items() if k != "engine"})
    spec["engine"] = {**KNOBS, **kw.get("engine", {})}
    return spec


def test_run_search_writes_a_botorch_run(oracle_path: Path, tmp_path: Path) -> None:
    res = run_search(bo_spec(oracle_path, iterations=3), tmp_path / "run", threads=1)
    assert len(res.archive) == 12 + 3 * 3
    assert len({r["key"] for r in res.archive}) == len(res.archive)  # never an archived design again
    hvs = [h["hv"] for h in res.history]
    assert len(hvs) == 4 and all(b >= a for a, b in zip(hvs, hvs[1:], strict=False)) and hvs[-1] > hvs[0]
    last = res.history[-1]
    assert last["surrogate"]["model"] == "gp (botorch qnehvi)" and last["surrogate"]["n_train"] == 18
    for k in ("fit", "search", "select", "overhead"):
        assert last["timing"][k] >= 0
    assert (tmp_path / "run" / "iter_3.stats").is_file()
    # resuming the run folder from iteration 1 gives the same archive
    again = run_search(bo_spec(oracle_path, iterations=3), tmp_path / "again", threads=1,
                       resume=tmp_path / "run" / "iter_1.stats")
    assert comparable(again.archive) == comparable(res.archive)


def test_make_engine_picks_the_kind_and_resume_is_exact(oracle_path: Path) -> None:
    spec = load_spec(bo_spec(oracle_path, iterations=3))
    ev = get_evaluator(spec)
    full = run(make_engine(spec), ev)
    assert isinstance(full, BotorchEngine)
    part = run(make_engine(spec), ev, stop_after=1)
    assert part.iteration == 2
    blob = json.loads(json.dumps(part.state_dict()))  # through JSON, as the database holds it
    nxt = part.ask()
    resumed = Engine.from_state(blob)
    assert isinstance(resumed, BotorchEngine)
    assert resumed.ask() == nxt  # the identical next ask
    run(resumed, ev)
    assert comparable(resumed.archive) == comparable(full.archive)
    assert [h["hv"] for h in resumed.history] == [h["hv"] for h in full.history]


def test_qnparego_runs_and_proposes_distinct_new_designs(oracle_path: Path) -> None:
    spec = load_spec(bo_spec(oracle_path, iterations=2, engine={"acquisition": "qnparego"}))
    eng = run(make_engine(spec), get_evaluator(spec))
    assert len(eng.archive) == 12 + 2 * 3 and len({r["key"] for r in eng.archive}) == len(eng.archive)
    assert eng.history[-1]["surrogate"]["model"] == "gp (botorch qnparego)"
    assert eng.history[-1]["hv"] >= eng.history[0]["hv"] > 0


def test_hard_constraint_is_respected(oracle_path: Path) -> None:
    limit = 220e6
    spec = load_spec(bo_spec(oracle_path, constraint_mode="hard", constraints={"macs": limit}, iterations=2))
    ev = get_evaluator(spec)
    eng = make_engine(spec)
    while eng.has_next():
        cands = eng.ask()
        assert (exact_costs(cands, 1.2, 1000)["macs"] <= limit).all()
        eng.tell([ev.evaluate(c) for c in cands])
    assert all(r["feasible"] for r in eng.archive) and eng.front()


@pytest.mark.parametrize(("knob", "field"), [
    ({"pool_size": 10}, "engine.pool_size"),
    ({"acquisition": "qei"}, "engine.acquisition"),
    ({"mc_samples": 10**6}, "engine.mc_samples"),
    ({"cv_folds": 3}, "engine.cv_folds"),  # an msunas knob is not a botorch knob
])
def test_bad_knob_names_the_field(oracle_path: Path, knob: dict[str, Any], field: str) -> None:
    with pytest.raises(InputError) as e:
        load_spec(bo_spec(oracle_path, engine=knob))
    assert field in str(e.value)


def test_single_objective_is_refused_naming_the_field(oracle_path: Path) -> None:
    with pytest.raises(InputError, match="two objectives") as e:
        make_engine(load_spec(bo_spec(oracle_path, objectives=["top1_err"])))
    assert e.value.field == "objectives"
