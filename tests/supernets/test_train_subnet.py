"""``train_subnet``: KD from the largest subnet, resume exactness, the files it writes and their measured top-1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from supernets.datasets import load_dataset
from supernets.errors import InputError
from supernets.export import load_torch_export
from supernets.finetune import validate
from supernets.ofa_supernet import build_supernet
from supernets.quantize import onnx_top1
from supernets.train_subnet import SubnetTrainConfig, train_subnet

torch.set_num_threads(1)

ARCH = {"ks": [3, 5, 7, 3] * 5, "e": [3, 4, 6, 3] * 5, "d": [2, 3, 2, 2, 2], "r": 32}
CFG = SubnetTrainConfig(epochs=2, batch_size=16, lr=0.05, train_images=48, calib_images=32, int8=False)


@pytest.fixture(scope="module")
def setup() -> tuple[torch.nn.Module, object]:
    return build_supernet(1.0, 10, seed=0), load_dataset("digits", None, 48)


def test_trains_and_writes_measured_checkpoint_onnx_and_stats(setup: tuple, tmp_path: Path) -> None:
    net, data = setup
    cfg = SubnetTrainConfig(**{**CFG.__dict__, "int8": True, "ema": True, "ema_decay": 0.5})
    doc = train_subnet(ARCH, net, data, tmp_path / "out", cfg, artefact={"width_mult": 1.0}, log=None)
    out = tmp_path / "out"
    assert {p.name for p in out.iterdir()} == {"checkpoint.pth", "net.pth", "net.onnx", "net.int8.onnx", "net.stats"}
    stats = json.loads((out / "net.stats").read_text())
    assert stats["done"] and stats["config"] == ARCH and stats["epochs"] == 2 and len(stats["history"]) == 2
    m = stats["metrics"]
    # measured: the written weights give exactly the recorded top-1, on validation and test splits
    trained, meta = load_torch_export(out / "net.pth")
    assert validate(trained, data.valid.batches(32, 250))["top1"] == pytest.approx(m["top1"])
    assert validate(trained, data.test.batches(32, 250))["top1"] == pytest.approx(m["top1_test"])
    valid = [(x.numpy(), y.numpy()) for x, y in data.valid.batches(32, 100)]
    assert onnx_top1(out / "net.int8.onnx", valid)[0] == pytest.approx(m["top1_int8"])
    assert m["latency_ms_fp32"] > 0 and m["latency_ms_int8"] > 0 and m["onnx_max_abs_diff"] < 1e-4
    assert "top1_inherited" in m and "top1_teacher" in m and doc["metrics"]["top1"] == m["top1"]
    # training moved the weights away from the inherited ones
    from supernets.ofa_supernet import extract_subnet
    inherited = extract_subnet(net, ARCH).state_dict()
    assert not torch.equal(inherited["first_conv.conv.weight"], trained.state_dict()["first_conv.conv.weight"])


def test_resume_continues_exactly_and_refusals(setup: tuple, tmp_path: Path) -> None:
    net, data = setup
    full = train_subnet(ARCH, net, data, tmp_path / "full", CFG, log=None)
    part = train_subnet(ARCH, net, data, tmp_path / "part", CFG, log=None, stop_after=1)
    assert part["done"] is False and not (tmp_path / "part" / "net.stats").exists()
    with pytest.raises(InputError) as e:
        train_subnet(ARCH, net, data, tmp_path / "part", CFG, log=None)
    assert e.value.field == "out" and "not empty" in str(e.value)
    with pytest.raises(InputError, match="resume: lr differs"):
        train_subnet(ARCH, net, data, tmp_path / "part", SubnetTrainConfig(**{**CFG.__dict__, "lr": 0.1}),
                     resume=True, log=None)
    with pytest.raises(InputError) as e:
        train_subnet(ARCH, net, data, tmp_path / "nothing", CFG, resume=True, log=None)
    assert e.value.field == "resume"
    done = train_subnet(ARCH, net, data, tmp_path / "part", CFG, resume=True, log=None)
    a = torch.load(tmp_path / "full" / "net.pth", weights_only=False)["state_dict"]
    b = torch.load(tmp_path / "part" / "net.pth", weights_only=False)["state_dict"]
    for k, v in a.items():
        assert torch.equal(v, b[k]), k
    assert done["metrics"]["top1"] == full["metrics"]["top1"]


def test_bad_settings_name_the_field(setup: tuple, tmp_path: Path) -> None:
    net, data = setup
    for field, value in (("label_smoothing", 1.5), ("kd_ratio", -0.1), ("epochs", 0)):
        with pytest.raises(InputError) as e:
            train_subnet(ARCH, net, data, tmp_path / "o", SubnetTrainConfig(**{**CFG.__dict__, field: value}),
                         log=None)
        assert e.value.field == field
    (tmp_path / "f").write_text("x")
    with pytest.raises(InputError, match="is a file"):
        train_subnet(ARCH, net, data, tmp_path / "f", CFG, log=None)
