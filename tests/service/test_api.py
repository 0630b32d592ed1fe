"""REST API without workers: auth, ownership (404), problem+json errors naming the field, idempotency,
pagination, path confinement, body limit, schema refusal."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service import repository as repo
from service.app import create_app
from service.db import Database, SchemaOutdatedError
from service.settings import Settings


@pytest.fixture
def api(db_url: str, tmp_path: Path, predictor_file: Path):
    settings = Settings(db_url=db_url, data_roots=[tmp_path], max_body_bytes=20_000)
    app = create_app(settings)
    db: Database = app.state.db
    _, alice = repo.create_token(db, "alice")
    _, bob = repo.create_token(db, "bob")
    with TestClient(app) as client:
        yield client, {"Authorization": f"Bearer {alice}"}, {"Authorization": f"Bearer {bob}"}, predictor_file
    db.dispose()


def _spec(pred: Path, **kw):
    return {"evaluator": {"kind": "oracle", "path": str(pred)}, "n_doe": 10, "n_iter": 4, "iterations": 2, **kw}


def _problem(r, status: int, field: str | None = None) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["status"] == status and body["title"] and body["detail"]
    if field is not None:
        assert body["field"] == field, body
    return body


def test_healthz_and_openapi(api) -> None:
    client, *_ = api
    assert client.get("/healthz").json()["status"] == "ok"
    paths = client.get("/openapi.json").json()["paths"]
    for p in ("/jobs", "/jobs/{job_id}", "/jobs/{job_id}/cancel", "/jobs/{job_id}/resume", "/jobs/{job_id}/archive",
              "/jobs/{job_id}/iterations", "/jobs/{job_id}/iterations/{k}", "/jobs/{job_id}/select",
              "/jobs/{job_id}/archs/{arch_id}/export"):
        assert p in paths
    assert client.get("/docs").status_code == 200


def test_auth_required(api) -> None:
    client, alice, _, pred = api
    _problem(client.get("/jobs"), 401, "Authorization")
    _problem(client.get("/jobs", headers={"Authorization": "Bearer nope"}), 401, "Authorization")
    _problem(client.post("/jobs", json=_spec(pred)), 401)


def test_submit_get_and_ownership(api) -> None:
    client, alice, bob, pred = api
    r = client.post("/jobs", json=_spec(pred), headers=alice)
    assert r.status_code == 202, r.text
    jid = r.json()["id"]
    assert r.headers["location"] == f"/jobs/{jid}"
    j = client.get(f"/jobs/{jid}", headers=alice).json()
    assert j["state"] == "queued" and j["progress"]["iteration"] == -1 and j["hv_history"] == []
    for method, path in (("GET", f"/jobs/{jid}"), ("POST", f"/jobs/{jid}/cancel"), ("GET", f"/jobs/{jid}/archive"),
                         ("GET", f"/jobs/{jid}/iterations"), ("POST", f"/jobs/{jid}/resume"),
                         ("GET", f"/jobs/{jid}/archs/1/export")):
        _problem(client.request(method, path, headers=bob), 404)
    assert client.get("/jobs", headers=bob).json()["items"] == []
    _problem(client.get("/jobs/999999", headers=alice), 404)
    _problem(client.get("/jobs/0", headers=alice), 422, "job_id")
    _problem(client.get("/jobs/99999999999999999999999", headers=alice), 422, "job_id")


def test_validation_errors_name_the_field(api) -> None:
    client, alice, _, pred = api
    _problem(client.post("/jobs", json=_spec(pred, n_doe=1), headers=alice), 422, "n_doe")
    _problem(client.post("/jobs", json=_spec(pred, bogus=1), headers=alice), 422, "bogus")
    _problem(client.post("/jobs", json={"evaluator": {"kind": "oracle"}}, headers=alice), 422, "evaluator.path")
    b = _problem(client.post("/jobs", json=_spec(pred, dataset={"name": "cifar10"}), headers=alice), 422,
                 "dataset.root")
    assert "root" in b["detail"]
    _problem(client.post("/jobs", content=b"{not json", headers={**alice, "content-type": "application/json"}), 422)
    _problem(client.post("/jobs", json=_spec(pred, iterations=10**9), headers=alice), 422, "iterations")
    _problem(client.get("/jobs?state=bogus", headers=alice), 422, "state")
    _problem(client.get("/jobs?cursor=%%%", headers=alice), 422, "cursor")


def test_server_paths_confined_to_data_roots(api, tmp_path: Path) -> None:
    client, alice, _, pred = api
    b = _problem(client.post("/jobs", json=_spec(Path("/etc/passwd")), headers=alice), 422, "evaluator.path")
    assert "data roots" in b["detail"]
    escape = tmp_path / ".." / "x.npz"
    _problem(client.post("/jobs", json=_spec(escape), headers=alice), 422, "evaluator.path")
    _problem(client.post("/jobs", json=_spec(pred, latency_table="/etc/lut.yaml"), headers=alice), 422,
             "latency_table")
    _problem(client.post("/jobs", json=_spec(pred, supernet={"path": "/root/net"}), headers=alice), 422,
             "supernet.path")


def test_body_size_limit(api) -> None:
    client, alice, _, pred = api
    big = _spec(pred, constraints={"params": 1.0}, penalty={"weights": {"params": 1.0}})
    big["padding"] = "x" * 30_000
    _problem(client.post("/jobs", json=big, headers=alice), 413, "body")


def test_idempotency_key(api) -> None:
    client, alice, bob, pred = api
    h = {**alice, "Idempotency-Key": "abc"}
    r1 = client.post("/jobs", json=_spec(pred), headers=h)
    r2 = client.post("/jobs", json=_spec(pred), headers=h)
    assert r1.status_code == r2.status_code == 202 and r1.json()["id"] == r2.json()["id"]
    assert r2.headers.get("idempotent-replayed") == "true"
    _problem(client.post("/jobs", json=_spec(pred, seed=3), headers=h), 409, "Idempotency-Key")
    assert client.post("/jobs", json=_spec(pred), headers={**bob, "Idempotency-Key": "abc"}).json()["id"] != r1.json()[
        "id"]


def test_list_pagination_filter_cancel(api) -> None:
    client, alice, _, pred = api
    ids = [client.post("/jobs", json=_spec(pred, seed=i), headers=alice).json()["id"] for i in range(5)]
    got, cursor = [], None
    while True:
        r = client.get("/jobs", params={"limit": 2, **({"cursor": cursor} if cursor else {})}, headers=alice).json()
        got += [j["id"] for j in r["items"]]
        cursor = r["next_cursor"]
        if cursor is None:
            break
    assert got == sorted(ids, reverse=True)
    assert client.post(f"/jobs/{ids[0]}/cancel", headers=alice).json()["state"] == "cancelled"
    _problem(client.post(f"/jobs/{ids[0]}/cancel", headers=alice), 409)
    assert [j["id"] for j in client.get("/jobs?state=cancelled", headers=alice).json()["items"]] == [ids[0]]
    assert len(client.get("/jobs?state=queued", headers=alice).json()["items"]) == 4
    _problem(client.post(f"/jobs/{ids[1]}/resume", json={"from_iteration": 0}, headers=alice), 409,
             "from_iteration")  # a valid number, but the job has stored no iteration: its state (409)
    for c in ("0", "1", "9" * 18):  # every cursor the schema admits is answered (an empty or a full page)
        assert client.get("/jobs", params={"cursor": c}, headers=alice).status_code == 200
    _problem(client.get("/jobs", params={"cursor": "9" * 19}, headers=alice), 422, "cursor")
    _problem(client.get(f"/jobs/{ids[1]}/iterations/0", headers=alice), 404)
    assert client.get(f"/jobs/{ids[1]}/archive", headers=alice).json() == {"items": [], "next_cursor": None}


def test_server_refuses_outdated_schema(empty_db_url: str) -> None:
    with pytest.raises(SchemaOutdatedError, match="msunas db upgrade"):
        create_app(Settings(db_url=empty_db_url))


def test_per_user_job_limit_is_429_with_retry_after(db_url: str, tmp_path: Path, predictor_file: Path) -> None:
    app = create_app(Settings(db_url=db_url, data_roots=[tmp_path], max_active_jobs_per_user=3))
    db: Database = app.state.db
    _, alice = repo.create_token(db, "alice")
    _, bob = repo.create_token(db, "bob")
    a, b = {"Authorization": f"Bearer {alice}"}, {"Authorization": f"Bearer {bob}"}
    with TestClient(app) as client:
        for i in range(3):
            assert client.post("/jobs", json=_spec(predictor_file, seed=i), headers=a).status_code == 202
        r = client.post("/jobs", json=_spec(predictor_file, seed=9), headers=a)
        body = _problem(r, 429)
        assert int(r.headers["Retry-After"]) > 0 and "at most 3" in body["detail"]
        assert client.post("/jobs", json=_spec(predictor_file), headers=b).status_code == 202  # bob is not limited
        assert len(client.get("/jobs", headers=a).json()["items"]) == 3  # nothing was stored for the refused one
        jid = client.get("/jobs", headers=a).json()["items"][0]["id"]
        assert client.post(f"/jobs/{jid}/cancel", headers=a).status_code == 200
        assert client.post("/jobs", json=_spec(predictor_file, seed=9), headers=a).status_code == 202  # room again
    db.dispose()


def test_deleted_sqlite_file_is_unhealthy_and_refuses_writes(tmp_path: Path, predictor_file: Path) -> None:
    from service.db import upgrade

    path = tmp_path / "db" / "msunas.db"
    url = f"sqlite:///{path}"
    upgrade(url)
    app = create_app(Settings(db_url=url, data_roots=[tmp_path]))
    _, alice = repo.create_token(app.state.db, "alice")
    a = {"Authorization": f"Bearer {alice}"}
    with TestClient(app) as client:
        assert client.get("/healthz").json()["status"] == "ok"
        assert client.post("/jobs", json=_spec(predictor_file), headers=a).status_code == 202
        path.unlink()
        for r in (client.get("/healthz"), client.post("/jobs", json=_spec(predictor_file, seed=1), headers=a)):
            body = _problem(r, 503)
            assert r.headers["Retry-After"] and str(tmp_path) not in r.text and "Traceback" not in r.text
            assert body.get("request_id") or r.headers.get("X-Request-ID")
    app.state.db.dispose()


def test_stored_errors_carry_no_traceback_or_server_path() -> None:
    msg = repo.public_error("engine step failed: InputError: evaluator.path: /srv/data/x.npz is not a predictor\n"
                            "Traceback (most recent call last):\n  File \"/opt/msunas/search/engine.py\", line 3")
    assert msg == "engine step failed: InputError: evaluator.path: <server path> is not a predictor"
    assert repo.public_error("macs 1/2 of a/b at r=160") == "macs 1/2 of a/b at r=160"


def test_yaml_bodies_are_accepted_and_duplicate_keys_refused(api) -> None:
    client, alice, _, pred = api
    yaml_spec = f"evaluator: {{kind: oracle, path: {pred}}}\nn_doe: 10\nn_iter: 4\niterations: 2\n"
    r = client.post("/jobs", content=yaml_spec, headers={**alice, "Content-Type": "application/yaml"})
    assert r.status_code == 202, r.text
    assert r.json()["spec"]["n_doe"] == 10
    dup_json = '{"n_doe": 10, "n_iter": 4, "n_doe": 12, "evaluator": {"kind": "oracle", "path": "PRED"}}'
    dup_json = dup_json.replace("PRED", str(pred))
    _problem(client.post("/jobs", content=dup_json, headers={**alice, "Content-Type": "application/json"}), 422,
             "n_doe")
    dup_yaml = yaml_spec + "evaluator: {kind: oracle, path: x, path: y}\n"
    _problem(client.post("/jobs", content=dup_yaml, headers={**alice, "Content-Type": "text/yaml"}), 422, "evaluator")
    _problem(client.post("/jobs", content="n_doe: [1, 2", headers={**alice, "Content-Type": "application/yaml"}), 422,
             "body")
    assert len(client.get("/jobs", headers=alice).json()["items"]) == 1  # nothing stored for the refused ones


def test_concurrent_keyed_posts_give_no_5xx_and_one_job_per_key(db_url: str, tmp_path: Path,
                                                                 predictor_file: Path) -> None:
    """50 concurrent POSTs with distinct Idempotency-Keys plus 10 reusing one key, through a real server's
    threads: no 5xx, exactly one job per key (SQLite: BEGIN IMMEDIATE + busy timeout; PostgreSQL: row locks)."""
    from concurrent.futures import ThreadPoolExecutor

    app = create_app(Settings(db_url=db_url, data_roots=[tmp_path]))
    _, alice = repo.create_token(app.state.db, "alice")
    with TestClient(app) as client:
        def post(key: str) -> tuple[int, int | None]:
            r = client.post("/jobs", json=_spec(predictor_file),
                            headers={"Authorization": f"Bearer {alice}", "Idempotency-Key": key})
            return r.status_code, r.json().get("id") if r.status_code < 300 else None

        keys = [f"k{i}" for i in range(50)] + ["shared"] * 10
        with ThreadPoolExecutor(max_workers=16) as ex:
            results = list(ex.map(post, keys))
        assert all(code < 500 for code, _ in results), sorted({c for c, _ in results})
        assert all(code in (200, 201, 202) for code, _ in results), [c for c, _ in results]
        shared = {jid for (code, jid), k in zip(results, keys, strict=True) if k == "shared"}
        assert len(shared) == 1
        items = client.get("/jobs?limit=200", headers={"Authorization": f"Bearer {alice}"}).json()["items"]
        assert len(items) == 51
    app.state.db.dispose()


def test_solver_engine_jobs_are_accepted(api) -> None:
    """``engine: {kind: solver}`` is a REST job like any other; what it cannot optimise is a 422 naming the field."""
    client, alice, _, pred = api
    for method in ("milp", "bcfw", "evo"):
        spec = _spec(pred, predictor="bilinear", constraints={"macs": 3e8},
                     engine={"kind": "solver", "method": method, "n_picks": 2})
        r = client.post("/jobs", json=spec, headers=alice)
        assert r.status_code == 202, r.text
        assert client.get(f"/jobs/{r.json()['id']}", headers=alice).json()["spec"]["engine"]["method"] == method
    _problem(client.post("/jobs", json=_spec(pred, engine={"kind": "solver"}), headers=alice), 422, "engine.method")
    _problem(client.post("/jobs", json=_spec(pred, predictor="bilinear", engine={"kind": "solver", "n_picks": 0}),
                         headers=alice), 422, "engine.n_picks")
