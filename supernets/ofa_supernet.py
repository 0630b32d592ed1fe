"""Once-for-all MobileNetV3 supernets: build, load, save, and extract subnets with inherited weights.

The supernet is ``ofa``'s own ``OFAMobileNetV3`` (kernel {3, 5, 7}, expand {3, 4, 6}, depth {2, 3, 4}, width
multiplier 1.0 or 1.2), so the official once-for-all checkpoints (``ofa_mbv3_d234_e346_k357_w1.0`` and
``..._w1.2``, files holding ``{"state_dict": ...}``) load unchanged.

Checkpoint format (read and written): ``torch.save({"state_dict": sd, ...})`` exactly as once-for-all stores
its supernets; msunas adds a ``"msunas"`` dict (width_mult, n_classes, dataset, training progress) that
once-for-all ignores. A bare state dict is accepted as well.

Adapting the head: when the checkpoint's classifier has a different number of classes than asked for (the
ImageNet 1000-way head on CIFAR-10), the classifier weights are **not** loaded and the freshly initialised
``n_classes``-way classifier is kept; every other weight is inherited. Fine-tuning (the evaluator) then trains
that head together with the rest.
"""

from __future__ import annotations

import copy
import os
import tempfile
import threading
from collections.abc import Iterable, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from ofa.imagenet_classification.elastic_nn.networks import OFAMobileNetV3
from ofa.imagenet_classification.networks import MobileNetV3

from supernets import codec
from supernets.errors import InputError

KS_LIST = [3, 5, 7]
EXPAND_LIST = [3, 4, 6]
DEPTH_LIST = [2, 3, 4]
_EXTRACT_LOCK = threading.Lock()
CLASSIFIER_KEYS = ("classifier.linear.weight", "classifier.linear.bias")


def build_supernet(
    width_mult: float = 1.0,
    n_classes: int = 1000,
    *,
    dropout_rate: float = 0.1,
    bn_momentum: float = 0.1,
    bn_eps: float = 1e-5,
    seed: int | None = None,
) -> nn.Module:
    """A randomly initialised ``ofa`` OFAMobileNetV3 supernet (ks 3/5/7, e 3/4/6, d 2/3/4) for ``n_classes``."""
    w = codec.check_width(width_mult)
    if not isinstance(n_classes, int) or n_classes < 2:
        raise InputError("n_classes", f"expected an integer >= 2, got {n_classes!r}")
    if seed is not None:
        torch.manual_seed(seed)
    return OFAMobileNetV3(
        n_classes=n_classes,
        bn_param=(bn_momentum, bn_eps),
        dropout_rate=dropout_rate,
        width_mult=w,
        ks_list=list(KS_LIST),
        expand_ratio_list=list(EXPAND_LIST),
        depth_list=list(DEPTH_LIST),
    )


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint dict at ``path`` (``{"state_dict": ...}``; a bare state dict is wrapped); ValueError if bad."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise InputError("supernet.path", f"no such file {p}")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is a user error
        raise InputError("supernet.path", f"{p} is not a readable torch checkpoint ({type(e).__name__}: {e})") from None
    if isinstance(obj, Mapping) and "state_dict" in obj:
        ck = dict(obj)
    elif isinstance(obj, Mapping) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        ck = {"state_dict": dict(obj)}
    else:
        raise InputError("supernet.path", f"{p} holds no 'state_dict' (expected a once-for-all supernet checkpoint)")
    sd = ck["state_dict"]
    # checkpoints saved from DataParallel carry a "module." prefix
    if sd and all(k.startswith("module.") for k in sd):
        ck["state_dict"] = {k[len("module.") :]: v for k, v in sd.items()}
    return ck


def checkpoint_width(state_dict: Mapping[str, torch.Tensor]) -> float:
    """Width multiplier of a MobileNetV3 supernet state dict (from the stem's channels: 16 -> 1.0, 24 -> 1.2)."""
    w = state_dict.get("first_conv.conv.weight")
    if w is None:
        raise InputError("supernet", "state dict has no first_conv.conv.weight (not an OFA MobileNetV3 supernet)")
    for wm in codec.WIDTHS:
        if codec.stage_widths(wm)[0] == w.shape[0]:
            return wm
    raise InputError("supernet", f"stem has {w.shape[0]} channels, not that of width 1.0 or 1.2")


def checkpoint_classes(state_dict: Mapping[str, torch.Tensor]) -> int:
    """Number of classes of a supernet state dict's classifier."""
    for k in ("classifier.linear.weight", "classifier.linear.linear.weight"):
        if k in state_dict:
            return int(state_dict[k].shape[0])
    raise InputError("supernet", "state dict has no classifier.linear.weight")


def load_supernet(
    path: str | Path,
    *,
    n_classes: int | None = None,
    width_mult: float | None = None,
) -> nn.Module:
    """Load an (official or msunas) once-for-all MobileNetV3 supernet from a local file.

    ``n_classes`` None keeps the checkpoint's head; a different number re-initialises the classifier (the only
    weights not inherited). ``width_mult`` None takes the checkpoint's; a mismatch is a ``ValueError``.
    """
    ck = read_checkpoint(path)
    sd = ck["state_dict"]
    w = checkpoint_width(sd)
    if width_mult is not None and codec.check_width(width_mult) != w:
        raise InputError("width_mult", f"the job asks for {width_mult} but {path} is a width-{w} supernet")
    ck_classes = checkpoint_classes(sd)
    nc = ck_classes if n_classes is None else n_classes
    meta = ck.get("msunas") or {}
    net = build_supernet(w, nc, dropout_rate=float(meta.get("dropout_rate", 0.1)))
    if nc != ck_classes:
        sd = {k: v for k, v in sd.items() if k not in CLASSIFIER_KEYS and not k.startswith("classifier.linear.linear.")}
    try:
        net.load_state_dict(sd)
    except (AssertionError, RuntimeError, ValueError) as e:
        raise InputError("supernet.path",
                         f"{path} does not fit OFAMobileNetV3 w{w}: {str(e).splitlines()[0]}") from None
    net.msunas_meta = dict(meta, width_mult=w, n_classes=nc, source=str(path))  # type: ignore[assignment]
    return net


def save_supernet(net: nn.Module, path: str | Path, *, extra: Mapping[str, Any] | None = None, **meta: Any) -> Path:
    """Write ``{"state_dict": ..., "msunas": meta, **extra}`` atomically (a crash never leaves half a file)."""
    p = Path(path).expanduser()
    p.parent.mkdir(parents=True, exist_ok=True)
    info = dict(getattr(net, "msunas_meta", {}) or {})
    info.update(meta)
    info.setdefault("width_mult", float(net.width_mult))  # type: ignore[arg-type]
    info.setdefault("n_classes", int(net.classifier.linear.out_features))  # type: ignore[union-attr, arg-type]
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=p.name + ".", suffix=".tmp")
    os.close(fd)
    try:
        torch.save({"state_dict": net.state_dict(), "msunas": info, **(extra or {})}, tmp)
        os.replace(tmp, p)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return p


def set_active(supernet: nn.Module, config: Mapping[str, Any]) -> None:
    """Activate a canonical config's kernels, expand ratios and depths on the supernet (per-slot form)."""
    supernet.set_active_subnet(ks=list(config["ks"]), e=list(config["e"]), d=list(config["d"]))  # type: ignore[operator]


@contextmanager
def _no_param_init() -> Any:
    """Skip the random initialisation of layers built only to receive copied weights (extraction speed).

    It patches ``reset_parameters`` of Conv2d/Linear/BatchNorm2d for the duration, process-wide: extractions are
    serialised by a lock, and no other thread should build layers meanwhile (evaluators run one candidate at a
    time per process).
    """
    classes: list[Any] = [nn.Conv2d, nn.Linear, nn.BatchNorm2d]
    originals = {c: c.reset_parameters for c in classes}
    try:
        for c in classes:
            c.reset_parameters = lambda self: None
        yield
    finally:
        for c, f in originals.items():
            c.reset_parameters = f


def extract_subnet(supernet: nn.Module, config: Mapping[str, Any], *, fast: bool = True) -> nn.Module:
    """The static ``ofa`` MobileNetV3 of ``config`` with weights inherited from ``supernet`` (a new module).

    ``fast=False`` is once-for-all's own ``get_active_subnet(preserve_weight=True)``; ``fast=True`` runs the same
    code with the throw-away random initialisation of the new layers skipped (every weight and BN buffer is then
    copied from the supernet, so the result is identical). Extraction leaves the supernet's weights unchanged.
    """
    set_active(supernet, config)
    if not fast:
        return supernet.get_active_subnet(preserve_weight=True)  # type: ignore[operator, no-any-return]
    with _EXTRACT_LOCK, _no_param_init():
        sub = supernet.get_active_subnet(preserve_weight=True)  # type: ignore[operator]
    return sub  # type: ignore[no-any-return]


def subnet_net_config(supernet: nn.Module, config: Mapping[str, Any]) -> dict[str, Any]:
    """``ofa``'s JSON config of the static subnet (``MobileNetV3.build_from_config`` rebuilds it)."""
    set_active(supernet, config)
    return copy.deepcopy(supernet.get_active_net_config())  # type: ignore[operator, no-any-return]


def build_static(net_config: Mapping[str, Any]) -> nn.Module:
    """Rebuild a static subnet from its ``ofa`` net config (random weights; load a state dict after)."""
    return MobileNetV3.build_from_config(dict(net_config))  # type: ignore[no-any-return]


def bn_modules(net: nn.Module) -> Iterable[nn.modules.batchnorm._BatchNorm]:
    """The BatchNorm layers of a network."""
    return (m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm))


def head_classes(net: nn.Module) -> int:
    """Number of classes of an OFA (super)net's classifier."""
    return int(net.classifier.linear.out_features)  # type: ignore[union-attr, arg-type]


def net_width(net: nn.Module) -> float:
    """Width multiplier of an OFA supernet."""
    return float(net.width_mult)  # type: ignore[arg-type]
