"""``evaluator: {kind: python, callable: ...}``: your own evaluator in-process (CLI and Python API); a server
refuses it unless its operator allows it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

from search import load_spec, run_search
from search.evaluator import get_evaluator
from service import repository as repo
from service.app import create_app
from service.db import upgrade
from service.settings import Settings
from supernets.errors import InputError
from tests.conftest import run_cli

SPEC = {"evaluator": {"kind": "python", "callable": "tests.search.user_evaluator:score", "options": {"bonus": 1.0}},
        "resolution": [160, 224], "objectives": ["top1_err", "macs"], "predictor": "rbf", "n_doe": 8, "n_iter": 2,
        "iterations": 1, "engine": {"pop_size": 8, "n_gen": 2, "cv_folds": 2}}


def test_python_api_search(tmp_path: Path) -> None:
    res = run_search(SPEC, tmp_path / "run")
    assert len(res.archive) == 10 and res.n_feasible == 10 and res.hv > 0
    m = res.archive[0]["metrics"]
    assert m["top1"] > 51.0 and "custom_metric" in m and m["macs"] > 0  # the user's metrics plus the exact costs


def test_cli_search_and_failures_are_recorded(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(SPEC))
    assert run_cli(["search", str(path), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["n_archive"] == 10
    broken = {"kind": "python", "callable": "tests.search.user_evaluator:broken"}
    ev = get_evaluator(load_spec({**SPEC, "evaluator": broken}))
    r = ev.evaluate({"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": 160})
    assert r.status == "failed" and "GPU is on fire" in (r.error or "")


def test_bad_callables_name_the_field() -> None:
    for ref, needle in (("no_such_module:fn", "cannot import"), ("tests.search.user_evaluator:nope", "has no 'nope'")):
        with pytest.raises(InputError, match=needle) as e:
            get_evaluator(load_spec({**SPEC, "evaluator": {"kind": "python", "callable": ref}}))
        assert e.value.field == "evaluator.callable"
    with pytest.raises(InputError) as e:
        load_spec({**SPEC, "evaluator": {"kind": "python", "callable": "not a reference"}})
    assert e.value.field == "evaluator.callable"


@pytest.mark.parametrize("allowed", [False, True])
def test_the_server_refuses_it_unless_allowed(tmp_path: Path, allowed: bool) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    upgrade(url)
    app = create_app(Settings(db_url=url, allow_python_evaluator=allowed))
    _, tok = repo.create_token(app.state.db, "t")
    with TestClient(app) as c:
        r = c.post("/jobs", json=SPEC, headers={"Authorization": f"Bearer {tok}"})
    if allowed:
        assert r.status_code == 202, r.text
    else:
        assert r.status_code == 422 and r.json()["field"] == "evaluator.kind"
        assert "MSUNAS_ALLOW_PYTHON_EVALUATOR" in r.json()["detail"]
    app.state.db.dispose()
