"""The BoTorch engine (``engine: {kind: botorch}``) on the oracle problem: runs, resumes exactly, respects hard
constraints, and is reachable through the CLI like the default engine."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from search.engine import Engine, make_engine
from search.engine_botorch import BotorchEngine
from search.evaluator import get_evaluator
from search.spec import load_spec
from supernets.errors import InputError
from tests.search.conftest import small_spec
from tests.search.test_engine import comparable, run


def bo_spec(oracle: Path, **kw: Any) -> dict[str, Any]:
    """A small botorch job: 12 designs, then 2 iterations of 3 (small pool, few MC samples)."""
    engine = {"kind": "botorch", "pool_size": 200, "mc_samples": 16, "pop_size": 16, "n_gen": 3,
              **kw.pop("engine", {})}
    spec = small_spec(oracle, **{"iterations": 2, **kw})
    spec["engine"] = engine
    return spec


@pytest.mark.parametrize("acquisition", ["qnehvi", "qnparego"])
def test_botorch_engine_proposes_new_distinct_designs(oracle_path: Path, acquisition: str) -> None:
    spec = load_spec(bo_spec(oracle_path, engine={"acquisition": acquisition}))
    eng = make_engine(spec)
    assert isinstance(eng, BotorchEngine)
    eng = run(eng, get_evaluator(spec))
    assert len(eng.archive) == 12 + 2 * 3
    assert len({r["key"] for r in eng.archive}) == len(eng.archive)
    later = eng.history[1:]
    assert all(h["surrogate"]["model"] == f"gp (botorch {acquisition})" for h in later)
    assert all(h["timing"]["overhead"] > 0 and len(h["candidates"]) == 3 for h in later)
    # the second objective of each proposal is exact: predicted f2 equals the evaluated f2
    for h in later:
        for c in h["candidates"]:
            assert c["predicted"][1] == pytest.approx(c["objectives"][1], rel=1e-9)
    assert eng.history[-1]["hv"] >= eng.history[0]["hv"]


def test_botorch_resume_after_iteration_k_is_exact(oracle_path: Path) -> None:
    spec = load_spec(bo_spec(oracle_path))
    ev = get_evaluator(spec)
    full = run(make_engine(spec), ev)
    part = run(make_engine(spec), ev, stop_after=1)
    blob = json.dumps(part.state_dict())  # through a JSON string, as the database holds it
    resumed = Engine.from_state(json.loads(blob))
    assert isinstance(resumed, BotorchEngine)
    run(resumed, ev)
    assert comparable(resumed.archive) == comparable(full.archive)
    assert [h["hv"] for h in resumed.history] == [h["hv"] for h in full.history]


def test_botorch_hard_constraint_is_never_broken_by_a_proposal(oracle_path: Path) -> None:
    probe = make_engine(load_spec(bo_spec(oracle_path)))
    macs = probe.objectives.costs(probe.space.sample(200, np.random.default_rng(0)))["macs"]
    limit = float(np.quantile(macs, 0.3))
    spec = load_spec(bo_spec(oracle_path, constraints={"macs": limit}, constraint_mode="hard"))
    eng = run(make_engine(spec), get_evaluator(spec))
    later = [r for r in eng.archive if r["iteration"] > 0]
    assert later and all(r["metrics"]["macs"] <= limit for r in later)


def test_botorch_refuses_what_it_cannot_model(oracle_path: Path) -> None:
    with pytest.raises(InputError) as e:
        make_engine(load_spec(bo_spec(oracle_path, objectives=["top1_err"])))
    assert e.value.field == "objectives"
    with pytest.raises(InputError) as e:
        load_spec(bo_spec(oracle_path, engine={"pool_size": 10}))
    assert e.value.field == "engine.pool_size"
    with pytest.raises(InputError) as e:
        load_spec(bo_spec(oracle_path, engine={"acquisition": "ei"}))
    assert e.value.field == "engine.acquisition"


def test_botorch_search_through_the_cli(oracle_path: Path, tmp_path: Path) -> None:
    from service.cli import main

    spec_file = tmp_path / "bo.json"
    spec_file.write_text(json.dumps(bo_spec(oracle_path, iterations=1)))
    out = tmp_path / "run"
    main(["search", str(spec_file), "--out", str(out), "--quiet"])
    stats = json.loads((out / "iter_1.stats").read_text())
    assert len(stats["archive"]) == 12 + 3
    assert stats["surrogate"]["model"] == "gp (botorch qnehvi)"
