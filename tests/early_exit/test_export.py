"""Early-exit export: ONNX with every exit's logits and the policy's metadata, checked in ONNX Runtime against
PyTorch; the PyTorch checkpoint round trip; the service's export of an eemobilenetv3 architecture."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch

from early_exit.export import (
    check_onnx,
    export_early_exit,
    load_torch_export,
    onnx_outputs,
    run_onnx_policy,
)
from early_exit.metrics import apply_policy
from early_exit.network import build_early_exit_net, exit_macs
from search.export import export_architecture
from search.spec import load_spec
from supernets.errors import InputError
from supernets.ofa_supernet import build_supernet, save_supernet

torch.set_num_threads(1)
CFG = {"ks": [3, 5, 7, 3] * 5, "e": [3, 4, 6, 3] * 5, "d": [2, 3, 2, 2, 3], "r": 32, "b": [1, 0, 1, 1]}


@pytest.fixture(scope="module")
def supernet() -> Any:
    return build_supernet(1.0, 10, seed=0)


@pytest.fixture(scope="module")
def net(supernet: Any) -> Any:
    """The early-exit network of CFG with BN statistics re-estimated on random data (outputs differ by input)."""
    torch.manual_seed(0)
    n = build_early_exit_net(CFG, n_classes=10, supernet=supernet)
    for m in n.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
    with torch.no_grad():
        n.train()(torch.randn(64, 3, 32, 32))
    return n.eval()


def test_onnx_holds_every_exit_and_the_policy(supernet: Any, net: Any, tmp_path: Path) -> None:
    x = torch.randn(64, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        probs = torch.stack([torch.softmax(o, 1) for o in net(x)]).numpy()
    conf = probs.max(axis=2)
    thr = [float(np.median(conf[0])), 1.0, float(np.median(conf[2]))]  # some inputs leave at exits 0 and 2
    info = export_early_exit(CFG, supernet, "onnx", tmp_path / "ee.onnx", thresholds=thr, net=net, x=x)
    assert info["outputs"] == ["logits_s1", "logits_s3", "logits_s4", "logits"]
    assert info["max_abs_diff"] < 1e-4 and info["policy_checked"] == 64 and info["policy_agree"] >= 62
    assert info["exit_macs"] == exit_macs(CFG, n_classes=10)
    outs, meta = onnx_outputs(tmp_path / "ee.onnx", x.numpy())
    assert meta == {
        "exit_outputs": info["outputs"],
        "thresholds": thr,
        "exit_rule": "confidence",
        "exit_head": "ours",
        "exit_macs": [float(m) for m in exit_macs(CFG, n_classes=10)],
        "config": CFG,
    }
    with torch.no_grad():
        ref = net(x)
    for o, r in zip(outs, ref, strict=True):
        assert o.shape == (64, 10) and np.abs(o - r.numpy()).max() < 1e-4
    pred, where = run_onnx_policy(tmp_path / "ee.onnx", x.numpy())
    p_pt, w_pt = net.forward_early_exit(x, thr)
    assert np.mean(where == w_pt.numpy()) >= 62 / 64 and np.mean(pred == p_pt.numpy()) >= 62 / 64
    assert {0, 2, 3} <= set(where.tolist()) and 1 not in where  # exit 1 (after stage 3) is disabled (1.0)
    # dynamic batch: one image at a time works too
    one, _ = onnx_outputs(tmp_path / "ee.onnx", x[:1].numpy())
    assert [o.shape for o in one] == [(1, 10)] * 4
    # a check against a different network fails loudly
    other = build_early_exit_net(CFG, n_classes=10, supernet=supernet).eval()
    with pytest.raises(RuntimeError, match="onnxruntime output differs from PyTorch"):
        check_onnx(other, tmp_path / "ee.onnx", 32, thr, x=x)
    with pytest.raises(ValueError, match="thresholds: expected 3 values"):
        export_early_exit(CFG, supernet, "onnx", tmp_path / "bad.onnx", thresholds=[0.5], net=net)
    assert not (tmp_path / "bad.onnx").exists()
    # a plain (single-exit) ONNX file is refused by the early-exit reader
    plain = onnx.load(str(tmp_path / "ee.onnx"))
    del plain.metadata_props[:]
    onnx.save(plain, str(tmp_path / "plain.onnx"))
    with pytest.raises(ValueError, match="not an msunas early-exit ONNX file"):
        onnx_outputs(tmp_path / "plain.onnx", x.numpy())


def test_torch_checkpoint_round_trip(supernet: Any, net: Any, tmp_path: Path) -> None:
    thr = [0.6, 0.7, 0.8]
    info = export_early_exit(CFG, supernet, "torch", tmp_path / "ee.pt", thresholds=thr, net=net, metrics={"top1": 1})
    assert info["thresholds"] == thr
    back, ck = load_torch_export(tmp_path / "ee.pt")
    assert ck["config"] == CFG and ck["exit_stages"] == [0, 2, 3] and ck["thresholds"] == thr
    assert ck["metrics"] == {"top1": 1} and "state_dict" not in ck
    x = torch.randn(8, 3, 32, 32)
    with torch.no_grad():
        for a, b in zip(back(x), net(x), strict=True):
            assert torch.allclose(a, b, atol=1e-6)
    with pytest.raises(ValueError, match="not an msunas early-exit checkpoint"):
        torch.save({"format": "msunas-subnet"}, tmp_path / "x.pt")
        load_torch_export(tmp_path / "x.pt")
    with pytest.raises(ValueError, match="format: expected one of"):
        export_early_exit(CFG, supernet, "tflite", tmp_path / "x", thresholds=thr)


def test_export_architecture_of_an_early_exit_job(supernet: Any, tmp_path: Path) -> None:
    """The one export (CLI and REST) of an archived early-exit config: thresholds from t, or the stored ones."""
    path = save_supernet(supernet, tmp_path / "ofa.pth")
    spec = load_spec({
        "search_space": "eemobilenetv3",
        "resolution": [32, 32],
        "supernet": {"path": str(path)},
        "objectives": ["top1_err", "avg_macs"],
    })
    cfg_t = {k: v for k, v in CFG.items() if k != "b"} | {"t": [0.2, 1.0, 0.1, 1.0]}
    info = export_architecture(cfg_t, spec, "onnx", tmp_path / "t.onnx", metrics={"top1": 50.0})
    outs, meta = onnx_outputs(tmp_path / "t.onnx", np.zeros((2, 3, 32, 32), np.float32))
    assert meta["exit_outputs"] == ["logits_s1", "logits_s3", "logits"]
    assert meta["thresholds"] == pytest.approx([0.28, 0.19])  # t = 0.2, 0.1 for 10 classes
    assert info["artefact"]["search_space"] == "eemobilenetv3" and info["artefact"]["resolution"] == 32
    spec_b = load_spec(spec.model_dump() | {"early_exit": {"exit_mode": "b"}})
    export_architecture(CFG, spec_b, "onnx", tmp_path / "b.onnx",
                        metrics={"threshold_s1": 0.9, "threshold_s3": 0.8, "threshold_s4": 0.7})
    _, meta = onnx_outputs(tmp_path / "b.onnx", np.zeros((1, 3, 32, 32), np.float32))
    assert meta["thresholds"] == [0.9, 0.8, 0.7] and len(meta["exit_outputs"]) == 4
    with pytest.raises(InputError, match="b-mode exits are calibrated after training") as e:
        export_architecture(CFG, spec_b, "onnx", tmp_path / "c.onnx", metrics={"top1": 50.0})
    assert e.value.field == "thresholds"


def test_policy_on_exported_outputs_is_apply_policy(net: Any, supernet: Any, tmp_path: Path) -> None:
    x = torch.randn(16, 3, 32, 32)
    export_early_exit(CFG, supernet, "onnx", tmp_path / "e.onnx", thresholds=[0.3, 0.3, 0.3], net=net, x=x)
    outs, _ = onnx_outputs(tmp_path / "e.onnx", x.numpy())
    z = np.stack(outs).astype(np.float64)
    p = np.exp(z - z.max(axis=2, keepdims=True))
    p /= p.sum(axis=2, keepdims=True)
    w1, p1 = apply_policy(p, [0.3, 0.3, 0.3])
    p2, w2 = run_onnx_policy(tmp_path / "e.onnx", x.numpy())
    assert np.array_equal(w1, w2) and np.array_equal(p1, p2)
