"""End to end through the REST API and the CLI: serve with workers, submit, watch, status, iterations,
archive pages, resume from an iteration, export to ONNX."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from fastapi.testclient import TestClient

from service import repository as repo
from service.app import create_app
from service.cache import SummaryCache
from service.settings import Settings
from service.worker import Worker
from tests.conftest import ROOT
from tests.service.test_worker import oracle_spec


def test_api_flow_with_worker(db_url: str, tmp_path: Path, predictor_file: Path) -> None:
    app = create_app(Settings(db_url=db_url, data_roots=[tmp_path]))
    _, secret = repo.create_token(app.state.db, "alice")
    h = {"Authorization": f"Bearer {secret}"}
    with TestClient(app) as c:
        r = c.post("/jobs", json=oracle_spec(predictor_file), headers=h)
        no_weights = r.json()["id"]  # an oracle job that names no supernet: nothing to export (409, below)
        r = c.post("/jobs", json=oracle_spec(predictor_file, supernet={"random_init": True}), headers=h)
        jid = r.json()["id"]
        Worker(Settings(db_url=db_url, poll_seconds=0.01)).run(max_idle_seconds=0.5)
        j = c.get(f"/jobs/{jid}", headers=h).json()
        assert j["state"] == "succeeded" and len(j["hv_history"]) == 2 and j["progress"]["n_evaluated"] == 11
        r = c.get(f"/jobs/{no_weights}/archs/1/export", headers=h)
        assert r.status_code == 409 and r.json()["field"] == "supernet" and "--supernet" in r.json()["detail"]
        its = c.get(f"/jobs/{jid}/iterations", headers=h).json()["items"]
        assert [i["iteration"] for i in its] == [0, 1] and "engine_state" not in its[0]
        it1 = c.get(f"/jobs/{jid}/iterations/1", params={"include_state": True}, headers=h).json()
        assert it1["engine_state"] and it1["n_archive"] == 11
        items, cursor = [], None
        while True:
            page = c.get(f"/jobs/{jid}/archive", params={"limit": 5, **({"cursor": cursor} if cursor else {})},
                         headers=h).json()
            items += page["items"]
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert len(items) == 11 and len({a["key"] for a in items}) == 11
        a = items[0]
        assert c.get(f"/jobs/{jid}/archs/{a['id']}", headers=h).json()["config"] == a["config"]
        r = c.get(f"/jobs/{jid}/archs/{a['id']}/export", params={"format": "onnx"}, headers=h)
        # a real ONNX model of that architecture: ONNX Runtime runs it at the architecture's resolution
        assert r.status_code == 200 and r.headers["content-type"] == "application/onnx", r.text
        sess = ort.InferenceSession(r.content, providers=["CPUExecutionProvider"])
        res = a["config"]["r"]
        (logits,) = sess.run(None, {"input": np.zeros((2, 3, res, res), np.float32)})
        assert logits.shape == (2, 1000)  # the oracle job's task is ImageNet's
        r = c.get(f"/jobs/{jid}/archs/{a['id']}/export", params={"format": "onnx-int8"}, headers=h)
        assert r.status_code == 200 and r.headers["content-type"] == "application/onnx", r.text
        assert r.headers["content-disposition"].endswith('.onnx"')
        model = onnx.load_from_string(r.content)  # quantised, calibrated on the job's dataset (digits), measured
        assert "QuantizeLinear" in {n.op_type for n in model.graph.node}
        q = json.loads({p.key: p.value for p in model.metadata_props}["msunas.quantization"])
        assert {"top1_fp32", "top1_int8", "latency_ms_fp32", "latency_ms_int8"} <= set(q)
        _problem_field = c.get(f"/jobs/{jid}/archs/{a['id']}/export", params={"format": "tflite"}, headers=h)
        assert _problem_field.status_code == 422 and _problem_field.json()["field"] == "format"
        r = c.post(f"/jobs/{jid}/select", json={"n": 2, "prefer": "trade-off"}, headers=h)
        assert r.status_code == 200, r.text
        picked = r.json()["items"]
        assert 1 <= len(picked) <= 2 and {p["id"] for p in picked} <= {a["id"] for a in items}
        bad = c.post(f"/jobs/{jid}/select", json={"prefer": "nosuchmetric"}, headers=h)
        assert bad.status_code == 422 and bad.json()["field"] == "prefer"
        assert c.post(f"/jobs/{jid}/select", json={"n": 0}, headers=h).json()["field"] == "n"
        # a server does not measure latency for a client (its CPU is shared): `measure` is refused, named
        bad = c.post(f"/jobs/{jid}/select", json={"n": 1, "measure": "cpu"}, headers=h)
        assert bad.status_code == 422 and bad.json()["field"] == "measure", bad.text
        # TF-NAS's precise target through REST: the net closest to the median MACs from below
        macs = sorted(x["metrics"]["macs"] / 1e6 for x in items if x["status"] == "ok" and x["feasible"])
        x_m = macs[len(macs) // 2]
        r = c.post(f"/jobs/{jid}/select", json={"n": 1, "target": f"macs={x_m + 1e-6}"}, headers=h)
        assert r.status_code == 200, r.text
        assert r.json()["items"][0]["metrics"]["macs"] / 1e6 == pytest.approx(x_m)
        both = c.post(f"/jobs/{jid}/select", json={"target": "macs=100", "prefer": "macs"}, headers=h)
        assert both.status_code == 422 and "target" in both.text
        r = c.post(f"/jobs/{jid}/resume", json={"from_iteration": 0}, headers=h)
        assert r.status_code == 409 and r.json()["field"] == "force"  # iteration 1 is stored: not discarded silently
        r = c.post(f"/jobs/{jid}/resume", json={"from_iteration": 0, "force": True}, headers=h)
        assert r.status_code == 202 and r.json()["state"] == "queued"
        assert [x["iteration"] for x in c.get(f"/jobs/{jid}", headers=h).json()["hv_history"]] == [0]
        Worker(Settings(db_url=db_url, poll_seconds=0.01)).run(max_idle_seconds=0.5)
        time.sleep(SummaryCache().fresh + SummaryCache().stale_max)  # the longest a summary is stale
        j2 = c.get(f"/jobs/{jid}", headers=h).json()
        assert j2["state"] == "succeeded" and j2["hv_history"] == j["hv_history"]
    app.state.db.dispose()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cli(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "service.cli", *args], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_cli_serve_submit_watch(tmp_path: Path, predictor_file: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT), MSUNAS_DB_URL=url, MSUNAS_URL=f"http://127.0.0.1:{port}",
               MSUNAS_POLL_SECONDS="0.05")
    r = _cli("serve", "--port", str(port), env=env)
    assert r.returncode == 2 and "msunas db upgrade" in r.stderr and r.stderr.startswith("msunas: error:")
    r = _cli("worker", env=env)
    assert r.returncode == 2 and "msunas db upgrade" in r.stderr
    assert "revision" in _cli("db", "upgrade", env=env).stdout
    tok = _cli("token", "create", "--name", "me", env=env)
    assert tok.returncode == 0, tok.stderr
    env["MSUNAS_TOKEN"] = tok.stdout.strip()
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(oracle_spec(predictor_file)))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(oracle_spec(predictor_file, n_doe=1)))
    r = _cli("submit", str(bad), env=env)
    assert r.returncode == 2 and "n_doe" in r.stderr
    server = subprocess.Popen([sys.executable, "-m", "service.cli", "serve", "--port", str(port), "--workers", "2",
                               "--data-root", str(tmp_path)], env=env, cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        end = time.monotonic() + 60
        while time.monotonic() < end:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        r = _cli("submit", str(spec), env=env)
        assert r.returncode == 0, r.stderr
        jid = r.stdout.strip()
        w = _cli("watch", jid, "--interval", "0.2", env=env, timeout=180)
        assert w.returncode == 0, w.stdout + w.stderr
        assert "state=succeeded" in w.stdout
        st = _cli("status", jid, "--json", env=env)
        assert json.loads(st.stdout)["progress"]["n_evaluated"] == 11
        r = _cli("status", "99999", env=env)
        assert r.returncode == 2 and "HTTP 404" in r.stderr
        r = _cli("select", jid, "-n", "2", "--prefer", "trade-off", "--json", env=env)  # a job id: on the server
        assert r.returncode == 0, r.stderr
        picked = json.loads(r.stdout)["items"]
        assert 1 <= len(picked) <= 2 and all("config" in p and "id" in p for p in picked)
    finally:
        server.terminate()
        assert server.wait(timeout=60) == 0  # and it stopped its workers (checked below)
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert str(tmp_path / "cli.db") not in ps, "serve left worker processes behind"


def test_cli_select_of_a_local_search_folder(shared_data: Path) -> None:
    """`msunas select PATH` still selects locally (the search command's select), `select ID` remotely."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = _cli("select", str(shared_data / "cnas_cifar10" / "iter_30.stats"), "-n", "2", env=env)
    assert r.returncode == 0, r.stderr
    assert "selected" in r.stdout
