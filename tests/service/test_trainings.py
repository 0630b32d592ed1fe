"""``POST /jobs/{id}/archs/{arch_id}/train`` end to end: a real worker trains the archived architecture from the
job's (random-init, asked for) supernet on digits, stores each epoch's checkpoint, and the measured figures and
files come back over REST; a worker that dies mid-training is continued by another from the stored epoch;
cancel, conflicts and bad input are problem+json naming the field."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import onnx
import pytest
import torch
from fastapi.testclient import TestClient
from sqlalchemy import select

from service import repository as repo
from service import trainings as tr
from service.app import create_app
from service.db import Database
from service.models import Training, TrainingFile
from service.settings import Settings
from service.worker import Worker
from supernets.export import load_torch_export
from tests.service.test_api import _problem
from tests.service.test_worker import oracle_spec

torch.set_num_threads(1)
QUICK = {"epochs": 2, "batch_size": 16, "train_images": 32, "int8": True}


@pytest.fixture
def served(db_url: str, tmp_path: Path, predictor_file: Path):  # type: ignore[no-untyped-def]
    """A server app, a worker-less database with one finished oracle job (digits, r32, random-init supernet)
    owned by alice, and the id of one of its successful architectures."""
    settings = Settings(db_url=db_url, data_roots=[tmp_path], poll_seconds=0.01)
    app = create_app(settings)
    db: Database = app.state.db
    _, alice = repo.create_token(db, "alice")
    _, bob = repo.create_token(db, "bob")
    with TestClient(app) as client:
        h = {"Authorization": f"Bearer {alice}"}
        spec = oracle_spec(predictor_file, resolution=[32, 32], supernet={"random_init": True},
                           dataset={"name": "digits", "vld_size": 64, "n_classes": 10})
        job = client.post("/jobs", json=spec, headers=h).json()
        Worker(settings).run(max_idle_seconds=0.3)
        assert client.get(f"/jobs/{job['id']}", headers=h).json()["state"] == "succeeded"
        arch = client.get(f"/jobs/{job['id']}/archive", headers=h).json()["items"][0]
        client.pred = predictor_file  # type: ignore[attr-defined]
        yield client, settings, db, h, {"Authorization": f"Bearer {bob}"}, job["id"], arch["id"]
    db.dispose()


def test_train_an_archive_row_over_rest(served) -> None:  # type: ignore[no-untyped-def]
    client, settings, db, h, bob, job_id, arch_id = served
    r = client.post(f"/jobs/{job_id}/archs/{arch_id}/train", json=QUICK, headers=h)
    assert r.status_code == 202, r.text
    t = r.json()
    assert r.headers["location"] == f"/jobs/{job_id}/trainings/{t['id']}"
    assert t["state"] == "queued" and t["epochs"] == 2 and t["options"]["kd_ratio"] == 0.5 and t["files"] == []
    _problem(client.post(f"/jobs/{job_id}/archs/{arch_id}/train", json=QUICK, headers=h), 409, "arch_id")
    _problem(client.get(f"/jobs/{job_id}/trainings/{t['id']}", headers=bob), 404)  # another owner's
    _problem(client.get(f"/jobs/{job_id}/trainings/{t['id']}/files/net.onnx", headers=h), 409)  # not done yet

    Worker(settings).run(max_idle_seconds=0.3)
    done = client.get(f"/jobs/{job_id}/trainings/{t['id']}", headers=h).json()
    assert done["state"] == "succeeded", done["error"]
    assert done["epoch"] == 2 and [e["epoch"] for e in done["history"]] == [1, 2]
    m = done["metrics"]
    assert 0.0 <= m["top1"] <= 100.0 and "top1_inherited" in m and "top1_int8" in m and m["latency_ms_fp32"] > 0
    assert {f["name"] for f in done["files"]} == {"net.pth", "net.onnx", "net.int8.onnx", "net.stats"}
    assert client.get(f"/jobs/{job_id}/trainings", headers=h).json()["items"][0]["id"] == t["id"]

    onnx_bytes = client.get(f"/jobs/{job_id}/trainings/{t['id']}/files/net.onnx", headers=h)
    assert onnx_bytes.headers["content-type"] == "application/onnx"
    props = {p.key: json.loads(p.value) for p in onnx.load_from_string(onnx_bytes.content).metadata_props}
    assert props["msunas.artefact"]["dataset"]["name"] == "digits" and props["msunas.artefact"]["resolution"] == 32
    stats = client.get(f"/jobs/{job_id}/trainings/{t['id']}/files/net.stats", headers=h).json()
    assert stats["done"] and stats["metrics"]["top1"] == m["top1"] and "files" not in stats  # no server paths
    pth = client.get(f"/jobs/{job_id}/trainings/{t['id']}/files/net.pth", headers=h).content
    (Path(settings.data_roots[0]) / "net.pth").write_bytes(pth)
    net, cfg = load_torch_export(Path(settings.data_roots[0]) / "net.pth")
    assert net(torch.zeros(1, 3, 32, 32)).shape == (1, 10)
    with db.transaction() as s:  # the checkpoint went with success; a finished training cannot be cancelled
        names = set(s.execute(select(TrainingFile.name).where(TrainingFile.training_id == t["id"])).scalars())
        assert tr.CHECKPOINT not in names
    _problem(client.post(f"/jobs/{job_id}/trainings/{t['id']}/cancel", headers=h), 409)


def _claim_and_die_after_one_epoch(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> tr.TrainingClaim:
    """A worker that stores one epoch and then dies (its lease left to expire)."""
    from service.train_runner import train_claimed

    db = Database(settings.db_url)
    claim = tr.claim_training(db, "dying", lease_seconds=0.5, max_attempts=3)
    assert claim is not None
    real = tr.save_epoch

    def save_then_die(*a: Any) -> bool:
        real(*a)
        return False  # the worker stops right after its first stored epoch, as if it had been killed

    with monkeypatch.context() as m:
        m.setattr(tr, "save_epoch", save_then_die)
        assert train_claimed(db, claim) is None
    db.dispose()
    return claim


def test_a_dead_workers_training_continues_from_its_stored_epoch(served, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    client, settings, db, h, _, job_id, arch_id = served
    t = client.post(f"/jobs/{job_id}/archs/{arch_id}/train", json=QUICK, headers=h).json()
    first = _claim_and_die_after_one_epoch(settings, monkeypatch)
    mid = client.get(f"/jobs/{job_id}/trainings/{t['id']}", headers=h).json()
    assert mid["state"] == "running" and mid["epoch"] == 1
    time.sleep(0.6)  # the dead worker's lease expires
    Worker(settings).run(max_idle_seconds=0.3)
    done = client.get(f"/jobs/{job_id}/trainings/{t['id']}", headers=h).json()
    assert done["state"] == "succeeded", done["error"]
    assert [e["epoch"] for e in done["history"]] == [1, 2]  # epoch 1 was not trained again
    with db.transaction() as s:
        row = s.execute(select(Training).where(Training.id == t["id"])).scalar_one()
        assert row.attempt == first.attempt + 1 and row.n_lost == 1
    # the same training uninterrupted gives the same weights: the continuation is exact
    t2 = client.post(f"/jobs/{job_id}/archs/{arch_id}/train", json=QUICK, headers=h).json()
    Worker(settings).run(max_idle_seconds=0.3)
    again = client.get(f"/jobs/{job_id}/trainings/{t2['id']}", headers=h).json()
    assert again["history"][-1]["train_loss"] == pytest.approx(done["history"][-1]["train_loss"], rel=1e-6)
    assert again["metrics"]["top1"] == done["metrics"]["top1"]


def test_cancel_and_bad_input(served) -> None:  # type: ignore[no-untyped-def]
    client, settings, db, h, _, job_id, arch_id = served
    _problem(client.post(f"/jobs/{job_id}/archs/{arch_id}/train", json={"epochs": 0}, headers=h), 422, "epochs")
    _problem(client.post(f"/jobs/{job_id}/archs/{arch_id}/train", json={"lr": "fast"}, headers=h), 422, "lr")
    _problem(client.post(f"/jobs/{job_id}/archs/{arch_id}/train", json={"optimizer": "adam"}, headers=h), 422,
             "optimizer")
    _problem(client.post(f"/jobs/{job_id}/archs/999999/train", json=QUICK, headers=h), 404)
    _problem(client.get(f"/jobs/{job_id}/trainings/1/files/secret.txt", headers=h), 422, "name")
    t = client.post(f"/jobs/{job_id}/archs/{arch_id}/train", headers=h).json()  # no body: the defaults
    assert t["options"]["epochs"] == 30 and t["options"]["int8"] is True
    c = client.post(f"/jobs/{job_id}/trainings/{t['id']}/cancel", headers=h)
    assert c.status_code == 200 and c.json()["state"] == "cancelled"
    Worker(settings).run(max_idle_seconds=0.2)  # nothing to claim
    assert client.get(f"/jobs/{job_id}/trainings/{t['id']}", headers=h).json()["state"] == "cancelled"


def test_a_job_without_data_for_its_head_is_refused(served) -> None:  # type: ignore[no-untyped-def]
    """The ImageNet oracle's architectures have 1000 classes; digits has 10: nothing to train them on (409)."""
    client, settings, _, h, _, _, _ = served
    spec = oracle_spec(client.pred, resolution=[32, 32], supernet={"random_init": True})
    job = client.post("/jobs", json=spec, headers=h).json()
    Worker(settings).run(max_idle_seconds=0.3)
    arch = client.get(f"/jobs/{job['id']}/archive", headers=h).json()["items"][0]
    body = _problem(client.post(f"/jobs/{job['id']}/archs/{arch['id']}/train", json=QUICK, headers=h), 409, "arch_id")
    assert "1000 classes" in body["detail"] and "digits has 10" in body["detail"]


def test_cli_train_job_arch_runs_on_the_servers_workers(tmp_path: Path, predictor_file: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """``msunas train --job J --arch A --out DIR``: queued over REST, followed, files downloaded into DIR."""
    from service.db import upgrade
    from tests.conftest import run_cli
    from tests.service.live_server import live_server

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    upgrade(url)
    settings = Settings(db_url=url, data_roots=[tmp_path], poll_seconds=0.01)
    app = create_app(settings)
    _, secret = repo.create_token(app.state.db, "cli")
    spec = oracle_spec(predictor_file, resolution=[32, 32], supernet={"random_init": True},
                       dataset={"name": "digits", "vld_size": 64, "n_classes": 10})
    with live_server(app) as base:
        auth = ["--url", base, "--token", secret]
        (tmp_path / "spec.json").write_text(json.dumps(spec))
        assert run_cli(["submit", str(tmp_path / "spec.json"), *auth]) == 0
        Worker(settings).run(max_idle_seconds=0.3)
        stop = threading.Event()
        worker = Worker(settings)
        worker.stop_requested = stop
        th = threading.Thread(target=worker.run, daemon=True)
        th.start()
        try:
            capsys.readouterr()
            out = tmp_path / "trained"
            rc = run_cli(["train", "--job", "1", "--arch", "1", "--out", str(out), "--epochs", "1", "--batch-size",
                          "16", "--train-images", "32", "--interval", "0.1", *auth])
            text = capsys.readouterr().out
            assert rc == 0, text
            assert "trained 1 epochs into" in text and "int8 ONNX" in text
            assert {p.name for p in out.iterdir()} == {"net.pth", "net.onnx", "net.int8.onnx", "net.stats"}
            assert json.loads((out / "net.stats").read_text())["artefact"]["resolution"] == 32
            # refused before anything is queued: a non-empty --out, a local-only option with --job
            assert run_cli(["train", "--job", "1", "--arch", "1", "--out", str(out), *auth]) == 2
            assert "--out: " in capsys.readouterr().err
            assert run_cli(["train", "--job", "1", "--arch", "1", "--out", str(tmp_path / "o2"), "--device", "cuda",
                            *auth]) == 2
            err = capsys.readouterr().err
            assert err.startswith("msunas: error: --device: with --job") and err.count("\n") == 1
            assert run_cli(["train", "--job", "1", "--out", str(tmp_path / "o3"), *auth]) == 2
            assert "--arch: " in capsys.readouterr().err
        finally:
            stop.set()
            th.join(30)
    app.state.db.dispose()
