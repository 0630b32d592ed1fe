"""The one-shot constrained solvers (``engine: {kind: solver, method: milp|bcfw|evo}``) on the oracle problem:
every method end to end (fit: archive and fit: contributions), never an infeasible pick, the MILP's optimum is
the predictor's best feasible network, resume through a JSON state, refusals, and the CLI run folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from search.contributions import ContributionTable, load_table, measure_contributions, table_artefact
from search.engine import Engine, make_engine
from search.engine_solver import SolverEngine
from search.evaluator import get_evaluator
from search.spec import load_spec
from supernets.errors import InputError
from tests.search.conftest import small_spec
from tests.search.test_engine import comparable, run

RES = [160, 176]
MACS = 3.0e8
FAST = {"bcfw_iters": 12, "evo_pop": 30, "evo_gens": 10}


def solver_spec(oracle: Path, method: str, table: Path | None = None, **kw: Any) -> dict[str, Any]:
    spec = small_spec(oracle, resolution=RES, predictor="bilinear", constraints={"macs": MACS},
                      constraint_mode="hard", **kw)
    spec["engine"] = {"kind": "solver", "method": method, "n_picks": 3, **FAST}
    if table is not None:
        spec["predictor"] = {"name": "bilinear", "fit": "contributions", "table": str(table)}
    return spec


@pytest.fixture(scope="module")
def table(oracle_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    spec = load_spec(solver_spec(oracle_path, "milp"))
    ev = get_evaluator(spec)
    out = tmp_path_factory.mktemp("contrib") / "table.json"
    measure_contributions(lambda c: ev.evaluate(c).metrics["top1"], out, artefact=table_artefact(spec),
                          resolutions=list(make_engine(spec).space.resolutions))
    return out


@pytest.mark.parametrize("method", ["milp", "bcfw", "evo"])
@pytest.mark.parametrize("fit", ["archive", "contributions"])
def test_each_method_end_to_end(oracle_path: Path, table: Path, method: str, fit: str) -> None:
    spec = load_spec(solver_spec(oracle_path, method, table if fit == "contributions" else None))
    eng = make_engine(spec)
    assert isinstance(eng, SolverEngine)
    run(eng, get_evaluator(spec))
    picks = [r for r in eng.archive if r["iteration"] == (1 if fit == "archive" else 0)]
    assert len(eng.history) == (2 if fit == "archive" else 1) and not eng.has_next()
    assert len(eng.archive) == (12 if fit == "archive" else 0) + len(picks)
    assert 1 <= len(picks) <= 3 and len({r["key"] for r in eng.archive}) == len(eng.archive)
    assert all(r["feasible"] and r["metrics"]["macs"] <= MACS for r in picks)  # nothing infeasible proposed
    macs = [r["metrics"]["macs"] for r in picks]
    assert macs[0] == max(macs)  # the optimum, then tighter bounds on the second objective
    assert eng.history[-1]["surrogate"]["solver"] == method


def test_milp_pick_is_the_predictors_best_feasible_network(oracle_path: Path, table: Path) -> None:
    spec = load_spec(solver_spec(oracle_path, "milp", table))
    eng = make_engine(spec)
    best = eng.ask()[0]
    est = ContributionTable(load_table(table), eng.space)
    rng = np.random.default_rng(1)
    cands = eng.space.sample(3000, rng)
    macs = eng.objectives.costs(cands)["macs"]
    feas = [c for c, m in zip(cands, macs, strict=True) if m <= MACS]
    assert est.accuracy([best])[0] >= est.accuracy(feas).max() - 1e-9
    for method in ("bcfw", "evo"):  # the heuristics stay feasible and near the optimum
        other = make_engine(load_spec(solver_spec(oracle_path, method, table))).ask()[0]
        assert eng.objectives.costs([other])["macs"][0] <= MACS
        assert est.accuracy([other])[0] >= est.accuracy([best])[0] - 3.0


@pytest.mark.parametrize("method", ["milp", "evo"])
def test_resume_after_the_initial_design_is_exact(oracle_path: Path, method: str) -> None:
    spec = load_spec(solver_spec(oracle_path, method))
    ev = get_evaluator(spec)
    full = run(make_engine(spec), ev)
    part = run(make_engine(spec), ev, stop_after=0)
    resumed = Engine.from_state(json.loads(json.dumps(part.state_dict())))
    assert isinstance(resumed, SolverEngine)
    run(resumed, ev)
    assert comparable(resumed.archive) == comparable(full.archive)


def test_what_the_solvers_cannot_optimise_is_refused(oracle_path: Path) -> None:
    for kw, what in (({"predictor": "rbf"}, "bilinear"), ({"objectives": ["top1_err", "activations"]}, "additive"),
                     ({"constraints": {"activations": 1e6}}, "activations")):
        spec = solver_spec(oracle_path, "milp")
        spec.update(kw)
        with pytest.raises(InputError) as e:
            load_spec(spec)
        assert e.value.field == "engine.method" and what in str(e.value)
    spec = solver_spec(oracle_path, "milp")
    spec["engine"]["n_picks"] = 0
    with pytest.raises(ValueError, match="n_picks"):
        load_spec(spec)


def test_solver_search_through_the_cli(oracle_path: Path, table: Path, tmp_path: Path) -> None:
    from service.cli import main

    spec_file = tmp_path / "s.json"
    spec_file.write_text(json.dumps(solver_spec(oracle_path, "milp", table)))
    out = tmp_path / "run"
    main(["search", str(spec_file), "--out", str(out), "--quiet"])
    stats = json.loads((out / "iter_0.stats").read_text())
    assert 1 <= len(stats["archive"]) <= 3 and not (out / "iter_1.stats").exists()
