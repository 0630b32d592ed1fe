"""What an architecture is and which supernet its weights come from: the artefact description every
``.subnet``/``.stats`` file, archive row and export carries, so none can be paired with the wrong model.

``describe(spec)`` gives::

    {"search_space": "mobilenetv3", "width_mult": 1.0, "n_classes": 10,
     "dataset": {"name": "digits", "root": null},
     "supernet": {"kind": "builtin", "name": "digits", "path": ".../digits_w1.0_ab12cd34.pth", "sha256": "..."}
               | {"kind": "file", "path": "/models/ofa_w1.0.pth", "sha256": "..."}
               | {"kind": "random", "seed": 0}          # supernet.random_init: true
               | {"kind": "none"},                      # oracle/proxy evaluators: no weights involved
     "msunas_version": "0.1.0"}

and ``arch_artefact(config, desc)`` adds the architecture's own ``resolution``. ``supernet_id`` renders the
identity in one string (``builtin:digits@<sha256[:12]>``, ``/path@<sha256[:12]>``, ``random-init(seed=0)``).

The supernet of a job is never guessed and never trained silently: a spec names a checkpoint, the built-in
digits supernet (digits without a path, once ``msunas supernet train --builtin digits`` has cached it), or asks
for random initialisation explicitly; anything else is an ``InputError`` saying what to pass.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch.nn as nn

from search.objectives import n_classes_of
from search.spec import EarlyExitSpec, JobSpec
from supernets.errors import InputError
from supernets.ofa_supernet import build_supernet, head_classes, load_supernet, net_width
from supernets.train import builtin_digits_path, builtin_digits_ready

ARTEFACT_KEYS = ("search_space", "width_mult", "n_classes", "resolution", "dataset", "supernet")
TRAIN_BUILTIN = "msunas supernet train --builtin digits"


def msunas_version() -> str:
    """The installed msunas version."""
    try:
        return version("msunas")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0+unknown"


@functools.lru_cache(maxsize=64)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file (cached per path, size and modification time)."""
    st = os.stat(path)
    return _sha256(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


def needs_supernet(spec: JobSpec) -> bool:
    """Whether the job's evaluator inherits supernet weights (supernet evaluator, or a proxy with ``inherit``)."""
    ev = spec.evaluator
    return ev.kind == "supernet" or (ev.kind == "proxy" and bool(getattr(ev, "inherit", False)))


def supernet_ref(spec: JobSpec) -> dict[str, Any]:
    """The job's supernet identity (see the module docstring); ``InputError`` when it cannot be named."""
    if spec.supernet.path:
        p = Path(spec.supernet.path).expanduser()
        if not p.is_file():
            raise InputError("supernet.path", f"no such file {p}")
        return {"kind": "file", "path": str(p), "sha256": file_sha256(p)}
    if spec.supernet.random_init:
        return {"kind": "random", "seed": spec.seed}
    if not needs_supernet(spec):
        return {"kind": "none"}  # an oracle or proxy search that names no supernet: no weights involved
    if spec.dataset.name == "digits":
        if not builtin_digits_ready(width_mult=spec.width_mult):
            raise InputError("supernet.path", f"the built-in digits supernet (width {spec.width_mult}) is not "
                             "trained on this machine", hint=f"run `{TRAIN_BUILTIN}` once (about 3 minutes on "
                             "2 cores) or pass supernet.path")
        p = builtin_digits_path(width_mult=spec.width_mult)
        return {"kind": "builtin", "name": "digits", "path": str(p), "sha256": file_sha256(p)}
    raise InputError("supernet.path", f"dataset {spec.dataset.name} needs a supernet checkpoint",
                     hint="train one with `msunas supernet train`, pass an official once-for-all checkpoint, or set "
                     "supernet.random_init: true to search a randomly initialised supernet")


def supernet_id(ref: Mapping[str, Any]) -> str:
    """One-string form of a supernet identity."""
    kind = ref.get("kind")
    if kind == "builtin":
        return f"builtin:{ref['name']}@{str(ref['sha256'])[:12]}"
    if kind == "file":
        return f"{ref['path']}@{str(ref['sha256'])[:12]}"
    if kind == "random":
        return f"random-init(seed={ref.get('seed', 0)})"
    return "none"


def describe(spec: JobSpec, ref: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The artefact description of the job's architectures (without the per-architecture resolution); early-exit
    jobs add their exit heads and rule (``early_exit``)."""
    desc: dict[str, Any] = {
        "search_space": spec.search_space,
        "width_mult": float(spec.width_mult),
        "n_classes": n_classes_of(spec),
        "dataset": {"name": spec.dataset.name, "root": spec.dataset.root},
        "supernet": dict(ref) if ref is not None else supernet_ref(spec),
        "msunas_version": msunas_version(),
    }
    if spec.search_space == "eemobilenetv3":
        ee = spec.early_exit or EarlyExitSpec()
        desc["early_exit"] = {"exit_mode": ee.exit_mode, "exit_rule": ee.exit_rule, "head": ee.head,
                              "head_width": ee.head_width}
    return desc


def arch_artefact(config: Mapping[str, Any], desc: Mapping[str, Any]) -> dict[str, Any]:
    """``desc`` plus the architecture's input resolution."""
    r = config.get("r")
    return {**desc, "resolution": int(r[0] if isinstance(r, list | tuple) else r) if r is not None else None}


def check_artefact(spec: JobSpec, artefact: Mapping[str, Any] | None) -> None:
    """Refuse to evaluate or train with another supernet than the job was submitted with (the file changed)."""
    stored = (artefact or {}).get("supernet") or {}
    if stored.get("sha256"):
        now = supernet_ref(spec)
        if now.get("sha256") != stored["sha256"]:
            raise InputError("supernet.path", f"the supernet differs from the one the job was submitted with "
                             f"({supernet_id(now)} != {supernet_id(stored)})")


def load_job_supernet(spec: JobSpec, ref: Mapping[str, Any] | None = None) -> nn.Module:
    """The supernet the job's candidates inherit their weights from (checked against the spec)."""
    ref = ref if ref is not None else supernet_ref(spec)
    n_classes = n_classes_of(spec)
    if ref["kind"] in ("file", "builtin"):
        return load_supernet(ref["path"], n_classes=n_classes, width_mult=spec.width_mult)
    if ref["kind"] == "random":
        return build_supernet(spec.width_mult, n_classes, seed=int(ref.get("seed", spec.seed)))
    raise InputError("supernet.path", "this job evaluates without supernet weights, so there are none to use",
                     hint="pass a supernet checkpoint (--supernet) or set supernet.random_init: true")


def check_fits(artefact: Mapping[str, Any], net: nn.Module, where: str = "supernet") -> None:
    """``InputError`` when a supernet's width or classes differ from what the artefact was found with."""
    want_w, want_c = artefact.get("width_mult"), artefact.get("n_classes")
    if want_w is not None and float(want_w) != net_width(net):
        raise InputError(f"{where}.width_mult", f"the architecture was found with width {float(want_w)}, this "
                         f"supernet has width {net_width(net)}")
    if want_c is not None and int(want_c) != head_classes(net):
        raise InputError(f"{where}.n_classes", f"the architecture was found for {int(want_c)} classes, this "
                         f"supernet has {head_classes(net)}")
