"""The example early-exit search (examples/early_exit_digits.yaml) end to end through the CLI, with tiny budgets:
``msunas search`` -> ``msunas select --n-exits K`` -> ``msunas export`` (ONNX checked in ONNX Runtime, and a
PyTorch checkpoint), on digits with a supernet trained here.

The example itself uses the built-in digits supernet (trained once, ~270 CPU-s, cached in ~/.cache/msunas); a
fresh CI machine has no cache, so the test trains a small one in seconds (same trainer, one short epoch) and
points ``supernet.path`` at it. Everything else is the example's spec with smaller budgets.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
import torch
import yaml

from early_exit.export import load_torch_export, onnx_outputs, run_onnx_policy
from early_exit.metrics import confidence_threshold
from search.io import read_subnet
from search.select import n_exits_of
from supernets.datasets import load_dataset
from supernets.train import TrainConfig, train_supernet
from tests.conftest import ROOT, run_cli

EXAMPLE = ROOT / "examples" / "early_exit_digits.yaml"


@pytest.fixture(scope="module")
def supernet_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sn") / "digits_small.pth"
    cfg = TrainConfig(
        dataset="digits", resolution=(32, 32), epochs=1, batch_size=16, train_images=32, n_random=0, eval_images=16
    )
    train_supernet(cfg, path, progress=False, log=None)
    return path


@pytest.fixture(scope="module")
def digits() -> Any:
    return load_dataset("digits", None, 100)


def _spec(supernet: Path) -> dict[str, Any]:
    """The example spec with tiny budgets (6 candidates, r 32-36 so the resolution gene stays, small splits)."""
    spec = yaml.safe_load(EXAMPLE.read_text())
    spec["supernet"] = {"path": str(supernet)}
    spec["resolution"] = [32, 36]
    spec["dataset"]["vld_size"] = 60
    spec["evaluator"].update(n_epochs=1, train_images=64, batch_size=32, bn_calib_images=64)
    spec.update(n_doe=4, n_iter=2, iterations=1, predictor="rbf")
    spec["engine"] = {"pop_size": 16, "n_gen": 4}
    return spec


def test_example_spec_is_valid() -> None:
    from search.spec import load_spec

    spec = load_spec(EXAMPLE)
    assert spec.search_space == "eemobilenetv3" and spec.objectives == ["top1_err", "avg_macs"]
    assert spec.supernet.path is None and spec.dataset.name == "digits"  # the built-in trained supernet


def test_early_exit_search_select_export_through_the_cli(
    supernet_path: Path, digits: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec_file = tmp_path / "ee.yaml"
    spec_file.write_text(yaml.safe_dump(_spec(supernet_path)))
    out = tmp_path / "run"
    assert run_cli(["search", str(spec_file), "--out", str(out), "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n_archive"] == 6 and summary["hv"] > 0
    doc = json.loads((out / "iter_1.stats").read_text())
    assert doc["surrogate"]["avg_macs"]["model"] == "exit_rate"  # predicted avg_macs in the loop
    records = doc["engine"]["archive"]
    assert all(r["status"] == "ok" for r in records), [r["error"] for r in records]
    for r in records:
        m, t = r["metrics"], r["config"]["t"]
        assert m["avg_macs"] <= m["macs"] and r["objectives"][1] == pytest.approx(m["avg_macs"] / 1e6)
        for s in range(4):  # thresholds applied: the t genes in max-softmax units
            if t[s] < 1.0:
                assert m[f"threshold_s{s + 1}"] == pytest.approx(confidence_threshold(t[s], 10))
    stats0 = json.loads(next((out / "iter_1").glob("net_*.stats")).read_text())
    assert "exit_util_final" in stats0["metrics"] and "top1" in stats0["metrics"]

    # select by number of early exits (CNAS's --n_exits: the final classifier not counted); never a violator
    ok = [r for r in records if r["feasible"] and n_exits_of(r["config"]) > 0]
    assert ok, "no feasible early-exit candidate in this small run"
    k = Counter(n_exits_of(r["config"]) for r in ok).most_common(1)[0][0]
    picks, csv_path = tmp_path / "picks", tmp_path / "picks.csv"
    args = ["select", str(out), "-n", "2", "--n-exits", str(k), "--save", str(picks), "--csv", str(csv_path)]
    assert run_cli(args) == 0
    capsys.readouterr()
    chosen = [read_subnet(p)[0] for p in sorted(picks.glob("net_*.subnet"))]
    assert chosen and all(n_exits_of(c) == k for c in chosen)
    for p in sorted(picks.glob("net_*.stats")):
        assert json.loads(p.read_text())["metrics"]["avg_macs"] <= 5.0e6

    # export the pick prepared on digits (BN recalibrated, measured on validation; --n-epochs N would also train
    # backbone and heads jointly, the same prepare() the search ran): every exit's logits in the ONNX file
    onnx_path = tmp_path / "ee.onnx"
    sub = str(picks / "net_0.subnet")
    args = ["export", "--config", sub, "--prepare"]  # the net_i.subnet says which supernet and dataset
    assert run_cli([*args, "--format", "onnx", "--out", str(onnx_path)]) == 0
    text = capsys.readouterr().out
    assert "exported early-exit onnx" in text and "onnxruntime parity" in text and "validation top-1" in text
    images = next(iter(digits.valid.batches(int(chosen[0]["r"]), 24)))[0]  # real digits at the pick's resolution
    x = images.numpy()
    outs, meta = onnx_outputs(onnx_path, x)
    present = [s for s in range(4) if chosen[0]["t"][s] < 1.0]
    assert meta["exit_outputs"] == [f"logits_s{s + 1}" for s in present] + ["logits"] and len(outs) == k + 1
    assert meta["thresholds"] == pytest.approx([confidence_threshold(chosen[0]["t"][s], 10) for s in present])
    assert meta["config"] == chosen[0] and len(meta["exit_macs"]) == k + 1
    assert all(o.shape == (len(x), 10) and np.isfinite(o).all() for o in outs)

    # without --dataset (untrained heads, seeded): the ONNX file and the PyTorch checkpoint hold the same network
    pt_path, onnx2 = tmp_path / "ee.pt", tmp_path / "ee2.onnx"
    base = ["export", "--config", sub, "--supernet", str(supernet_path)]
    assert run_cli([*base, "--format", "torch", "--out", str(pt_path)]) == 0
    assert run_cli([*base, "--format", "onnx", "--out", str(onnx2)]) == 0
    assert "exit heads are untrained" in capsys.readouterr().err
    net, ck = load_torch_export(pt_path)
    assert ck["config"] == chosen[0] and ck["thresholds"] == pytest.approx(meta["thresholds"])
    with torch.no_grad():
        ref = [o.numpy() for o in net(images)]
    got, _ = onnx_outputs(onnx2, x)
    for g, r in zip(got, ref, strict=True):
        assert np.abs(g - r).max() < 1e-4
    pred, where = run_onnx_policy(onnx2, x)
    pred_pt, where_pt = net.forward_early_exit(images, ck["thresholds"])
    assert np.mean(pred == pred_pt.numpy()) >= 0.95 and np.mean(where == where_pt.numpy()) >= 0.95
    sess = ort.InferenceSession(str(onnx2), providers=["CPUExecutionProvider"])
    assert [o.name for o in sess.get_outputs()] == meta["exit_outputs"]


def test_b_mode_export_needs_thresholds(
    supernet_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = {"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": 32, "b": [1, 0, 1, 0]}
    base = ["export", "--config", json.dumps(cfg), "--supernet", str(supernet_path), "--dataset", "digits",
            "--format", "onnx"]
    assert run_cli([*base, "--out", str(tmp_path / "b.onnx")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("msunas: error: thresholds: b-mode exits are calibrated") and err.count("\n") == 1
    assert run_cli([*base, "--out", str(tmp_path / "b.onnx"), "--thresholds", "0.9"]) == 2
    assert "thresholds: expected 2 values" in capsys.readouterr().err
    assert run_cli([*base, "--out", str(tmp_path / "b.onnx"), "--thresholds", "0.9,0.8"]) == 0
    _, meta = onnx_outputs(tmp_path / "b.onnx", np.zeros((1, 3, 32, 32), np.float32))
    assert meta["thresholds"] == [0.9, 0.8] and meta["exit_outputs"] == ["logits_s1", "logits_s3", "logits"]


def test_early_exit_nets_refuse_int8(supernet_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = {"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": 32, "b": [1, 0, 1, 0]}
    rc = run_cli(["export", "--config", json.dumps(cfg), "--supernet", str(supernet_path), "--dataset", "digits",
                  "--format", "onnx-int8", "--thresholds", "0.9,0.8", "--out", str(tmp_path / "b.onnx")])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("msunas: error: format: onnx-int8 is for single-exit") and err.count("\n") == 1
    assert not (tmp_path / "b.onnx").exists()
