"""``msunas serve`` (the REST API, with local workers) and ``msunas worker`` (workers on any machine)."""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
import uvicorn

from service import openapi
from service.app import create_app
from service.cli.app import app
from service.cli.common import DbOpt, settings, stderr
from service.db import Database, SchemaOutdatedError, check_schema, upgrade
from service.local_ui import create_run_app
from service.worker import run_workers


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn re-raises SIGTERM after shutting down, which would skip stopping the local workers
        with super().capture_signals():
            try:
                yield
            finally:
                self._captured_signals.clear()


@app.command(rich_help_panel="Service")
def serve(
    db: DbOpt = None,
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8000,
    workers: Annotated[int, typer.Option("--workers", min=0, max=256, help="local worker processes to run too")] = 0,
    worker_nice: Annotated[int, typer.Option("--worker-nice", min=0, max=19, help="CPU priority decrement of the "
                                             "local workers (the API stays responsive)")] = 10,
    data_root: Annotated[list[Path] | None, typer.Option("--data-root", help="folder job specs may point into "
                                                         "(repeat; default: $MSUNAS_DATA_ROOTS)")] = None,
    upgrade_db: Annotated[bool, typer.Option("--upgrade-db", help="migrate the schema first")] = False,
) -> None:
    """Run the REST API (and, with --workers N, N local worker processes)."""
    s = settings(db_url=db, data_roots=data_root or None)
    if upgrade_db:
        upgrade(s.db_url)
    try:
        api = create_app(s)
    except SchemaOutdatedError as e:
        raise ValueError(str(e)) from None
    procs: list[subprocess.Popen[bytes]] = []
    if workers:
        env = dict(os.environ, MSUNAS_DB_URL=s.db_url)
        procs.append(subprocess.Popen([sys.executable, "-m", "service.cli", "worker", "--db", s.db_url,
                                       "--concurrency", str(workers), "--nice", str(worker_nice)], env=env))
    gc.collect()
    gc.freeze()  # the app's import-time objects leave the collector's scans: shorter pauses while serving
    try:
        _Server(uvicorn.Config(api, host=host, port=port, log_level="info")).run()
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()


@app.command(rich_help_panel="Search")
def ui(
    run_dir: Annotated[Path, typer.Argument(help="a run folder (msunas search --out DIR, or CNAS's)")],
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8000,
    width: Annotated[float, typer.Option("--width", help="width of a CNAS run (for its exact costs)")] = 1.0,
    n_classes: Annotated[int, typer.Option("--n-classes", min=2, help="classes of a CNAS run")] = 10,
) -> None:
    """Serve the dashboard over a run folder (ours or CNAS's), read-only and without tokens (it follows a running
    search)."""
    viewer = create_run_app(run_dir, width, n_classes)
    stderr.print(f"msunas ui: {run_dir} at http://{host}:{port}/#/jobs/1")
    uvicorn.run(viewer, host=host, port=port, log_level="warning")


@app.command(rich_help_panel="Service")
def worker(
    db: DbOpt = None,
    concurrency: Annotated[int, typer.Option("--concurrency", "-c", min=1, max=256, help="worker processes")] = 1,
    max_idle: Annotated[float | None, typer.Option("--max-idle", min=0, help="exit after this many idle "
                                                   "seconds")] = None,
    nice: Annotated[int, typer.Option("--nice", min=0, max=19, help="lower the workers' CPU priority by this much "
                                      "(so an API on the same machine stays responsive)")] = 0,
    threads: Annotated[int | None, typer.Option("--threads", min=1, max=256, help="torch threads per worker "
                                                "(default: $MSUNAS_WORKER_THREADS or 1)")] = None,
) -> None:
    """Claim and run job steps and evaluation tasks from the database until SIGTERM."""
    if nice:
        os.nice(nice)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    s = settings(db_url=db, worker_threads=threads)
    d = Database(s.db_url)
    try:
        check_schema(d)
    except SchemaOutdatedError as e:
        raise ValueError(str(e)) from None
    finally:
        d.dispose()
    rc = run_workers(s, concurrency, max_idle_seconds=max_idle)
    if rc:
        raise typer.Exit(rc)


@app.command("openapi", rich_help_panel="Service")
def openapi_cmd(
    out: Annotated[Path, typer.Option("--out", help="file to write")] = openapi.DEFAULT_OUT,
    check: Annotated[bool, typer.Option("--check", help="only check that the file is up to date (exit 1 if not)")]
    = False,
) -> None:
    """Write the REST API's OpenAPI document (what clients are generated from; default docs/openapi.json)."""
    raise typer.Exit(openapi.main(["--out", str(out), *(["--check"] if check else [])]))
