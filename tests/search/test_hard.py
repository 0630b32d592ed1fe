"""Hard constraint mode: constrained domination in NSGA-II, feasible-first candidates, never a violator selected."""

from __future__ import annotations

from pathlib import Path

from search.engine import Engine
from search.evaluator import get_evaluator
from search.objectives import exact_costs
from search.select import select
from search.spec import load_spec
from tests.search.conftest import small_spec

MACS_MAX = 220e6  # tight for w1.2 r160..224 (the largest network has several times that)


def test_hard_mode_never_proposes_or_returns_a_violator(oracle_path: Path) -> None:
    spec = load_spec(
        small_spec(oracle_path, constraint_mode="hard", constraints={"macs": MACS_MAX}, iterations=3, n_iter=4)
    )
    ev = get_evaluator(spec)
    eng = Engine(spec)
    largest = eng.space.decode(eng.space.xu)
    assert exact_costs([largest], 1.2, 1000)["macs"][0] > 3 * MACS_MAX
    while eng.has_next():
        cands = eng.ask()
        macs = exact_costs(cands, 1.2, 1000)["macs"]
        assert (macs <= MACS_MAX).all(), "an infeasible candidate was proposed while feasible ones are known"
        eng.tell([ev.evaluate(c) for c in cands])
    assert eng.objectives.n_constr == 1  # NSGA-II gets G: constrained domination
    assert all(r["feasible"] for r in eng.archive)
    front = eng.front()
    assert front and all(r["metrics"]["macs"] <= MACS_MAX for r in front)
    for prefer in (None, "macs", "trade-off", "top1#80+macs#150"):
        chosen = select(eng.archive, n=4, prefer=prefer, constraints=spec.constraints)
        assert chosen and all(r["metrics"]["macs"] <= MACS_MAX for r in chosen)


def test_selection_drops_violators_even_when_they_dominate(oracle_path: Path) -> None:
    spec = load_spec(small_spec(oracle_path, iterations=0))  # unconstrained search, then a hard selection
    ev = get_evaluator(spec)
    eng = Engine(spec)
    eng.tell([ev.evaluate(c) for c in eng.ask()])
    most_accurate = max(eng.archive, key=lambda r: r["metrics"]["top1"])
    limit = most_accurate["metrics"]["macs"] - 1.0  # the most accurate network just breaks the bound
    assert sum(r["metrics"]["macs"] <= limit for r in eng.archive) >= 1
    chosen = select(eng.archive, n=5, constraints={"macs": limit})
    assert chosen and all(r["metrics"]["macs"] <= limit for r in chosen)
    assert most_accurate["key"] not in {r["key"] for r in chosen}


def test_hard_latency_constraint_with_a_real_lut(oracle_path: Path, shared_data: Path) -> None:
    lut = shared_data / "latency_luts" / "i7-8700K_lut.yaml"
    limit = 16.0  # ms on the i7-8700K table; the largest w1.0 network at r 224 takes ~37 ms
    spec = load_spec(
        small_spec(
            oracle_path,
            width_mult=1.0,
            resolution=[192, 224],
            objectives=["top1_err", "latency"],
            latency_table=str(lut),
            constraint_mode="hard",
            constraints={"latency_ms": limit},
            iterations=2,
        )
    )
    ev = get_evaluator(spec)
    eng = Engine(spec)
    while eng.has_next():
        cands = eng.ask()
        assert (eng.objectives.costs(cands)["latency_ms"] <= limit).all()
        eng.tell([ev.evaluate(c) for c in cands])
    assert all(r["metrics"]["latency_ms"] <= limit and r["objectives"][1] <= limit for r in eng.archive)
    chosen = select(eng.archive, n=3, prefer="latency_ms", constraints=spec.constraints)
    assert chosen and all(r["metrics"]["latency_ms"] <= limit for r in chosen)


def test_missing_latency_table_is_a_clear_error(oracle_path: Path, tmp_path: Path) -> None:
    import pytest

    spec = load_spec(
        small_spec(oracle_path, objectives=["top1_err", "latency"], latency_table=str(tmp_path / "x.yaml"))
    )
    with pytest.raises(ValueError, match="latency_table: .*x.yaml"):
        Engine(spec)
