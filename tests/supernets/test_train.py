"""Supernet training (sandwich rule + in-place distillation): checkpoints in OFA format and exact resume."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from supernets.ofa_supernet import build_supernet, load_supernet, read_checkpoint
from supernets.train import TrainConfig, train_supernet

torch.set_num_threads(1)

TINY = TrainConfig(
    dataset="digits",
    vld_size=32,
    resolution=(32, 32),
    epochs=2,
    batch_size=8,
    train_images=16,
    n_random=1,
    eval_images=16,
    lr=0.05,
)


def test_resume_continues_exactly(tmp_path: Path) -> None:
    full = train_supernet(TINY, tmp_path / "full.pth", progress=False, log=None)
    assert [h["epoch"] for h in full["history"]] == [1, 2]
    part = train_supernet(TINY, tmp_path / "part.pth", progress=False, log=None, stop_after=1)
    assert part["epochs"] == 1 and read_checkpoint(tmp_path / "part.pth")["msunas"]["complete"] is False
    unfinished_bytes = (tmp_path / "part.pth").stat().st_size
    assert "train_state" in read_checkpoint(tmp_path / "part.pth")
    with pytest.raises(ValueError, match="exists; pass --resume"):
        train_supernet(TINY, tmp_path / "part.pth", progress=False, log=None)
    with pytest.raises(ValueError, match="resume: lr differs"):
        train_supernet(TrainConfig(**{**TINY.__dict__, "lr": 0.1}), tmp_path / "part.pth", resume=True, log=None)
    train_supernet(TINY, tmp_path / "part.pth", resume=True, progress=True, log=None)
    a, b = read_checkpoint(tmp_path / "full.pth"), read_checkpoint(tmp_path / "part.pth")
    assert b["msunas"]["complete"] is True and b["msunas"]["method"] == "sandwich+inplace-distillation"
    # finished: weights and metadata only (the optimizer's momentum doubled the file)
    assert "train_state" not in a and "train_state" not in b
    assert (tmp_path / "part.pth").stat().st_size < 0.7 * unfinished_bytes
    again = train_supernet(TINY, tmp_path / "part.pth", resume=True, progress=False, log=None)
    assert again["epochs"] == 2 and again["seconds"] == 0.0  # resuming a finished run: nothing to train
    for k, v in a["state_dict"].items():
        assert torch.equal(v, b["state_dict"][k]), k
    # the trained file is an ordinary once-for-all checkpoint: {"state_dict": ...} loads into OFAMobileNetV3
    net = load_supernet(tmp_path / "full.pth")
    assert net.classifier.linear.out_features == 10
    # training moved the weights away from the seed's initialisation
    fresh = build_supernet(1.0, 10, seed=TINY.seed).state_dict()
    assert not torch.equal(fresh["first_conv.conv.weight"], a["state_dict"]["first_conv.conv.weight"])
