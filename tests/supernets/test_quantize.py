"""INT8 ONNX: ORT static quantisation (QDQ) of an exported subnet, top-1 and latency measured in ORT."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from supernets.datasets import load_dataset
from supernets.export import export_subnet
from supernets.finetune import recalibrate_bn
from supernets.ofa_supernet import build_supernet, extract_subnet
from supernets.quantize import onnx_top1, ort_latency_ms, quantize_onnx_int8

torch.set_num_threads(1)
CFG = {"ks": [3, 5, 7, 3] * 5, "e": [3, 4, 6, 3] * 5, "d": [2, 3, 4, 2, 2], "r": 32}


@pytest.fixture(scope="module")
def fp32(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[np.ndarray]]:
    """A subnet with BN recalibrated on digits, exported as fp32 ONNX, and 64 calibration images."""
    sn = build_supernet(1.0, 10, seed=0)
    net = extract_subnet(sn, CFG)
    data = load_dataset("digits")
    calib = [x for x, _ in data.train.batches(32, 16, limit=64)]
    recalibrate_bn(net, calib)
    out = tmp_path_factory.mktemp("q") / "fp32.onnx"
    export_subnet(CFG, sn, "onnx", out, net=net.eval())
    return out, [x.numpy() for x in calib]


def test_int8_is_qdq_and_close_to_fp32(fp32: tuple[Path, list[np.ndarray]], tmp_path: Path) -> None:
    src, calib = fp32
    out = tmp_path / "int8.onnx"
    info = quantize_onnx_int8(src, out, calib)
    assert info["format"] == "QDQ" and info["per_channel"] and info["calibration_images"] == 64
    ops = {n.op_type for n in onnx.load(str(out)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    x = np.concatenate(calib)
    ref = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    got = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    assert got.shape == ref.shape and np.isfinite(got).all()
    # quantisation error is small against the logits' spread, not zero (it did quantise)
    err = np.abs(got - ref).max()
    assert 0 < err < 0.5 * (ref.max() - ref.min())
    assert out.stat().st_size < 0.5 * src.stat().st_size  # int8 weights


def test_top1_and_latency(fp32: tuple[Path, list[np.ndarray]]) -> None:
    src, calib = fp32
    labels = [np.arange(len(b)) % 10 for b in calib]
    top1, pred = onnx_top1(src, zip(calib, labels, strict=True))
    assert 0.0 <= top1 <= 100.0 and pred.shape == (64,)
    expected = np.mean(pred == np.concatenate(labels)) * 100
    assert top1 == pytest.approx(expected)
    assert 0 < ort_latency_ms(src, 32, runs=5, warmup=1) < 1000


def test_quantize_needs_images(fp32: tuple[Path, list[np.ndarray]], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="calibration image"):
        quantize_onnx_int8(fp32[0], tmp_path / "x.onnx", [])
    assert not (tmp_path / "x.onnx").exists()
