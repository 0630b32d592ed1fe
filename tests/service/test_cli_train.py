"""``msunas train`` and ``msunas supernet train --device`` through the CLI entry point (exit codes, one-line
errors, the artefact checks)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from search.provenance import file_sha256
from supernets.ofa_supernet import build_supernet
from tests.conftest import run_cli

CFG = {"ks": [3, 5, 7, 3] * 5, "e": [3, 4, 6, 3] * 5, "d": [2, 3, 2, 2, 2], "r": 32}
TINY = ["--epochs", "1", "--batch-size", "16", "--train-images", "32", "--vld-size", "32", "--no-int8"]


@pytest.fixture(scope="module")
def subnet_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("arch")
    sn = d / "sn.pth"
    torch.save({"state_dict": build_supernet(1.0, 10, seed=0).state_dict()}, sn)
    artefact = {"search_space": "mobilenetv3", "width_mult": 1.0, "n_classes": 10, "resolution": 32,
                "dataset": {"name": "digits", "root": None},
                "supernet": {"kind": "file", "path": str(sn), "sha256": file_sha256(sn)}}
    (d / "net_0.subnet").write_text(json.dumps({**CFG, "artefact": artefact}))
    return d / "net_0.subnet"


def test_train_cli_writes_measured_stats_and_refuses_a_non_empty_out(subnet_file: Path, tmp_path: Path,
                                                                     capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "trained"
    assert run_cli(["train", "--config", str(subnet_file), "--out", str(out), *TINY]) == 0
    text = capsys.readouterr().out
    assert "validation top-1" in text and "test" in text
    stats = json.loads((out / "net.stats").read_text())
    assert stats["artefact"]["supernet"]["sha256"] == file_sha256(json.loads(subnet_file.read_text())["artefact"]
                                                                  ["supernet"]["path"])
    assert 0.0 <= stats["metrics"]["top1"] <= 100.0 and "top1_test" in stats["metrics"]
    assert (out / "net.onnx").is_file() and (out / "net.pth").is_file()
    assert run_cli(["train", "--config", str(subnet_file), "--out", str(out), *TINY]) == 2
    err = capsys.readouterr().err
    assert err.startswith("msunas: error: out: ") and "not empty" in err and err.count("\n") == 1


@pytest.mark.parametrize(
    "extra,needle",
    [
        (["--dataset", "cifar10", "--root", "/nonexistent"], "--dataset: the architecture was found on digits"),
        (["--supernet", "OTHER"], "--supernet: "),
        (["--device", "tpu"], "device: expected cpu, cuda or cuda:N"),
        (["--resume", "--overwrite"], "--resume: give --resume or --overwrite"),
        (["--label-smoothing", "2"], "--label-smoothing"),
    ],
)
def test_train_cli_refusals_are_one_line(subnet_file: Path, tmp_path: Path, capsys, extra: list[str],  # type: ignore[no-untyped-def]
                                         needle: str) -> None:
    other = tmp_path / "other.pth"
    torch.save({"state_dict": build_supernet(1.0, 10, seed=1).state_dict()}, other)
    extra = [str(other) if a == "OTHER" else a for a in extra]
    rc = run_cli(["train", "--config", str(subnet_file), "--out", str(tmp_path / "o"), *TINY, *extra])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("msunas: error: ") and needle in err and err.count("\n") == 1, err


def test_train_cli_refuses_a_resolution_the_artefact_does_not_name(subnet_file: Path, tmp_path: Path,
                                                                   capsys) -> None:  # type: ignore[no-untyped-def]
    doc = json.loads(subnet_file.read_text())
    bad = tmp_path / "bad.subnet"
    bad.write_text(json.dumps({**doc, "r": 48}))
    assert run_cli(["train", "--config", str(bad), "--out", str(tmp_path / "o"), *TINY]) == 2
    assert "--config: resolution 48 differs from the artefact's 32" in capsys.readouterr().err


def test_supernet_train_cli_refuses_a_bad_device(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    rc = run_cli(["supernet", "train", "--dataset", "digits", "--out", str(tmp_path / "s.pth"), "--device", "gpu"])
    err = capsys.readouterr().err
    assert rc == 2 and "device: expected cpu, cuda or cuda:N" in err and err.count("\n") == 1
