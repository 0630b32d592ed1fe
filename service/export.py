"""Export of an archived architecture: the subnet extracted from the job's once-for-all supernet, as ONNX (opset
17, dynamic batch, input ``input`` of shape (N, 3, r, r), output ``logits``) or as a PyTorch checkpoint
(``{"config", "net_config", "state_dict"}``).

The weights are the supernet's inherited weights (the job's ``supernet.path``; a job without one gets the
randomly initialised supernet of its seed): evaluators do not store per-candidate fine-tuned weights, so
fine-tune the exported network for deployment as the evaluator did.
"""

from __future__ import annotations

import io
import warnings
from typing import Any

DATASET_CLASSES = {"cifar10": 10, "cifar100": 100, "svhn": 10, "cinic10": 10, "imagenet": 1000, "digits": 10}
MEDIA = {"onnx": "application/onnx", "pytorch": "application/octet-stream"}


class ExportUnavailable(RuntimeError):
    """This build lacks the supernet code (``supernets.ofa_supernet``) export needs."""


def export_bytes(spec_d: dict[str, Any], config: dict[str, Any], fmt: str = "onnx") -> tuple[bytes, str]:
    """``(payload, media_type)`` of the archived ``config`` of a job with spec ``spec_d``."""
    if fmt not in MEDIA:
        raise ValueError(f"format: {fmt!r} is not one of {sorted(MEDIA)}")
    try:
        from supernets import ofa_supernet as ofs  # type: ignore[attr-defined,unused-ignore]
    except ImportError as e:
        raise ExportUnavailable(f"export: supernets.ofa_supernet is not in this build ({e})") from None
    import torch

    from search.spec import load_spec

    spec = load_spec(spec_d)
    n_classes = spec.dataset.n_classes or DATASET_CLASSES.get(spec.dataset.name, 1000)
    backbone = {k: config[k] for k in ("ks", "e", "d", "r") if k in config}
    if spec.supernet.path:
        net = ofs.load_supernet(spec.supernet.path, n_classes=n_classes, width_mult=spec.width_mult)
    else:
        net = ofs.build_supernet(spec.width_mult, n_classes, seed=spec.seed)
    sub = ofs.extract_subnet(net, backbone).eval()
    r = int(backbone["r"])
    buf = io.BytesIO()
    if fmt == "pytorch":
        torch.save({"config": config, "net_config": ofs.subnet_net_config(net, backbone),
                    "state_dict": sub.state_dict()}, buf)
        return buf.getvalue(), MEDIA[fmt]
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(sub, (torch.zeros(1, 3, r, r),), buf, dynamo=False, opset_version=17,  # type: ignore[arg-type]
                          input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    return buf.getvalue(), MEDIA[fmt]
