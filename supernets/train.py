"""Train an elastic once-for-all MobileNetV3 supernet on a user's dataset (and the built-in digits one).

Method: the **sandwich rule with in-place distillation** (BigNAS / AttentiveNAS), not once-for-all's progressive
shrinking. Every step trains, on one batch, the largest subnet (at the largest resolution, cross-entropy on the
labels), the smallest subnet (at the smallest resolution) and ``n_random`` random subnets (random resolutions);
the smaller ones learn from the largest one's soft predictions (KL divergence, in-place distillation). Gradients
of all of them are summed and applied in one SGD step (momentum, nesterov, per-step cosine schedule). It needs
no teacher network and trains every kernel/expand/depth choice from the first epoch, which is what lets a
small dataset (digits) get meaningful inherited weights in minutes.

Checkpoints: the ``--out`` file is rewritten atomically after every epoch in once-for-all's format
(``{"state_dict": ...}``, plus ``"msunas"`` meta and a ``"train_state"`` with optimizer, epoch and RNG states);
``resume=True`` continues an unfinished file exactly where it stopped.

Devices and scale (``run``, :class:`supernets.device.RunOptions`): ``cpu``, ``cuda`` or ``cuda:N``; mixed
precision (bf16 autocast where supported; fp16 with a GradScaler on older GPUs), channels_last, a DataLoader with
``workers`` processes (pinned memory on CUDA) whose batches are seeded per (epoch, batch, rank) so that a resumed
run sees the same data. Launched under ``torchrun`` the process group is initialised, the supernet is wrapped in
``DistributedDataParallel`` (``find_unused_parameters``: each step trains several subnets), each rank reads its
``DistributedSampler`` shard (``batch_size`` is per process) and only rank 0 evaluates and writes the checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from supernets import codec, get_search_space
from supernets.datasets import load_dataset
from supernets.device import DistEnv, RunOptions, autocast, device_batches, resolve_device, train_loader
from supernets.errors import InputError
from supernets.finetune import cosine_lr, param_groups, recalibrate_bn, validate
from supernets.ofa_supernet import build_supernet, extract_subnet, load_supernet, read_checkpoint, save_supernet
from supernets.train_hardcore import hardcore_configs


@dataclass
class TrainConfig:
    """Hyperparameters of supernet training (stored in the checkpoint; resume checks they match)."""

    dataset: str = "digits"
    root: str | None = None
    vld_size: int | None = None
    width_mult: float = 1.0
    resolution: tuple[int, int] = (32, 64)
    epochs: int = 20
    batch_size: int = 64
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 3e-5
    n_random: int = 2
    kd_ratio: float = 1.0
    train_images: int | None = None
    init: str | None = None
    seed: int = 0
    dropout_rate: float = 0.1
    eval_images: int = 500
    method: str = "sandwich"  # sandwich (default) | hardcore (supernets/train_hardcore.py)


def _sample_configs(space: Any, rng: np.random.Generator, n_random: int) -> list[dict[str, Any]]:
    big, small = codec.largest_backbone(space.resolutions[-1]), codec.smallest_backbone(space.resolutions[0])
    return [big, small, *space.sample(n_random, rng)]


def _resize(x: torch.Tensor, r: int) -> torch.Tensor:
    if x.shape[-1] == r:
        return x
    return F.interpolate(x, size=(r, r), mode="bilinear", align_corners=False, antialias=x.shape[-1] > r)


def train_supernet(
    cfg: TrainConfig,
    out: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
    log: Callable[[str], None] | None = print,
    stop_after: int | None = None,
    run: RunOptions | None = None,
) -> dict[str, Any]:
    """Train (or resume) an elastic supernet as described in the module docstring; returns the final summary.

    ``stop_after``: return after that many epochs of this call (the checkpoint is resumable), e.g. to train in
    slices or to test resuming.

    Raises ``ValueError`` on bad settings, an existing finished/unrelated ``out`` file without ``resume``, or a
    resume whose settings differ from the checkpoint's (or from its number of processes).
    """
    run = run or RunOptions()
    de = DistEnv.from_env()
    device = resolve_device(run.device, de.local_rank)
    if run.workers < 0 or run.workers > 256:
        raise InputError("workers", f"expected 0..256, got {run.workers}")
    de.start(device)
    try:
        return _train(cfg, out, resume, progress, log, stop_after, run, de, device)
    finally:
        de.stop()


def _train(cfg: TrainConfig, out: Path | str, resume: bool, progress: bool, log: Callable[[str], None] | None,
           stop_after: int | None, run: RunOptions, de: DistEnv, device: torch.device) -> dict[str, Any]:
    on_cuda = device.type == "cuda"
    amp = on_cuda if run.amp is None else bool(run.amp)
    channels_last = on_cuda if run.channels_last is None else bool(run.channels_last)
    if not de.main:
        progress, log = False, None
    out = Path(out).expanduser()
    space: Any = get_search_space("mobilenetv3", lr=cfg.resolution[0], ur=cfg.resolution[1], width_mult=cfg.width_mult)
    if cfg.epochs < 1:
        raise InputError("epochs", f"expected >= 1, got {cfg.epochs}")
    if cfg.method not in ("sandwich", "hardcore"):
        raise InputError("method", f"expected sandwich or hardcore, got {cfg.method!r}")
    if cfg.batch_size < 1:
        raise InputError("batch_size", f"expected >= 1, got {cfg.batch_size}")
    data = load_dataset(cfg.dataset, cfg.root, cfg.vld_size)
    state: dict[str, Any] | None = None
    if out.exists():
        if not resume:
            raise InputError("out", f"{out} exists; pass --resume to continue it, or choose another --out")
        ck = read_checkpoint(out)
        state = ck.get("train_state")
        meta = ck.get("msunas") or {}
        if state is None and not meta.get("complete"):
            raise InputError("out", f"{out} is not an msunas training checkpoint (no train_state); cannot resume")
        saved = meta.get("train_config", {})
        mine = _jsonable(asdict(cfg))
        diff = [
            k
            for k in ("dataset", "width_mult", "resolution", "epochs", "batch_size", "lr", "n_random", "seed",
                      "method")
            if saved.get(k, "sandwich" if k == "method" else None) != mine.get(k)
        ]
        if diff:
            raise InputError(
                "resume",
                f"{diff[0]} differs from the checkpoint's ({saved.get(diff[0])!r} vs {mine[diff[0]]!r})"
            )
        if state is None:  # finished (its optimizer state was dropped): nothing left to train
            history = list(meta.get("history") or [])
            return {"out": str(out), "epochs": history[-1]["epoch"] if history else cfg.epochs, "history": history,
                    "seconds": 0.0}
        net = load_supernet(out)
    elif cfg.init:
        net = load_supernet(cfg.init, n_classes=data.n_classes, width_mult=cfg.width_mult)
    else:
        net = build_supernet(cfg.width_mult, data.n_classes, dropout_rate=cfg.dropout_rate, seed=cfg.seed)

    n_train = len(data.train) if cfg.train_images is None else min(cfg.train_images, len(data.train))
    per_rank = math.ceil(n_train / de.world)  # DistributedSampler's shard (padded)
    steps_per_epoch = math.ceil(per_rank / cfg.batch_size)
    total = cfg.epochs * steps_per_epoch
    net.to(device)
    if channels_last:
        net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    opt = torch.optim.SGD(param_groups(net, cfg.weight_decay), lr=cfg.lr, momentum=cfg.momentum, nesterov=True)
    scaler = torch.amp.GradScaler(device.type, enabled=amp and autocast_fp16(device))
    model: nn.Module = net
    if de.world > 1:
        model = nn.parallel.DistributedDataParallel(
            net, device_ids=[device.index] if on_cuda else None, find_unused_parameters=True)
    rng = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    start_epoch, history = 0, []
    if state is not None:
        if int(state.get("world_size", 1)) != de.world:
            raise InputError("resume", f"the checkpoint was trained by {state.get('world_size', 1)} processes, "
                             f"this run has {de.world}")
        opt.load_state_dict(state["optimizer"])
        if "scaler" in state and scaler.is_enabled():
            scaler.load_state_dict(state["scaler"])
        rng.bit_generator.state = state["numpy_rng"]
        torch.set_rng_state(state["torch_rng"])
        if on_cuda and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(state["cuda_rng"], device)
        start_epoch = int(state["epoch"])
        history = list(state.get("history", []))
        if start_epoch >= cfg.epochs:
            if log:
                log(f"{out}: already trained for {start_epoch} epochs; nothing to do")
            return {"out": str(out), "epochs": start_epoch, "history": history}

    hi = space.resolutions[-1]
    pbar = _Progress(progress, total, start_epoch * steps_per_epoch)
    t_start, c_start = time.perf_counter(), time.process_time()
    try:
        for epoch in range(start_epoch, cfg.epochs):
            model.train()
            loss_sum, n_seen = 0.0, 0
            step0 = epoch * steps_per_epoch
            loader = train_loader(data.train, hi, cfg.batch_size, epoch=epoch, seed=cfg.seed, dist_env=de,
                                  limit=cfg.train_images, workers=run.workers, pin_memory=on_cuda)
            for i, (x, y) in enumerate(device_batches(loader, hi, device, channels_last=channels_last)):
                lr = cosine_lr(cfg.lr, step0 + i, total)
                for grp in opt.param_groups:
                    grp["lr"] = lr
                opt.zero_grad(set_to_none=True)
                soft: torch.Tensor | None = None
                subs = (_sample_configs(space, rng, cfg.n_random) if cfg.method == "sandwich"
                        else hardcore_configs(space, rng, cfg.n_random, epoch, cfg.epochs))
                for j, sub in enumerate(subs):
                    net.set_active_subnet(ks=sub["ks"], e=sub["e"], d=sub["d"])  # type: ignore[operator]
                    with autocast(device, amp):
                        logits = model(_resize(x, sub["r"])).float()
                    if j == 0:
                        loss = F.cross_entropy(logits, y)
                        soft = F.softmax(logits.detach(), dim=1)
                        loss_sum += float(loss.detach()) * len(y)
                        n_seen += len(y)
                    else:
                        assert soft is not None
                        kd = F.kl_div(F.log_softmax(logits, dim=1), soft, reduction="batchmean")
                        loss = cfg.kd_ratio * kd + (1 - cfg.kd_ratio) * F.cross_entropy(logits, y)
                    if not torch.isfinite(loss):
                        raise FloatingPointError(f"loss is {loss.item()} at epoch {epoch} step {i}; lower --lr")
                    scaler.scale(loss).backward()
                scaler.unscale_(opt)
                nn.utils.clip_grad_norm_(net.parameters(), 5.0)
                scaler.step(opt)
                scaler.update()
                pbar.advance(epoch, cfg.epochs, loss_sum / max(n_seen, 1))
            if de.world > 1:  # the mean training loss over all ranks
                t = torch.tensor([loss_sum, float(n_seen)], dtype=torch.float64, device=device)
                torch.distributed.all_reduce(t)
                loss_sum, n_seen = float(t[0]), int(t[1])
            if not de.main:  # only rank 0 evaluates and writes; the others wait for it
                de.barrier()
                if stop_after is not None and epoch + 1 - start_epoch >= stop_after:
                    break
                continue
            ev = _epoch_eval(net, data, space, cfg, device)
            history.append(
                {
                    "epoch": epoch + 1,
                    "train_loss": loss_sum / max(n_seen, 1),
                    **ev,
                    "elapsed_s": time.perf_counter() - t_start,
                    "cpu_s": time.process_time() - c_start,
                }
            )
            state = {
                "epoch": epoch + 1,
                "optimizer": opt.state_dict(),
                "numpy_rng": rng.bit_generator.state,
                "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state(device) if on_cuda else None,
                "world_size": de.world,
                "history": history,
            }
            if scaler.is_enabled():
                state["scaler"] = scaler.state_dict()
            _save(net, out, cfg, state, done=epoch + 1 == cfg.epochs, n_classes=data.n_classes)
            de.barrier()
            pbar.note(
                f"epoch {epoch + 1}/{cfg.epochs} loss {history[-1]['train_loss']:.3f} "
                f"top1 max {ev['top1_max']:.1f}% min {ev['top1_min']:.1f}%"
            )
            if log and not progress:
                log(f"epoch {epoch + 1}/{cfg.epochs}: {history[-1]}")
            if stop_after is not None and epoch + 1 - start_epoch >= stop_after:
                break
    finally:
        pbar.close()
    done = history[-1]["epoch"] if history else 0
    return {"out": str(out), "epochs": done, "history": history, "seconds": time.perf_counter() - t_start,
            "rank": de.rank, "world_size": de.world}


def autocast_fp16(device: torch.device) -> bool:
    """Whether autocast on ``device`` runs in float16 (needs a GradScaler) rather than bfloat16."""
    return device.type == "cuda" and not torch.cuda.is_bf16_supported()


def _on(batches: Any, device: torch.device) -> Any:
    for x, y in batches:
        yield x.to(device, non_blocking=True), y.to(device, non_blocking=True)


def _epoch_eval(net: nn.Module, data: Any, space: Any, cfg: TrainConfig, device: torch.device | None = None
                ) -> dict[str, float]:
    """Validation top-1 of the largest and smallest subnet (BN recalibrated on training images)."""
    device = device or torch.device("cpu")
    out = {}
    for name, sub in (
        ("max", codec.largest_backbone(space.resolutions[-1])),
        ("min", codec.smallest_backbone(space.resolutions[0])),
    ):
        s = extract_subnet(net, sub).to(device)
        recalibrate_bn(s, (x for x, _ in _on(data.train.batches(sub["r"], 250, limit=cfg.eval_images), device)))
        out[f"top1_{name}"] = validate(s, _on(data.valid.batches(sub["r"], 250, limit=cfg.eval_images), device))["top1"]
    return out


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def _save(net: nn.Module, out: Path, cfg: TrainConfig, state: dict[str, Any], *, done: bool, n_classes: int) -> None:
    if hasattr(net, "msunas_meta"):
        net.msunas_meta = {}  # type: ignore[assignment]
    save_supernet(
        net,
        out,
        width_mult=cfg.width_mult,
        n_classes=n_classes,
        dataset=cfg.dataset,
        complete=done,
        train_config=_jsonable(asdict(cfg)),
        dropout_rate=cfg.dropout_rate,
        method="sandwich+inplace-distillation" if cfg.method == "sandwich" else "hardcore-heaviest-first+multipath",
        history=state.get("history", []),
        extra=None if done else {"train_state": state},  # a finished supernet keeps weights and metadata only
    )


class _Progress:
    """A rich progress bar (steps, loss, elapsed, ETA), or nothing."""

    def __init__(self, enabled: bool, total: int, done: int) -> None:
        self.p: Any = None
        if enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.p = Progress(
                TextColumn("[bold]supernet[/] epoch {task.fields[epoch]}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]:.3f}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
            )
            self.p.start()
            self.task = self.p.add_task("train", total=total, completed=done, epoch="-", loss=float("nan"))

    def advance(self, epoch: int, epochs: int, loss: float) -> None:
        if self.p is not None:
            self.p.update(self.task, advance=1, epoch=f"{epoch + 1}/{epochs}", loss=loss)

    def note(self, msg: str) -> None:
        if self.p is not None:
            self.p.console.print(msg)

    def close(self) -> None:
        if self.p is not None:
            self.p.stop()


# ------------------------------------------------------------------------------------------- built-in digits
# ~270 s of one CPU core (about 2.5-3 min on 2 idle cores); validation top-1 ~96 % (largest) / ~94 % (smallest)
DIGITS_CONFIG = TrainConfig(dataset="digits", resolution=(32, 48), epochs=6, batch_size=64, lr=0.05, n_random=1)


def default_cache_dir() -> Path:
    """``$MSUNAS_CACHE`` or ``~/.cache/msunas``."""
    return Path(os.environ.get("MSUNAS_CACHE", Path.home() / ".cache" / "msunas")).expanduser()


def digits_supernet_path(
    cache_dir: str | Path | None = None, *, width_mult: float = 1.0, progress: bool = True
) -> Path:
    """Path of the built-in digits supernet; trains and caches it first when absent (:func:`train_digits_supernet`).

    Call it only where training is what the user asked for (``msunas supernet train --builtin digits``, the
    demo); elsewhere use :func:`builtin_digits_path` and refuse when it is not trained yet."""
    return train_digits_supernet(cache_dir, width_mult=width_mult, progress=progress)["path"]


def builtin_digits_path(cache_dir: str | Path | None = None, *, width_mult: float = 1.0) -> Path:
    """Where the built-in digits supernet of ``width_mult`` lives (whether or not it is trained yet)."""
    cfg = TrainConfig(**{**asdict(DIGITS_CONFIG), "width_mult": codec.check_width(width_mult)})
    tag = hashlib.sha1(json.dumps(_jsonable(asdict(cfg)), sort_keys=True).encode()).hexdigest()[:8]
    return Path(cache_dir or default_cache_dir()) / f"digits_w{cfg.width_mult}_{tag}.pth"


def builtin_digits_ready(cache_dir: str | Path | None = None, *, width_mult: float = 1.0) -> bool:
    """True when the built-in digits supernet is trained and cached (no training happens here)."""
    path = builtin_digits_path(cache_dir, width_mult=width_mult)
    return path.is_file() and bool((read_checkpoint(path).get("msunas") or {}).get("complete"))


def train_digits_supernet(
    cache_dir: str | Path | None = None,
    *,
    width_mult: float = 1.0,
    progress: bool = True,
    config: TrainConfig | None = None,
) -> dict[str, Any]:
    """Train the small elastic digits supernet once and cache it (``<cache>/digits_w{w}_{config hash}.pth``).

    A second call returns the cached file at once (``trained: False``); an interrupted first call resumes.
    """
    cfg = config or TrainConfig(**{**asdict(DIGITS_CONFIG), "width_mult": codec.check_width(width_mult)})
    tag = hashlib.sha1(json.dumps(_jsonable(asdict(cfg)), sort_keys=True).encode()).hexdigest()[:8]
    path = Path(cache_dir or default_cache_dir()) / f"digits_w{cfg.width_mult}_{tag}.pth"
    if path.exists():
        meta = read_checkpoint(path).get("msunas") or {}
        if meta.get("complete"):
            return {"path": path, "trained": False, "seconds": 0.0, "history": meta.get("history", [])}
    t0 = time.perf_counter()
    summary = train_supernet(cfg, path, resume=path.exists(), progress=progress, log=None)
    return {"path": path, "trained": True, "seconds": time.perf_counter() - t0, "history": summary["history"]}
