"""BINAS measured accuracy contributions: one validation accuracy per (slot, option), and the bilinear estimator
built from them (``predictor: {name: bilinear, fit: contributions, table: T}``).

Reproduces BINAS ``accuracy_contribution.py`` (Alibaba-MIIL/BINAS): the one-shot supernet is set to a reference
architecture (its ``--qc_init``: every layer k3/e3, every stage depth 2) whose validation accuracy is ``base``;
then, one block at a time, a single choice is switched on (the others stay at the reference) and the supernet's
validation accuracy is measured again. BINAS stores the accuracies per depth (``beta``) and per operator of each
layer (``alpha``, measured with the layer's stage deep enough to contain it) and its bilinear estimator
(``nas/nas_utils/predictor.py`` ``Bilinear`` with ``accuracy_formula``) adds their differences to ``base``.

Here, with the msunas layout (5 stages x up to 4 layers, 9 kernel/expand operators per layer):

* ``base[r]``: depth 2 everywhere, k3/e3 layers, at each resolution ``r`` of the grid;
* ``depth[s, b]``: accuracy with stage ``s`` at depth ``(2, 3, 4)[b]`` (others at the reference) minus ``base``
  at the reference resolution (the lowest);
* ``op[slot, c]``: accuracy with stage ``s`` at depth 4 and layer ``slot`` using operator ``c`` minus the same
  network with k3/e3 there (the operator's effect on a layer that exists).

A subnet is evaluated as the supernet evaluator does without fine-tuning (``n_epochs: 0``): inherited weights,
BN statistics recalibrated on a fixed draw of training images, top-1 on the validation split carved from the
training set. The predicted accuracy of a config is ``base[r] + sum_s depth[s, d_s] + sum_active op[slot, c]``:
the additive form of :mod:`search.milp` (exactly BINAS's bilinear form), so the MILP and the solvers use it as is.

The table (JSON) is written after every measurement (``complete: false`` until the last), so an interrupted run
resumes where it stopped; its ``artefact`` names what it measured (space, width, resolutions, dataset, supernet
identity) and a job refuses a table measured for something else.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from search.milp import K3E3, OPS, AdditiveModel
from search.milp import canonical_config as _config
from search.provenance import msunas_version, supernet_id
from supernets import codec
from supernets.errors import InputError

__all__ = [
    "TABLE_KIND",
    "ContributionTable",
    "check_table",
    "load_table",
    "measure_contributions",
    "probe_configs",
    "table_surrogates",
]

TABLE_KIND = "msunas.accuracy_contributions"


def probe_configs(resolutions: Sequence[int]) -> list[tuple[str, dict[str, Any]]]:
    """``(name, config)`` of every measurement, in order: ``base@r`` per resolution, ``depth/s/dv`` and
    ``op/slot/kKeE`` at the lowest resolution (k3/e3 operator probes are the depth-4 probes, not repeated)."""
    res = sorted(int(r) for r in resolutions)
    r0 = res[0]
    out = [(f"base@{r}", _config([2] * 5, [K3E3] * 20, r)) for r in res]
    for s in range(codec.N_STAGES):
        for dv in codec.DEPTHS[1:]:
            d = [2] * 5
            d[s] = dv
            out.append((f"depth/{s}/{dv}", _config(d, [K3E3] * 20, r0)))
    for slot in range(codec.N_SLOTS):
        d = [2] * 5
        d[slot // codec.MAX_DEPTH] = 4
        for c in range(len(OPS)):
            if c == K3E3:
                continue
            ops = [K3E3] * 20
            ops[slot] = c
            out.append((f"op/{slot}/k{OPS[c][0]}e{OPS[c][1]}", _config(d, ops, r0)))
    return out


def _write(path: Path, table: Mapping[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(table, indent=1))
    os.replace(tmp, path)


def measure_contributions(
    evaluate: Callable[[dict[str, Any]], float],
    out: str | Path,
    *,
    artefact: Mapping[str, Any],
    resolutions: Sequence[int],
    resume: bool = False,
    overwrite: bool = False,
    limit: int | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> dict[str, Any]:
    """Measure every probe's top-1 (%) with ``evaluate(config)`` and write the table to ``out`` as it goes.

    ``resume`` continues a partial table (its artefact and resolutions must match); ``overwrite`` starts over;
    neither with an existing ``out`` is refused. ``limit`` stops after that many new measurements (the table
    stays partial). ``progress(done, total, name)`` is called after each measurement.
    """
    path = Path(out)
    res = sorted(int(r) for r in resolutions)
    probes = probe_configs(res)
    measured: dict[str, float] = {}
    if path.exists():
        if resume:
            old = load_table(path, partial_ok=True)
            diff = [k for k in artefact if k != "msunas_version" and old["artefact"].get(k) != artefact[k]]
            if diff or old["resolutions"] != res:
                k = diff[0] if diff else "resolutions"
                was = old["artefact"].get(k) if diff else old["resolutions"]
                now = dict(artefact)[k] if diff else res
                raise InputError("--resume", f"{path} was measured for another {k} ({was!r} there, {now!r} now)")
            measured = {str(k): float(v) for k, v in old["measured"].items()}
        elif not overwrite:
            raise InputError("--out", f"{path} exists", hint="pass --resume to continue it or --overwrite to redo it")
    elif resume:
        raise InputError("--resume", f"{path} does not exist (nothing to resume)")
    table: dict[str, Any] = {
        "kind": TABLE_KIND,
        "method": "BINAS accuracy_contribution.py: one choice at a time on the supernet, others at the reference",
        "units": "top-1 accuracy, % of the validation split",
        "artefact": dict(artefact),
        "resolutions": res,
        "reference": {"d": [2] * 5, "ks": 3, "e": 3, "r": res[0]},
        "n_probes": len(probes),
        "measured": measured,
        "complete": False,
    }
    t0 = time.perf_counter()
    new = 0
    for name, cfg in probes:
        if name in measured:
            continue
        if limit is not None and new >= limit:
            break
        measured[name] = float(evaluate(cfg))
        new += 1
        table["seconds"] = float(table.get("seconds", 0.0)) + (time.perf_counter() - t0)
        t0 = time.perf_counter()
        table["complete"] = len(measured) == len(probes)
        _write(path, table)
        if progress is not None:
            progress(len(measured), len(probes), name)
    table["complete"] = len(measured) == len(probes)
    if table["complete"]:
        table.update(_contributions(measured, res))
    _write(path, table)
    return table


def _contributions(measured: Mapping[str, float], res: Sequence[int]) -> dict[str, Any]:
    base = {str(r): measured[f"base@{r}"] for r in res}
    b0 = measured[f"base@{res[0]}"]
    depth = np.zeros((codec.N_STAGES, len(codec.DEPTHS)))
    for s in range(codec.N_STAGES):
        for b, dv in enumerate(codec.DEPTHS[1:], start=1):
            depth[s, b] = measured[f"depth/{s}/{dv}"] - b0
    op = np.zeros((codec.N_SLOTS, len(OPS)))
    for slot in range(codec.N_SLOTS):
        s = slot // codec.MAX_DEPTH
        ref = measured[f"depth/{s}/4"]
        for c, (k, e) in enumerate(OPS):
            if c != K3E3:
                op[slot, c] = measured[f"op/{slot}/k{k}e{e}"] - ref
    return {"base": base, "depth": depth.tolist(), "depth_values": list(codec.DEPTHS), "op": op.tolist(),
            "op_labels": [f"k{k}e{e}" for k, e in OPS]}


def load_table(path: str | Path, *, partial_ok: bool = False, field: str = "predictor.table") -> dict[str, Any]:
    """Read a contributions table; ``InputError`` naming ``field`` when it is not one (or is still partial)."""
    p = Path(path).expanduser()
    try:
        t = json.loads(p.read_text())
    except FileNotFoundError:
        raise InputError(field, f"no such file {p}") from None
    except (OSError, ValueError) as e:
        raise InputError(field, f"{p} is not a JSON contributions table ({e})") from None
    if not isinstance(t, dict) or t.get("kind") != TABLE_KIND:
        raise InputError(field, f"{p} is not a `msunas predictor contributions` table (kind {TABLE_KIND})")
    if not partial_ok and not t.get("complete"):
        raise InputError(field, f"{p} is partial ({len(t.get('measured', {}))} of {t.get('n_probes')} measured)",
                         hint="finish it with `msunas predictor contributions ... --resume`")
    return t


class ContributionTable:
    """The bilinear estimator of a complete table: ``predict(genomes)`` is the top-1 error (%), as a surrogate."""

    winner = "bilinear (contributions)"

    def __init__(self, table: Mapping[str, Any], space: Any) -> None:
        self.table = dict(table)
        self.space = space
        grid = [int(r) for r in space.resolutions]
        have = {int(r): float(v) for r, v in table["base"].items()}
        missing = [r for r in grid if r not in have]
        if missing:
            raise InputError("predictor.table", f"no base accuracy at resolution {missing[0]} (the table has "
                             f"{sorted(have)}; measure it with the job's resolution range)")
        depth = np.asarray(table["depth"], dtype=np.float64)
        op = np.asarray(table["op"], dtype=np.float64)
        self.model = AdditiveModel(grid, np.array([have[r] for r in grid]),
                                   np.repeat(depth[None], len(grid), 0), np.repeat(op[None], len(grid), 0))

    def accuracy(self, configs: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Predicted top-1 (%) of canonical configs."""
        return self.model.value([codec.normalize_backbone(c) for c in configs])

    def predict(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X)
        if len(X) == 0:
            return np.zeros(0)
        return 100.0 - self.accuracy(self.space.decode_many(X))


def check_table(table: Mapping[str, Any], spec: Any) -> None:
    """``InputError`` (field ``predictor.table``) when the table was measured for another space, width, dataset or
    supernet than the job's (the job's supernet only when it has one)."""
    from search.provenance import supernet_ref

    art = table.get("artefact") or {}
    want = {"search_space": spec.search_space, "width_mult": float(spec.width_mult),
            "dataset": spec.dataset.name}
    for k, v in want.items():
        got = art.get(k) if k != "dataset" else (art.get("dataset") or {}).get("name")
        if got != v:
            raise InputError("predictor.table", f"the table was measured for {k} {got!r}, the job has {v!r}")
    ref = supernet_ref(spec)
    if ref.get("kind") != "none" and art.get("supernet_id") != supernet_id(ref):
        raise InputError("predictor.table", f"the table was measured on supernet {art.get('supernet_id')!r}, the job "
                         f"evaluates on {supernet_id(ref)!r}")


def table_artefact(spec: Any) -> dict[str, Any]:
    """What a table measured for ``spec`` is: space, width, dataset, supernet identity, msunas version."""
    from search.provenance import supernet_ref

    return {"search_space": spec.search_space, "width_mult": float(spec.width_mult),
            "dataset": {"name": spec.dataset.name, "root": spec.dataset.root},
            "supernet_id": supernet_id(supernet_ref(spec)), "msunas_version": msunas_version()}


def table_surrogates(engine: Any) -> tuple[dict[str, Any], dict[str, Any], dict[str, float]]:
    """The engine's surrogates with ``fit: contributions``: the table's estimator for ``top1_err`` (no archive fit);
    its held-out statistics are its rank agreement with the archive's successful evaluations (when there are)."""
    from search.surrogate import rank_stats

    spec = engine.spec
    if engine.objectives.needs_metric_prediction():
        raise InputError("predictor.fit", "fit: contributions predicts top1_err only; the objectives and constraints"
                         " need another predicted metric")
    t0 = time.perf_counter()
    ps = spec.predictor_spec()
    table = load_table(ps.table)
    check_table(table, spec)
    sur = ContributionTable(table, engine.space)
    info: dict[str, Any] = {"model": "bilinear", "variant": ps.variant, "winner": sur.winner, "fit": "contributions",
                            "table": str(ps.table), "n_train": 0}
    ok = [r for r in engine.archive if r["status"] == "ok"]
    if len(ok) >= 3:
        y = np.array([100.0 - r["metrics"]["top1"] for r in ok])
        p = sur.predict(engine.space.encode_many([r["config"] for r in ok]))
        info.update(rank_stats(y, p))
    return {"top1_err": sur}, info, {"fit": time.perf_counter() - t0, "cv": 0.0, "_cv_cpu": 0.0}
