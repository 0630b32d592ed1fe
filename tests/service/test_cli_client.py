"""The job commands against a live server: jobs, status, cancel, resume --from/--force, select (--json, --csv -,
--save), export --job/--arch, token create/list/revoke, --version: each output format, exit code and one-line
error."""

from __future__ import annotations

import csv
import io
import json
import re
import time
from pathlib import Path

import onnxruntime as ort
import pytest

from service.app import create_app
from service.db import upgrade
from service.settings import Settings
from service.worker import Worker
from tests.conftest import run_cli
from tests.service.live_server import live_server
from tests.service.test_worker import oracle_spec


@pytest.fixture
def server(tmp_path: Path, predictor_file: Path):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    upgrade(url)
    app = create_app(Settings(db_url=url, data_roots=[tmp_path]))
    with live_server(app) as base:
        yield {"db": url, "url": base, "tmp": tmp_path, "pred": predictor_file}
    app.state.db.dispose()


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = run_cli(args)
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def test_job_commands(server: dict, capsys: pytest.CaptureFixture[str]) -> None:
    db_opt = ["--db", server["db"]]
    rc, token, _ = _cli(["token", "create", "--name", "cli", *db_opt], capsys)
    assert rc == 0
    auth = ["--url", server["url"], "--token", token.strip()]
    spec = server["tmp"] / "spec.json"
    spec.write_text(json.dumps(oracle_spec(server["pred"], iterations=1, supernet={"random_init": True})))
    rc, out, err = _cli(["submit", str(spec), *auth], capsys)
    assert rc == 0 and out.strip().isdigit() and "queued" in err
    jid = out.strip()
    Worker(Settings(db_url=server["db"], poll_seconds=0.01)).run(max_idle_seconds=0.5)

    rc, out, _ = _cli(["jobs", "--json", *auth], capsys)
    jobs = json.loads(out)
    assert rc == 0 and [j["id"] for j in jobs] == [int(jid)] and jobs[0]["state"] == "succeeded"
    rc, out, _ = _cli(["jobs", "--state", "succeeded", *auth], capsys)
    assert rc == 0 and "succeeded" in out
    rc, out, _ = _cli(["status", jid, *auth], capsys)
    assert rc == 0 and f"job {jid}  state=succeeded" in out and "feasible 11" in out

    # cancel a finished job: the server's 409, one line, exit 2
    rc, _, err = _cli(["cancel", jid, *auth], capsys)
    assert rc == 2 and err.startswith("msunas: error:") and "only queued or running" in err and err.count("\n") == 1
    # resume from 0 keeps iteration 1 unless --force
    rc, _, err = _cli(["resume", jid, "--from", "0", *auth], capsys)
    assert rc == 2 and "force: " in err and "(HTTP 409)" in err
    rc, out, _ = _cli(["resume", jid, "--from", "0", "--force", "--json", *auth], capsys)
    assert rc == 0 and json.loads(out)["state"] == "queued"
    Worker(Settings(db_url=server["db"], poll_seconds=0.01)).run(max_idle_seconds=0.5)

    # select on the server: one format per flag
    rc, out, _ = _cli(["select", jid, "-n", "2", "--prefer", "trade-off", "--csv", "-", *auth], capsys)
    rows = list(csv.DictReader(io.StringIO(out)))
    assert rc == 0 and len(rows) == 2 and {"rank", "id", "top1_pct", "params_M", "config"} <= set(rows[0])
    save = server["tmp"] / "picks"
    rc, out, _ = _cli(["select", jid, "-n", "2", "--json", "--save", str(save), *auth], capsys)
    items = json.loads(out)["items"]
    assert rc == 0 and len(items) == 2 and all(i["artefact"]["supernet"]["kind"] == "random" for i in items)
    sub = json.loads((save / "net_0.subnet").read_text())
    assert sub["artefact"]["n_classes"] == 1000 and sub["artefact"]["resolution"] == sub["r"]
    rc, _, err = _cli(["select", jid, "--save", str(save), *auth], capsys)
    assert rc == 2 and "--save:" in err and "--overwrite" in err  # never writes into a non-empty folder

    # export an archived architecture by job and id
    out_file = server["tmp"] / "arch.onnx"
    rc, out, err = _cli(["export", "--job", jid, "--arch", str(items[0]["id"]), "--out", str(out_file), *auth], capsys)
    assert rc == 0, err
    sess = ort.InferenceSession(str(out_file), providers=["CPUExecutionProvider"])
    meta = sess.get_modelmeta().custom_metadata_map
    assert json.loads(meta["msunas.n_classes"]) == 1000 and json.loads(meta["msunas.config"])["r"] == items[0]["r"]
    rc, _, err = _cli(["export", "--job", jid, "--arch", str(items[0]["id"]), "--out", str(out_file), *auth], capsys)
    assert rc == 2 and "--out:" in err and "--overwrite" in err

    # tokens: listed without secrets, revoked within a second
    rc, out, _ = _cli(["token", "list", "--json", *db_opt], capsys)
    toks = json.loads(out)
    assert rc == 0 and toks[0]["name"] == "cli" and toks[0]["n_jobs"] == 1 and "token_hash" not in toks[0]
    rc, _, _ = _cli(["token", "revoke", str(toks[0]["id"]), *db_opt], capsys)
    assert rc == 0
    time.sleep(1.05)
    rc, _, err = _cli(["status", jid, *auth], capsys)
    assert rc == 2 and "Authorization: unknown or revoked token" in err
    rc, _, err = _cli(["token", "revoke", "999", *db_opt], capsys)
    assert rc == 2 and "token 999 not found" in err


def test_version_and_unreachable_server(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = _cli(["--version"], capsys)
    assert rc == 0 and out.startswith("msunas ")
    rc, _, err = _cli(["status", "1", "--url", "http://127.0.0.1:9", "--token", "x"], capsys)
    assert rc == 1 and err.startswith("msunas: error: cannot reach the server") and err.count("\n") == 1
    rc, _, err = _cli(["jobs", "--url", "http://127.0.0.1:9"], capsys)
    assert rc == 2 and "--token: no token given" in err


def test_docs_cli_table_matches_the_app() -> None:
    """README's CLI table names exactly the commands ``msunas --help`` lists."""
    import typer.main

    from service.cli import app

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## The CLI", 1)[1].split("\n## ", 1)[0]
    documented = set()
    for line in section.splitlines():
        if line.startswith("| `msunas "):
            cell = re.split(r"(?<!\\)\|", line)[1]
            for part in cell.split("`"):
                if part.startswith("msunas "):
                    documented.add(part.split()[1])
    group = typer.main.get_group(app)
    assert documented == set(group.commands), (documented ^ set(group.commands))
    for name, cmd in group.commands.items():  # and every sub-command of a group is documented
        for sub in getattr(cmd, "commands", {}):
            assert f"msunas {name} {sub}" in section or f"{name} {sub}" in section or f"|{sub}" in section, (name, sub)
