"""``msunas ui DIR``: the dashboard over a run folder, read-only and without tokens (API and, where Chromium is
installed, the page itself); an infeasible run's warning is shown."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

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
