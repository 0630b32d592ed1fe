"""Server-side admission of a valid job spec: what a spec may ask of *this* server, checked before queueing.

The spec model (``search.spec.JobSpec``) decides what a search is; admission decides what this server runs:
finite numbers and no NUL characters anywhere, budgets within the server's limits, and every server-side path
inside a configured data root (resolved, symlinks followed). Violations are ``InputError`` naming the field.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from search.provenance import describe
from search.spec import JobSpec, path_values
from service.settings import Settings
from supernets.errors import InputError


def confine(path_str: str, roots: list[Path], field: str) -> None:
    """``InputError`` unless ``path_str`` (resolved, symlinks followed) lies inside one of ``roots``."""
    if not roots:
        raise InputError(field, "this server accepts no server-side paths (no data roots configured)",
                         hint="the operator sets MSUNAS_DATA_ROOTS or `msunas serve --data-root`")
    p = Path(os.path.realpath(path_str))
    for r in roots:
        rr = Path(os.path.realpath(r))
        if p == rr or rr in p.parents:
            return
    raise InputError(field, "this path is outside the server's data roots")


def check_values(x: Any, where: str = "") -> None:
    """``InputError`` for a non-finite number or a NUL character anywhere in ``x`` (JSON-like)."""
    if isinstance(x, dict):
        for k, v in x.items():
            check_values(v, f"{where}.{k}" if where else str(k))
    elif isinstance(x, list | tuple):
        for i, v in enumerate(x):
            check_values(v, f"{where}.{i}")
    elif isinstance(x, float) and not math.isfinite(x):
        raise InputError(where or "body", "must be a finite number")
    elif isinstance(x, str) and "\x00" in x:
        raise InputError(where or "body", "NUL characters are not allowed")


def admit(spec: JobSpec, settings: Settings) -> dict[str, Any]:
    """Check a valid spec against this server's policy (see the module docstring); returns what the job's
    architectures will be (``search.provenance.describe``: the supernet named, found and hashed now)."""
    check_values(spec.model_dump(mode="python"))
    if spec.evaluator.kind == "python" and not settings.allow_python_evaluator:
        raise InputError("evaluator.kind", "this server does not run python evaluators (they run the code a spec "
                         "names)", hint="run the search in-process with `msunas search`, or the operator sets "
                         "MSUNAS_ALLOW_PYTHON_EVALUATOR=true")
    for field, path in path_values(spec):
        confine(path, settings.data_roots, field)
    return describe(spec)

