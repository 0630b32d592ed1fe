"""``msunas export`` and ``msunas supernet train`` through the CLI entry point (exit codes, one-line errors)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from supernets.datasets import load_dataset
from supernets.export import load_torch_export
from supernets.ofa_supernet import build_supernet
from tests.conftest import run_cli

CFG = {"ks": [3, 5, 7, 3] * 5, "e": [3, 4, 6, 3] * 5, "d": [2, 3, 4, 2, 2], "r": 32}


@pytest.fixture(scope="module")
def supernet_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("sn") / "ofa_mbv3_d234_e346_k357_w1.0"
    torch.save({"state_dict": build_supernet(1.0, 10, seed=0).state_dict()}, p)
    return p


def test_export_onnx_with_bn_recalibration(supernet_file: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    cfg_file = tmp_path / "net.subnet"
    cfg_file.write_text(json.dumps(CFG))
    out = tmp_path / "net.onnx"
    rc = run_cli(
        [
            "export",
            "--config",
            str(cfg_file),
            "--supernet",
            str(supernet_file),
            "--format",
            "onnx",
            "--out",
            str(out),
            "--dataset",
            "digits",
            "--prepare",
        ]
    )
    assert rc == 0
    text = capsys.readouterr().out
    assert "exported onnx to" in text and "validation top-1" in text
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    y = sess.run(None, {"input": np.zeros((2, 3, 32, 32), np.float32)})[0]
    assert y.shape == (2, 10) and np.isfinite(y).all()


def test_export_torch(supernet_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "net.pt"
    assert (
        run_cli(
            [
                "export",
                "--config",
                json.dumps(CFG),
                "--supernet",
                str(supernet_file),
                "--format",
                "torch",
                "--out",
                str(out),
                "--dataset",
                "digits",
            ]
        )
        == 0
    )
    net, cfg = load_torch_export(out)
    assert cfg["d"] == CFG["d"] and net(torch.zeros(1, 3, 32, 32)).shape == (1, 10)


def test_export_onnx_int8_measures_both(supernet_file: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """INT8 export of a random-init supernet's subnet fine-tuned 3 epochs on digits: QDQ nodes, metadata with both
    accuracies and latencies, and int8 predictions that mostly agree with fp32's on the validation split."""
    out = tmp_path / "net.int8.onnx"
    rc = run_cli(["export", "--config", json.dumps(CFG), "--supernet", str(supernet_file), "--dataset", "digits",
                  "--n-epochs", "3", "--format", "onnx-int8", "--out", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "exported onnx-int8 to" in text and "fp32" in text and "int8" in text and "ORT CPU latency" in text
    model = onnx.load(str(out))
    assert {"QuantizeLinear", "DequantizeLinear"} <= {n.op_type for n in model.graph.node}
    meta = {p.key: json.loads(p.value) for p in model.metadata_props if p.key.startswith("msunas.")}
    q = meta["msunas.quantization"]
    assert meta["msunas.precision"] == "int8" and q["format"] == "QDQ" and q["calibration_images"] == 64
    assert meta["msunas.config"]["d"] == CFG["d"]
    assert q["validation_images"] == 300 and q["top1_fp32"] > 15.0 and abs(q["top1_int8"] - q["top1_fp32"]) < 10.0
    assert q["latency_ms_fp32"] > 0 and q["latency_ms_int8"] > 0 and q["int8_bytes"] < 0.5 * q["fp32_bytes"]
    # the int8 file runs in ORT and, on the validation images, mostly predicts what the fp32 net predicts
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x, _ = next(load_dataset("digits").valid.batches(32, 300))
    pred = sess.run(None, {"input": x.numpy()})[0].argmax(1)
    assert pred.shape == (300,) and q["agreement"] >= 60.0
    assert sorted(out.parent.iterdir()) == [out]  # the fp32 intermediate is gone


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--config", "{not json", "--format", "onnx"], "--config: invalid JSON"),
        (["--config", "/no/such.json", "--format", "onnx"], "--config: /no/such.json is not a readable JSON file"),
        (["--config", json.dumps(CFG), "--format", "tflite"], "format: expected one of ['onnx', 'onnx-int8', 'torch']"),
        (["--config", json.dumps({**CFG, "d": [9] * 5}), "--format", "onnx"], "d[0]: 9 is not one of [2, 3, 4]"),
        (["--config", json.dumps(CFG), "--job", "1"], "give either --config or --job"),
    ],
)
def test_export_errors_are_one_line(supernet_file: Path, tmp_path: Path, capsys, args: list[str], needle: str) -> None:  # type: ignore[no-untyped-def]
    rc = run_cli(["export", *args, "--supernet", str(supernet_file), "--dataset", "digits",
                  "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("msunas: error: ") and needle in err and err.count("\n") == 1


def test_supernet_train_cli_and_errors(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "sn.pth"
    base = [
        "supernet",
        "train",
        "--dataset",
        "digits",
        "--out",
        str(out),
        "--vld-size",
        "16",
        "--resolution",
        "32",
        "32",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--train-images",
        "8",
        "--n-random",
        "0",
        "--no-progress",
    ]
    assert run_cli(base) == 0
    assert "supernet written to" in capsys.readouterr().out and out.is_file()
    assert run_cli(base) == 2
    assert "exists; pass --resume" in capsys.readouterr().err
    assert run_cli([*base[:-1], "--resume"]) == 0  # already finished: nothing to do
    assert (
        run_cli(
            [
                "supernet",
                "train",
                "--dataset",
                "cifar10",
                "--root",
                str(tmp_path / "none"),
                "--out",
                str(tmp_path / "c.pth"),
            ]
        )
        == 2
    )
    assert "root folder not found" in capsys.readouterr().err
