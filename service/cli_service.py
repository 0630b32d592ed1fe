"""Service commands: ``serve``, ``worker``, ``submit``, ``status``, ``watch``, ``select`` (of a job),
``token create``, ``db upgrade``; :func:`job_plot_data` feeds ``msunas plot ID``.

Settings come from ``MSUNAS_*`` environment variables (see :mod:`service.settings`); options override them.
Client commands (``submit``, ``status``, ``watch``, ``select ID``, ``plot ID``) talk to ``--url``/``MSUNAS_URL``
with ``--token``/``MSUNAS_TOKEN``.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

TERMINAL = ("succeeded", "failed", "cancelled")

DbOpt = Annotated[str | None, typer.Option("--db", help="database URL (default: $MSUNAS_DB_URL or sqlite:///msunas.db)")]
UrlOpt = Annotated[str | None, typer.Option("--url", help="server URL (default: $MSUNAS_URL or http://127.0.0.1:8000)")]
TokenOpt = Annotated[str | None, typer.Option("--token", help="bearer token (default: $MSUNAS_TOKEN)")]


def _settings(db: str | None = None, data_roots: list[Path] | None = None) -> Any:
    from service.settings import Settings

    s = Settings.from_env()
    if db:
        s.db_url = db
    if data_roots:
        s.data_roots = list(data_roots)
    return s


def _client(url: str | None, token: str | None) -> Any:
    import httpx

    base = url or os.environ.get("MSUNAS_URL") or "http://127.0.0.1:8000"
    tok = token or os.environ.get("MSUNAS_TOKEN")
    if not tok:
        raise ValueError("token: pass --token or set MSUNAS_TOKEN (create one with `msunas token create`)")
    return httpx.Client(base_url=base, headers={"Authorization": f"Bearer {tok}"}, timeout=30.0)


def _call(client: Any, method: str, path: str, **kw: Any) -> Any:
    """One request; problem+json answers become a one-line ValueError (exit 2)."""
    import httpx

    try:
        r = client.request(method, path, **kw)
    except httpx.HTTPError as e:
        raise ValueError(f"url: cannot reach the server at {client.base_url}: {e}") from None
    if r.status_code >= 400:
        try:
            body = r.json()
            detail = body.get("detail") or body.get("title") or r.text
        except ValueError:
            detail = r.text.strip()[:300]
        raise ValueError(f"HTTP {r.status_code}: {detail}")
    return r


def job_archive(client: Any, job_id: int, page_size: int = 1000) -> list[dict[str, Any]]:
    """Every archived architecture of a job, following ``next_cursor`` through the pages."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": page_size, **({"cursor": cursor} if cursor else {})}
        page = _call(client, "GET", f"/jobs/{job_id}/archive", params=params).json()
        items += page["items"]
        cursor = page.get("next_cursor")
        if not cursor:
            return items


def job_plot_data(job_id: int, url: str | None, token: str | None, page_size: int = 1000) -> dict[str, Any]:
    """What ``msunas plot ID`` draws, fetched from the server: the archive records, objectives, HV history,
    the constraint bounding the second objective (in its unit) and a title."""
    with _client(url, token) as c:
        j = _call(c, "GET", f"/jobs/{job_id}").json()
        records = job_archive(c, job_id, page_size)
    lines = [ln for ln in j.get("constraint_lines") or [] if ln["axis"] == 1]
    title = f"job {job_id}" + (f" ({j['name']})" if j.get("name") else "") + f": {j['state']}"
    return {"records": records, "objectives": j["objectives"], "history": j["hv_history"],
            "constraint": lines[0]["value"] if lines else None, "title": title}


def _fmt_summary(j: dict[str, Any]) -> str:
    p = j["progress"]
    hv = j["hv_history"][-1]["hv"] if j["hv_history"] else None
    lines = [
        f"job {j['id']}  state={j['state']}  iteration={p['iteration']}/{p['iterations']}  "
        f"evaluated={p['n_evaluated']} (failed {p['n_failed']})  "
        f"tasks {p['tasks_done']}/{p['tasks_total']} done" + (f"  hv={hv:.6g}" if hv is not None else ""),
    ]
    for k, b in j.get("best", {}).items():
        lines.append(f"  {k}: arch {b['arch_id']} objectives={b['objectives']}")
    if j.get("error"):
        lines.append(f"  error: {j['error'].splitlines()[0]}")
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    """Add the service commands to ``app``."""
    db_app = typer.Typer(help="Database schema management.", no_args_is_help=True)
    token_app = typer.Typer(help="API tokens.", no_args_is_help=True)
    app.add_typer(db_app, name="db")
    app.add_typer(token_app, name="token")

    @db_app.command("upgrade")
    def db_upgrade(db: DbOpt = None) -> None:
        """Create or migrate the database schema to this version's head revision."""
        from service.db import upgrade

        s = _settings(db)
        rev = upgrade(s.db_url)
        typer.echo(f"database {s.db_url} is at revision {rev}")

    @token_app.command("create")
    def token_create(
        name: Annotated[str, typer.Option("--name", help="who or what the token is for")] = "default",
        db: DbOpt = None,
    ) -> None:
        """Create an API token and print it (shown once; only its hash is stored)."""
        from service import repository as repo
        from service.db import Database, check_schema

        s = _settings(db)
        database = Database(s.db_url)
        check_schema(database)
        tid, secret = repo.create_token(database, name)
        database.dispose()
        typer.echo(secret)
        typer.echo(f"token {tid} ({name}) created; use it as `Authorization: Bearer <token>` or MSUNAS_TOKEN",
                   err=True)

    @app.command()
    def worker(
        db: DbOpt = None,
        concurrency: Annotated[int, typer.Option("--concurrency", "-c", min=1, help="worker processes")] = 1,
        max_idle: Annotated[float | None, typer.Option("--max-idle", help="exit after this many idle seconds")] = None,
        nice: Annotated[int, typer.Option("--nice", min=0, max=19, help="lower the workers' CPU priority by this "
                                          "much (so an API on the same machine stays responsive)")] = 0,
    ) -> None:
        """Claim and run job steps and evaluation tasks from the database until SIGTERM."""
        if nice:
            os.nice(nice)
        from service.worker import run_workers

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
        s = _settings(db)
        from service.db import Database, check_schema

        d = Database(s.db_url)
        check_schema(d)
        d.dispose()
        rc = run_workers(s, concurrency, max_idle_seconds=max_idle)
        if rc:
            raise typer.Exit(rc)

    @app.command()
    def serve(
        db: DbOpt = None,
        host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
        port: Annotated[int, typer.Option("--port")] = 8000,
        workers: Annotated[int, typer.Option("--workers", min=0, help="local worker processes to run too")] = 0,
        worker_nice: Annotated[int, typer.Option("--worker-nice", min=0, max=19, help="CPU priority decrement of "
                                                 "the local workers (the API stays responsive)")] = 10,
        data_root: Annotated[list[Path] | None, typer.Option("--data-root",
                                                             help="folder job specs may point into (repeat)")] = None,
        upgrade_db: Annotated[bool, typer.Option("--upgrade-db", help="migrate the schema first")] = False,
    ) -> None:
        """Run the REST API (and, with --workers N, N local worker processes)."""
        import uvicorn

        from service.api import create_app
        from service.db import SchemaOutdatedError, upgrade

        s = _settings(db, data_root)
        if upgrade_db:
            upgrade(s.db_url)
        try:
            api = create_app(s)
        except SchemaOutdatedError as e:
            raise ValueError(str(e)) from None
        procs: list[subprocess.Popen[bytes]] = []
        env = dict(os.environ, MSUNAS_DB_URL=s.db_url)
        if workers:
            procs.append(subprocess.Popen([sys.executable, "-m", "service.cli", "worker", "--db", s.db_url,
                                           "--concurrency", str(workers), "--nice", str(worker_nice)], env=env))
        class _Server(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self) -> Iterator[None]:
                # uvicorn re-raises SIGTERM after shutting down, which would skip stopping the workers below
                with super().capture_signals():
                    try:
                        yield
                    finally:
                        self._captured_signals.clear()

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

    @app.command()
    def submit(
        spec: Annotated[Path, typer.Argument(help="job spec (YAML or JSON)")],
        url: UrlOpt = None,
        token: TokenOpt = None,
        name: Annotated[str | None, typer.Option("--name")] = None,
        idempotency_key: Annotated[str | None, typer.Option("--idempotency-key")] = None,
    ) -> None:
        """Submit a job spec to the server; prints the job id."""
        from search.spec import load_spec

        job_spec = load_spec(spec)  # validated locally first: one-line error naming the field
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        with _client(url, token) as c:
            r = _call(c, "POST", "/jobs", json=job_spec.model_dump(mode="json"), headers=headers,
                      params={"name": name} if name else None)
        j = r.json()
        typer.echo(j["id"])
        typer.echo(f"job {j['id']} {j['state']} at {r.headers.get('location')}", err=True)

    @app.command()
    def status(
        job_id: Annotated[int, typer.Argument(help="job id")],
        url: UrlOpt = None,
        token: TokenOpt = None,
        as_json: Annotated[bool, typer.Option("--json", help="print the full JSON")] = False,
    ) -> None:
        """Show a job's state, progress, HV and best architectures."""
        with _client(url, token) as c:
            j = _call(c, "GET", f"/jobs/{job_id}").json()
        typer.echo(json.dumps(j, indent=2) if as_json else _fmt_summary(j))

    @app.command()
    def watch(
        job_id: Annotated[int, typer.Argument(help="job id")],
        url: UrlOpt = None,
        token: TokenOpt = None,
        interval: Annotated[float, typer.Option("--interval", min=0.05)] = 1.0,
    ) -> None:
        """Live progress of a job (iteration, evaluations, HV) until it finishes."""
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[info]}"), TimeElapsedColumn())
        with _client(url, token) as c, Progress(*columns) as prog:
            it_bar = prog.add_task("iterations", total=None, info="")
            ev_bar = prog.add_task("evaluations", total=None, info="")
            while True:
                j = _call(c, "GET", f"/jobs/{job_id}").json()
                p = j["progress"]
                hv = j["hv_history"][-1]["hv"] if j["hv_history"] else None
                prog.update(it_bar, total=p["iterations"] + 1, completed=len(j["hv_history"]),
                            info=f"state={j['state']}" + (f" hv={hv:.6g}" if hv is not None else ""))
                prog.update(ev_bar, total=max(p["tasks_total"], 1), completed=p["tasks_done"],
                            info=f"archive={p['n_evaluated']} failed={p['n_failed']}")
                if j["state"] in TERMINAL:
                    break
                time.sleep(interval)
        typer.echo(_fmt_summary(j))
        if j["state"] != "succeeded":
            raise typer.Exit(1)

    _register_select(app)


def _register_select(app: typer.Typer) -> None:
    """``msunas select TARGET``: a job id selects on the server; a folder/stats file is handed to the local
    ``select`` command of ``search`` (registered before this module), so there is one ``select`` for both."""
    local = None
    for info in list(app.registered_commands):
        name = info.name or (info.callback.__name__ if info.callback else None)
        if name == "select":
            local = info.callback
            app.registered_commands.remove(info)

    @app.command("select")
    def select_cmd(
        target: Annotated[str, typer.Argument(help="a job id (selects on the server), or a search folder / its "
                                              "iter_K.stats (ours or CNAS's)")],
        n: Annotated[int, typer.Option("-n", help="number of architectures")] = 3,
        prefer: Annotated[str | None, typer.Option("--prefer", help="METRIC (lowest), trade-off, or a preference "
                                                   "point like top1#80+macs#150")] = None,
        n_exits: Annotated[int | None, typer.Option("--n-exits", help="keep early-exit nets with K exits")] = None,
        csv_path: Annotated[Path | None, typer.Option("--csv", help="write the selection as CSV")] = None,
        save: Annotated[Path | None, typer.Option("--save", help="write net_i.subnet/net_i.stats (local only)")] = None,
        width: Annotated[float, typer.Option("--width", help="width of a CNAS archive (local only)")] = 1.0,
        n_classes: Annotated[int, typer.Option("--n-classes", help="classes of a CNAS archive (local only)")] = 10,
        verify_latency: Annotated[bool, typer.Option("--verify-latency", help="measure the selection on the latency "
                                                     "table's runtime, here; exit 1 above latency_ms")] = False,
        lut: Annotated[str | None, typer.Option("--lut", help="table for --verify-latency (default: the run "
                                                "spec's latency_table)")] = None,
        repeat: Annotated[int | None, typer.Option("--repeat", help="--verify-latency timed runs")] = None,
        warmup: Annotated[int | None, typer.Option("--warmup", help="--verify-latency warm-up runs")] = None,
        url: UrlOpt = None,
        token: TokenOpt = None,
    ) -> None:
        """Pick architectures (most accurate, lowest METRIC, trade-off, preference) from a job or a search folder."""
        if not (target.isdigit() and not Path(target).exists()):
            if local is None:
                raise ValueError(f"target: {target!r} is not a job id (local selection is not available)")
            local(stats=target, n=n, prefer=prefer, n_exits=n_exits, csv_path=csv_path, save=save, width=width,
                  n_classes=n_classes, verify_latency=verify_latency, lut=lut, repeat=repeat, warmup=warmup)
            return
        body: dict[str, Any] = {"n": n}
        if prefer:
            body["prefer"] = prefer
        if n_exits is not None:
            body["n_exits"] = n_exits
        with _client(url, token) as c:
            job = _call(c, "GET", f"/jobs/{target}").json() if verify_latency else {}
            items = _call(c, "POST", f"/jobs/{target}/select", json=body).json()["items"]
        if csv_path is not None:
            from search.select import write_csv

            write_csv(items, csv_path)
        typer.echo(json.dumps(items, indent=2))
        if verify_latency:  # measured here, on this machine's runtime: the table must be readable here too
            from service.cli_search import _verify, _verify_table

            spec = job.get("spec") or {}
            path = lut or spec.get("latency_table")
            if not path:
                raise ValueError("--lut: --verify-latency needs a latency table (the job's spec has no latency_table)")
            if not Path(path).exists():
                raise ValueError(f"--lut: the job's latency table {path} is not readable on this machine; "
                                 "pass a local copy with --lut")
            bound = (job.get("constraints") or {}).get("latency_ms")
            n_bad = _verify(_verify_table(path, float(spec.get("width_mult", 1.0))), items, bound, repeat, warmup)
            if n_bad:
                typer.echo(f"msunas: {n_bad} of {len(items)} selected architectures measure above latency_ms "
                           f"{bound:g} ms", err=True)
                raise typer.Exit(1)
