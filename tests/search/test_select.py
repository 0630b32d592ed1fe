"""Post-search selection on the real CNAS iter_30.stats (and EDANAS early-exit configs), CSV, bad input."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from search.io import read_stats, records_from_stats
from search.select import SelectOptions, n_exits_of, parse_preference, select, select_records, to_rows, tradeoff_scores


@pytest.fixture(scope="module")
def cnas(shared_data: Path) -> list[dict[str, Any]]:
    return records_from_stats(read_stats(shared_data / "cnas_cifar10" / "iter_30.stats"))


def _front_keys(records: list[dict[str, Any]]) -> set[str]:
    F = np.array([r["objectives"] for r in records])
    dominated = ((F[:, None, :] <= F[None, :, :]).all(-1) & (F[:, None, :] < F[None, :, :]).any(-1)).any(0)
    return {r["key"] for r, d in zip(records, dominated, strict=True) if not d}


def test_reads_the_cnas_file(cnas: list[dict[str, Any]]) -> None:
    assert len(cnas) == 340
    r = cnas[0]
    assert r["config"]["d"] == [2, 2, 2, 2, 2] and len(r["config"]["ks"]) == 20  # compact -> per-slot
    assert r["metrics"]["top1"] == pytest.approx(100 - 11.38) and r["metrics"]["f2"] == pytest.approx(2.14)


def test_default_is_the_most_accurate(cnas: list[dict[str, Any]]) -> None:
    chosen = select(cnas, n=3)
    errs = sorted(r["objectives"][0] for r in cnas)
    assert [r["objectives"][0] for r in chosen][0] == errs[0]
    assert {r["key"] for r in chosen} <= _front_keys(cnas)


def test_prefer_metric_keeps_most_accurate_then_lowest(cnas: list[dict[str, Any]]) -> None:
    chosen = select(cnas, n=4, prefer="f2")
    keys = _front_keys(cnas)
    front = [r for r in cnas if r["key"] in keys]
    assert chosen[0]["objectives"][0] == min(r["objectives"][0] for r in cnas)
    lowest = sorted(r["objectives"][1] for r in front)
    assert [r["objectives"][1] for r in chosen[1:]] == lowest[:3]


def test_tradeoff_is_on_the_normalised_front(cnas: list[dict[str, Any]]) -> None:
    chosen = select(cnas, n=5, prefer="trade-off")
    assert len({r["key"] for r in chosen}) == 5 and {r["key"] for r in chosen} <= _front_keys(cnas)
    # rescaling one objective (params in units instead of millions) must not change the choice
    scaled = [dict(r, objectives=[r["objectives"][0], r["objectives"][1] * 1e6]) for r in cnas]
    assert [r["key"] for r in select(scaled, n=5, prefer="trade-off")] == [r["key"] for r in chosen]


def test_tradeoff_scores_prefer_the_knee() -> None:
    F = np.array([[0.0, 1.0], [0.1, 0.3], [0.2, 0.25], [0.5, 0.2], [1.0, 0.0]])
    assert int(np.argmax(tradeoff_scores(F))) == 1


def test_preference_point_by_achievement_scalarisation(cnas: list[dict[str, Any]]) -> None:
    chosen = select(cnas, n=1, prefer="top1#94+f2#3")
    keys = _front_keys(cnas)
    front = [r for r in cnas if r["key"] in keys]
    V = np.array([[-r["metrics"]["top1"], r["objectives"][1]] for r in front])
    z = np.array([-94.0, 3.0])
    asf = np.max((V - z) / (V.max(0) - V.min(0)), axis=1)
    assert chosen[0]["key"] == front[int(np.argmin(asf))]["key"]
    assert parse_preference("top1#80+macs#150") == {"top1": 80.0, "macs": 150.0}


def test_n_exits_filter_on_early_exit_configs(shared_data: Path) -> None:
    rows = list(csv.DictReader((shared_data / "edanas" / "edanas_ee_c10_r32.csv").open()))
    recs = []
    for r in rows:
        if float(r["obj1_top1_err"]) >= 100:  # EDANAS marks failed nets with err 100
            continue
        cfg = json.loads(r["config_json"])
        recs.append(
            {
                "config": cfg,
                "key": r["config_json"],
                "status": "ok",
                "objectives": [float(r["obj1_top1_err"]), float(r["obj2"])],
                "metrics": {"top1": 100.0 - float(r["obj1_top1_err"])},
            }
        )
    counts = {n_exits_of(r["config"]) for r in recs}
    assert len(counts) > 1
    k = sorted(counts)[len(counts) // 2]
    chosen = select(recs, n=3, n_exits=k)
    assert chosen and all(n_exits_of(r["config"]) == k for r in chosen)
    # CNAS's count (post_search.py): early exits only, the final classifier not counted
    assert n_exits_of({"b": [1, 0, 1, 1]}) == 3 and n_exits_of({"t": [0.1, 1, 1, 1]}) == 1
    assert n_exits_of({"ks": []}) is None


def test_n_exits_is_a_no_op_without_exits(cnas: list[dict[str, Any]]) -> None:
    assert select(cnas, n=3, n_exits=2) == select(cnas, n=3)


def test_rows_name_their_units(cnas: list[dict[str, Any]]) -> None:
    chosen = select(cnas, n=3, prefer="trade-off")
    rows = to_rows(chosen)
    assert len(rows) == 3 and rows[0]["objectives"] == chosen[0]["objectives"]
    assert rows[0]["top1_err_pct"] == pytest.approx(chosen[0]["objectives"][0])
    assert rows[0]["top1_pct"] == pytest.approx(100 - rows[0]["top1_err_pct"])
    assert json.loads(rows[0]["config"]) == chosen[0]["config"]
    assert not any(k in rows[0] for k in ("top1", "macs", "params"))  # no figure without its unit


def test_bad_inputs_are_named(cnas: list[dict[str, Any]], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="METRIC#VALUE"):
        select(cnas, prefer="top1#80+macs")
    with pytest.raises(ValueError, match="not a number"):
        select(cnas, prefer="top1#abc")
    with pytest.raises(ValueError, match="latency_ms"):
        select(cnas, prefer="latency_ms")
    with pytest.raises(ValueError, match="n: expected"):
        select(cnas, n=0)
    bad = tmp_path / "iter_3.stats"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match=str(bad)):
        read_stats(bad)
    bad.write_text(json.dumps({"archive": [[{"ks": [3]}, "x", 1]]}))
    with pytest.raises(ValueError, match=r"archive\[0\]\[1\]"):
        read_stats(bad)
    bad.write_text(json.dumps({"archive": [[{"ks": [3], "e": [3], "d": [2], "r": 1}, 1.0, 1.0]]}))
    with pytest.raises(ValueError, match=r"archive\[0\].config: d"):
        records_from_stats(read_stats(bad))
    with pytest.raises(ValueError, match="no such file"):
        read_stats(tmp_path / "iter_9.stats")


def test_prefer_accepts_every_objective_and_constraint_of_the_job(oracle_path: Path) -> None:
    """`--prefer latency` (the objective) reads the recorded latency_ms; an objective that is no recorded metric
    (tiny_ml) reads the record's objective; anything else lists what is accepted."""
    from search.engine import make_engine
    from search.evaluator import get_evaluator
    from search.select import SelectOptions, select_records
    from search.spec import load_spec
    from supernets.errors import InputError
    from tests.search.conftest import small_spec

    spec = load_spec(small_spec(oracle_path, objectives=["top1_err", "tiny_ml"], iterations=0))
    eng, ev = make_engine(spec), get_evaluator(spec)
    eng.tell([ev.evaluate(c) for c in eng.ask()])
    by_f2 = select_records(eng.archive, spec, SelectOptions(n=3, prefer="f2"))
    assert select_records(eng.archive, spec, SelectOptions(n=3, prefer="tiny_ml")) == by_f2
    assert select_records(eng.archive, spec, SelectOptions(n=2, prefer="top1#80+tiny_ml#1"))
    with pytest.raises(InputError, match="'latency' is not recorded") as e:
        select_records(eng.archive, spec, SelectOptions(prefer="latency"))
    assert "tiny_ml" in str(e.value) and "macs" in str(e.value)  # the accepted names are listed
    recs = [dict(r, metrics={**r["metrics"], "latency_ms": 1.0 + i}) for i, r in enumerate(eng.archive)]
    assert select_records(recs, spec, SelectOptions(n=3, prefer="latency")) == select_records(
        recs, spec, SelectOptions(n=3, prefer="latency_ms"))


def test_target_latency_closest_from_below(cnas: list[dict[str, Any]], shared_data: Path) -> None:
    """TF-NAS's precise target: CNAS's 340 real nets with latencies predicted by NSGANetV2's i7-8700K table."""
    from supernets.latency import LatencyTable

    table = LatencyTable.load(shared_data / "latency_luts" / "i7-8700K_lut.yaml", width_mult=1.0)
    lat = table.predict([r["config"] for r in cnas])
    recs = [dict(r, metrics={**r["metrics"], "latency_ms": float(v)}) for r, v in zip(cnas, lat, strict=True)]
    x = float(np.median(lat))
    chosen = select(recs, n=3, target=("latency_ms", x))
    got = [r["metrics"]["latency_ms"] for r in chosen]
    below = sorted((v for v in lat if v <= x), reverse=True)
    assert got == pytest.approx(below[:3]) and all(v <= x for v in got)
    assert x - got[0] < x - float(np.max(lat[lat < got[0]]))  # nothing closer from below was skipped
    assert select(recs, n=3, target=("latency_ms", float(lat.min()) / 2)) == []  # none below: nothing qualifies
    # the same through the options (what the CLI and REST take)
    opts = SelectOptions(n=1, target=f"latency_ms={x}")
    assert select_records(recs, None, opts)[0]["metrics"]["latency_ms"] == pytest.approx(below[0])


def test_target_cli_and_errors(shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.conftest import run_cli

    stats = str(shared_data / "cnas_cifar10" / "iter_30.stats")
    out = tmp_path / "t.csv"
    assert run_cli(["select", stats, "-n", "2", "--target", "macs=200", "--csv", str(out)]) == 0
    with out.open() as fh:
        rows = list(csv.DictReader(fh))
    recs = records_from_stats(read_stats(stats))
    from search.io import add_exact_costs

    add_exact_costs(recs, 1.0, 10)
    best = max(r["metrics"]["macs"] / 1e6 for r in recs if r["metrics"]["macs"] / 1e6 <= 200)
    assert float(rows[0]["macs_M"]) == pytest.approx(best) and float(rows[1]["macs_M"]) <= best
    capsys.readouterr()
    assert run_cli(["select", stats, "--target", "macs=200", "--prefer", "params"]) == 2
    assert "--target" in capsys.readouterr().err
    assert run_cli(["select", stats, "--target", "macs=abc"]) == 2
    assert "--target" in capsys.readouterr().err
    assert run_cli(["select", stats, "--target", "zzz=3"]) == 2
    assert "zzz" in capsys.readouterr().err
