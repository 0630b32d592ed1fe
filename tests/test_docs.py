"""A documented example is a test: every job spec in README.md, docs/ and examples/ is parsed from the docs,
validated, and run (short budgets) through the CLI and through the REST API; every documented ``msunas``
command parses against the real CLI; and the README's two walkthroughs (your own data -> a chosen architecture,
and the service) run as bash scripts.

What is substituted to run here, and only that: data paths point at small real datasets in the documented
on-disk formats (written from scikit-learn's digits), supernet paths at a random-init checkpoint of the right
width and classes, predictor and latency-table paths at the test's own files, and the budgets (n_doe,
iterations, epochs, image counts) are cut down. Everything else runs as written.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml
from fastapi.testclient import TestClient

from search.spec import JobSpec, load_spec
from service import repository as repo
from service.app import create_app
from service.cli import app as cli_app
from service.db import upgrade
from service.settings import Settings
from service.worker import Worker
from supernets.ofa_supernet import build_supernet, save_supernet
from tests.conftest import ROOT, run_cli, shared_data_dir, write_cifar10, write_image_folder

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SPEC_KEYS = set(JobSpec.model_fields)


def _blocks(path: Path) -> list[tuple[str, str]]:
    return [(lang, body) for lang, body in re.findall(r"```(\w*)\n(.*?)```", path.read_text(), re.S)]


def _heredocs(body: str) -> list[str]:
    return re.findall(r"<<'?EOF'?\n(.*?)\nEOF", body, re.S)


def documented_specs() -> list[tuple[str, dict[str, Any]]]:
    """Every YAML mapping of job-spec fields in the docs (YAML blocks and heredocs in bash blocks) and examples/."""
    out: list[tuple[str, dict[str, Any]]] = []
    for path in DOCS:
        texts = []
        for lang, body in _blocks(path):
            if lang == "yaml":
                texts.append(body)
            elif lang in ("bash", "sh", ""):
                texts += _heredocs(body)
        for i, text in enumerate(texts):
            doc = yaml.safe_load(text)
            if isinstance(doc, dict) and doc and set(doc) <= SPEC_KEYS:
                out.append((f"{path.relative_to(ROOT)}#{i}", doc))
            elif isinstance(doc, dict) and set(doc) & SPEC_KEYS:
                raise AssertionError(f"{path.name}: a spec block with unknown fields {sorted(set(doc) - SPEC_KEYS)}")
    for p in sorted((ROOT / "examples").glob("*.yaml")):
        out.append((str(p.relative_to(ROOT)), yaml.safe_load(p.read_text())))
    return out


SPECS = documented_specs()


def test_the_readme_spec_block_is_the_default_spec() -> None:
    text = (ROOT / "README.md").read_text().split("## The job spec", 1)[1].split("```yaml\n", 1)[1].split("```")[0]
    doc = yaml.safe_load(text)
    assert set(doc) == SPEC_KEYS, f"document every field: {sorted(SPEC_KEYS ^ set(doc))}"
    assert load_spec(doc) == JobSpec()


@pytest.mark.parametrize("name,doc", SPECS, ids=[n for n, _ in SPECS])
def test_documented_spec_validates(name: str, doc: dict[str, Any]) -> None:
    load_spec(doc)


# ------------------------------------------------------------------------------------------- making it runnable
class Env:
    """The files a documented spec's paths are replaced with (created on demand in ``root``)."""

    def __init__(self, root: Path, oracle: Path) -> None:
        self.root, self.oracle = root, oracle

    def dataset(self, name: str) -> str:
        folder = self.root / f"data_{name}"
        if not folder.exists():
            if name == "cifar10":
                write_cifar10(folder)
            elif name == "imagefolder":
                write_image_folder(folder)
            else:
                pytest.skip(f"no small {name} tree is written for the docs tests")
        return str(folder)

    def supernet(self, width: float, n_classes: int) -> str:
        p = self.root / f"supernet_w{width}_c{n_classes}.pth"
        if not p.exists():
            save_supernet(build_supernet(width, n_classes, seed=0), p)
        return str(p)

    def latency_table(self) -> str:
        table = shared_data_dir() / "latency_luts" / "note10"
        if not table.is_dir():
            pytest.skip(f"{table} is absent (../shared/data)")
        return str(table)


# each engine kind's budget knobs, cut down (a kind not listed runs its documented budget)
ENGINE_CUTS: dict[str, dict[str, Any]] = {
    "msunas": {"pop_size": 8, "n_gen": 2, "cv_folds": 2},
    "botorch": {"pop_size": 8, "n_gen": 2, "pool_size": 100, "mc_samples": 8},
    "solver": {"n_picks": 2, "bcfw_iters": 20, "evo_pop": 16, "evo_gens": 5, "cv_folds": 2},
    "gradient": {"steps": 2, "batch_size": 8},
}


def runnable(doc: dict[str, Any], env: Env) -> dict[str, Any]:
    """The documented spec with its paths pointing at real local files and its budgets cut down."""
    spec = load_spec(doc)  # the documented one, with every default filled in
    d = copy.deepcopy(doc)
    d.update(n_doe=4, n_iter=2, iterations=1)
    engine = dict(d.get("engine") or {})
    d["engine"] = {**engine, **ENGINE_CUTS.get(engine.get("kind", "msunas"), {})}
    ds = dict(d.get("dataset") or {})
    if spec.dataset.root is not None:
        ds["root"] = env.dataset(spec.dataset.name)
    ds["vld_size"] = 16
    d["dataset"] = ds
    ev = dict(d.get("evaluator") or {"kind": "supernet"})
    if spec.evaluator.kind == "oracle":
        ev["path"] = str(env.oracle)
    elif spec.evaluator.kind == "supernet":
        ev.update(n_epochs=0, bn_calib_images=16, batch_size=16, train_images=16)
    d["evaluator"] = ev
    width = spec.width_mult
    if spec.latency_table:
        d["latency_table"] = env.latency_table()
        d["width_mult"], d["resolution"] = 1.2, [160, 160]  # what the note10 tables hold (width 1.2)
        width = 1.2
        if "latency_ms" in (d.get("constraints") or {}):  # a limit of that table's range (9.9-47.8 ms at r160)
            d["constraints"] = {**d["constraints"], "latency_ms": 25.0}
    if spec.supernet.path or (spec.evaluator.kind == "supernet" and not spec.supernet.random_init):
        n_classes = 10 if spec.dataset.name != "imagefolder" else 3
        d["supernet"] = {"path": env.supernet(width, n_classes)}
    rob = dict(d.get("robustness") or {})
    rob.update(n_draws=2, vld_images=16)
    if isinstance(rob.get("corruptions"), dict):
        rob["corruptions"] = {**rob["corruptions"], "n_images": 8, "cifar_c_root": None}
    d["robustness"] = rob
    return d


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, oracle_path: Path) -> Env:
    return Env(tmp_path_factory.mktemp("docs"), oracle_path)


def stored_iterations(doc: dict[str, Any]) -> int:
    """Iterations a cut-down run stores: the initial design and one more; a gradient search has only the one
    (its candidate)."""
    return 1 if (doc.get("engine") or {}).get("kind") == "gradient" else 2


@pytest.mark.slow
@pytest.mark.parametrize("name,doc", SPECS, ids=[n for n, _ in SPECS])
def test_documented_spec_runs_through_the_cli(name: str, doc: dict[str, Any], env: Env, tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(runnable(doc, env)))
    rc = run_cli(["search", str(path), "--out", str(tmp_path / "run"), "--quiet"])
    assert rc in (0, 3)  # 3: finished, but nothing met the constraints in this tiny budget (a warning said so)
    assert len(list((tmp_path / "run").glob("iter_*.stats"))) == stored_iterations(doc)


@pytest.mark.slow
@pytest.mark.parametrize("name,doc", SPECS, ids=[n for n, _ in SPECS])
def test_documented_spec_runs_through_the_api(name: str, doc: dict[str, Any], env: Env, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'docs.db'}"
    upgrade(url)
    roots = [env.root, env.oracle.parent, shared_data_dir()]
    app = create_app(Settings(db_url=url, data_roots=roots, allow_python_evaluator=True))
    _, tok = repo.create_token(app.state.db, "docs")
    try:
        with TestClient(app) as c:
            h = {"Authorization": f"Bearer {tok}"}
            r = c.post("/jobs", json=runnable(doc, env), headers=h)
            assert r.status_code == 202, r.text
            Worker(Settings(db_url=url, poll_seconds=0.01)).run(max_idle_seconds=0.5)
            j = c.get(f"/jobs/{r.json()['id']}", headers=h).json()
            assert j["state"] == "succeeded", j["error"]
            assert len(j["hv_history"]) == stored_iterations(doc)
    finally:
        app.state.db.dispose()


# ------------------------------------------------------------------------------------------------- commands
def documented_commands() -> list[tuple[str, list[str]]]:
    """Every ``msunas ...`` invocation in the docs' shell blocks (continuations joined, comments and ``[...]``
    optional parts removed)."""
    out = []
    for path in DOCS:
        for lang, body in _blocks(path):
            if lang not in ("bash", "sh", ""):
                continue
            text = re.sub(r"\\\n\s*", " ", body)
            for line in text.splitlines():
                at = re.search(r"(?:^|\$\(|\s)msunas\s", line)
                if not at or line.lstrip().startswith("#") or "<<" in line:
                    continue
                rest = re.sub(r"\s\[--?[^\]]*\]", " ", line[at.end() - len("msunas "):])  # [--optional] parts
                tokens = []
                for tok in shlex.split(rest, comments=True)[1:]:
                    if tok in ("&", "|", ";", "&&") or tok.startswith(">"):
                        break
                    tokens.append(tok[:-1] if tok.endswith(")") and "$(" in line else tok)
                out.append((f"{path.relative_to(ROOT)}: msunas {' '.join(tokens)}", tokens))
    return out


COMMANDS = documented_commands()


@pytest.mark.parametrize("where,args", COMMANDS, ids=[w for w, _ in COMMANDS])
def test_documented_command_parses(where: str, args: list[str]) -> None:
    """The command exists and every option it uses is one the CLI takes (values of the right type, except the
    docs' PLACEHOLDERS)."""
    group: Any = typer.main.get_group(cli_app)
    cmd, rest, name = group, list(args), "msunas"
    while hasattr(cmd, "commands") and rest and not rest[0].startswith("-"):
        sub = cmd.commands.get(rest[0])
        assert sub is not None, f"{where}: no command {rest[0]!r} under {name}"
        cmd, name, rest = sub, f"{name} {rest[0]}", rest[1:]
    try:
        cmd.make_context(name, [a for a in rest], resilient_parsing=False)
    except typer.Exit:
        pass
    except Exception as e:  # noqa: BLE001 - a bad value for a documented placeholder is fine, nothing else
        placeholder = re.search(r"'([A-Z][A-Z_]*|\.\.\.)'", str(e)) or "..." in str(e)
        assert placeholder, f"{where}: {e}"


# --------------------------------------------------------------------------------------------- walkthroughs
def _readme_block(heading: str, lang: str = "bash") -> str:
    section = (ROOT / "README.md").read_text().split(f"## {heading}", 1)[1].split("\n## ", 1)[0]
    return section.split(f"```{lang}\n", 1)[1].split("```", 1)[0]


def _bash(script: str, cwd: Path, env: dict[str, str], timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def _shell_env(tmp_path: Path) -> dict[str, str]:
    venv_bin = str(Path(sys.executable).parent)
    return dict(os.environ, PATH=f"{venv_bin}:{os.environ['PATH']}", PYTHONPATH=str(ROOT),
                MSUNAS_CACHE=str(tmp_path / "cache"), MSUNAS_WORKER_THREADS="1")


def _own_data_script(data: Path) -> str:
    script = _readme_block("From your own data to a chosen architecture")
    subs = [
        ("/data/cifar10", str(data)),
        ("--epochs 40", "--epochs 1 --train-images 16 --vld-size 16 --batch-size 8 --n-random 0 --no-progress"),
        ("vld_size: 5000", "vld_size: 16"),
        ("{kind: supernet, n_epochs: 5}", "{kind: supernet, n_epochs: 0, bn_calib_images: 16, batch_size: 16}"),
        ("n_doe: 100", "n_doe: 4"), ("n_iter: 8", "n_iter: 2"), ("iterations: 30", "iterations: 2"),
        ("iter_12.stats", "iter_2.stats"),
        ("--out runs/c10 ", "--out runs/c10 --quiet "),
        ("--device cuda", "--device cpu"),  # this machine has no GPU
        ("--epochs 100", "--epochs 1 --train-images 16 --batch-size 8 --vld-size 16"),
    ]
    for a, b in subs:
        assert a in script, f"the README walkthrough changed: {a!r} is gone (update tests/test_docs.py)"
        script = script.replace(a, b)
    return script


@pytest.mark.slow
def test_readme_walkthrough_from_your_own_data(tmp_path: Path) -> None:
    data = write_cifar10(tmp_path / "data" / "cifar10")
    r = _bash(_own_data_script(data), tmp_path, _shell_env(tmp_path))
    assert r.returncode in (0, 3), r.stdout[-2000:] + r.stderr[-3000:]
    assert (tmp_path / "front.png").is_file() and (tmp_path / "net.onnx").is_file()
    trained = json.loads((tmp_path / "trained" / "net.stats").read_text())
    assert trained["done"] and "top1_test" in trained["metrics"] and (tmp_path / "trained" / "net.int8.onnx").is_file()
    assert json.loads((tmp_path / "picks" / "net_0.subnet").read_text())["artefact"]["dataset"]["name"] == "cifar10"
    assert len(list((tmp_path / "runs" / "c10").glob("iter_*.stats"))) == 3
    # the README's Python API block, as written, on the walkthrough's (cut-down) spec.yaml
    py = subprocess.run([sys.executable, "-c", _readme_block("From your own data to a chosen architecture", "python")],
                        cwd=tmp_path, env=_shell_env(tmp_path), capture_output=True, text=True, timeout=900)
    assert py.returncode == 0, py.stderr[-3000:]
    assert (tmp_path / "net_py.onnx").is_file() and len(list((tmp_path / "runs" / "py").glob("iter_*.stats"))) == 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_readme_walkthrough_of_the_service(tmp_path: Path) -> None:
    """The walkthrough's spec and supernet first (its own section), then the service block as written."""
    data = write_cifar10(tmp_path / "data" / "cifar10")
    env = _shell_env(tmp_path)
    first = _own_data_script(data).split("# 3.")[0]  # the supernet and spec.yaml
    assert _bash(first, tmp_path, env).returncode == 0
    port = _free_port()
    script = _readme_block("The service and its API")
    subs = [
        ("$HOME/msunas.db", str(tmp_path / "msunas.db")),
        ("--data-root /data &", f"--data-root {tmp_path} --port {port} >serve.log 2>&1 &\n"
         f"until curl -sf localhost:{port}/healthz >/dev/null; do sleep 0.3; done"),
        ("localhost:8000", f"localhost:{port}"),
        ("archs/17/", "archs/1/"),
        ("msunas watch 1", "msunas watch 1 --interval 0.5"),
        ("--arch 17 --out trained/ --epochs 30", "--arch 1 --out trained/ --epochs 1 --train-images 16 --batch-size 8 "
         "--interval 0.5"),
    ]
    for a, b in subs:
        assert a in script, f"the README service block changed: {a!r} is gone (update tests/test_docs.py)"
        script = script.replace(a, b)
    env["MSUNAS_URL"] = f"http://127.0.0.1:{port}"
    script += "\ncurl -sf -o /dev/null -w '%{http_code}' " + f"localhost:{port}/healthz\n"
    try:
        r = _bash(script + "kill %1\nwait\n", tmp_path, env)
    finally:
        # the server, its spawned workers and `msunas worker`s all name this test's folder on their command line
        subprocess.run(["pkill", "-f", "--", str(tmp_path)], check=False)
        time.sleep(0.5)
    assert r.returncode in (0, 3), r.stdout[-2000:] + r.stderr[-3000:] + (tmp_path / "serve.log").read_text()[-2000:]
    assert (tmp_path / "net.onnx").stat().st_size > 1000 and (tmp_path / "front.png").is_file()
    trained = json.loads((tmp_path / "trained" / "net.stats").read_text())  # trained by the server's worker
    assert trained["done"] and trained["epochs"] == 1 and (tmp_path / "trained" / "net.int8.onnx").is_file()
