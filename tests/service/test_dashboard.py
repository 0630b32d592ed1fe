"""The dashboard without a browser: the page and its assets are served by the app (no token needed, no
third-party URL anywhere, shipped as package data), the fields the page draws from (block strings, constraint
lines), and ``msunas plot ID`` against a real server and database."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.cli import main
from service.routes.pages import STATIC_DIR
from service.settings import Settings
from supernets.codec import normalize_backbone, to_block_strings
from tests.conftest import ROOT
from tests.service.live_server import live_server

ASSETS = ("index.html", "app.js", "app.css")


@pytest.fixture(scope="module")
def client(finished_job: dict[str, Any]) -> Any:
    app = create_app(Settings(db_url=str(finished_job["url"]), data_roots=[Path(finished_job["root"])]))
    with TestClient(app) as c:
        c.headers["Authorization"] = f"Bearer {finished_job['token']}"
        yield c
    app.state.db.dispose()


def test_page_and_assets_need_no_token(client: TestClient) -> None:
    anon = {"Authorization": ""}
    r = client.get("/", headers=anon)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp and "connect-src 'self'" in csp
    assert 'src="static/app.js"' in r.text and 'href="static/app.css"' in r.text
    js = client.get("/static/app.js", headers=anon)
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]
    assert js.text == (STATIC_DIR / "app.js").read_text()
    assert client.get("/static/app.css", headers=anon).headers["content-type"].startswith("text/css")
    # the API itself still needs the token; a missing asset is a problem+json 404 like any other
    assert client.get("/jobs", headers=anon).status_code == 401
    missing = client.get("/static/nope.js", headers=anon)
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("application/problem+json")
    assert client.get("/static/../api.py", headers=anon).status_code == 404
    paths = client.get("/openapi.json").json()["paths"]
    assert "/" not in paths and not any(p.startswith("/static") for p in paths)


def test_assets_are_self_contained_and_build_no_html_from_data() -> None:
    """No CDN, no third-party code: the only absolute URL is the SVG namespace; data is inserted as text nodes."""
    for name in ASSETS:
        text = (STATIC_DIR / name).read_text()
        urls = set(re.findall(r"(?:https?:)?//[A-Za-z0-9.-]+\.[A-Za-z]{2,}[^\s\"'`)]*", text))
        assert urls <= {"http://www.w3.org/2000/svg"}, (name, urls)
        assert "@import" not in text and "import(" not in text
    js = (STATIC_DIR / "app.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in js, sink
    assert 'setAttribute("style"' not in js  # inline style attributes would break the page's CSP


def test_assets_ship_in_the_wheel() -> None:
    """Every file under service/static matches the package-data patterns of pyproject.toml."""
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = conf["tool"]["setuptools"]["package-data"]["service"]
    files = sorted(p.relative_to(STATIC_DIR.parent).as_posix() for p in STATIC_DIR.rglob("*") if p.is_file())
    assert {f"static/{a}" for a in ASSETS} <= set(files)
    for f in files:
        assert any(fnmatch.fnmatch(f, pat) for pat in patterns), f"{f} is not shipped (pyproject package-data)"


def test_summary_has_constraint_lines_and_arch_has_block_strings(client: TestClient,
                                                                 finished_job: dict[str, Any]) -> None:
    jid = finished_job["job_id"]
    j = client.get(f"/jobs/{jid}").json()
    assert j["constraints"] == {"params": 6.0e6} and j["constraint_mode"] == "hard"
    # the bound of the second objective (params, in millions) is what the page and `msunas plot` draw
    assert j["constraint_lines"] == [{"axis": 1, "objective": "params", "constraint": "params", "value": 6.0}]
    items = client.get(f"/jobs/{jid}/archive", params={"limit": 1000}).json()["items"]
    assert len(items) == 14
    for a in items[:3]:
        r = client.get(f"/jobs/{jid}/archs/{a['id']}").json()
        assert r["block_strings"] == to_block_strings(normalize_backbone(a["config"]), 1.0)
        assert len(r["block_strings"]) == 7 and sum(len(s) for s in r["block_strings"][1:6]) == sum(a["config"]["d"])


def test_plot_of_a_job_id_from_the_server(finished_job: dict[str, Any], tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import Image

    from service.cli.search import job_plot_data

    app = create_app(Settings(db_url=str(finished_job["url"])))
    jid, tok = finished_job["job_id"], str(finished_job["token"])
    try:
        with live_server(app) as url:
            data = job_plot_data(jid, url, tok, page_size=5)  # follows next_cursor across 3 pages
            assert len(data["records"]) == 14 and len({r["id"] for r in data["records"]}) == 14
            assert [h["iteration"] for h in data["history"]] == [0, 1, 2]
            assert data["objectives"] == ["top1_err", "params"] and data["constraint"] == 6.0
            out = tmp_path / "front.png"
            main(["plot", str(jid), "--out", str(out), "--url", url, "--token", tok])
            assert capsys.readouterr().out.strip() == str(out)
            with Image.open(out) as im:
                assert im.format == "PNG" and im.size[0] > 2 * im.size[1] * 0.9  # front + HV panels side by side
            for args, msg in ((["99999"], "HTTP 404"), ([str(jid), "--token", "msu_wrong"], "HTTP 401")):
                with pytest.raises(SystemExit) as e:
                    main(["plot", *args, "--out", str(tmp_path / "x.png"), "--url", url,
                          *([] if "--token" in args else ["--token", tok])])
                err = capsys.readouterr().err
                assert e.value.code == 2 and err.startswith("msunas: error:") and msg in err, err
                assert not (tmp_path / "x.png").exists()
    finally:
        app.state.db.dispose()
