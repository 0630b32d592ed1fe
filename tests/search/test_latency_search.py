"""Latency in the search with a table built here: the hard-mode promise, and ``msunas select --verify-latency``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from search.engine import Engine
from search.evaluator import get_evaluator
from search.io import read_subnet
from search.provenance import describe
from search.select import select
from search.spec import load_spec
from service.cli import main
from supernets.latency import LatencyTable
from supernets.spaces import get_search_space
from tests.search.conftest import LUT_RESOLUTION, small_spec

R = [LUT_RESOLUTION, LUT_RESOLUTION]


def _lat_spec(oracle: Path, lut: Path, limit: float, **kw: Any) -> dict[str, Any]:
    return small_spec(
        oracle,
        resolution=R,
        latency_table=str(lut),
        constraint_mode="hard",
        constraints={"latency_ms": limit},
        **kw,
    )


def test_hard_latency_bound_holds_with_a_table_built_here(oracle_path: Path, ort_lut: Path) -> None:
    """MACs as f2, latency only as a hard constraint: the bound alone keeps every proposal and pick within it."""
    table = LatencyTable.load(ort_lut)
    assert table.meta["device"] == "onnxruntime-cpu" and table.correction is not None
    space = get_search_space("mobilenetv3", lr=R[0], ur=R[1], width_mult=1.2)
    sample = table.predict(space.sample(200, np.random.default_rng(0)))
    limit = float(np.median(sample))  # binding: half of the space breaks it
    assert table.predict([space.decode(space.xu.tolist())])[0] > 1.5 * limit
    spec = load_spec(_lat_spec(oracle_path, ort_lut, limit, iterations=2))
    ev = get_evaluator(spec)
    eng = Engine(spec)
    while eng.has_next():
        cands = eng.ask()
        assert (table.predict(cands) <= limit).all(), "a candidate predicted above the bound was proposed"
        eng.tell([ev.evaluate(c) for c in cands])
    assert eng.objectives.n_constr == 1 and len(eng.archive) == 12 + 2 * 3
    assert all(r["feasible"] and r["metrics"]["latency_ms"] <= limit for r in eng.archive)
    for prefer in (None, "latency_ms", "macs", "trade-off", "top1#85+latency_ms#1"):
        chosen = select(eng.archive, n=4, prefer=prefer, constraints=spec.constraints)
        assert chosen
        predicted = table.predict([r["config"] for r in chosen])
        assert (predicted <= limit).all(), (prefer, predicted, limit)
        assert np.allclose(predicted, [r["metrics"]["latency_ms"] for r in chosen])


def _run(tmp_path: Path, name: str, spec: dict[str, Any]) -> Path:
    """A finished search folder (``msunas search``) of ``spec``."""
    p = tmp_path / f"{name}.yaml"
    p.write_text(yaml.safe_dump(spec))
    out = tmp_path / name
    main(["search", str(p), "--out", str(out), "--quiet"])
    return out


def _verify(run: Path, sel: Path, *extra: str, prefer: str = "latency_ms") -> int:
    args = ["select", str(run), "-n", "2", "--prefer", prefer, "--save", str(sel), "--overwrite", "--verify-latency",
            "--json"]
    with pytest.raises(SystemExit) as e:
        main([*args, "--repeat", "3", "--warmup", "1", *extra])
        raise SystemExit(0)
    return int(e.value.code or 0)


def _report(out: str) -> dict[str, Any]:
    return json.loads(out)["verify_latency"]  # type: ignore[no-any-return]


def test_verify_latency_within_the_bound_exits_0(
    tmp_path: Path, oracle_path: Path, ort_lut: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = LatencyTable.load(ort_lut)
    space = get_search_space("mobilenetv3", lr=R[0], ur=R[1], width_mult=1.2)
    limit = 3.0 * float(table.predict([space.decode(space.xu.tolist())])[0])  # loose: every subnet measures far below
    run = _run(tmp_path, "loose", _lat_spec(oracle_path, ort_lut, limit, iterations=0))
    capsys.readouterr()
    assert _verify(run, tmp_path / "sel") == 0
    out = capsys.readouterr().out
    rep = _report(out)
    assert rep["device"] == "onnxruntime-cpu" and rep["clock"] == "cpu" and rep["threads"] == 1
    assert rep["repeat"] == 3 and rep["bound_ms"] == pytest.approx(limit) and rep["n_exceed"] == 0
    configs = [read_subnet(tmp_path / "sel" / f"net_{i}.subnet")[0] for i in range(2)]
    assert len(rep["rows"]) == 2
    for row, pred in zip(rep["rows"], table.predict(configs), strict=True):
        assert row["predicted_ms"] == pytest.approx(pred)
        assert 0.5 < row["measured_ms"] / row["predicted_ms"] < 2.0  # the same runtime, really measured
        assert row["exceeds"] is False


def test_verify_latency_catches_a_table_that_underestimates(
    tmp_path: Path, oracle_path: Path, ort_lut: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A table whose blocks read 4x too fast: the search keeps its (predicted) bound, the measurement does not."""
    doc = json.loads(ort_lut.read_text())
    for v in doc["entries"].values():
        v["ms"] /= 4
    doc["correction"] = None
    lying = tmp_path / "lying.json"
    lying.write_text(json.dumps(doc))
    table = LatencyTable.load(lying)
    space = get_search_space("mobilenetv3", lr=R[0], ur=R[1], width_mult=1.2)
    smallest = float(LatencyTable.load(ort_lut).predict([space.decode(space.xl.tolist())])[0])
    limit = 0.6 * smallest  # below any real subnet, above most 4x-too-fast predictions
    run = _run(tmp_path, "lying", _lat_spec(oracle_path, lying, limit, iterations=0))
    capsys.readouterr()
    assert _verify(run, tmp_path / "sel") == 1
    cap = capsys.readouterr()
    rep = _report(cap.out)
    assert rep["n_exceed"] == 2
    assert all(r["predicted_ms"] <= limit < r["measured_ms"] and r["exceeds"] for r in rep["rows"])
    assert "msunas: 2 of 2 selected architectures measure above latency_ms" in cap.err
    configs = [read_subnet(tmp_path / "sel" / f"net_{i}.subnet")[0] for i in range(2)]
    assert (table.predict(configs) <= limit).all()


def test_verify_latency_errors_are_one_line_exit_2(
    tmp_path: Path, oracle_path: Path, ort_lut: Path, shared_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _run(tmp_path, "plain", small_spec(oracle_path, iterations=0))  # no latency_table in its spec
    cases = [
        ((), "--lut: --verify-latency needs a latency table"),
        (("--lut", str(shared_data / "latency_luts" / "i7-8700K_lut.yaml")), "cannot be re-measured here"),
        (("--lut", str(shared_data / "latency_luts" / "note10")), "cannot be re-measured here"),
        (("--lut", str(tmp_path / "nothing.json")), "not readable on this machine"),
        (("--lut", str(ort_lut), "--repeat", "0"), "'--repeat': Input should be greater than or equal to 1"),
    ]
    for extra, needle in cases:
        capsys.readouterr()
        assert _verify(run, tmp_path / "sel", *extra, prefer="macs") == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("msunas: error:") and needle in err and "\n" not in err, err


def test_verify_latency_of_a_job_on_the_service(
    tmp_path: Path, oracle_path: Path, ort_lut: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``msunas select JOB_ID --verify-latency``: the server selects, this machine measures with the job's table
    and checks the job's ``latency_ms`` bound; a table path not readable here asks for ``--lut``."""
    from service import repository as repo
    from service.app import create_app
    from service.db import Database, upgrade
    from service.settings import Settings
    from service.worker import Worker
    from tests.service.live_server import live_server

    table = LatencyTable.load(ort_lut)
    space = get_search_space("mobilenetv3", lr=R[0], ur=R[1], width_mult=1.2)
    limit = 3.0 * float(table.predict([space.decode(space.xu.tolist())])[0])
    url_db = f"sqlite:///{tmp_path / 'svc.db'}"
    upgrade(url_db)
    db = Database(url_db)
    owner, tok = repo.create_token(db, "t")
    with db.transaction() as s:
        job_spec = load_spec(_lat_spec(oracle_path, ort_lut, limit, iterations=0))
        job, _ = repo.create_job(s, owner, job_spec, artefact=describe(job_spec))
        jid = job.id
    Worker(Settings(db_url=url_db, poll_seconds=0.01)).run(max_idle_seconds=0.5)
    app = create_app(Settings(db_url=url_db))
    args = ["select", str(jid), "-n", "2", "--verify-latency", "--repeat", "3", "--warmup", "1", "--token", tok,
            "--json"]
    try:
        with live_server(app) as url:
            capsys.readouterr()
            with pytest.raises(SystemExit) as e:
                main([*args, "--url", url])
                raise SystemExit(0)
            assert e.value.code == 0
            out = capsys.readouterr().out
            rep = _report(out)
            assert rep["bound_ms"] == pytest.approx(limit) and rep["n_exceed"] == 0 and len(rep["rows"]) == 2
            assert all(0.5 < r["measured_ms"] / r["predicted_ms"] < 2.0 for r in rep["rows"])
            with pytest.raises(SystemExit) as e:
                main([*args, "--url", url, "--lut", str(tmp_path / "elsewhere.json")])
            err = capsys.readouterr().err.strip()
            assert e.value.code == 2 and err.startswith("msunas: error: --lut:") and "not readable" in err, err
    finally:
        app.state.db.dispose()
        db.dispose()
