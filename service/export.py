"""Export of an archived architecture through ``supernets.export`` (helper "eval"): the subnet extracted from the
job's once-for-all supernet, as ONNX (input ``input`` (N, 3, r, r), output ``logits``, checked against PyTorch in
ONNX Runtime) or as a self-contained PyTorch checkpoint (``format=torch``; ``pytorch`` is accepted too).

The weights are the supernet's inherited weights (the job's ``supernet.path``; a job without one gets the
randomly initialised supernet of its seed): evaluators do not store per-candidate fine-tuned weights, so
fine-tune the exported network for deployment as the evaluator did (``msunas export --dataset ... --n-epochs``).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

DATASET_CLASSES = {"cifar10": 10, "cifar100": 100, "svhn": 10, "cinic10": 10, "imagenet": 1000, "digits": 10}
MEDIA = {"onnx": "application/onnx", "torch": "application/octet-stream"}


class ExportUnavailable(RuntimeError):
    """This build lacks ``supernets.export`` / ``supernets.ofa_supernet``."""


def export_bytes(spec_d: dict[str, Any], config: dict[str, Any], fmt: str = "onnx",
                 metrics: dict[str, Any] | None = None) -> tuple[bytes, str]:
    """``(payload, media_type)`` of the archived ``config`` of a job with spec ``spec_d``."""
    fmt = "torch" if fmt == "pytorch" else fmt
    if fmt not in MEDIA:
        raise ValueError(f"format: {fmt!r} is not one of {sorted(MEDIA)}")
    try:
        from supernets import export as sx  # type: ignore[attr-defined,unused-ignore]
        from supernets import ofa_supernet as ofs  # type: ignore[attr-defined,unused-ignore]
    except ImportError as e:
        raise ExportUnavailable(f"export: supernets.export is not in this build ({e})") from None

    from search.spec import load_spec

    spec = load_spec(spec_d)
    n_classes = spec.dataset.n_classes or DATASET_CLASSES.get(spec.dataset.name, 1000)
    backbone = {k: config[k] for k in ("ks", "e", "d", "r") if k in config}
    if spec.supernet.path:
        net = ofs.load_supernet(spec.supernet.path, n_classes=n_classes, width_mult=spec.width_mult)
    else:
        net = ofs.build_supernet(spec.width_mult, n_classes, seed=spec.seed)
    with tempfile.TemporaryDirectory(prefix="msunas-export-") as d:
        out = Path(d) / ("arch.onnx" if fmt == "onnx" else "arch.pt")
        info = sx.export_subnet(backbone, net, fmt, out, metrics={k: float(v) for k, v in (metrics or {}).items()
                                                                   if isinstance(v, int | float)})
        return Path(info.get("path", out)).read_bytes(), MEDIA[fmt]
