"""``msunas ui DIR``: the dashboard over a run folder, read-only and without tokens.

The run folder (``msunas search --out DIR``) is shown as job 1 through the routes the dashboard uses
(``/jobs``, ``/jobs/1``, its iterations, archive, architectures, selection and export), answered from the files,
so a search can be watched while it runs and mined afterwards. Nothing is written; the server listens on
127.0.0.1 by default.

A CNAS run folder (no ``spec.json``; CNAS's ``iter_K.stats`` and its nets' ``iter_K/net_i.*`` (MSuNAS layout) or
``iter_K/net_i/net_i.*`` (CNAS@HEAD layout)) is shown too, read by ``search.io``'s CNAS readers: the nets' own
params/MACs/activations, exact costs (``--width``, ``--n-classes``) where a net recorded none, and a spec inferred
from the files (:func:`cnas_spec`: the second objective is the net metric the archive's f2 matches, the
resolution range the configs span). CNAS writes no end marker: its folder shows as finished at its last
iteration, and a job warning says the spec is inferred.
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, FastAPI, Query, Request, Response
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from search.export import MEDIA_TYPES, export_architecture
from search.io import add_exact_costs, iteration_of, read_stats, records_from_stats
from search.objectives import constraint_lines
from search.runner import n_feasible
from search.select import select_records
from search.spec import JobSpec, load_spec
from service.deps import ArchId, IterK, JobId
from service.middleware import RequestId
from service.problems import install_problem_handlers
from service.repository import NotFoundError, job_warnings
from service.routes.pages import PAGE_HEADERS, STATIC_DIR
from service.schemas import (
    ArchivePage,
    ArchOut,
    IterationList,
    IterationOut,
    JobDetail,
    JobPage,
    Selection,
    SelectRequest,
)
from supernets.errors import InputError

router = APIRouter()
JOB_ID = 1


class RunFolder:
    """The files of one run folder, read fresh on each request (a running search keeps writing them)."""

    def __init__(self, root: Path, width: float = 1.0, n_classes: int = 10) -> None:
        self.root = root
        self.width, self.n_classes = width, n_classes
        has_stats = bool(list(root.glob("iter_*.stats")))
        self.cnas = has_stats and not (root / "spec.json").is_file() and "engine" not in read_stats(root)
        if not has_stats or not (self.cnas or (root / "spec.json").is_file()):
            raise InputError("DIR", f"{root} is not a run folder with iterations (spec.json, iter_K.stats; or "
                             "CNAS's iter_K.stats)",
                             hint="give the --out folder of `msunas search` or a CNAS run folder")
        if self.cnas:
            self.spec()  # refuse what the viewer cannot show now, not on the first request

    def spec(self) -> JobSpec:
        if self.cnas:
            return cnas_spec(self.latest(), self._records(), self.width, self.n_classes)
        return load_spec(json.loads((self.root / "spec.json").read_text()))

    def artefact(self) -> dict[str, Any]:
        p = self.root / "artefact.json"
        return json.loads(p.read_text()) if p.is_file() else {}

    def latest(self) -> dict[str, Any]:
        return read_stats(self.root)

    def stats_files(self) -> list[Path]:
        return sorted(self.root.glob("iter_*.stats"), key=iteration_of)

    def _records(self) -> list[dict[str, Any]]:
        recs = records_from_stats(self.latest())
        if self.cnas:  # costs a net did not record (or a bare stats file): the exact model, as `msunas select`
            add_exact_costs(recs, self.width, self.n_classes)
        return recs

    def progress(self) -> tuple[int, bool, list[dict[str, Any]]]:
        """Latest iteration, whether the run finished, and the HV history."""
        doc = self.latest()
        if self.cnas:
            history = []
            for p in self.stats_files():
                d = json.loads(p.read_text())
                history.append({"iteration": iteration_of(p), "hv": d.get("hv"), "n_archive": len(d["archive"])})
            return iteration_of(doc["_path"]), True, history
        eng = doc.get("engine") or {}
        finished = bool(eng.get("stopped")) or (
            not eng.get("pending") and int(eng.get("iteration", 0)) > self.spec().iterations
        )
        return int(doc.get("iteration", 0)), finished, list(eng.get("history") or [])

    def records(self) -> list[dict[str, Any]]:
        art = self.artefact()
        out = []
        for i, r in enumerate(self._records()):
            cfg = r["config"]
            out.append({"id": i + 1, "config": cfg, "key": r.get("key"), "iteration": r.get("iteration") or 0,
                        "status": r.get("status", "ok"), "feasible": r.get("feasible"), "metrics": r.get("metrics"),
                        "objectives": r.get("objectives"), "error": r.get("error"),
                        "artefact": {**art, "resolution": cfg.get("r")}})
        return out


SECOND_OBJECTIVES = (("params", 1e6), ("macs", 1e6), ("activations", 1e6), ("tiny_ml", 1.0), ("avg_macs", 1e6))
"""CNAS's second objectives and the unit factor of each in our metrics (CNAS writes millions)."""


def cnas_spec(doc: dict[str, Any], records: list[dict[str, Any]], width: float, n_classes: int) -> JobSpec:
    """The spec a CNAS run folder implies: ``top1_err`` (``top1_robust`` for FlatNAS rows) against the metric the
    archive's f2 matches best (median relative gap over the nets), the resolution range of its configs."""
    if any("t" in r["config"] or "b" in r["config"] for r in records):
        raise InputError("DIR", "an early-exit CNAS run folder (configs with t/b) is not shown by the viewer yet",
                         hint="use `msunas select DIR` on it")
    best, gap = "macs", float("inf")
    for name, unit in SECOND_OBJECTIVES:
        rel = [abs(r["metrics"][name] / unit - r["metrics"]["f2"]) / max(abs(r["metrics"]["f2"]), 1e-12)
               for r in records if name in r["metrics"] and "f2" in r["metrics"]]
        if rel and float(np.median(rel)) < gap:
            best, gap = name, float(np.median(rel))
    rs = [int(r["config"]["r"]) for r in records] or [224]
    first = "top1_robust" if "alpha_norm" in doc else "top1_err"
    return JobSpec.model_validate({
        "objectives": [first, best], "resolution": [min(rs), max(rs)], "width_mult": width,
        "iterations": iteration_of(doc["_path"]), "dataset": {"name": "digits", "n_classes": n_classes},
    })


def _run(request: Request, job_id: int) -> RunFolder:
    if job_id != JOB_ID:
        raise NotFoundError(f"job {job_id} not found (this viewer shows one run folder as job {JOB_ID})")
    run: RunFolder = request.app.state.run
    return run


def _summary(run: RunFolder) -> dict[str, Any]:
    spec = run.spec()
    k, finished, history = run.progress()
    records = run.records()
    state = "succeeded" if finished else "running"
    ok = [r for r in records if r["status"] == "ok" and r["feasible"] is not False and r["objectives"]]
    best = {}
    for j, label in ((0, "min_f1"), (1, "min_f2")):
        if ok and len(ok[0]["objectives"]) > j:
            r = min(ok, key=lambda rec: (rec["objectives"][j], rec["id"]))
            best[label] = {"arch_id": r["id"], "objectives": r["objectives"], "metrics": r["metrics"]}
    mtime = max(p.stat().st_mtime for p in run.stats_files())
    stamp = _ts(mtime)
    warnings = job_warnings(spec, state, len(records), n_feasible(records))
    if run.cnas:
        warnings.append(f"a CNAS run folder: the spec is inferred from its files (objectives {spec.objectives}, "
                        f"resolution {spec.resolution}, width {spec.width_mult} and {run.n_classes} classes as given)")
    return {
        "id": JOB_ID, "name": str(run.root) + (" (CNAS)" if run.cnas else ""), "state": state, "error": None,
        "warnings": warnings,
        "created_at": stamp, "updated_at": stamp, "finished_at": stamp if finished else None,
        "objectives": list(spec.objectives), "constraints": dict(spec.constraints),
        "constraint_mode": spec.constraint_mode,
        "constraint_lines": constraint_lines(spec.objectives, spec.constraints),
        "spec": spec.model_dump(mode="json"),
        "progress": {"iteration": k, "iterations": spec.iterations, "tasks_total": 0, "tasks_done": 0,
                     "tasks_running": 0, "n_evaluated": len(records),
                     "n_failed": sum(r["status"] != "ok" for r in records), "n_feasible": n_feasible(records)},
        "hv_history": [{"iteration": h["iteration"], "hv": h.get("hv"), "n_archive": h.get("n_archive", 0)}
                       for h in history],
        "best": best,
    }


def _ts(t: float) -> str:
    return dt.datetime.fromtimestamp(t, tz=dt.UTC).replace(tzinfo=None).isoformat() + "Z"


@router.get("/", include_in_schema=False)
def page() -> HTMLResponse:
    """The dashboard page, marked as needing no token."""
    html = (STATIC_DIR / "index.html").read_text()
    html = html.replace("<head>", '<head>\n  <meta name="msunas-auth" content="none">', 1)
    return HTMLResponse(html, headers=PAGE_HEADERS)


@router.get("/jobs", response_model=JobPage)
def jobs(request: Request) -> dict[str, Any]:
    """The run folder as the one job."""
    s = _summary(request.app.state.run)
    return {"items": [{"id": JOB_ID, "name": s["name"], "state": s["state"], "iteration": s["progress"]["iteration"],
                       "iterations": s["progress"]["iterations"], "created_at": s["created_at"]}], "next_cursor": None}


@router.get("/jobs/{job_id}", response_model=JobDetail)
def job(job_id: JobId, request: Request) -> dict[str, Any]:
    """The run's summary."""
    return _summary(_run(request, job_id))


@router.get("/jobs/{job_id}/iterations", response_model=IterationList, response_model_exclude_unset=True)
def iterations(job_id: JobId, request: Request) -> dict[str, Any]:
    """Every iteration's statistics, from its iter_K.stats."""
    return {"items": [_iteration(p) for p in _run(request, job_id).stats_files()]}


@router.get("/jobs/{job_id}/iterations/{k}", response_model=IterationOut, response_model_exclude_unset=True)
def iteration(job_id: JobId, k: IterK, request: Request) -> dict[str, Any]:
    """One iteration's statistics."""
    p = _run(request, job_id).root / f"iter_{k}.stats"
    if not p.is_file():
        raise NotFoundError(f"the run has no iteration {k}")
    return _iteration(p)


def _iteration(p: Path) -> dict[str, Any]:
    doc = json.loads(p.read_text())
    stats = doc.get("stats") or {}
    return {"iteration": iteration_of(p), "n_archive": int(stats.get("n_archive", len(doc.get("archive", [])))),
            "hv": doc.get("hv"), "surrogate": doc.get("surrogate"), "stats": stats,
            "created_at": _ts(p.stat().st_mtime)}


@router.get("/jobs/{job_id}/archive", response_model=ArchivePage)
def archive(job_id: JobId, request: Request, cursor: Annotated[str | None, Query(pattern=r"^\d{1,9}$")] = None,
            limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
    """The archive in evaluation order (``cursor``: the last id seen)."""
    recs = _run(request, job_id).records()
    start = int(cursor) if cursor else 0
    page = recs[start:start + limit]
    return {"items": page, "next_cursor": str(start + limit) if start + limit < len(recs) else None}


@router.get("/jobs/{job_id}/archs/{arch_id}", response_model=ArchOut)
def arch(job_id: JobId, arch_id: ArchId, request: Request) -> dict[str, Any]:
    """One architecture."""
    recs = _run(request, job_id).records()
    if arch_id > len(recs):
        raise NotFoundError(f"the run has no architecture {arch_id}")
    return recs[arch_id - 1]


@router.post("/jobs/{job_id}/select", response_model=Selection)
def select(job_id: JobId, request: Request, body: SelectRequest) -> dict[str, Any]:
    """The options of ``msunas select``, on the run's archive."""
    run = _run(request, job_id)
    return {"items": select_records(run.records(), run.spec(), body)}


@router.get("/jobs/{job_id}/archs/{arch_id}/export", response_class=Response)
async def export(job_id: JobId, arch_id: ArchId, request: Request,
                 format: Annotated[str, Query(pattern="^(onnx|torch)$")] = "onnx") -> Response:  # noqa: A002
    """The architecture exported with the run's supernet (as ``msunas export`` would)."""
    run = _run(request, job_id)
    rec = arch(job_id, arch_id, request)
    if run.cnas:
        raise InputError("format", "a CNAS run folder records no supernet to export from",
                         hint="export the config with `msunas export` and a spec naming the supernet")

    def build() -> bytes:
        with tempfile.TemporaryDirectory(prefix="msunas-ui-") as d:
            out = Path(d) / "arch"
            info = export_architecture(rec["config"], run.spec(), format, out, metrics=rec["metrics"])
            return Path(info["path"]).read_bytes()

    data = await run_in_threadpool(build)
    ext = "onnx" if format == "onnx" else "pt"
    return Response(data, media_type=MEDIA_TYPES[format],
                    headers={"Content-Disposition": f'attachment; filename="run_arch{arch_id}.{ext}"'})


def create_run_app(root: str | Path, width: float = 1.0, n_classes: int = 10) -> FastAPI:
    """The read-only viewer app over the run folder ``root`` (ours or CNAS's; ``width``/``n_classes``: a CNAS
    folder's, for the exact costs of nets that recorded none)."""
    app = FastAPI(title="msunas ui", description="A run folder, read-only.")
    app.state.run = RunFolder(Path(root), width, n_classes)
    app.add_middleware(RequestId)
    install_problem_handlers(app)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.include_router(router)
    return app
