"""The dashboard end to end in headless Chromium (Playwright driving the system browser, never a downloaded one):
a real server on a real database with a finished oracle job and a running one. The page's plots are counted
against the API's data, a selection is run and marked, an architecture is exported through the page, the
running job's page follows new results without reloading, and a bad token brings the prompt back.

Needs the ``playwright`` package (the ``test`` extra) and Debian's ``chromium`` at ``/usr/bin/chromium``
(``$MSUNAS_CHROMIUM`` to point elsewhere); ``make test`` installs the browser when it runs as root with apt-get.
A screenshot of the finished job's page is written to the test's tmp dir and to ``$MSUNAS_SCREENSHOT_DIR``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from search.hv import non_dominated
from service import repository as repo
from service.app import create_app
from service.db import Database
from service.settings import Settings
from service.worker import Worker
from tests.service.conftest import create_job
from tests.service.live_server import live_server
from tests.service.test_worker import oracle_spec

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[test]')")
expect = sync_api.expect

CHROMIUM = os.environ.get("MSUNAS_CHROMIUM", "/usr/bin/chromium")
pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason=f"no Chromium at {CHROMIUM} (apt-get install chromium; `make test` does it as root; or set MSUNAS_CHROMIUM)",
)
TIMEOUT_MS = 20_000  # a loaded 2-core machine: generous waits (they end as soon as the page is right)


@pytest.fixture(scope="module")
def site(finished_job: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The server (with both jobs) and a browser; a worker that the tests drive step by step."""
    url = str(finished_job["url"])
    db = Database(url)
    with db.transaction() as s:
        job, _ = create_job(s, int(finished_job["token_id"]), oracle_spec(Path(finished_job["pred"]),
                                 iterations=3), name="running oracle")
        running_id = job.id
    worker = Worker(Settings(db_url=url, poll_seconds=0.01))
    worker.run(max_units=10)  # the initial design: 1 step + 8 evaluations + 1 step (iteration 1's tasks queued)
    with db.transaction() as s:
        summary = repo.job_summary(s, repo.get_job(s, None, running_id))
    assert summary["state"] == "running" and len(summary["hv_history"]) == 1, summary
    assert summary["progress"]["n_evaluated"] == 8 and summary["progress"]["tasks_total"] == 3
    app = create_app(Settings(db_url=url))
    expect.set_options(timeout=TIMEOUT_MS)
    with live_server(app) as base, sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield {**finished_job, "base": base, "browser": browser, "worker": worker, "running_id": running_id}
        finally:
            browser.close()
            app.state.db.dispose()
            db.dispose()


@pytest.fixture
def page(site: dict[str, Any]) -> Iterator[Any]:
    """A fresh browser tab whose session already holds the token; fails the test on any JavaScript error."""
    ctx = site["browser"].new_context(viewport={"width": 1440, "height": 1250}, accept_downloads=True)
    ctx.add_init_script(f"sessionStorage.setItem('msunas.token', {json.dumps(site['token'])})")
    pg = ctx.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    # (the browser also logs every 4xx answer, e.g. the refused selection below, as a console error: not ours)
    pg.on("console", lambda m: errors.append(m.text)
          if m.type == "error" and not m.text.startswith("Failed to load resource") else None)
    yield pg
    ctx.close()
    assert not errors, errors


def _api(site: dict[str, Any], method: str, path: str, **kw: Any) -> Any:
    r = httpx.request(method, site["base"] + path, headers={"Authorization": f"Bearer {site['token']}"}, timeout=60,
                      **kw)
    r.raise_for_status()
    return r.json()


def _ids(page: Any, testid: str) -> list[int]:
    return list(page.get_by_test_id(testid).evaluate_all("els => els.map(e => Number(e.dataset.id))"))


def test_finished_job_page(site: dict[str, Any], page: Any, tmp_path: Path) -> None:
    jid = site["job_id"]
    archive = _api(site, "GET", f"/jobs/{jid}/archive?limit=1000")["items"]
    iterations = _api(site, "GET", f"/jobs/{jid}/iterations")["items"]
    ok = [a for a in archive if a["status"] == "ok"]
    pool = [a for a in ok if a["feasible"] is not False]
    front_ids = {pool[i]["id"] for i in non_dominated(np.array([a["objectives"][:2] for a in pool]))}
    n_tau = sum(1 for it in iterations if it["surrogate"] and it["surrogate"].get("tau") is not None)
    assert len(archive) == 14 and len(iterations) == 3 and n_tau == 2 and front_ids

    page.goto(f"{site['base']}/#/jobs/{jid}")
    expect(page.get_by_test_id("job-state")).to_have_text("succeeded")
    expect(page.get_by_test_id("job-head")).not_to_contain_text("null")
    expect(page.get_by_test_id("job-head")).to_contain_text("params ≤ 6 M (hard)")
    expect(page.get_by_test_id("arch-point")).to_have_count(len(ok))
    expect(page.get_by_test_id("front-point")).to_have_count(len(front_ids))
    assert set(_ids(page, "front-point")) == front_ids
    expect(page.get_by_test_id("hv-point")).to_have_count(len(iterations))
    expect(page.get_by_test_id("tau-point")).to_have_count(n_tau)
    expect(page.get_by_test_id("constraint-line")).to_have_count(1)  # params <= 6 M on the second objective
    expect(page.get_by_test_id("archive-row")).to_have_count(len(archive))
    expect(page.get_by_test_id("legend-iteration")).to_have_count(3)  # iterations 0, 1, 2 coloured apart
    expect(page.get_by_test_id("live-status")).to_contain_text("not polling")

    # the table sorts and filters
    page.get_by_test_id("col-f1").click()
    best = min(ok, key=lambda a: (a["objectives"][0], a["id"]))
    assert _ids(page, "archive-row")[0] == best["id"]
    page.get_by_test_id("archive-front-only").check()
    expect(page.get_by_test_id("archive-row")).to_have_count(len(front_ids))
    page.get_by_test_id("archive-front-only").uncheck()
    page.get_by_test_id("archive-iteration").select_option("2")
    expect(page.get_by_test_id("archive-row")).to_have_count(sum(a["iteration"] == 2 for a in archive))
    page.get_by_test_id("archive-iteration").select_option(label="any iteration")
    expect(page.get_by_test_id("archive-row")).to_have_count(len(archive))

    # a selection through the select endpoint, marked on the plot and in the table
    picked = _api(site, "POST", f"/jobs/{jid}/select", json={"n": 3, "prefer": "trade-off"})["items"]
    page.get_by_test_id("select-n").fill("3")
    page.get_by_test_id("select-mode").select_option("trade-off")
    page.get_by_test_id("select-run").click()
    expect(page.get_by_test_id("selected-point")).to_have_count(len(picked))
    assert sorted(_ids(page, "selected-point")) == sorted(p["id"] for p in picked)
    expect(page.get_by_test_id("picked-item")).to_have_count(len(picked))
    expect(page.locator("[data-testid=archive-row].selected")).to_have_count(len(picked))
    page.get_by_test_id("select-mode").select_option("metric")
    page.get_by_test_id("select-metric").fill("nosuchmetric")
    page.get_by_test_id("select-run").click()
    expect(page.get_by_test_id("select-error")).to_contain_text("nosuchmetric")
    expect(page.get_by_test_id("selected-point")).to_have_count(len(picked))  # a refused selection keeps the marks
    page.get_by_test_id("select-mode").select_option("trade-off")
    page.get_by_test_id("select-run").click()
    expect(page.get_by_test_id("select-error")).to_have_text("")
    assert sorted(_ids(page, "selected-point")) == sorted(p["id"] for p in picked)

    # an architecture's detail: block strings, config, and an export saved through the page (bearer header)
    aid = picked[0]["id"]
    page.get_by_test_id("picked-item").first.get_by_role("link").click()
    expect(page.get_by_test_id("arch-title")).to_contain_text(f"arch {aid}")
    expect(page.get_by_test_id("block-strings")).to_contain_text("ir_r1_k")
    cfg = json.loads(page.get_by_test_id("arch-config").inner_text())
    assert cfg == picked[0]["config"]
    with page.expect_download(timeout=120_000) as dl:
        page.get_by_test_id("export-onnx").click()
    download = dl.value
    assert download.suggested_filename == f"job{jid}_arch{aid}.onnx"
    onnx_path = tmp_path / download.suggested_filename
    download.save_as(onnx_path)
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])  # the real network
    (logits,) = sess.run(None, {"input": np.zeros((1, 3, cfg["r"], cfg["r"]), np.float32)})
    assert logits.shape == (1, 1000)
    expect(page.get_by_test_id("export-status")).to_contain_text("saved")

    shot = tmp_path / "dashboard.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 20_000
    if os.environ.get("MSUNAS_SCREENSHOT_DIR"):
        dest = Path(os.environ["MSUNAS_SCREENSHOT_DIR"])
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, dest / "dashboard.png")


def test_running_job_updates_without_reload(site: dict[str, Any], page: Any) -> None:
    rid = site["running_id"]
    page.goto(f"{site['base']}/#/jobs/{rid}")
    expect(page.get_by_test_id("job-state")).to_have_text("running")
    expect(page.get_by_test_id("arch-point")).to_have_count(8)
    expect(page.get_by_test_id("hv-point")).to_have_count(1)
    expect(page.get_by_test_id("live-status")).to_contain_text("polling every")
    page.get_by_test_id("select-n").fill("1")
    page.get_by_test_id("select-run").click()
    expect(page.get_by_test_id("selected-point")).to_have_count(1)
    marked = _ids(page, "selected-point")
    page.evaluate("window.__sameDocument = 42")
    w = site["worker"]
    w.run(max_units=w.n_steps + w.n_tasks + 4)  # iteration 1's three evaluations and its engine step (cumulative)
    expect(page.get_by_test_id("arch-point")).to_have_count(11)
    expect(page.get_by_test_id("hv-point")).to_have_count(2)
    its = _api(site, "GET", f"/jobs/{rid}/iterations")["items"]
    expect(page.get_by_test_id("tau-point")).to_have_count(
        sum(1 for it in its if it["surrogate"] and it["surrogate"].get("tau") is not None))
    expect(page.get_by_test_id("archive-row")).to_have_count(11)
    assert page.evaluate("window.__sameDocument") == 42  # updated in place, not reloaded
    assert _ids(page, "selected-point") == marked  # the selection marks survive the refresh


def test_jobs_list(site: dict[str, Any], page: Any) -> None:
    page.goto(site["base"] + "/")
    rows = page.get_by_test_id("job-row")
    expect(rows).to_have_count(2)
    expect(page.get_by_test_id("job-state")).to_have_text(["running", "succeeded"])  # newest first
    expect(page.get_by_test_id("jobs-table")).to_contain_text("finished oracle")
    rows.nth(1).click()
    expect(page).to_have_url(re.compile(rf"#/jobs/{site['job_id']}$"))
    expect(page.get_by_test_id("hv-point")).to_have_count(3)


def test_bad_token_shows_the_prompt(site: dict[str, Any]) -> None:
    ctx = site["browser"].new_context()
    try:
        page = ctx.new_page()
        page.goto(site["base"] + "/")
        expect(page.get_by_test_id("login")).to_be_visible()  # no token yet
        page.get_by_test_id("token-input").fill("msu_not_a_real_token")
        page.get_by_test_id("token-submit").click()
        expect(page.get_by_test_id("login-message")).to_contain_text("unknown or revoked token")
        expect(page.get_by_test_id("login")).to_be_visible()
        assert page.evaluate("sessionStorage.getItem('msunas.token')") is None
        page.get_by_test_id("token-input").fill(site["token"])
        page.get_by_test_id("token-submit").click()
        expect(page.get_by_test_id("job-row")).to_have_count(2)
        expect(page.get_by_test_id("login")).to_be_hidden()
        assert page.evaluate("sessionStorage.getItem('msunas.token')") == site["token"]
    finally:
        ctx.close()


def test_train_an_architecture_from_the_page(site: dict[str, Any], page: Any, tmp_path: Path) -> None:
    """The architecture detail queues a training (POST .../train), a worker runs it, and the page shows its
    measured top-1 and saves its files; a job with no data for its head is refused on the page, in words."""
    jid = site["job_id"]  # the finished ImageNet-oracle job: 1000 classes, digits data
    page.goto(f"{site['base']}/#/jobs/{jid}")
    page.get_by_test_id("archive-row").first.click()
    page.get_by_test_id("train-run").click()
    expect(page.get_by_test_id("train-status")).to_contain_text("not queued")
    expect(page.get_by_test_id("train-status")).to_contain_text("1000 classes")

    db = Database(str(site["url"]))
    spec = oracle_spec(Path(site["pred"]), resolution=[32, 32], supernet={"random_init": True},
                       dataset={"name": "digits", "vld_size": 64, "n_classes": 10})
    with db.transaction() as s:
        job, _ = create_job(s, int(site["token_id"]), spec, name="digits head")
        tid = job.id
    Worker(Settings(db_url=str(site["url"]), poll_seconds=0.01)).run(max_idle_seconds=0.3)
    page.goto(f"{site['base']}/#/jobs/{tid}")
    expect(page.get_by_test_id("job-state")).to_have_text("succeeded")
    page.get_by_test_id("archive-row").first.click()
    page.get_by_test_id("train-epochs").fill("1")
    page.get_by_test_id("train-run").click()
    expect(page.get_by_test_id("train-status")).to_contain_text("queued")
    expect(page.get_by_test_id("training-item")).to_have_attribute("data-state", "queued")
    Worker(Settings(db_url=str(site["url"]), poll_seconds=0.01)).run(max_idle_seconds=0.3)
    page.get_by_test_id("train-refresh").click()
    item = page.get_by_test_id("training-item")
    expect(item).to_have_attribute("data-state", "succeeded")
    expect(item).to_contain_text("validation top-1")
    with page.expect_download(timeout=60_000) as dl:
        page.get_by_test_id("training-file-net.int8.onnx").click()
    path = tmp_path / dl.value.suggested_filename
    dl.value.save_as(path)
    import onnxruntime as ort

    (logits,) = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        None, {"input": np.zeros((1, 3, 32, 32), np.float32)})
    assert path.name.endswith("_net.int8.onnx") and logits.shape == (1, 10)
    db.dispose()
