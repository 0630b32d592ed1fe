"""The seed-compatible search folder: ``iter_K.stats``, ``iter_K/net_i.subnet`` + ``net_i.stats``, ``failed/``.

``output_layout: cnas`` also writes CNAS@HEAD's per-net files ``iter_K/net_i/net_i.subnet`` (compact config) +
``net_i.stats`` (:func:`cnas_net_doc`) and ``failed/it_K_net_i``, keeps compact configs in the ``archive`` and
``candidates`` rows and CNAS's hypervolume (``hv_cnas``) as ``hv``, so CNAS's resume and post-search read the folder.

``iter_K.stats`` (JSON), as MSuNAS/CNAS write it, plus the engine state so ``--resume`` is exact::

    {"archive": [[config, f1, f2], ...],   # successful evaluations so far (f1 = top-1 error %, f2 in its unit)
     "candidates": [[config, f1, f2], ...],# this iteration's successful candidates
     "hv": float, "surrogate": {"model", "winner", "rmse", "rho", "tau", ...} | null,
     "iteration": K, "objectives": [...], "stats": {...iteration stats...},
     "engine": {...Engine.state_dict()...}}

A CNAS file has only the first four keys (compact configs, f2 = the run's second objective); it is read as an
archive of records with ``metrics = {"top1": 100 - f1, "f2": f2}``. A CNAS run with ``first_obj top1_robust``
(FlatNAS) writes rows ``[config, top1_robust, f2, top1_err, robustness]`` and ``alpha_norm``: those rows give
``top1 = 100 - top1_err`` and ``robustness``.

A CNAS *run folder* also keeps each evaluated net's own stats, in one of two layouts:
``iter_K/net_i.subnet`` + ``net_i.stats`` (MSuNAS, CNAS@012c164 ``nsganetv2/msunas.py``: ``top1`` is the accuracy
%) or ``iter_K/net_i/net_i.subnet`` + ``net_i.stats`` (CNAS@HEAD ``cnas.py``/``train.py``: ``top1`` is the error
%). Both keep ``params``, ``flops``/``macs``, ``activations`` in millions (2 decimals) at the top level and compact
configs. :func:`cnas_net_stats` reads them (which meaning ``top1`` has is decided per net from the archive row's
error), and :func:`records_from_stats` adds them to the records as counts (``params``, ``macs``, ``activations``)
plus the other numbers the net recorded (``tiny_ml``, ``robustness``, ``avg_macs``, ...).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from search.objectives import exact_costs
from search.provenance import arch_artefact
from supernets import codec
from supernets.errors import InputError


def _row(record: Mapping[str, Any]) -> list[Any]:
    return [record["config"], *record["objectives"]]


RUN_FILES = ("spec.json", "artefact.json")


def run_files(out: Path) -> tuple[list[Path], list[Path]]:
    """The entries of a folder that belong to a run (``iter_K.stats``, ``iter_K/``, ``failed/``, ``spec.json``,
    ``artefact.json``) and the others."""
    ours: list[Path] = []
    foreign: list[Path] = []
    for p in sorted(out.iterdir()):
        run_like = p.name in RUN_FILES or p.name == "failed" or re.fullmatch(r"iter_\d+(\.stats(\.tmp)?)?", p.name)
        (ours if run_like else foreign).append(p)
    return ours, foreign


def subnet_doc(config: Mapping[str, Any], artefact: Mapping[str, Any] | None) -> dict[str, Any]:
    """A ``.subnet`` file's content: the config (CNAS reads its ks/e/d/r) plus ``artefact`` (what it is)."""
    doc = dict(config)
    if artefact is not None:
        doc["artefact"] = arch_artefact(config, artefact)
    return doc


def read_subnet(path: str | Path) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """``(config, artefact or None)`` of a ``.subnet`` file (ours, CNAS's or a plain config JSON)."""
    p = Path(path)
    try:
        doc = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError("--config", f"{p} is not a readable JSON file ({e})") from None
    if not isinstance(doc, dict):
        raise InputError("--config", f"{p} must hold a JSON object with ks, e, d, r")
    artefact = doc.pop("artefact", None)
    return doc, artefact if isinstance(artefact, dict) else None


def cnas_net_doc(record: Mapping[str, Any], objectives: Sequence[str]) -> dict[str, Any]:
    """A record as CNAS@HEAD's ``train.py`` writes ``net_i.stats``: ``top1`` the error %, ``params``/``macs``/
    ``activations`` in millions (2 decimals), ``tiny_ml`` when it is the run's objective, and the FlatNAS /
    early-exit figures the record has (``robustness``, ``top1_robust``, ``avg_macs`` in millions)."""
    m = record.get("metrics") or {}
    doc: dict[str, Any] = {"top1": round(100.0 - float(m["top1"]), 2)}
    for k in ("macs", "activations", "params"):
        if isinstance(m.get(k), (int, float)):
            doc[k] = round(float(m[k]) / 1e6, 2)
    if len(objectives) == 2 and objectives[1] == "tiny_ml" and record.get("objectives"):
        doc["tiny_ml"] = float(record["objectives"][1])
    for k in ("robustness", "top1_robust"):
        if isinstance(m.get(k), (int, float)):
            doc[k] = float(m[k])
    if isinstance(m.get("avg_macs"), (int, float)):
        doc["avg_macs"] = round(float(m["avg_macs"]) / 1e6, 2)
    return doc


def _compact(config: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(codec.to_compact({k: config[k] for k in ("ks", "e", "d", "r") if k in config}))
    for extra in ("t", "b"):
        if extra in config:
            out[extra] = list(config[extra])
    return out


def _write_cnas_nets(out: Path, k: int, recs: Sequence[Mapping[str, Any]], objectives: Sequence[str]) -> None:
    """``output_layout: cnas``: CNAS@HEAD's ``iter_K/net_i/net_i.subnet`` + ``net_i.stats`` (``cnas.py``
    ``_evaluate``), and ``failed/it_K_net_i`` (the subnet) for a failed net."""
    for i, rec in enumerate(recs):
        cfg = json.dumps(_compact(rec["config"]))
        if rec["status"] == "ok":
            d = out / f"iter_{k}" / f"net_{i}"
            d.mkdir(parents=True, exist_ok=True)
            (d / f"net_{i}.subnet").write_text(cfg)
            (d / f"net_{i}.stats").write_text(json.dumps(cnas_net_doc(rec, objectives)))
        else:
            (out / "failed").mkdir(exist_ok=True)
            (out / "failed" / f"it_{k}_net_{i}").write_text(cfg)


def write_iteration(out: Path, engine: Any, stats: Mapping[str, Any], results: Sequence[Any],
                    artefact: Mapping[str, Any] | None = None) -> Path:
    """Write ``iter_K.stats`` and the candidates' ``iter_K/net_i.*`` (failures under ``failed/``), each saying what
    it is (``artefact``, :mod:`search.provenance`); returns the path."""
    k = int(stats["iteration"])
    out.mkdir(parents=True, exist_ok=True)
    it_dir = out / f"iter_{k}"
    it_dir.mkdir(exist_ok=True)
    recs = [r for r in engine.archive if r["iteration"] == k]
    by_key = {codec.config_key(engine.space.validate(r.config)): r for r in results}
    for i, rec in enumerate(recs):
        res = by_key.get(rec["key"])
        net_stats = {
            "iteration": k,
            "status": rec["status"],
            "metrics": rec["metrics"],
            "objectives": rec["objectives"],
            "feasible": rec["feasible"],
            "error": rec["error"],
            "seconds": getattr(res, "seconds", None),
        }
        if artefact is not None:
            net_stats["artefact"] = arch_artefact(rec["config"], artefact)
        target = it_dir if rec["status"] == "ok" else out / "failed"
        target.mkdir(exist_ok=True)
        name = f"net_{i}" if rec["status"] == "ok" else f"iter_{k}_net_{i}"
        (target / f"{name}.subnet").write_text(json.dumps(subnet_doc(rec["config"], artefact)))
        (target / f"{name}.stats").write_text(json.dumps(net_stats, indent=1))
    cnas = getattr(engine.spec, "output_layout", "msunas") == "cnas"
    if cnas:
        _write_cnas_nets(out, k, recs, list(engine.spec.objectives))

    def row(r: Mapping[str, Any]) -> list[Any]:
        return [_compact(r["config"]), *r["objectives"]] if cnas else _row(r)

    doc = {
        "archive": [row(r) for r in engine.archive if r["status"] == "ok"],
        "candidates": [row(r) for r in recs if r["status"] == "ok"],
        "hv": stats.get("hv_cnas", stats["hv"]) if cnas else stats["hv"],
        "surrogate": stats["surrogate"],
        "iteration": k,
        "objectives": list(engine.spec.objectives),
        "ref_point": list(engine.ref_point),
        "stats": dict(stats),
        "engine": engine.state_dict(),
    }
    path = out / f"iter_{k}.stats"
    tmp = path.with_suffix(".stats.tmp")
    tmp.write_text(json.dumps(doc))
    tmp.replace(path)  # atomic: a crash never leaves a half-written stats file
    return path


def read_stats(path: str | Path) -> dict[str, Any]:
    """Parse an ``iter_K.stats`` file (ours or CNAS's); ``ValueError`` naming the path on malformed input."""
    p = Path(path)
    if p.is_dir():
        files = sorted(p.glob("iter_*.stats"), key=lambda q: iteration_of(q))
        if not files:
            raise InputError("stats", f"{p} holds no iter_K.stats file")
        p = files[-1]
    if not p.is_file():
        raise InputError("stats", f"no such file {p}")
    try:
        doc = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError("stats", f"{p} is not JSON ({e})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("archive"), list):
        raise InputError("stats", f"{p} has no 'archive' list (not an iter_K.stats file)")
    for i, row in enumerate(doc["archive"]):
        if not isinstance(row, (list, tuple)) or len(row) < 2 or not isinstance(row[0], Mapping):
            raise InputError("stats", f"{p} archive[{i}] is not a [config, f1, f2] row")
        for j, v in enumerate(row[1:]):
            if not isinstance(v, (int, float)) or isinstance(v, bool):
                raise InputError("stats", f"{p} archive[{i}][{j + 1}] is not a number ({v!r})")
    doc["_path"] = str(p)
    return doc


def iteration_of(path: str | Path) -> int:
    """K of an ``iter_K.stats`` file name; ``ValueError`` when the name does not say."""
    m = re.fullmatch(r"iter_(\d+)\.stats", Path(path).name)
    if m is None:
        raise InputError("stats", f"cannot tell the iteration from the file name {Path(path).name} (want iter_K.stats)")
    return int(m.group(1))


CNAS_MILLIONS = {"params": "params", "macs": "macs", "flops": "macs", "activations": "activations"}
"""CNAS ``net_i.stats`` keys kept in millions -> our metric (a count)."""


def _cnas_net_files(folder: Path, max_iter: int | None) -> list[tuple[int, int, Path]]:
    """``(iteration, i, stats path)`` of every CNAS net in a run folder (both layouts), up to ``max_iter``."""
    found = []
    for p in folder.glob("iter_*/net_*.stats"):
        m = re.fullmatch(r"iter_(\d+)", p.parent.name)
        n = re.fullmatch(r"net_(\d+)\.stats", p.name)
        if m and n:
            found.append((int(m.group(1)), int(n.group(1)), p))
    for p in folder.glob("iter_*/net_*/net_*.stats"):
        m = re.fullmatch(r"iter_(\d+)", p.parent.parent.name)
        n = re.fullmatch(r"net_(\d+)\.stats", p.name)
        if m and n and p.parent.name == f"net_{n.group(1)}":
            found.append((int(m.group(1)), int(n.group(1)), p))
    return sorted(x for x in found if max_iter is None or x[0] <= max_iter)


def cnas_net_stats(folder: str | Path, max_iter: int | None = None,
                   errors: Mapping[str, float] | None = None) -> dict[str, dict[str, Any]]:
    """Per-net stats of a CNAS run folder, by config key: ``{"iteration", "metrics"}`` with ``metrics["top1"]``
    the accuracy % and ``params``/``macs``/``activations`` as counts (CNAS keeps millions; ``flops`` is its MACs).

    ``errors`` (config key -> the archive row's top-1 error) decides per net whether its ``top1`` is an accuracy
    (MSuNAS) or an error (CNAS@HEAD); without a matching row the layout decides (flat: accuracy, nested: error).
    Our own run folders (nested ``metrics``) are skipped; later iterations win for a config seen twice, as CNAS's
    resume keeps the last."""
    out: dict[str, dict[str, Any]] = {}
    for it, _i, p in _cnas_net_files(Path(folder), max_iter):
        subnet = p.with_suffix(".subnet")
        try:
            st = json.loads(p.read_text())
            cfg_doc = json.loads(subnet.read_text()) if subnet.is_file() else None
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            continue
        if not isinstance(st, dict) or "metrics" in st or not isinstance(cfg_doc, dict):
            continue
        top1 = st.get("top1")
        if not isinstance(top1, (int, float)) or isinstance(top1, bool):
            continue
        try:
            cfg = _canonical(cfg_doc)
        except (KeyError, ValueError):
            continue
        key = codec.config_key(cfg)
        err = (errors or {}).get(key)
        nested = p.parent.name != f"iter_{it}"
        if err is not None:
            is_error = abs(float(top1) - err) < abs(100.0 - float(top1) - err)
        else:
            is_error = nested
        metrics: dict[str, float] = {"top1": 100.0 - float(top1) if is_error else float(top1)}
        for k, v in st.items():
            if k == "top1" or not isinstance(v, (int, float)) or isinstance(v, bool):
                continue
            if k in CNAS_MILLIONS:
                metrics[CNAS_MILLIONS[k]] = float(v) * 1e6
            else:
                metrics[k] = float(v)
        out[key] = {"iteration": it, "metrics": metrics}
    return out


def records_from_stats(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Archive records of a parsed stats file: the engine's own records, or records rebuilt from CNAS rows (with
    the per-net stats of its run folder when they are there, :func:`cnas_net_stats`)."""
    eng = doc.get("engine")
    if isinstance(eng, Mapping) and isinstance(eng.get("archive"), list):
        return [dict(r) for r in eng["archive"]]
    robust_rows = "alpha_norm" in doc  # CNAS first_obj top1_robust: [config, top1_robust, f2, top1_err, R]
    out: list[dict[str, Any]] = []
    for i, row in enumerate(doc["archive"]):
        try:
            cfg = _canonical(row[0])
        except ValueError as e:
            raise InputError("stats", f"archive[{i}].config: {e}") from None
        f = [float(v) for v in row[1:]]
        if robust_rows and len(f) >= 4:
            metrics = {"top1": 100.0 - f[2], "top1_robust": f[0], "robustness": f[3]}
            f = f[:2]
        else:
            metrics = {"top1": 100.0 - f[0]}
        if len(f) > 1:
            metrics["f2"] = f[1]
        out.append(
            {
                "config": cfg,
                "key": codec.config_key(cfg),
                "iteration": None,
                "status": "ok",
                "metrics": metrics,
                "objectives": f,
                "error": None,
                "feasible": True,
            }
        )
    path = doc.get("_path")
    if path and out:
        it = None
        try:
            it = iteration_of(path)
        except InputError:
            pass
        errs = {r["key"]: 100.0 - r["metrics"]["top1"] for r in out}
        nets = cnas_net_stats(Path(path).parent, it, errs)
        for r in out:
            net = nets.get(r["key"])
            if net is not None:
                r["iteration"] = net["iteration"]
                r["metrics"] = {**net["metrics"], **r["metrics"]}  # the archive row's figures stay
    return out


def _canonical(config: Mapping[str, Any]) -> dict[str, Any]:
    """Canonical config keeping early-exit genes (``t``/``b``) as they are."""
    base = codec.normalize_backbone({k: config[k] for k in ("ks", "e", "d", "r") if k in config})
    for extra in ("t", "b"):
        if extra in config:
            base[extra] = list(config[extra])
    return base


def add_exact_costs(records: list[dict[str, Any]], width_mult: float, n_classes: int) -> list[dict[str, Any]]:
    """Fill ``params``/``macs``/``activations``/``peak_activation`` (counts) from the exact cost model.

    For archives read from CNAS files, which keep only the run's own second objective.
    """
    if not records:
        return records
    costs = exact_costs([r["config"] for r in records], width_mult, n_classes)
    for i, r in enumerate(records):
        m = dict(r.get("metrics") or {})
        for k, v in costs.items():
            m.setdefault(k, float(v[i]))
        r["metrics"] = m
    return records
