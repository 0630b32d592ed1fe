"""The one export of an architecture, for ``msunas export`` and ``GET /jobs/{id}/archs/{a}/export`` alike.

``export_architecture(config, spec, fmt, out)`` extracts the architecture from the job's supernet (the one it
was found with, :func:`search.provenance.load_job_supernet`, or one passed in, checked to fit), optionally
prepares it on the job's dataset first (BN recalibration, ``n_epochs`` of fine-tuning, validation: what the
search measured), and writes

- ``onnx``: input ``input`` (N, 3, r, r); output ``logits`` (single exit) or every exit's logits (early exits),
  checked against PyTorch in ONNX Runtime; ``metadata_props`` say what the file is (:func:`onnx_metadata`);
- ``onnx-int8`` (single-exit nets): the fp32 ONNX file statically quantised by ONNX Runtime (QDQ, per-channel
  int8 weights, activations calibrated on :data:`CALIBRATION_IMAGES` training images at the net's resolution); the
  fp32 and int8 files' validation top-1 and ORT CPU batch-1 latency are measured and written into the int8 file's
  ``metadata_props`` (``msunas.quantization``) and the summary (``quantization``);
- ``torch``: a self-contained checkpoint with the config, the network config, the weights and the artefact.

Exports are serialised in the process (torch's ONNX exporter is global state): concurrent calls wait their turn.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn as nn

from early_exit.evaluate import exit_thresholds
from early_exit.export import export_early_exit
from early_exit.objectives import thresholds_of_metrics
from search.evaluators.early_exit import EarlyExitEvaluator
from search.evaluators.supernet import SupernetEvaluator
from search.provenance import arch_artefact, check_fits, describe, load_job_supernet, msunas_version, supernet_ref
from search.spec import EarlyExitSpec, JobSpec, SupernetEvaluatorSpec
from supernets import get_search_space
from supernets.datasets import MEAN, STD, class_names, load_dataset
from supernets.errors import InputError
from supernets.export import export_subnet, set_onnx_metadata, temp_beside
from supernets.quantize import onnx_top1, ort_latency_ms, quantize_onnx_int8

Format = Literal["onnx", "onnx-int8", "torch"]
EXPORT_FORMATS = ("onnx", "onnx-int8", "torch")
MEDIA_TYPES = {"onnx": "application/onnx", "onnx-int8": "application/onnx", "torch": "application/octet-stream"}
CALIBRATION_IMAGES = 64  # training images ORT calibrates the int8 activation ranges on
LATENCY_RUNS = 30  # batch-1 ORT CPU runs (1 thread) the reported median latency is taken over
_LOCK = threading.Lock()


def onnx_metadata(config: Mapping[str, Any], artefact: Mapping[str, Any], metrics: Mapping[str, Any] | None = None
                  ) -> dict[str, str]:
    """``metadata_props`` of an exported ONNX file (each value JSON): config, width, classes, input shape,
    normalisation, class names when known, the artefact description and the msunas version."""
    r = artefact.get("resolution")
    ds = artefact.get("dataset") or {}
    names = class_names(str(ds.get("name")), ds.get("root"))
    props = {  # every value is JSON
        "msunas.version": json.dumps(msunas_version()),
        "msunas.config": json.dumps(dict(config)),
        "msunas.width_mult": json.dumps(artefact.get("width_mult")),
        "msunas.n_classes": json.dumps(artefact.get("n_classes")),
        "msunas.input_shape": json.dumps([1, 3, r, r]),
        "msunas.input_layout": json.dumps("NCHW float32, RGB scaled to [0, 1], then (x - mean) / std"),
        "msunas.mean": json.dumps(list(MEAN)),
        "msunas.std": json.dumps(list(STD)),
        "msunas.artefact": json.dumps(dict(artefact)),
    }
    if names is not None:
        props["msunas.class_names"] = json.dumps(names)
    if metrics:
        props["msunas.metrics"] = json.dumps({k: v for k, v in metrics.items() if isinstance(v, int | float | str)})
    return props


def export_architecture(
    config: Mapping[str, Any],
    spec: JobSpec,
    fmt: str,
    out: str | Path,
    *,
    supernet: nn.Module | None = None,
    metrics: Mapping[str, Any] | None = None,
    prepare: bool = False,
    n_epochs: int = 0,
    thresholds: Sequence[float] | None = None,
) -> dict[str, Any]:
    """Export one architecture of the job ``spec`` (see the module docstring); returns a summary: path, format,
    artefact, ONNX parity, and the validation metrics when ``prepare``.

    ``prepare``: recalibrate BN and fine-tune ``n_epochs`` on the job's dataset before export (early exits: train
    the exit heads with the backbone) and measure validation top-1. ``thresholds``: early exits' max-softmax
    thresholds (default: from the ``t`` genes, or the calibrated ones in ``metrics``)."""
    fmt = "torch" if fmt == "pytorch" else fmt
    if fmt not in EXPORT_FORMATS:
        raise InputError("format", f"expected one of {list(EXPORT_FORMATS)}, got {fmt!r}")
    if fmt == "onnx-int8" and spec.search_space == "eemobilenetv3":
        raise InputError("format", "onnx-int8 is for single-exit architectures; early-exit nets export as onnx or "
                         "torch", hint="export --format onnx and quantise it with onnxruntime.quantization yourself")
    if n_epochs and not prepare:
        raise InputError("n_epochs", "fine-tuning needs a dataset to prepare the network on")
    space = get_search_space(spec.search_space, **spec.search_space_kwargs())
    cfg = space.validate(config)
    ref = supernet_ref(spec)
    artefact = arch_artefact(cfg, describe(spec, ref))
    with _LOCK:
        net_sn = supernet if supernet is not None else load_job_supernet(spec, ref)
        check_fits(artefact, net_sn)
        if spec.search_space == "eemobilenetv3":
            info = _early_exit(cfg, spec, net_sn, fmt, Path(out), artefact, metrics, prepare, n_epochs, thresholds)
        else:
            if thresholds is not None:
                raise InputError("thresholds", "only early-exit architectures have exit thresholds")
            info = _single_exit(cfg, spec, net_sn, fmt, Path(out), artefact, metrics, prepare, n_epochs)
    info["artefact"] = artefact
    return info


def _prep_spec(spec: JobSpec, r: int, n_epochs: int) -> JobSpec:
    """The job at the architecture's fixed resolution, fine-tuning ``n_epochs`` with the supernet evaluator."""
    ev: dict[str, Any] = spec.evaluator.model_dump() if spec.evaluator.kind == "supernet" else {"kind": "supernet"}
    ev["n_epochs"] = n_epochs
    return spec.model_copy(update={"resolution": (r, r), "evaluator": SupernetEvaluatorSpec(**ev)})


def _single_exit(cfg: dict[str, Any], spec: JobSpec, net_sn: nn.Module, fmt: str, out: Path,
                 artefact: dict[str, Any], metrics: Mapping[str, Any] | None, prepare: bool, n_epochs: int
                 ) -> dict[str, Any]:
    backbone = {k: cfg[k] for k in ("ks", "e", "d", "r")}
    prepared, measured = None, None
    if prepare:
        ev = SupernetEvaluator(_prep_spec(spec, int(cfg["r"]), n_epochs), supernet=net_sn)
        try:
            prepared, measured = ev.prepare(backbone)
            measured.update(ev.validate_net(prepared, int(cfg["r"])))
        except (FloatingPointError, RuntimeError) as e:
            raise InputError("config", f"preparing the subnet failed: {e}") from None
    shown = measured if measured is not None else {k: float(v) for k, v in (metrics or {}).items()
                                                   if isinstance(v, int | float) and not isinstance(v, bool)}
    props = onnx_metadata(backbone, artefact, shown)
    if fmt == "onnx-int8":
        info = _int8(backbone, spec, net_sn, out, prepared, shown, props)
    else:
        info = export_subnet(backbone, net_sn, fmt, out, net=prepared, metrics=shown, metadata=props,
                             artefact=artefact)
    if measured is not None:
        info["metrics"] = measured
    return info


def _int8(backbone: dict[str, Any], spec: JobSpec, net_sn: nn.Module, out: Path, prepared: nn.Module | None,
          shown: Mapping[str, float], props: dict[str, str]) -> dict[str, Any]:
    """fp32 ONNX (checked in ORT), quantised with calibration images of the job's dataset; both measured."""
    r = int(backbone["r"])
    ds = spec.dataset
    data = load_dataset(ds.name, ds.root, ds.vld_size)
    calib = [x.numpy() for x, _ in data.train.batches(r, 16, shuffle=True, limit=CALIBRATION_IMAGES,
                                                       generator=torch.Generator().manual_seed(spec.seed))]
    path = Path(out).expanduser()
    fp32 = temp_beside(path)
    try:
        info = export_subnet(backbone, net_sn, "onnx", fp32, net=prepared, metrics=shown, metadata=props)
        quant = quantize_onnx_int8(fp32, path, calib)
        valid = [(x.numpy(), y.numpy()) for x, y in data.valid.batches(r, 100)]
        top1_fp32, pred_fp32 = onnx_top1(fp32, valid)
        top1_int8, pred_int8 = onnx_top1(path, valid)
        quant.update({
            "top1_fp32": top1_fp32, "top1_int8": top1_int8,
            "agreement": float((pred_fp32 == pred_int8).mean() * 100.0), "validation_images": int(len(pred_fp32)),
            "latency_ms_fp32": ort_latency_ms(fp32, r, runs=LATENCY_RUNS),
            "latency_ms_int8": ort_latency_ms(path, r, runs=LATENCY_RUNS),
            "latency": {"runtime": "onnxruntime CPUExecutionProvider", "batch": 1, "threads": 1,
                        "runs": LATENCY_RUNS, "statistic": "median"},
            "fp32_bytes": fp32.stat().st_size, "int8_bytes": path.stat().st_size,
        })
    finally:
        if fp32.exists():
            os.unlink(fp32)
    set_onnx_metadata(path, {**props, "msunas.precision": json.dumps("int8"),
                             "msunas.quantization": json.dumps(quant)})
    info.update({"format": "onnx-int8", "path": str(path), "quantization": quant})
    return info


def _early_exit(cfg: dict[str, Any], spec: JobSpec, net_sn: nn.Module, fmt: str, out: Path,
                artefact: dict[str, Any], metrics: Mapping[str, Any] | None, prepare: bool, n_epochs: int,
                thresholds: Sequence[float] | None) -> dict[str, Any]:
    ee = spec.early_exit or EarlyExitSpec()
    thr = list(thresholds) if thresholds is not None else None
    net, measured, x = None, None, None
    if prepare:
        ev = EarlyExitEvaluator(_prep_spec(spec, int(cfg["r"]), n_epochs), supernet=net_sn)
        try:
            net, prep = ev.prepare(cfg)
            measured = {**prep, **ev.measure(net, cfg)}
        except (FloatingPointError, RuntimeError) as e:
            raise InputError("config", f"preparing the early-exit network failed: {e}") from None
        thr = thr if thr is not None else list(measured["thresholds"])
        batches = ev.calibration_batches(int(cfg["r"]))
        x = batches[0][0][:16].cpu() if batches else None
    if thr is None:
        thr = exit_thresholds(cfg, int(artefact["n_classes"]), ee.exit_rule) if "t" in cfg else None
    if thr is None:
        thr = thresholds_of_metrics(cfg, metrics or {})
    if thr is None:
        raise InputError("thresholds", "b-mode exits are calibrated after training and none are stored",
                         hint="give the thresholds (--thresholds), keep the net_i.stats beside its net_i.subnet, or "
                         "prepare the network on its dataset (--prepare) to calibrate them")
    shown = measured if measured is not None else dict(metrics or {})
    info = export_early_exit(cfg, net_sn, fmt, out, thresholds=thr, net=net, head_width=ee.head_width,
                             metrics=shown, seed=spec.seed, x=x, head=ee.head, exit_rule=ee.exit_rule,
                             metadata=onnx_metadata(cfg, artefact, shown), artefact=artefact)
    info["trained_heads"] = net is not None
    if measured is not None:
        info["metrics"] = measured
    return info
