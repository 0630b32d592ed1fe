"""Where and how training runs: the device (``cpu``, ``cuda``, ``cuda:N``), mixed precision, memory format, the
torchrun/DistributedDataParallel process group, and a DataLoader pipeline whose batches do not depend on how
many workers decode them (so a resumed run sees exactly the batches an uninterrupted one would).

Distribution is PyTorch's own: launched under ``torchrun`` (``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` set) the
process group is initialised (``nccl`` on CUDA, ``gloo`` on CPU), the model is wrapped in
``torch.nn.parallel.DistributedDataParallel`` by the caller and every rank reads its shard of each epoch through
a ``torch.utils.data.DistributedSampler``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from supernets.datasets import MEAN, STD, FolderImages, TensorImages, _folder_transform
from supernets.errors import InputError

__all__ = ["DistEnv", "RunOptions", "amp_dtype", "autocast", "device_batches", "resolve_device", "train_loader"]


@dataclass
class RunOptions:
    """How training runs (not part of the hyperparameters: a checkpoint resumes under other run options).

    ``amp``/``channels_last`` ``None``: on for CUDA, off for CPU. ``workers``: DataLoader worker processes."""

    device: str = "cpu"
    amp: bool | None = None
    channels_last: bool | None = None
    workers: int = 0


def resolve_device(name: str, local_rank: int | None = None) -> torch.device:
    """``cpu``, ``cuda`` or ``cuda:N`` as a ``torch.device``; under torchrun ``cuda`` means ``cuda:LOCAL_RANK``.

    ``InputError("device", ...)`` for anything else, or CUDA asked for where there is none."""
    text = str(name).strip().lower()
    if text == "cpu":
        return torch.device("cpu")
    if text == "cuda" or text.startswith("cuda:"):
        idx_s = text.partition(":")[2]
        if idx_s and not idx_s.isdigit():
            raise InputError("device", f"expected cpu, cuda or cuda:N, got {name!r}")
        if not torch.cuda.is_available():
            raise InputError("device", f"{name!r} asked for but CUDA is not available here", hint="use --device cpu")
        idx = int(idx_s) if idx_s else (local_rank if local_rank is not None else torch.cuda.current_device())
        if local_rank is not None and idx_s:  # under torchrun each rank takes its local GPU, offset by N
            idx = int(idx_s) + local_rank
        if idx >= torch.cuda.device_count():
            raise InputError("device", f"cuda:{idx} does not exist ({torch.cuda.device_count()} GPUs)")
        return torch.device("cuda", idx)
    raise InputError("device", f"expected cpu, cuda or cuda:N, got {name!r}")


def amp_dtype(device: torch.device) -> torch.dtype:
    """bfloat16 where supported (CPU, and CUDA GPUs from Ampere on), else float16 (with a GradScaler)."""
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return torch.float16
    return torch.bfloat16


def autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager[Any]:
    """``torch.autocast`` in :func:`amp_dtype`, or nothing."""
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=amp_dtype(device))


@dataclass
class DistEnv:
    """This process's place in a torchrun launch (rank 0 of 1 when not launched by torchrun)."""

    rank: int = 0
    world: int = 1
    local_rank: int | None = None
    started: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls) -> DistEnv:
        if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
            return cls()
        return cls(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0)))

    def start(self, device: torch.device) -> None:
        """Initialise the default process group (nccl on CUDA, gloo on CPU) when launched by torchrun."""
        if self.world > 1 and not dist.is_initialized():
            if device.type == "cuda":
                torch.cuda.set_device(device)
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=self.rank,
                                    world_size=self.world)
            self.started = True

    def barrier(self) -> None:
        if self.world > 1 and dist.is_initialized():
            dist.barrier()

    def stop(self) -> None:
        if self.started and dist.is_initialized():
            dist.destroy_process_group()
            self.started = False


def _batch_seed(seed: int, epoch: int, batch: int, rank: int) -> int:
    return (seed * 1_000_003 + epoch * 100_003 + batch * 101 + rank * 7_919) % (2**63 - 1)


class _Batches(Dataset):  # type: ignore[type-arg]
    """Item ``k`` is batch ``k`` of the epoch: its indices, augmented with a generator seeded by (seed, epoch, k,
    rank), so its content does not depend on the worker that builds it."""

    def __init__(self, split: TensorImages | FolderImages, batches: list[list[int]], r: int, seed: int, epoch: int,
                 rank: int, augment: bool) -> None:
        self.split, self.batches, self.r = split, batches, r
        self.seed, self.epoch, self.rank, self.augment = seed, epoch, rank, augment
        self.tf: Any = _folder_transform(r, augment, split.center_crop) if isinstance(split, FolderImages) else None

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.as_tensor(self.batches[k], dtype=torch.int64)
        g = torch.Generator().manual_seed(_batch_seed(self.seed, self.epoch, k, self.rank))
        if isinstance(self.split, TensorImages):
            x = self.split.images[idx]
            if self.augment:
                x = self.split._augment(x, g)
            return x.contiguous(), self.split.labels[idx]  # uint8 at native size: resized on the device
        from PIL import Image

        xs, ys = [], []
        with torch.random.fork_rng(devices=[]):  # torchvision's random transforms draw from the global RNG
            torch.manual_seed(int(torch.randint(0, 2**62, (1,), generator=g)))
            for i in idx.tolist():
                path, y = self.split.samples[i]
                with Image.open(path) as im:
                    xs.append(self.tf(im.convert("RGB")))
                ys.append(y)
        return torch.stack(xs), torch.tensor(ys, dtype=torch.int64)


def train_loader(split: TensorImages | FolderImages, r: int, batch_size: int, *, epoch: int, seed: int,
                 dist_env: DistEnv | None = None, limit: int | None = None, workers: int = 0,
                 pin_memory: bool = False, augment: bool = True) -> DataLoader:  # type: ignore[type-arg]
    """One epoch of shuffled, augmented training batches of this rank's shard.

    The order is ``DistributedSampler(shuffle=True, seed=seed)`` at ``epoch`` (one replica when not distributed);
    ``limit`` images per epoch in all (split evenly over the ranks). Batches of in-memory datasets are uint8 at
    the stored size (:func:`device_batches` resizes and normalises them on the device); ImageFolder batches are
    decoded, augmented and normalised at ``r`` in the workers."""
    de = dist_env or DistEnv()
    indices: Any = range(len(split))  # the sampler only needs len()
    sampler: DistributedSampler[int] = DistributedSampler(indices, num_replicas=de.world, rank=de.rank,
                                                          shuffle=True, seed=seed, drop_last=False)
    sampler.set_epoch(epoch)
    order = list(sampler)
    if limit is not None:
        order = order[: -(-min(limit, len(split)) // de.world)]
    chunks = [order[s: s + batch_size] for s in range(0, len(order), batch_size)]
    ds = _Batches(split, chunks, r, seed, epoch, de.rank, augment)
    return DataLoader(ds, batch_size=None, shuffle=False, num_workers=workers, pin_memory=pin_memory,
                      persistent_workers=False, prefetch_factor=4 if workers else None)


def device_batches(loader: Any, r: int, device: torch.device, *, channels_last: bool = False
                   ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The loader's batches on ``device`` (non-blocking copies), uint8 ones resized to ``r`` and normalised there."""
    mean = torch.tensor(MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=device).view(1, 3, 1, 1)
    for x, y in loader:
        x = x.to(device, non_blocking=True)
        y = y.to(device, non_blocking=True)
        if x.dtype == torch.uint8:
            x = x.float().div_(255.0)
            if x.shape[1] == 1:
                x = x.expand(-1, 3, -1, -1)
            if x.shape[-1] != r or x.shape[-2] != r:
                x = F.interpolate(x, size=(r, r), mode="bilinear", align_corners=False, antialias=x.shape[-1] > r)
            x = (x - mean) / std
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        yield x, y
