"""``msunas ui DIR``: the dashboard over a run folder, read-only and without tokens (API and, where Chromium is
installed, the page itself); an infeasible run's warning is shown."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from search import run_search
from service.local_ui import create_run_app
from supernets.errors import InputError
from tests.search.conftest import small_spec
from tests.service.live_server import live_server


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory, oracle_path: Path) -> Path:
    """A finished oracle search whose params limit nothing meets (so its page carries a warning)."""
    out = tmp_path_factory.mktemp("ui") / "run"
    res = run_search(small_spec(oracle_path, iterations=1, constraints={"params": 1.0e5}), out)
    assert res.n_feasible == 0 and res.warnings
    return out


def test_the_viewer_answers_the_dashboards_routes(run_dir: Path) -> None:
    with TestClient(create_run_app(run_dir)) as c:
        page = c.get("/")
        assert page.status_code == 200 and 'name="msunas-auth" content="none"' in page.text
        jobs = c.get("/jobs").json()["items"]
        assert [j["id"] for j in jobs] == [1] and jobs[0]["state"] == "succeeded"
        s = c.get("/jobs/1").json()
        assert s["progress"]["n_evaluated"] == 15 and s["progress"]["n_feasible"] == 0
        assert s["warnings"] and "no feasible architecture" in s["warnings"][0]
        assert [i["iteration"] for i in c.get("/jobs/1/iterations").json()["items"]] == [0, 1]
        first = c.get("/jobs/1/archive", params={"limit": 10}).json()
        rest = c.get("/jobs/1/archive", params={"cursor": first["next_cursor"]}).json()
        assert len(first["items"]) + len(rest["items"]) == 15 and rest["next_cursor"] is None
        assert c.get("/jobs/1/archs/3").json()["id"] == 3
        r = c.get("/jobs/2")
        assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json")
        assert c.post("/jobs/1/select", json={"n": 2}).json()["items"] == []  # nothing feasible to pick
        assert c.post("/jobs/1/select", json={"n": 0}).json()["field"] == "n"


def test_not_a_run_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a run folder") as e:
        create_run_app(tmp_path)
    assert e.value.field == "DIR"


CHROMIUM = os.environ.get("MSUNAS_CHROMIUM", "/usr/bin/chromium")


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)")
def test_the_page_shows_the_run_without_a_token(run_dir: Path) -> None:
    sync_api: Any = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    expect = sync_api.expect
    expect.set_options(timeout=20_000)
    with live_server(create_run_app(run_dir)) as base, sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{base}/#/jobs/1")
            expect(page.get_by_test_id("job-state")).to_have_text("succeeded")
            expect(page.get_by_test_id("job-warning")).to_contain_text("no feasible architecture")
            expect(page.get_by_test_id("archive-row")).to_have_count(15)
            expect(page.get_by_test_id("login")).to_be_hidden()
            assert not errors, errors
        finally:
            browser.close()


@pytest.mark.parametrize("layout", ["msunas", "cnas"])
def test_the_viewer_opens_a_cnas_run_folder(tmp_path: Path, shared_data: Path, layout: str) -> None:
    """CNAS's real iter_30 run rebuilt in either layout (tests/search/test_cnas_folder.py): 340 nets with their
    own stats, the front of its (error, params) archive, its 31 iterations' HV; export refused (no supernet)."""
    import json

    from search.hv import non_dominated
    from tests.search.test_cnas_folder import _cnas_folder

    folder = _cnas_folder(shared_data, tmp_path / layout, layout)
    doc = json.loads((shared_data / "cnas_cifar10" / "iter_30.stats").read_text())
    with TestClient(create_run_app(folder)) as c:
        s = c.get("/jobs/1").json()
        assert s["state"] == "succeeded" and s["name"].endswith("(CNAS)")
        assert s["objectives"] == ["top1_err", "params"]  # f2 of the real run is params (M): inferred from the nets
        assert s["spec"]["resolution"] == [192, 256] and s["progress"]["iteration"] == 30
        assert s["progress"]["n_evaluated"] == 340 and any("CNAS run folder" in w for w in s["warnings"])
        assert s["hv_history"] == [{"iteration": 30, "hv": doc["hv"], "n_archive": 340}]
        its = c.get("/jobs/1/iterations").json()["items"]
        assert [(i["iteration"], i["n_archive"]) for i in its] == [(30, 340)]
        assert its[0]["surrogate"]["winner"] == "gp"
        items = c.get("/jobs/1/archive", params={"limit": 1000}).json()["items"]
        assert len(items) == 340 and items[0]["metrics"]["macs"] == pytest.approx(89.42e6)
        assert items[0]["objectives"] == pytest.approx([11.38, 2.14]) and items[-1]["iteration"] == 30
        F = [r["objectives"] for r in items]
        front = {items[i]["id"] for i in non_dominated(np.array(F))}
        front_f = [items[i - 1]["objectives"] for i in front]
        assert s["best"]["min_f1"]["objectives"][0] == min(f[0] for f in front_f) == min(f[0] for f in F)
        assert s["best"]["min_f2"]["objectives"][1] == min(f[1] for f in front_f) == min(f[1] for f in F)
        assert 2 < len(front) < 60
        picked = c.post("/jobs/1/select", json={"n": 2, "prefer": "params"}).json()["items"]
        assert [p["id"] for p in picked] == [s["best"]["min_f1"]["arch_id"], s["best"]["min_f2"]["arch_id"]]
        assert picked[1]["metrics"]["params"] == min(r["metrics"]["params"] for r in items)  # most accurate, then
        assert c.get("/jobs/1/archs/1/export").status_code == 422


def test_a_bare_cnas_stats_file_gets_exact_costs(tmp_path: Path, shared_data: Path) -> None:
    """Only CNAS's iter_30.stats (no per-net files): params/MACs from the exact cost model, and its f2 still
    recognised as params."""
    import shutil

    shutil.copy(shared_data / "cnas_cifar10" / "iter_30.stats", tmp_path / "iter_30.stats")
    with TestClient(create_run_app(tmp_path)) as c:
        s = c.get("/jobs/1").json()
        assert s["objectives"] == ["top1_err", "params"] and s["progress"]["n_evaluated"] == 340
        items = c.get("/jobs/1/archive", params={"limit": 1000}).json()["items"]
        assert all(r["metrics"]["macs"] > 0 and r["iteration"] == 0 for r in items)
        gaps = [abs(r["metrics"]["params"] / 1e6 - r["objectives"][1]) for r in items]
        assert float(np.median(gaps)) < 0.02
