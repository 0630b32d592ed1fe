"""Supernet training on a device: bf16 autocast, channels_last, the seeded DataLoader pipeline (exact resume with
workers), torchrun + DistributedDataParallel with 2 CPU processes (gloo), and the CUDA paths (``cuda`` marker)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from supernets.datasets import load_dataset
from supernets.device import DistEnv, RunOptions, amp_dtype, autocast, resolve_device, train_loader
from supernets.errors import InputError
from supernets.ofa_supernet import load_supernet, read_checkpoint
from supernets.train import TrainConfig, train_supernet
from tests.conftest import ROOT

torch.set_num_threads(1)

TINY = TrainConfig(dataset="digits", vld_size=32, resolution=(32, 32), epochs=2, batch_size=8, train_images=16,
                   n_random=1, eval_images=16, lr=0.05)
cuda = pytest.mark.cuda


def test_bad_device_is_refused_naming_the_field() -> None:
    for bad in ("tpu", "cuda:x", "gpu0"):
        with pytest.raises(InputError) as e:
            resolve_device(bad)
        assert e.value.field == "device"
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="CUDA is not available"):
            resolve_device("cuda")
    assert resolve_device("cpu") == torch.device("cpu") and amp_dtype(torch.device("cpu")) == torch.bfloat16


def test_loader_batches_do_not_depend_on_workers_and_shard_disjointly() -> None:
    data = load_dataset("digits", None, 32)
    one = [(x, y) for x, y in train_loader(data.train, 32, 8, epoch=3, seed=1, limit=40)]
    two = [(x, y) for x, y in train_loader(data.train, 32, 8, epoch=3, seed=1, limit=40, workers=2)]
    assert len(one) == 5
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(one, two, strict=True))
    other = [y for _, y in train_loader(data.train, 32, 8, epoch=4, seed=1, limit=40)]
    assert not all(torch.equal(a[1], b) for a, b in zip(one, other, strict=True))  # a new epoch, a new order
    shards = [list(train_loader(data.train, 32, 1000, epoch=0, seed=1, dist_env=DistEnv(rank, 2))) for rank in (0, 1)]
    n = len(data.train)
    assert all(len(s[0][1]) == (n + 1) // 2 for s in shards)  # DistributedSampler: half each (padded)


def test_bf16_autocast_channels_last_and_workers_resume_exactly(tmp_path: Path) -> None:
    run = RunOptions(device="cpu", amp=True, channels_last=True, workers=1)
    full = train_supernet(TINY, tmp_path / "full.pth", progress=False, log=None, run=run)
    train_supernet(TINY, tmp_path / "part.pth", progress=False, log=None, run=run, stop_after=1)
    assert read_checkpoint(tmp_path / "part.pth")["train_state"]["world_size"] == 1
    train_supernet(TINY, tmp_path / "part.pth", resume=True, progress=False, log=None, run=run)
    a, b = read_checkpoint(tmp_path / "full.pth"), read_checkpoint(tmp_path / "part.pth")
    for k, v in a["state_dict"].items():
        assert torch.equal(v, b["state_dict"][k]), k
    assert full["history"][-1]["train_loss"] == pytest.approx(b["msunas"]["history"][-1]["train_loss"])
    net = load_supernet(tmp_path / "full.pth")
    assert net.classifier.linear.out_features == 10
    with autocast(torch.device("cpu"), True):  # what the training step runs under with amp on CPU
        assert net(torch.randn(2, 3, 32, 32).contiguous(memory_format=torch.channels_last)).dtype == torch.bfloat16


def _torchrun(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", MSUNAS_CACHE=str(tmp_path / "cache"))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "service.cli", "supernet", "train", "--dataset", "digits", "--vld-size", "16", "--resolution", "32",
           "32", "--epochs", "2", "--batch-size", "8", "--train-images", "32", "--n-random", "0", "--no-progress",
           "--eval-images", "16",
           "--out", str(tmp_path / "ddp.pth"), *extra]
    return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)


def test_ddp_under_torchrun_with_two_cpu_processes(tmp_path: Path) -> None:
    r = _torchrun(tmp_path)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert r.stdout.count("supernet written to") == 1  # rank 0 alone reports and writes
    assert [p.name for p in tmp_path.iterdir() if p.suffix in (".pth", ".tmp")] == ["ddp.pth"]
    ck = read_checkpoint(tmp_path / "ddp.pth")
    assert ck["msunas"]["complete"] is True and [h["epoch"] for h in ck["msunas"]["history"]] == [1, 2]
    net = load_supernet(tmp_path / "ddp.pth")
    assert net.classifier.linear.out_features == 10
    # resuming under another number of processes is refused, naming the field
    from supernets.ofa_supernet import save_supernet
    save_supernet(net, tmp_path / "single.pth", extra={"train_state": {"world_size": 2, "epoch": 1}},
                  train_config={**TINY.__dict__, "resolution": [32, 32]})
    with pytest.raises(InputError, match="trained by 2 processes"):
        train_supernet(TINY, tmp_path / "single.pth", resume=True, progress=False, log=None)


@cuda
def test_cuda_amp_channels_last_resume_exactly(tmp_path: Path) -> None:
    run = RunOptions(device="cuda", workers=2)  # bf16/fp16 autocast and channels_last by default on CUDA
    train_supernet(TINY, tmp_path / "full.pth", progress=False, log=None, run=run)
    train_supernet(TINY, tmp_path / "part.pth", progress=False, log=None, run=run, stop_after=1)
    train_supernet(TINY, tmp_path / "part.pth", resume=True, progress=False, log=None, run=run)
    a, b = read_checkpoint(tmp_path / "full.pth"), read_checkpoint(tmp_path / "part.pth")
    for k, v in a["state_dict"].items():
        assert torch.allclose(v, b["state_dict"][k], atol=1e-5), k  # cuDNN may pick other kernels after a resume
    assert all(v.device.type == "cpu" for v in a["state_dict"].values())  # the file loads without a GPU


@cuda
def test_cuda_device_index_and_amp_dtype() -> None:
    d = resolve_device(f"cuda:{torch.cuda.device_count() - 1}")
    assert d.type == "cuda" and amp_dtype(d) in (torch.bfloat16, torch.float16)
    with pytest.raises(InputError):
        resolve_device(f"cuda:{torch.cuda.device_count()}")
