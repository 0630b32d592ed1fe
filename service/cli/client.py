"""Client commands against a running server: ``submit``, ``status``, ``watch``, ``jobs``, ``cancel``, ``resume``.

They talk to ``--url``/``MSUNAS_URL`` with ``--token``/``MSUNAS_TOKEN``; errors the server answers are one line
naming the field (exit 2), an unreachable server exits 1.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from search.spec import load_spec
from service.cli.app import EXIT_INFEASIBLE, app
from service.cli.common import Client, JsonOpt, TokenOpt, UrlOpt, echo_json, print_table, stderr

TERMINAL = ("succeeded", "failed", "cancelled")
JobArg = Annotated[int, typer.Argument(help="job id", min=1)]


def format_summary(j: dict[str, Any]) -> str:
    """A job summary in a few lines (state, progress, HV, best architectures, error, warnings)."""
    p = j["progress"]
    hv = j["hv_history"][-1]["hv"] if j["hv_history"] else None
    lines = [
        f"job {j['id']}  state={j['state']}  iteration={p['iteration']}/{p['iterations']}  "
        f"evaluated={p['n_evaluated']} (failed {p['n_failed']}, feasible {p['n_feasible']})  "
        f"tasks {p['tasks_done']}/{p['tasks_total']} done" + (f"  hv={hv:.6g}" if hv is not None else ""),
    ]
    for k, b in (j.get("best") or {}).items():
        if b:  # null before the job has such an architecture
            lines.append(f"  {k}: arch {b['arch_id']} objectives={b['objectives']}")
    if j.get("error"):
        lines.append(f"  error: {j['error'].splitlines()[0]}")
    lines += [f"  warning: {w}" for w in j.get("warnings") or []]
    return "\n".join(lines)


@app.command(rich_help_panel="Service client")
def submit(
    spec: Annotated[Path, typer.Argument(help="job spec (YAML or JSON)")],
    url: UrlOpt = None,
    token: TokenOpt = None,
    name: Annotated[str | None, typer.Option("--name", help="a label for the job")] = None,
    idempotency_key: Annotated[str | None, typer.Option("--idempotency-key", help="resubmitting with the same key "
                                                        "returns the same job")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Submit a job spec to the server; prints the job id."""
    job_spec = load_spec(spec)  # validated here first: one line naming the field
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    with Client(url, token) as c:
        r = c.call("POST", "/jobs", json=job_spec.model_dump(mode="json"), headers=headers,
                   params={"name": name} if name else None)
    j = r.json()
    if as_json:
        echo_json(j)
    else:
        typer.echo(j["id"])
    stderr.print(f"job {j['id']} {j['state']} at {r.headers.get('location')}")


@app.command(rich_help_panel="Service client")
def status(job_id: JobArg, url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False) -> None:
    """Show a job's state, progress, HV, best architectures and warnings."""
    with Client(url, token) as c:
        j = c.json("GET", f"/jobs/{job_id}")
    if as_json:
        echo_json(j)
    else:
        typer.echo(format_summary(j))


@app.command(rich_help_panel="Service client")
def watch(
    job_id: JobArg,
    url: UrlOpt = None,
    token: TokenOpt = None,
    interval: Annotated[float, typer.Option("--interval", min=0.05, max=3600, help="seconds between polls")] = 1.0,
) -> None:
    """Live progress of a job (iteration, evaluations, HV) until it finishes; exit 1 unless it succeeded, 3 when
    it succeeded without a feasible architecture."""
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[info]}"), TimeElapsedColumn())
    with Client(url, token) as c, Progress(*columns, console=stderr) as prog:
        it_bar = prog.add_task("iterations", total=None, info="")
        ev_bar = prog.add_task("evaluations", total=None, info="")
        while True:
            j = c.json("GET", f"/jobs/{job_id}")
            p = j["progress"]
            hv = j["hv_history"][-1]["hv"] if j["hv_history"] else None
            prog.update(it_bar, total=p["iterations"] + 1, completed=len(j["hv_history"]),
                        info=f"state={j['state']}" + (f" hv={hv:.6g}" if hv is not None else ""))
            prog.update(ev_bar, total=max(p["tasks_total"], 1), completed=p["tasks_done"],
                        info=f"archive={p['n_evaluated']} failed={p['n_failed']}")
            if j["state"] in TERMINAL:
                break
            time.sleep(interval)
    typer.echo(format_summary(j))
    if j["state"] != "succeeded":
        raise typer.Exit(1)
    if j.get("warnings"):
        raise typer.Exit(EXIT_INFEASIBLE)


@app.command(rich_help_panel="Service client")
def jobs(
    url: UrlOpt = None,
    token: TokenOpt = None,
    state: Annotated[str | None, typer.Option("--state", help="queued|running|succeeded|failed|cancelled")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=100_000, help="at most this many jobs")] = 50,
    as_json: JsonOpt = False,
) -> None:
    """List your jobs, newest first."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    with Client(url, token) as c:
        while len(items) < limit:
            params: dict[str, Any] = {"limit": min(500, limit - len(items))}
            if state:
                params["state"] = state
            if cursor:
                params["cursor"] = cursor
            page = c.json("GET", "/jobs", params=params)
            items += page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                break
    if as_json:
        echo_json(items)
    else:
        print_table(items, ["id", "name", "state", "iteration", "iterations", "created_at"], title="jobs")


@app.command(rich_help_panel="Service client")
def cancel(job_id: JobArg, url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False) -> None:
    """Cancel a queued or running job (its running evaluations stop)."""
    with Client(url, token) as c:
        j = c.json("POST", f"/jobs/{job_id}/cancel")
    echo_json(j) if as_json else typer.echo(format_summary(j))


@app.command(rich_help_panel="Service client")
def resume(
    job_id: JobArg,
    from_iteration: Annotated[int | None, typer.Option("--from", min=0, help="stored iteration to resume from "
                                                       "(default: the latest)")] = None,
    force: Annotated[bool, typer.Option("--force", help="discard the iterations stored after --from")] = False,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Resume a job from a stored iteration (later iterations are kept unless --force)."""
    body: dict[str, Any] = {"force": force}
    if from_iteration is not None:
        body["from_iteration"] = from_iteration
    with Client(url, token) as c:
        j = c.json("POST", f"/jobs/{job_id}/resume", json=body)
    echo_json(j) if as_json else typer.echo(format_summary(j))
