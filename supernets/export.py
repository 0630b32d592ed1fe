"""Export one architecture (a config + a supernet) as ONNX or as a self-contained PyTorch checkpoint.

* ``onnx``: the static subnet traced at ``(1, 3, r, r)`` with a dynamic batch axis (input ``input``, output
  ``logits``), checked in onnxruntime against PyTorch on random inputs: max abs difference <= 1e-4 (for logits
  larger than 10 in magnitude, <= 1e-5 relative: float32 rounding alone reaches 1e-4 there), else an error.
* ``torch``: ``{"format": "msunas-subnet", "config", "width_mult", "n_classes", "net_config", "state_dict",
  "metrics"}``; :func:`load_torch_export` rebuilds the network from it with ``ofa``'s ``MobileNetV3`` alone (no
  supernet needed).

The network exported is the extracted subnet with inherited weights; when a dataset is given (``prepare``) the
subnet first gets the evaluator's BN recalibration and fine-tuning, so the file holds what the search measured.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn as nn

from supernets import codec
from supernets.errors import InputError
from supernets.ofa_supernet import build_static, extract_subnet, head_classes, net_width, subnet_net_config

FORMATS = ("onnx", "torch")
ONNX_TOLERANCE = 1e-4


def temp_beside(path: Path) -> Path:
    """A fresh temporary file next to ``path`` (created with its folder), to write and then rename over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    os.close(fd)
    return Path(tmp)


def save_atomic(payload: Mapping[str, Any], path: Path) -> None:
    """``torch.save`` to ``path`` through a temporary file: a crash never leaves a truncated checkpoint."""
    tmp = temp_beside(path)
    try:
        torch.save(dict(payload), tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def set_onnx_metadata(path: str | Path, props: Mapping[str, str]) -> None:
    """Add ``props`` to an ONNX file's ``metadata_props`` (existing keys are replaced)."""
    model = onnx.load(str(path))
    merged = {p.key: p.value for p in model.metadata_props}
    merged.update({str(k): str(v) for k, v in props.items()})
    onnx.helper.set_model_props(model, merged)
    onnx.save(model, str(path))


def export_onnx(net: nn.Module, r: int, out: str | Path, *, opset: int = 17, check: bool = True,
                metadata: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Write ``net`` as ONNX for ``r x r`` inputs (``metadata`` into its ``metadata_props``); with ``check``
    compare onnxruntime with PyTorch (<= 1e-4)."""
    path = Path(out).expanduser()
    tmp = temp_beside(path)
    net = net.eval().float().to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
    x = torch.randn(1, 3, r, r)
    try:
        with warnings.catch_warnings():  # the TorchScript exporter: fast and exact for these static CNNs
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(
                net,
                (x,),
                str(tmp),
                input_names=["input"],
                output_names=["logits"],
                opset_version=opset,
                dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                dynamo=False,
            )
        if metadata:
            set_onnx_metadata(tmp, metadata)
        info: dict[str, Any] = {"format": "onnx", "path": str(path), "opset": opset, "input_shape": [1, 3, r, r]}
        if check:
            diff, scale = onnx_parity(net, tmp, r)
            info["max_abs_diff"], info["max_abs_logit"] = diff, scale
            # 1e-4 absolute; for logits beyond +-10 float32 rounding alone reaches that, so 1e-5 relative there
            if not diff <= ONNX_TOLERANCE * max(1.0, scale / 10.0):
                raise RuntimeError(
                    f"export: onnxruntime output differs from PyTorch by {diff:.3g} (> {ONNX_TOLERANCE})"
                )
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return info


def onnx_parity(net: nn.Module, onnx_path: str | Path, r: int, *, batch: int = 4, seed: int = 0) -> tuple[float, float]:
    """(max |onnxruntime - PyTorch|, max |PyTorch logit|) over random inputs (batch 1 and ``batch``)."""
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    g = torch.Generator().manual_seed(seed)
    worst, scale = 0.0, 0.0
    for b in (1, batch):
        x = torch.randn(b, 3, r, r, generator=g)
        with torch.no_grad():
            ref = net.eval()(x).numpy()
        got = sess.run(["logits"], {"input": x.numpy()})[0]
        if got.shape != ref.shape:
            raise RuntimeError(f"export: onnxruntime output shape {got.shape} != PyTorch {ref.shape}")
        worst = max(worst, float(np.abs(got - ref).max()))
        scale = max(scale, float(np.abs(ref).max()))
    return worst, scale


def export_torch(
    net: nn.Module,
    config: Mapping[str, Any],
    net_config: Mapping[str, Any],
    out: str | Path,
    *,
    width_mult: float,
    n_classes: int,
    metrics: Mapping[str, float] | None = None,
    artefact: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write the self-contained checkpoint described in the module docstring (``artefact``: what it is)."""
    path = Path(out).expanduser()
    payload = {
        "format": "msunas-subnet",
        "config": dict(config),
        "width_mult": float(width_mult),
        "n_classes": int(n_classes),
        "net_config": dict(net_config),
        "state_dict": net.state_dict(),
        "metrics": dict(metrics or {}),
        "artefact": dict(artefact or {}),
    }
    save_atomic(payload, path)
    return {"format": "torch", "path": str(path)}


def load_torch_export(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild (network in eval mode, config) from a ``torch`` export file."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise InputError("export", f"no such file {p}")
    ck = torch.load(p, map_location="cpu", weights_only=True)
    if not isinstance(ck, dict) or ck.get("format") != "msunas-subnet":
        raise InputError("export", f"{p} is not an msunas subnet checkpoint")
    net = build_static(ck["net_config"])
    net.load_state_dict(ck["state_dict"])
    return net.eval(), ck["config"]


def export_subnet(
    config: Mapping[str, Any],
    supernet: nn.Module,
    fmt: str,
    out: str | Path,
    *,
    net: nn.Module | None = None,
    metrics: Mapping[str, float] | None = None,
    metadata: Mapping[str, str] | None = None,
    artefact: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Export ``config`` from ``supernet`` as ``fmt`` (``onnx`` or ``torch``) to ``out``.

    ``net``: an already prepared (BN-recalibrated / fine-tuned) subnet of ``config`` to write instead of the plain
    extraction; ``metadata``: ONNX ``metadata_props``; ``artefact``: what the network is (torch payload).
    Returns a summary (path, format, and for ONNX the measured parity).
    """
    if fmt not in FORMATS:
        raise InputError("format", f"expected one of {list(FORMATS)}, got {fmt!r}")
    cfg = codec.normalize_backbone(config)
    if net is None:
        net = extract_subnet(supernet, cfg)
    net = net.eval()
    if fmt == "onnx":
        info = export_onnx(net, int(cfg["r"]), out, metadata=metadata)
    else:
        info = export_torch(
            net,
            cfg,
            subnet_net_config(supernet, cfg),
            out,
            width_mult=net_width(supernet),
            n_classes=head_classes(supernet),
            metrics=metrics,
            artefact=artefact,
        )
    info["config"] = cfg
    return info
