"""``GET /jobs/{id}/archs/{arch_id}/export``: an archived architecture as ONNX (fp32 or INT8) or a PyTorch
checkpoint."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response
from starlette.concurrency import run_in_threadpool

from search.export import MEDIA_TYPES, export_architecture
from service import repository as repo
from service.deps import ArchId, DbDep, JobId, Owner
from service.problems import AUTH, problem_responses

router = APIRouter(prefix="/jobs/{job_id}/archs/{arch_id}", tags=["archive"])
EXPORT_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {"content": {"application/onnx": {"schema": {"type": "string", "format": "binary"}},
                      "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
          "description": "the exported file (ONNX: metadata_props say what it is)"},
    **problem_responses(*AUTH, 404, 409),
}


def _export_bytes(config: dict[str, object], spec: object, fmt: str, metrics: dict[str, object]) -> bytes:
    with tempfile.TemporaryDirectory(prefix="msunas-export-") as d:
        out = Path(d) / ("arch.pt" if fmt == "torch" else "arch.onnx")
        info = export_architecture(config, spec, fmt, out, metrics=metrics)  # type: ignore[arg-type]
        return Path(info["path"]).read_bytes()


@router.get("/export", response_class=Response, responses=EXPORT_RESPONSES)
async def export(job_id: JobId, arch_id: ArchId, owner: Owner, db: DbDep,
                 format: Annotated[Literal["onnx", "onnx-int8", "torch"],  # noqa: A002
                                  Query(description="file format (onnx-int8: ONNX Runtime static quantisation "
                                        "calibrated on the job's dataset; single-exit architectures)")] = "onnx",
                 ) -> Response:
    """The architecture extracted from the job's supernet (the one it was found with) as ONNX (checked against
    PyTorch in ONNX Runtime), INT8 ONNX (its metadata_props `msunas.quantization` give the fp32 and int8 validation
    top-1 and ORT CPU latency) or a PyTorch checkpoint. A failed architecture, or a job searched without supernet
    weights, is 409."""
    with db.transaction() as s:
        job = repo.get_job(s, owner, job_id)
        a = repo.get_architecture(s, job_id, arch_id)
        repo.check_exportable(job, a)
        spec, config, metrics = repo.job_spec(job), dict(a.config), dict(a.metrics or {})
    data = await run_in_threadpool(_export_bytes, config, spec, format, metrics)
    ext = "pt" if format == "torch" else "onnx"
    return Response(content=data, media_type=MEDIA_TYPES[format],
                    headers={"Content-Disposition": f'attachment; filename="job{job_id}_arch{arch_id}.{ext}"'})
