"""Export of an early-exit network: ONNX with every exit's logits plus the exit policy, or a PyTorch checkpoint.

ONNX (the deployed form)
------------------------
Input ``input`` (N, 3, r, r); one output per exit, all (N, K) logits with a dynamic batch axis: ``logits_s<k>`` for
the early exit after stage ``k`` (stage order), then ``logits`` for the final classifier (the name a single-exit
export uses). The graph computes every exit for the whole batch; the policy -- softmax each exit, answer at the
first whose score (max probability, or the top-2 margin under the margin rule) reaches its threshold, else at
the final classifier -- is applied by the host, because stopping per sample is control flow on data that an ONNX
graph over a batch cannot express without running every branch anyway. The model's ``metadata_props`` carry what
the host needs:

==========================  =============================================================================
``msunas.exit_outputs``     JSON list of the output names in policy order (final last)
``msunas.thresholds``       JSON list of thresholds in the rule's units, one per early exit (``>= 1.0``: disabled)
``msunas.exit_rule``        the score compared with them: ``"confidence"`` (max-softmax) or ``"margin"``
                            (``p_top1 - p_top2``, EDANAS); files without it are ``confidence``
``msunas.exit_head``        the exit heads the graph holds: ``"ours"`` or ``"edanas"``
``msunas.exit_macs``        JSON list of the exact MACs of each exit (backbone prefix + head; final last)
``msunas.config``           the architecture's config (JSON)
==========================  =============================================================================

:func:`run_onnx_policy` runs a file with ONNX Runtime and applies the policy. A deployment that wants the
compute saving runs the graph up to an exit (e.g. split it at the ``logits_s<k>`` outputs) and stops there;
the numbers (which samples leave where, and so ``avg_macs``) are those of the policy applied here.

Checked at export: ONNX Runtime's logits of every exit against PyTorch (max abs difference <= 1e-4, or 1e-5
relative for logits beyond 10, as :mod:`supernets.export`), and the policy on ONNX Runtime's outputs against
:meth:`early_exit.network.EarlyExitNet.forward_early_exit` (same predictions and exits; a sample whose confidence
lies within 1e-4 of a threshold may go either way and is not counted).

PyTorch checkpoint
------------------
``{"format": "msunas-early-exit", "config", "width_mult", "n_classes", "head_width", "head", "exit_rule",
"exit_stages", "thresholds", "exit_macs", "net_config" (ofa's config of the backbone), "state_dict", "metrics"}``;
:func:`load_torch_export` rebuilds the :class:`~early_exit.network.EarlyExitNet` with ``ofa``'s static
``MobileNetV3`` alone (no supernet needed).
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch

from early_exit.metrics import apply_policy, check_rule, exit_scores
from early_exit.network import DEFAULT_HEAD_WIDTH, EarlyExitNet, build_early_exit_net, exit_macs, exits_of
from supernets.errors import InputError
from supernets.export import save_atomic, temp_beside
from supernets.ofa_supernet import build_static, head_classes, net_width, subnet_net_config

FORMATS = ("onnx", "torch")
ONNX_TOLERANCE = 1e-4
TIE = 1e-4  # a confidence this close to its threshold may be decided either way by float rounding
CHECKPOINT_FORMAT = "msunas-early-exit"


def output_names(net: EarlyExitNet) -> list[str]:
    """ONNX output names of ``net``'s exits in policy order: ``logits_s<k>`` per early exit, ``logits`` last."""
    return [f"logits_s{s + 1}" for s in net.exit_stages] + ["logits"]


def _check_thresholds(net: EarlyExitNet, thresholds: Sequence[float]) -> list[float]:
    thr = [float(t) for t in thresholds]
    if len(thr) != len(net.exit_stages):
        raise InputError(
            "thresholds",
            f"expected {len(net.exit_stages)} values (one per early exit), got {len(thr)}"
        )
    if any(not np.isfinite(t) or t < 0 for t in thr):
        raise InputError("thresholds", f"expected thresholds >= 0 (>= 1.0 disables an exit), got {thr}")
    return thr


def onnx_outputs(path: str | Path, x: np.ndarray) -> tuple[list[np.ndarray], dict[str, Any]]:
    """Every exit's logits (policy order) of an exported file on ``x`` with ONNX Runtime, and its metadata."""
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    meta = dict(sess.get_modelmeta().custom_metadata_map)
    if "msunas.exit_outputs" not in meta:
        raise InputError("export", f"{path} is not an msunas early-exit ONNX file (no msunas.exit_outputs metadata)")
    names = json.loads(meta["msunas.exit_outputs"])
    outs = sess.run(names, {"input": np.asarray(x, dtype=np.float32)})
    info = {k.removeprefix("msunas."): json.loads(v) for k, v in meta.items() if k.startswith("msunas.")}
    return [np.asarray(o) for o in outs], info


def _softmax(logits: Sequence[np.ndarray]) -> np.ndarray:
    z = np.stack([np.asarray(o, dtype=np.float64) for o in logits])
    z = z - z.max(axis=2, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=2, keepdims=True)  # type: ignore[no-any-return]


def run_onnx_policy(path: str | Path, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(prediction, exit index)`` per sample of an exported early-exit ONNX file under its own thresholds (the
    order of :meth:`~early_exit.network.EarlyExitNet.forward_early_exit`)."""
    outs, info = onnx_outputs(path, x)
    where, pred = apply_policy(_softmax(outs), info["thresholds"], str(info.get("exit_rule", "confidence")))
    return pred, where


def _near_tie(probs: np.ndarray, thresholds: Sequence[float], rule: str = "confidence") -> np.ndarray:
    conf = exit_scores(probs, rule)
    tie = np.zeros(probs.shape[1], dtype=bool)
    for b, t in enumerate(thresholds):
        if t < 1.0:
            tie |= np.abs(conf[b] - t) < TIE
    return tie


def check_onnx(
    net: EarlyExitNet,
    path: str | Path,
    r: int,
    thresholds: Sequence[float],
    *,
    x: torch.Tensor | None = None,
    rule: str = "confidence",
) -> dict[str, Any]:
    """Compare an exported file with ``net`` in PyTorch (logits of every exit, and the policy); raises
    ``RuntimeError`` on a mismatch. ``x``: inputs to compare on (default: 16 seeded random images)."""
    if x is None:
        x = torch.randn(16, 3, r, r, generator=torch.Generator().manual_seed(0))
    net = net.eval()
    with torch.no_grad():
        ref = [o.numpy() for o in net(x)]
        pred_pt, where_pt = net.forward_early_exit(x, list(thresholds), rule)
    got, _ = onnx_outputs(path, x.numpy())
    worst, scale = 0.0, 0.0
    for g, rf in zip(got, ref, strict=True):
        if g.shape != rf.shape:
            raise RuntimeError(f"export: onnxruntime output shape {g.shape} != PyTorch {rf.shape}")
        worst = max(worst, float(np.abs(g - rf).max()))
        scale = max(scale, float(np.abs(rf).max()))
    if not worst <= ONNX_TOLERANCE * max(1.0, scale / 10.0):
        raise RuntimeError(f"export: onnxruntime output differs from PyTorch by {worst:.3g} (> {ONNX_TOLERANCE})")
    probs = _softmax(got)
    where, pred = apply_policy(probs, thresholds, rule)
    same = (pred == pred_pt.numpy()) & (where == where_pt.numpy())
    ties = _near_tie(probs, thresholds, rule)
    if not np.all(same | ties):
        bad = int(np.sum(~same & ~ties))
        raise RuntimeError(f"export: the exit policy on onnxruntime outputs disagrees with PyTorch on {bad} inputs")
    return {
        "max_abs_diff": worst,
        "max_abs_logit": scale,
        "policy_agree": int(np.sum(same)),
        "policy_checked": len(same),
        "policy_exit_counts": np.bincount(where, minlength=net.n_outputs).tolist(),
    }


def export_onnx(
    net: EarlyExitNet,
    r: int,
    out: str | Path,
    *,
    thresholds: Sequence[float],
    config: Mapping[str, Any],
    macs: Sequence[float],
    opset: int = 17,
    check: bool = True,
    x: torch.Tensor | None = None,
    rule: str = "confidence",
    metadata: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Write ``net`` as ONNX with every exit's logits and the policy's metadata (module doc: thresholds, exit
    rule, head; ``metadata`` is added to ``metadata_props``); with ``check``, compare it with PyTorch in ONNX
    Runtime (:func:`check_onnx`) before the file is put in place."""
    thr = _check_thresholds(net, thresholds)
    check_rule(rule)
    path = Path(out).expanduser()
    tmp = temp_beside(path)
    net = net.eval().float().to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
    names = output_names(net)
    try:
        with warnings.catch_warnings():  # the TorchScript exporter: fast and exact for these static CNNs
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(
                net,
                (torch.randn(1, 3, r, r),),
                str(tmp),
                input_names=["input"],
                output_names=names,
                opset_version=opset,
                dynamic_axes={"input": {0: "batch"}, **{n: {0: "batch"} for n in names}},
                dynamo=False,
            )
        model = onnx.load(str(tmp))
        meta = {
            "msunas.exit_outputs": json.dumps(names),
            "msunas.thresholds": json.dumps(thr),
            "msunas.exit_rule": json.dumps(rule),
            "msunas.exit_head": json.dumps(net.head),
            "msunas.exit_macs": json.dumps([float(m) for m in macs]),
            "msunas.config": json.dumps(dict(config)),
            **{str(k): str(v) for k, v in (metadata or {}).items() if k != "msunas.config"},
        }
        onnx.helper.set_model_props(model, meta)
        onnx.save(model, str(tmp))
        info: dict[str, Any] = {
            "format": "onnx",
            "path": str(path),
            "opset": opset,
            "input_shape": [1, 3, r, r],
            "outputs": names,
            "thresholds": thr,
            "exit_rule": rule,
            "head": net.head,
        }
        if check:
            info.update(check_onnx(net, tmp, r, thr, x=x, rule=rule))
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return info


def export_torch(
    net: EarlyExitNet,
    config: Mapping[str, Any],
    net_config: Mapping[str, Any],
    out: str | Path,
    *,
    width_mult: float,
    thresholds: Sequence[float],
    macs: Sequence[float],
    metrics: Mapping[str, Any] | None = None,
    rule: str = "confidence",
    artefact: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write the self-contained checkpoint described in the module docstring (``artefact``: what it is)."""
    thr = _check_thresholds(net, thresholds)
    check_rule(rule)
    path = Path(out).expanduser()
    payload = {
        "format": CHECKPOINT_FORMAT,
        "config": dict(config),
        "width_mult": float(width_mult),
        "n_classes": int(net.n_classes),
        "head_width": int(net.head_width),
        "head": net.head,
        "exit_rule": rule,
        "exit_stages": [int(s) for s in net.exit_stages],
        "thresholds": thr,
        "exit_macs": [float(m) for m in macs],
        "net_config": dict(net_config),
        "state_dict": net.state_dict(),
        "metrics": {k: v for k, v in (metrics or {}).items() if isinstance(v, (int, float, str, list))},
        "artefact": dict(artefact or {}),
    }
    save_atomic(payload, path)
    return {"format": "torch", "path": str(path), "thresholds": thr, "exit_rule": rule, "head": net.head}


def load_torch_export(path: str | Path) -> tuple[EarlyExitNet, dict[str, Any]]:
    """Rebuild ``(network in eval mode, checkpoint without the state dict)`` from a ``torch`` early-exit export."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise InputError("export", f"no such file {p}")
    ck = torch.load(p, map_location="cpu", weights_only=True)
    if not isinstance(ck, dict) or ck.get("format") != CHECKPOINT_FORMAT:
        raise InputError("export", f"{p} is not an msunas early-exit checkpoint")
    sub = build_static(ck["net_config"])
    exits = [s in ck["exit_stages"] for s in range(4)]
    net = EarlyExitNet(sub, ck["config"]["d"], exits, ck["n_classes"], ck["head_width"], ck.get("head", "ours"))
    ck.setdefault("exit_rule", "confidence")
    net.load_state_dict(ck.pop("state_dict"))
    return net.eval(), ck


def export_early_exit(
    config: Mapping[str, Any],
    supernet: Any,
    fmt: str,
    out: str | Path,
    *,
    thresholds: Sequence[float],
    net: EarlyExitNet | None = None,
    head_width: int = DEFAULT_HEAD_WIDTH,
    metrics: Mapping[str, Any] | None = None,
    seed: int = 0,
    x: torch.Tensor | None = None,
    head: str = "ours",
    exit_rule: str = "confidence",
    metadata: Mapping[str, str] | None = None,
    artefact: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Export the early-exit ``config`` (canonical, with ``t`` or ``b``) as ``fmt`` (``onnx`` or ``torch``);
    ``metadata`` goes into the ONNX ``metadata_props``, ``artefact`` into the checkpoint.

    ``net``: the prepared network (backbone recalibrated and trained jointly with its heads) to write; without it
    the backbone is extracted from ``supernet`` with inherited weights and the heads are freshly initialised
    (seeded by ``seed``: untrained, so only the architecture and the backbone's weights mean anything).
    ``thresholds``: thresholds of the present early exits (stage order) in ``exit_rule``'s units; ``head``: the
    heads to build when ``net`` is not given (a given ``net`` keeps its own). ``x``: inputs for the ONNX
    check (default random). Returns a summary (path, outputs, thresholds, exit MACs, parity figures).
    """
    if fmt not in FORMATS:
        raise InputError("format", f"expected one of {list(FORMATS)}, got {fmt!r}")
    n_classes, width = head_classes(supernet), net_width(supernet)
    if net is None:
        torch.manual_seed(seed)
        net = build_early_exit_net(
            config, n_classes=n_classes, width_mult=width, head_width=head_width, supernet=supernet, head=head
        )
    if [s for s, p in enumerate(exits_of(config)) if p] != net.exit_stages:
        raise InputError("config", f"its exits {exits_of(config)} are not those of the network {net.exit_stages}")
    macs = exit_macs(config, n_classes=n_classes, width_mult=width, head_width=net.head_width, head=net.head)
    net = net.cpu().eval()
    if fmt == "onnx":
        info = export_onnx(
            net, int(config["r"]), out, thresholds=thresholds, config=config, macs=macs, x=x, rule=exit_rule,
            metadata=metadata,
        )
    else:
        backbone = {k: config[k] for k in ("ks", "e", "d", "r")}
        info = export_torch(
            net,
            config,
            subnet_net_config(supernet, backbone),
            out,
            width_mult=width,
            thresholds=thresholds,
            macs=macs,
            metrics=metrics,
            rule=exit_rule,
            artefact=artefact,
        )
    info.update(config=dict(config), exit_macs=[float(m) for m in macs])
    return info
