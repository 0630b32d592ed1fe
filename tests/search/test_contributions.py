"""BINAS measured contributions (search/contributions.py): resumable measurement, the estimator it defines, the
artefact check, the ``fit: contributions`` surrogate in a search."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.stats import kendalltau

from search.contributions import ContributionTable, load_table, measure_contributions, probe_configs, table_artefact
from search.engine import make_engine
from search.evaluator import get_evaluator
from search.spec import load_spec
from supernets.errors import InputError
from tests.search.conftest import small_spec

RES = [160, 176]


def _spec(oracle: Path, **kw: Any) -> Any:
    return load_spec(small_spec(oracle, **{"resolution": RES, "predictor": "bilinear", **kw}))


def _table(oracle: Path, out: Path, **kw: Any) -> dict[str, Any]:
    spec = _spec(oracle)
    ev = get_evaluator(spec)
    space = make_engine(spec).space
    return measure_contributions(lambda c: ev.evaluate(c).metrics["top1"], out, artefact=table_artefact(spec),
                                 resolutions=list(space.resolutions), **kw)


def test_measurement_is_resumable_and_refuses_to_overwrite(oracle_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "t.json"
    part = _table(oracle_path, out, limit=7)
    assert not part["complete"] and len(part["measured"]) == 7
    assert json.loads(out.read_text())["measured"] == part["measured"]  # saved as it goes
    with pytest.raises(InputError) as e:
        _table(oracle_path, out)
    assert e.value.field == "--out"
    with pytest.raises(InputError) as e:
        load_table(out)  # a partial table is not a predictor
    assert "partial" in str(e.value)
    full = _table(oracle_path, out, resume=True)
    assert full["complete"] and len(full["measured"]) == full["n_probes"] == len(probe_configs(full["resolutions"]))
    again = _table(oracle_path, tmp_path / "u.json")
    assert again["measured"] == full["measured"]  # the resumed table equals an uninterrupted one


def test_the_estimator_reproduces_its_probes_and_ranks_networks(oracle_path: Path, tmp_path: Path) -> None:
    table = _table(oracle_path, tmp_path / "t.json")
    spec = _spec(oracle_path)
    space = make_engine(spec).space
    est = ContributionTable(load_table(tmp_path / "t.json"), space)
    names, cfgs = zip(*probe_configs(table["resolutions"]), strict=True)
    pred = est.accuracy(list(cfgs))
    assert np.allclose(pred, [table["measured"][n] for n in names])  # additive form holds on what was measured
    rng = np.random.default_rng(0)
    X = space.encode_many(space.sample(60, rng))
    ev = get_evaluator(spec)
    truth = [ev.evaluate(c).metrics["top1"] for c in space.decode_many(X)]
    tau = kendalltau(truth, -est.predict(X)).statistic
    assert tau > 0.4, tau


def test_a_table_for_another_job_is_refused(oracle_path: Path, tmp_path: Path) -> None:
    _table(oracle_path, tmp_path / "t.json")
    t = json.loads((tmp_path / "t.json").read_text())
    t["artefact"]["width_mult"] = 1.0
    (tmp_path / "w.json").write_text(json.dumps(t))
    for name, what in (("w.json", "width_mult"),):
        spec = _spec(oracle_path, predictor={"name": "bilinear", "fit": "contributions", "table": str(tmp_path / name)})
        eng = make_engine(spec)
        ev = get_evaluator(spec)
        eng.tell([ev.evaluate(c) for c in eng.ask()])
        with pytest.raises(InputError) as e:
            eng.ask()
        assert e.value.field == "predictor.table" and what in str(e.value)
    spec = small_spec(oracle_path, resolution=[160, 192],
                      predictor={"name": "bilinear", "fit": "contributions", "table": str(tmp_path / "t.json")})
    eng = make_engine(load_spec(spec))
    eng.tell([get_evaluator(eng.spec).evaluate(c) for c in eng.ask()])
    with pytest.raises(InputError, match="resolution 180"):
        eng.ask()


def test_msunas_search_with_fit_contributions(oracle_path: Path, tmp_path: Path) -> None:
    _table(oracle_path, tmp_path / "t.json")
    spec = _spec(oracle_path, iterations=1,
                 predictor={"name": "bilinear", "fit": "contributions", "table": str(tmp_path / "t.json")})
    eng = make_engine(spec)
    ev = get_evaluator(spec)
    while eng.has_next():
        eng.tell([ev.evaluate(c) for c in eng.ask()])
    sur = eng.history[-1]["surrogate"]
    assert sur["winner"] == "bilinear (contributions)" and sur["n_train"] == 0 and sur["tau"] > 0.3
    assert len(eng.archive) == 12 + 3
