"""Export: ONNX parity with PyTorch in onnxruntime, and the self-contained torch checkpoint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from supernets import get_search_space
from supernets.export import export_subnet, load_torch_export
from supernets.finetune import recalibrate_bn
from supernets.ofa_supernet import build_supernet, extract_subnet

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def supernet() -> torch.nn.Module:
    return build_supernet(1.0, 10, seed=0)


def _prepared(supernet: torch.nn.Module, seed: int) -> tuple[dict, torch.nn.Module]:
    cfg = get_search_space("mobilenetv3", lr=32, ur=48).sample(1, np.random.default_rng(seed))[0]
    net = extract_subnet(supernet, cfg)
    g = torch.Generator().manual_seed(seed)
    recalibrate_bn(net, [torch.randn(16, 3, cfg["r"], cfg["r"], generator=g)])  # activations of unit scale
    with torch.no_grad():
        net.classifier.linear.weight.mul_(10.0)  # logits of a trained net's scale
    return cfg, net.eval()


@pytest.mark.parametrize("seed", [0, 1])
def test_onnx_matches_pytorch_in_onnxruntime(supernet: torch.nn.Module, tmp_path: Path, seed: int) -> None:
    cfg, net = _prepared(supernet, seed)
    out = tmp_path / "net.onnx"
    info = export_subnet(cfg, supernet, "onnx", out, net=net)
    assert out.is_file() and info["max_abs_diff"] <= 1e-4
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = torch.randn(3, 3, cfg["r"], cfg["r"], generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        ref = net(x).numpy()
    assert ref.std() > 0.5  # a meaningful comparison, not two near-zero outputs
    got = sess.run(None, {"input": x.numpy()})[0]
    assert got.shape == (3, 10) and np.abs(got - ref).max() <= 1e-4


def test_torch_export_rebuilds_the_subnet(supernet: torch.nn.Module, tmp_path: Path) -> None:
    cfg, net = _prepared(supernet, 2)
    out = tmp_path / "net.pt"
    export_subnet(cfg, supernet, "torch", out, net=net, metrics={"top1": 91.0})
    back, back_cfg = load_torch_export(out)
    assert back_cfg == cfg
    x = torch.randn(2, 3, cfg["r"], cfg["r"])
    with torch.no_grad():
        assert torch.equal(back(x), net(x))
    assert torch.load(out, weights_only=True)["metrics"] == {"top1": 91.0}


def test_bad_format_and_config(supernet: torch.nn.Module, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="format: expected one of"):
        export_subnet({"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": 32}, supernet, "tflite", tmp_path / "x")
    with pytest.raises(ValueError, match="d: expected 5 stage depths"):
        export_subnet({"ks": [3] * 20, "e": [3] * 20, "d": [2] * 4, "r": 32}, supernet, "onnx", tmp_path / "x")
    assert not (tmp_path / "x").exists()
