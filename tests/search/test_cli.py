"""``msunas search`` (folder layout, --resume exactness, resuming a CNAS file) and ``msunas select``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from service.cli import main
from tests.search.conftest import small_spec


def _spec_file(tmp_path: Path, oracle: Path, **kw: object) -> Path:
    p = tmp_path / "spec.yaml"
    p.write_text(yaml.safe_dump(small_spec(oracle, **kw)))
    return p


def _archive(path: Path) -> list[list[object]]:
    return json.loads(path.read_text())["archive"]


def test_search_writes_the_seed_compatible_folder(
    tmp_path: Path, oracle_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = _spec_file(tmp_path, oracle_path, iterations=2)
    out = tmp_path / "run"
    main(["search", str(spec), "--out", str(out), "--quiet"])
    summary = json.loads(capsys.readouterr().out)
    assert summary["n_archive"] == 12 + 2 * 3 and summary["n_feasible"] == 18 and summary["warnings"] == []
    for k in range(3):
        doc = json.loads((out / f"iter_{k}.stats").read_text())
        assert {"archive", "candidates", "hv", "surrogate", "engine"} <= set(doc)
        assert all(len(row) == 3 and isinstance(row[0], dict) for row in doc["archive"])
    assert len(_archive(out / "iter_2.stats")) == 18
    last = json.loads((out / "iter_2.stats").read_text())
    assert last["surrogate"]["model"] == "rbf" and "tau" in last["surrogate"]
    nets = sorted((out / "iter_1").glob("net_*.subnet"))
    assert len(nets) == 3
    st = json.loads((out / "iter_1" / "net_0.stats").read_text())
    assert st["status"] == "ok" and st["metrics"]["top1"] > 0 and len(st["objectives"]) == 2
    # every file says what it is: space, width, classes, resolution, dataset, supernet identity
    sub = json.loads(nets[0].read_text())
    art = sub["artefact"]
    assert art == st["artefact"] and art["resolution"] == sub["r"]
    assert {k: art[k] for k in ("search_space", "width_mult", "n_classes")} == {
        "search_space": "mobilenetv3", "width_mult": 1.2, "n_classes": 1000}
    assert art["supernet"] == {"kind": "none"} and art["dataset"]["name"] == "digits"
    assert json.loads((out / "artefact.json").read_text())["n_classes"] == 1000
    assert json.loads((out / "spec.json").read_text())["n_doe"] == 12
    assert not (out / "failed").exists()  # nothing failed on the oracle


def test_resume_from_iter_k_matches_the_uninterrupted_run(tmp_path: Path, oracle_path: Path) -> None:
    spec = _spec_file(tmp_path, oracle_path, iterations=3)
    full, part = tmp_path / "full", tmp_path / "part"
    main(["search", str(spec), "--out", str(full), "--quiet"])
    main(["search", str(spec), "--out", str(part), "--quiet"])
    for k in (2, 3):
        (part / f"iter_{k}.stats").unlink()
        shutil.rmtree(part / f"iter_{k}")
    main(["search", str(spec), "--out", str(part), "--resume", str(part / "iter_1.stats"), "--quiet"])
    assert _archive(part / "iter_3.stats") == _archive(full / "iter_3.stats")


def test_warm_start_from_a_cnas_file(tmp_path: Path, oracle_path: Path, shared_data: Path) -> None:
    cnas = tmp_path / "cnas" / "iter_30.stats"
    cnas.parent.mkdir()
    shutil.copy(shared_data / "cnas_cifar10" / "iter_30.stats", cnas)
    spec = _spec_file(
        tmp_path, oracle_path, width_mult=1.0, resolution=[192, 256], objectives=["top1_err", "params"], iterations=31
    )
    out = tmp_path / "cont"
    main(["search", str(spec), "--out", str(out), "--warm-start", str(cnas), "--quiet"])
    doc = json.loads((out / "iter_31.stats").read_text())
    assert len(doc["archive"]) == 340 + 3
    # the CNAS rows keep their measured error; params are recomputed exactly (ImageNet head here: n_classes 1000)
    first = doc["archive"][0]
    assert first[1] == pytest.approx(11.38)


def test_select_cli_on_the_cnas_file(tmp_path: Path, shared_data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv_path = tmp_path / "sel.csv"
    main(
        [
            "select",
            str(shared_data / "cnas_cifar10" / "iter_30.stats"),
            "-n",
            "3",
            "--prefer",
            "params",
            "--csv",
            str(csv_path),
        ]
    )
    lines = csv_path.read_text().splitlines()
    assert len(lines) == 4 and lines[0].startswith("rank,top1_pct,top1_err_pct,params_M")
    main(
        [
            "select",
            str(shared_data / "cnas_cifar10" / "iter_30.stats"),
            "--prefer",
            "top1#94+params#3",
            "--save",
            str(tmp_path / "sel"),
        ]
    )
    assert len(list((tmp_path / "sel").glob("net_*.subnet"))) == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["select", "/nonexistent/iter_3.stats"], "no such file"),
        (["select", "{cnas}", "--prefer", "top1#x"], "not a number"),
        (["select", "{cnas}", "--prefer", "zzz"], "'zzz' is not recorded"),
        (["search", "/nonexistent.yaml", "--out", "/tmp/x"], "spec: no such file"),
        (["search", "{spec}", "--out", "{tmp}/o", "--resume", "{tmp}/nothing.stats"], "no such file"),
        (["search", "{spec}", "--out", "{tmp}/o", "--resume", "{tmp}/weird.stats"], "holds no engine state"),
        (["search", "{spec}", "--out", "{tmp}/o", "--warm-start", "{tmp}/weird.stats"], "iteration from the file name"),
    ],
)
def test_cli_errors_are_one_line_exit_2(
    tmp_path: Path,
    oracle_path: Path,
    shared_data: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    spec = _spec_file(tmp_path, oracle_path)
    (tmp_path / "weird.stats").write_text(json.dumps({"archive": []}))
    fill = {"cnas": str(shared_data / "cnas_cifar10" / "iter_30.stats"), "spec": str(spec), "tmp": str(tmp_path)}
    with pytest.raises(SystemExit) as e:
        main([a.format(**fill) for a in args])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("msunas: error:") and message in err and "\n" not in err
