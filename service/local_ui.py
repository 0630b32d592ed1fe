"""``msunas ui DIR``: the dashboard over a run folder, read-only and without tokens.

The run folder (``msunas search --out DIR``) is shown as job 1 through the routes the dashboard uses
(``/jobs``, ``/jobs/1``, its iterations, archive, architectures, selection and export), answered from the files,
so a search can be watched while it runs and mined afterwards. Nothing is written; the server listens on
127.0.0.1 by default.
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query, Request, Response
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from search.export import MEDIA_TYPES, export_architecture
from search.io import iteration_of, read_stats, records_from_stats
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

    def __init__(self, root: Path) -> None:
        self.root = root
        if not (root / "spec.json").is_file() or not list(root.glob("iter_*.stats")):
            raise InputError("DIR", f"{root} is not a run folder with iterations (spec.json, iter_K.stats)",
                             hint="give the --out folder of `msunas search`")

    def spec(self) -> JobSpec:
        return load_spec(json.loads((self.root / "spec.json").read_text()))

    def artefact(self) -> dict[str, Any]:
        p = self.root / "artefact.json"
        return json.loads(p.read_text()) if p.is_file() else {}

    def latest(self) -> dict[str, Any]:
        return read_stats(self.root)

    def stats_files(self) -> list[Path]:
        return sorted(self.root.glob("iter_*.stats"), key=iteration_of)

    def records(self) -> list[dict[str, Any]]:
        art = self.artefact()
        out = []
        for i, r in enumerate(records_from_stats(self.latest())):
            cfg = r["config"]
            out.append({"id": i + 1, "config": cfg, "key": r.get("key"), "iteration": r.get("iteration") or 0,
                        "status": r.get("status", "ok"), "feasible": r.get("feasible"), "metrics": r.get("metrics"),
                        "objectives": r.get("objectives"), "error": r.get("error"),
                        "artefact": {**art, "resolution": cfg.get("r")}})
        return out


def _run(request: Request, job_id: int) -> RunFolder:
    if job_id != JOB_ID:
        raise NotFoundError(f"job {job_id} not found (this viewer shows one run folder as job {JOB_ID})")
    run: RunFolder = request.app.state.run
    return run


def _summary(run: RunFolder) -> dict[str, Any]:
    spec, doc = run.spec(), run.latest()
    eng = doc.get("engine") or {}
    history = eng.get("history") or []
    records = run.records()
    finished = bool(eng.get("stopped")) or (not eng.get("pending") and int(eng.get("iteration", 0)) > spec.iterations)
    state = "succeeded" if finished else "running"
    ok = [r for r in records if r["status"] == "ok" and r["feasible"] is not False and r["objectives"]]
    best = {}
    for j, label in ((0, "min_f1"), (1, "min_f2")):
        if ok and len(ok[0]["objectives"]) > j:
            r = min(ok, key=lambda rec: (rec["objectives"][j], rec["id"]))
            best[label] = {"arch_id": r["id"], "objectives": r["objectives"], "metrics": r["metrics"]}
    mtime = max(p.stat().st_mtime for p in run.stats_files())
    stamp = _ts(mtime)
    k = int(doc.get("iteration", 0))
    return {
        "id": JOB_ID, "name": str(run.root), "state": state, "error": None,
        "warnings": job_warnings(spec, state, len(records), n_feasible(records)),
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

    def build() -> bytes:
        with tempfile.TemporaryDirectory(prefix="msunas-ui-") as d:
            out = Path(d) / "arch"
            info = export_architecture(rec["config"], run.spec(), format, out, metrics=rec["metrics"])
            return Path(info["path"]).read_bytes()

    data = await run_in_threadpool(build)
    ext = "onnx" if format == "onnx" else "pt"
    return Response(data, media_type=MEDIA_TYPES[format],
                    headers={"Content-Disposition": f'attachment; filename="run_arch{arch_id}.{ext}"'})


def create_run_app(root: str | Path) -> FastAPI:
    """The read-only viewer app over the run folder ``root``."""
    app = FastAPI(title="msunas ui", description="A run folder, read-only.")
    app.state.run = RunFolder(Path(root))
    app.add_middleware(RequestId)
    install_problem_handlers(app)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.include_router(router)
    return app
