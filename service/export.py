"""Export of an archived architecture through ``supernets.export``.

The subnet is extracted from the job's once-for-all supernet (the one its evaluator used, see
``resolve_supernet``; random init for oracle/proxy jobs without a supernet) and written as ONNX (input ``input``
(N, 3, r, r), output ``logits``, checked against PyTorch in ONNX Runtime) or as a self-contained PyTorch
checkpoint (``format=torch``; ``pytorch`` is accepted too). Evaluators do not store per-candidate fine-tuned
weights, so fine-tune the exported network for deployment as the evaluator did
(``msunas export --dataset ... --n-epochs``). An early-exit architecture (``eemobilenetv3`` jobs) is written with
every exit's logits and its exit policy (:mod:`early_exit.export`): thresholds from its ``t`` genes, or the
calibrated ones stored in its metrics (b-mode); its exit heads are untrained there (they are not part of the
supernet), so train them as above before deployment.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

MEDIA = {"onnx": "application/onnx", "torch": "application/octet-stream"}


def export_bytes(spec_d: dict[str, Any], config: dict[str, Any], fmt: str = "onnx",
                 metrics: dict[str, Any] | None = None) -> tuple[bytes, str]:
    """``(payload, media_type)`` of the archived ``config`` of a job with spec ``spec_d``."""
    fmt = "torch" if fmt == "pytorch" else fmt
    if fmt not in MEDIA:
        raise ValueError(f"format: {fmt!r} is not one of {sorted(MEDIA)}")
    from search.evaluators.supernet import resolve_supernet
    from search.objectives import n_classes_of
    from search.spec import load_spec
    from supernets import export as sx
    from supernets.ofa_supernet import build_supernet, load_supernet

    spec = load_spec(spec_d)
    backbone: dict[str, Any] = {k: config[k] for k in ("ks", "e", "d", "r") if k in config}
    n_classes = n_classes_of(spec)
    if spec.evaluator.kind == "supernet":  # the very supernet the candidates were evaluated with
        net = resolve_supernet(spec, n_classes)
    elif spec.supernet.path:
        net = load_supernet(spec.supernet.path, n_classes=n_classes, width_mult=spec.width_mult)
    else:  # an oracle/proxy job has no trained weights: the architecture with random-init weights
        net = build_supernet(spec.width_mult, n_classes, seed=spec.seed)
    if spec.search_space == "eemobilenetv3":  # every exit's logits + the exit policy (early_exit/export.py)
        return _early_exit_bytes(spec, config, net, fmt, metrics or {}), MEDIA[fmt]
    with tempfile.TemporaryDirectory(prefix="msunas-export-") as d:
        out = Path(d) / ("arch.onnx" if fmt == "onnx" else "arch.pt")
        info = sx.export_subnet(backbone, net, fmt, out, metrics={k: float(v) for k, v in (metrics or {}).items()
                                                                   if isinstance(v, int | float)})
        return Path(info.get("path", out)).read_bytes(), MEDIA[fmt]


def _early_exit_bytes(spec: Any, config: dict[str, Any], supernet: Any, fmt: str, metrics: dict[str, Any]) -> bytes:
    """The early-exit export of an archived ``eemobilenetv3`` config (thresholds from ``t`` or its metrics)."""
    from early_exit.evaluate import exit_thresholds
    from early_exit.export import export_early_exit
    from early_exit.objectives import thresholds_of_metrics
    from search.spec import EarlyExitSpec
    from supernets import get_search_space
    from supernets.ofa_supernet import head_classes

    ee = spec.early_exit or EarlyExitSpec()
    cfg = get_search_space(spec.search_space, **spec.search_space_kwargs()).validate(config)
    thr = exit_thresholds(cfg, head_classes(supernet)) if "t" in cfg else None
    if thr is None:
        thr = thresholds_of_metrics(cfg, metrics)
    if thr is None:
        raise ValueError("metrics: this b-mode architecture has no calibrated thresholds (threshold_s*) stored")
    with tempfile.TemporaryDirectory(prefix="msunas-export-") as d:
        out = Path(d) / ("arch.onnx" if fmt == "onnx" else "arch.pt")
        info = export_early_exit(
            cfg, supernet, fmt, out, thresholds=thr, head_width=ee.head_width, metrics=metrics, seed=spec.seed
        )
        return Path(info["path"]).read_bytes()
