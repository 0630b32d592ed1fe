"""Train one chosen architecture to convergence from its inherited supernet weights (``msunas train``).

The student is the static subnet extracted from the supernet (BN recalibrated on training images at its
resolution); the teacher is the supernet's **largest** subnet at the same resolution (BN recalibrated, frozen).
Loss per batch: ``(1 - kd_ratio) * CE(student, labels, label_smoothing) + kd_ratio * T^2 * KL(student/T ||
teacher/T)`` (Hinton et al. 2015; OFA/BigNAS fine-tune their subnets this way). SGD with nesterov momentum, a
per-step cosine schedule to 0, weight decay on conv/linear weights only, optional EMA of the weights (and BN
buffers) evaluated instead of the raw weights. Batches come from :func:`supernets.device.train_loader` (seeded
per epoch and batch), so ``resume`` continues exactly.

``out`` (a folder) receives ``checkpoint.pth`` (rewritten every epoch: weights, optimizer, EMA, RNG, history),
and when training is done ``net.pth`` (:func:`supernets.export.export_torch`'s self-contained format),
``net.onnx`` (checked in ONNX Runtime), ``net.int8.onnx`` (ORT static quantisation, optional) and ``net.stats``
(JSON: config, the **measured** validation and test top-1 of the trained weights, the inherited weights' top-1
before training, int8 top-1 and ORT CPU latency, training history and the artefact record).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from supernets import codec
from supernets.datasets import DatasetSplits
from supernets.device import RunOptions, autocast, device_batches, resolve_device, train_loader
from supernets.errors import InputError
from supernets.export import export_onnx, export_torch, save_atomic, set_onnx_metadata, temp_beside
from supernets.finetune import cosine_lr, param_groups, recalibrate_bn, validate
from supernets.ofa_supernet import extract_subnet, subnet_net_config
from supernets.quantize import onnx_top1, ort_latency_ms, quantize_onnx_int8

__all__ = ["OUT_FILES", "SubnetTrainConfig", "train_subnet"]

OUT_FILES = ("checkpoint.pth", "net.pth", "net.onnx", "net.int8.onnx", "net.stats")
RESUME_KEYS = ("epochs", "batch_size", "lr", "label_smoothing", "kd_ratio", "kd_temperature", "ema", "ema_decay",
               "train_images", "seed")


@dataclass
class SubnetTrainConfig:
    """Hyperparameters of ``msunas train`` (stored in the checkpoint; a resume must match them)."""

    epochs: int = 30
    batch_size: int = 64
    lr: float = 0.02
    momentum: float = 0.9
    weight_decay: float = 4e-5
    label_smoothing: float = 0.1
    kd_ratio: float = 0.5
    kd_temperature: float = 1.0
    ema: bool = False
    ema_decay: float = 0.999
    train_images: int | None = None
    calib_images: int = 500
    seed: int = 0
    int8: bool = True


def _check(cfg: SubnetTrainConfig) -> None:
    for name, value, lo, hi in (("epochs", cfg.epochs, 1, 100_000), ("batch_size", cfg.batch_size, 1, 65_536),
                                ("lr", cfg.lr, 0.0, 10.0), ("label_smoothing", cfg.label_smoothing, 0.0, 0.99),
                                ("kd_ratio", cfg.kd_ratio, 0.0, 1.0), ("kd_temperature", cfg.kd_temperature, 0.1, 100),
                                ("ema_decay", cfg.ema_decay, 0.0, 0.999999), ("calib_images", cfg.calib_images, 1,
                                                                              1_000_000)):
        if not lo <= value <= hi:
            raise InputError(name, f"expected {lo}..{hi}, got {value}")


def _prepare_out(out: Path, resume: bool, overwrite: bool) -> dict[str, Any] | None:
    """The checkpoint to resume from (or None); refuses a non-empty ``out`` without resume/overwrite."""
    if out.exists() and not out.is_dir():
        raise InputError("out", f"{out} is a file; --out is a folder")
    busy = out.is_dir() and any(out.iterdir())
    ck_path = out / "checkpoint.pth"
    if resume:
        if not ck_path.is_file():
            raise InputError("resume", f"{ck_path} does not exist; nothing to resume")
        ck = torch.load(ck_path, map_location="cpu", weights_only=False)
        if not isinstance(ck, dict) or ck.get("format") != "msunas-subnet-training":
            raise InputError("resume", f"{ck_path} is not an msunas train checkpoint")
        return ck
    if busy:
        if not overwrite:
            raise InputError("out", f"{out} is not empty", hint="pass --resume to continue it or --overwrite")
        for name in OUT_FILES:
            (out / name).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    return None


def _batches_on(split: Any, r: int, n: int | None, device: torch.device, channels_last: bool) -> Any:
    for x, y in split.batches(r, 250, limit=n):
        x = x.to(device)
        yield (x.contiguous(memory_format=torch.channels_last) if channels_last else x), y.to(device)


def train_subnet(
    config: Mapping[str, Any],
    supernet: nn.Module,
    data: DatasetSplits,
    out: str | Path,
    cfg: SubnetTrainConfig | None = None,
    *,
    artefact: Mapping[str, Any] | None = None,
    run: RunOptions | None = None,
    resume: bool = False,
    overwrite: bool = False,
    metadata: Callable[[Mapping[str, Any]], Mapping[str, str]] | None = None,
    log: Callable[[str], None] | None = print,
    stop_after: int | None = None,
    on_epoch: Callable[[int, list[dict[str, Any]]], bool] | None = None,
) -> dict[str, Any]:
    """Train ``config`` (ks, e, d, r) as described in the module docstring; returns the ``net.stats`` document
    (``done: False`` after ``stop_after`` epochs of this call, or when ``on_epoch(epoch, history)``, called once
    each epoch's checkpoint is written, returns False). ``metadata(metrics)``: the ONNX files'
    ``metadata_props``."""
    cfg = cfg or SubnetTrainConfig()
    run = run or RunOptions()
    _check(cfg)
    out = Path(out).expanduser()
    device = resolve_device(run.device)
    on_cuda = device.type == "cuda"
    amp = on_cuda if run.amp is None else bool(run.amp)
    cl = on_cuda if run.channels_last is None else bool(run.channels_last)
    ck = _prepare_out(out, resume, overwrite)
    arch = {k: config[k] for k in ("ks", "e", "d", "r")}
    r = int(arch["r"])
    if ck is not None:
        saved = ck["train_config"]
        diff = [k for k in RESUME_KEYS if saved.get(k) != asdict(cfg).get(k)]
        if diff:
            raise InputError("resume", f"{diff[0]} differs from the checkpoint's ({saved.get(diff[0])!r} vs "
                             f"{asdict(cfg)[diff[0]]!r})")
        if ck["config"] != arch:
            raise InputError("config", "differs from the architecture the checkpoint trains")
    torch.manual_seed(cfg.seed)
    calib = cfg.calib_images
    teacher = extract_subnet(supernet, codec.largest_backbone(r)).to(device)
    student = extract_subnet(supernet, arch).to(device)
    net_config = subnet_net_config(supernet, arch)
    if cl:
        teacher.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        student.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    recalibrate_bn(teacher, (x for x, _ in _batches_on(data.train, r, calib, device, cl)))
    teacher.eval().requires_grad_(False)
    recalibrate_bn(student, (x for x, _ in _batches_on(data.train, r, calib, device, cl)))
    opt = torch.optim.SGD(param_groups(student, cfg.weight_decay), lr=cfg.lr, momentum=cfg.momentum, nesterov=True)
    scaler = torch.amp.GradScaler(device.type, enabled=amp and on_cuda and not torch.cuda.is_bf16_supported())
    ema = AveragedModel(student, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay), use_buffers=True) \
        if cfg.ema else None
    history: list[dict[str, Any]] = []
    start = 0
    if ck is not None:
        student.load_state_dict(ck["state_dict"])
        opt.load_state_dict(ck["optimizer"])
        if ema is not None:
            ema.load_state_dict(ck["ema"])
        if scaler.is_enabled() and "scaler" in ck:
            scaler.load_state_dict(ck["scaler"])
        torch.set_rng_state(ck["torch_rng"])
        if on_cuda and ck.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(ck["cuda_rng"], device)
        start, history = int(ck["epoch"]), list(ck["history"])
        inherited = dict(ck["inherited"])
    else:
        inherited = {"top1": validate(student, _batches_on(data.valid, r, None, device, cl))["top1"],
                     "teacher_top1": validate(teacher, _batches_on(data.valid, r, None, device, cl))["top1"]}
        if log:
            log(f"inherited weights: validation top-1 {inherited['top1']:.2f}% "
                f"(teacher {inherited['teacher_top1']:.2f}%)")
    n_train = len(data.train) if cfg.train_images is None else min(cfg.train_images, len(data.train))
    steps = math.ceil(n_train / cfg.batch_size)
    total = cfg.epochs * steps
    t0, c0 = time.perf_counter(), time.process_time()
    temp = cfg.kd_temperature
    for epoch in range(start, cfg.epochs):
        student.train()
        loss_sum, seen = 0.0, 0
        loader = train_loader(data.train, r, cfg.batch_size, epoch=epoch, seed=cfg.seed, limit=cfg.train_images,
                              workers=run.workers, pin_memory=on_cuda)
        for i, (x, y) in enumerate(device_batches(loader, r, device, channels_last=cl)):
            for grp in opt.param_groups:
                grp["lr"] = cosine_lr(cfg.lr, epoch * steps + i, total)
            with torch.no_grad(), autocast(device, amp):
                soft = teacher(x).float()
            with autocast(device, amp):
                logits = student(x).float()
            loss = (1 - cfg.kd_ratio) * F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
            if cfg.kd_ratio > 0:
                kd = F.kl_div(F.log_softmax(logits / temp, 1), F.softmax(soft / temp, 1), reduction="batchmean")
                loss = loss + cfg.kd_ratio * temp * temp * kd
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss is {loss.item()} at epoch {epoch} step {i}; lower --lr")
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            if ema is not None:
                ema.update_parameters(student)
            loss_sum += float(loss.detach()) * len(y)
            seen += len(y)
        final = ema.module if ema is not None else student
        top1 = validate(final, _batches_on(data.valid, r, None, device, cl))["top1"]
        history.append({"epoch": epoch + 1, "train_loss": loss_sum / max(seen, 1), "top1_valid": top1,
                        "elapsed_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0})
        if log:
            log(f"epoch {epoch + 1}/{cfg.epochs}: loss {history[-1]['train_loss']:.3f}, validation top-1 {top1:.2f}%")
        state = {"format": "msunas-subnet-training", "config": arch, "train_config": asdict(cfg),
                 "artefact": dict(artefact or {}), "epoch": epoch + 1, "history": history, "inherited": inherited,
                 "state_dict": student.state_dict(), "optimizer": opt.state_dict(),
                 "torch_rng": torch.get_rng_state(),
                 "cuda_rng": torch.cuda.get_rng_state(device) if on_cuda else None}
        if ema is not None:
            state["ema"] = ema.state_dict()
        if scaler.is_enabled():
            state["scaler"] = scaler.state_dict()
        save_atomic(state, out / "checkpoint.pth")
        if on_epoch is not None and not on_epoch(epoch + 1, history):
            return {"done": False, "epochs": epoch + 1, "history": history}
        if stop_after is not None and epoch + 1 - start >= stop_after and epoch + 1 < cfg.epochs:
            return {"done": False, "epochs": epoch + 1, "history": history}
    final = (ema.module if ema is not None else student).eval()
    return _finish(arch, final, net_config, data, out, cfg, artefact, inherited, history, metadata, device, cl)


def _finish(arch: dict[str, Any], net: nn.Module, net_config: Mapping[str, Any], data: DatasetSplits, out: Path,
            cfg: SubnetTrainConfig, artefact: Mapping[str, Any] | None, inherited: Mapping[str, Any],
            history: list[dict[str, Any]], metadata: Callable[[Mapping[str, Any]], Mapping[str, str]] | None,
            device: torch.device, cl: bool) -> dict[str, Any]:
    """Measure the trained network (validation, test), write net.pth, net.onnx, net.int8.onnx and net.stats."""
    r = int(arch["r"])
    metrics: dict[str, Any] = {"top1": validate(net, _batches_on(data.valid, r, None, device, cl))["top1"],
                               "top1_inherited": float(inherited["top1"]),
                               "top1_teacher": float(inherited["teacher_top1"])}
    if data.test is not None:
        metrics["top1_test"] = validate(net, _batches_on(data.test, r, None, device, cl))["top1"]
    net = net.cpu().float().to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
    n_classes = int(net.classifier.linear.out_features)  # type: ignore[union-attr, arg-type]
    width = float((artefact or {}).get("width_mult") or 1.0)
    export_torch(net, arch, net_config, out / "net.pth", width_mult=width, n_classes=n_classes, metrics=metrics,
                 artefact=artefact)
    props = dict(metadata(metrics)) if metadata else {}
    onnx_info = export_onnx(net, r, out / "net.onnx", metadata=props)
    metrics["onnx_max_abs_diff"] = onnx_info.get("max_abs_diff")
    valid = [(x.numpy(), y.numpy()) for x, y in data.valid.batches(r, 100)]
    test = [(x.numpy(), y.numpy()) for x, y in data.test.batches(r, 100)] if data.test is not None else []
    metrics["latency_ms_fp32"] = ort_latency_ms(out / "net.onnx", r)
    if cfg.int8:
        g = torch.Generator().manual_seed(cfg.seed)
        calib = [x.numpy() for x, _ in data.train.batches(r, 16, shuffle=True, limit=64, generator=g)]
        tmp = temp_beside(out / "net.int8.onnx")
        quant = quantize_onnx_int8(out / "net.onnx", tmp, calib)
        metrics["top1_int8"] = onnx_top1(tmp, valid)[0]
        if test:
            metrics["top1_test_int8"] = onnx_top1(tmp, test)[0]
        metrics["latency_ms_int8"] = ort_latency_ms(tmp, r)
        set_onnx_metadata(tmp, {**props, "msunas.precision": json.dumps("int8"),
                                "msunas.quantization": json.dumps({**quant, **{k: metrics[k] for k in metrics
                                                                               if "int8" in k}})})
        tmp.replace(out / "net.int8.onnx")
    metrics["latency"] = {"runtime": "onnxruntime CPUExecutionProvider", "batch": 1, "threads": 1,
                          "statistic": "median"}
    doc = {"done": True, "config": arch, "metrics": metrics, "epochs": history[-1]["epoch"] if history else 0,
           "history": history, "train_config": asdict(cfg), "artefact": dict(artefact or {}),
           "files": {k: str(out / k) for k in OUT_FILES if (out / k).exists()}}
    tmp_s = temp_beside(out / "net.stats")
    tmp_s.write_text(json.dumps(doc, indent=1, default=_json_default))
    tmp_s.replace(out / "net.stats")
    return doc


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
