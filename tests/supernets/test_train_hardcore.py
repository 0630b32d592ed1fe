"""``--method hardcore``: heaviest-first warm-up, then multipath with in-place distillation; exact resume."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from supernets import get_search_space
from supernets.errors import InputError
from supernets.ofa_supernet import read_checkpoint
from supernets.train import TrainConfig, train_supernet
from supernets.train_hardcore import hardcore_configs, warmup_epochs

torch.set_num_threads(1)
TINY = TrainConfig(dataset="digits", vld_size=32, resolution=(32, 32), epochs=2, batch_size=8, train_images=16,
                   n_random=2, eval_images=16, lr=0.05, method="hardcore")


def test_heaviest_first_then_multipath() -> None:
    space = get_search_space("mobilenetv3", lr=32, ur=40)
    rng = np.random.default_rng(0)
    assert warmup_epochs(8) == 2 and warmup_epochs(1) == 1
    warm = hardcore_configs(space, rng, 3, 0, 8)
    assert warm == [{"ks": [7] * 20, "e": [6] * 20, "d": [4] * 5, "r": 40}]
    multi = hardcore_configs(space, rng, 3, 2, 8)
    assert len(multi) == 4 and multi[0] == warm[0] and all(c != warm[0] for c in multi[1:])


def test_hardcore_training_resumes_exactly(tmp_path: Path) -> None:
    full = train_supernet(TINY, tmp_path / "full.pth", progress=False, log=None)
    assert [h["epoch"] for h in full["history"]] == [1, 2]
    train_supernet(TINY, tmp_path / "part.pth", progress=False, log=None, stop_after=1)
    with pytest.raises(InputError, match="method"):  # a sandwich resume of a hardcore checkpoint is refused
        train_supernet(replace(TINY, method="sandwich"), tmp_path / "part.pth", resume=True, progress=False, log=None)
    train_supernet(TINY, tmp_path / "part.pth", resume=True, progress=False, log=None)
    a, b = read_checkpoint(tmp_path / "full.pth"), read_checkpoint(tmp_path / "part.pth")
    assert b["msunas"]["method"] == "hardcore-heaviest-first+multipath"
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    with pytest.raises(InputError, match="sandwich or hardcore"):
        train_supernet(replace(TINY, method="nope"), tmp_path / "x.pth", progress=False, log=None)


def test_cli_method_hardcore(tmp_path: Path) -> None:
    from service.cli import main

    out = tmp_path / "h.pth"
    main(["supernet", "train", "--dataset", "digits", "--out", str(out), "--vld-size", "32", "--resolution", "32",
          "32", "--epochs", "1", "--batch-size", "8", "--train-images", "16", "--method", "hardcore", "--no-progress"])
    assert read_checkpoint(out)["msunas"]["method"] == "hardcore-heaviest-first+multipath"
