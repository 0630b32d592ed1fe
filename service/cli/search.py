"""``msunas search`` (one search in-process), ``msunas plot`` (a run folder or a job) and ``msunas demo``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from search.evaluator import EvalResult
from search.io import read_stats, records_from_stats
from search.objectives import constraint_lines
from search.plot import plot_search
from search.runner import run_search
from search.spec import load_spec
from service.cli.app import EXIT_INFEASIBLE, app
from service.cli.common import Client, JsonOpt, TokenOpt, UrlOpt, echo_json, is_job_id, stderr
from service.demo import run_demo


class RichProgress:
    """The search's progress on stderr: one bar over all candidates, one log line per iteration."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self.bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), TextColumn("{task.fields[info]}"), console=stderr, disable=quiet)
        self.task: Any = None
        self.f2_name: str | None = None

    def __enter__(self) -> RichProgress:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.__exit__(None, None, None)

    def start(self, total: int, done: int) -> None:
        self.task = self.bar.add_task("search", total=total, completed=min(done, total), info="")

    def phase(self, iteration: int, iterations: int, what: str) -> None:
        self.bar.update(self.task, description=f"iter {iteration}/{iterations} {what}")

    def evaluated(self, result: EvalResult) -> None:
        self.bar.advance(self.task)

    def iteration_done(self, stats: Mapping[str, Any], front: Sequence[Mapping[str, Any]]) -> None:
        info = f"HV {stats['hv']:.4f}  archive {stats['n_archive']}  failed {stats['n_failed']}"
        if front:
            best = min(front, key=lambda r: r["objectives"][0])
            info += f"  best f1 {best['objectives'][0]:.3g}"
        sur = stats.get("surrogate") or {}
        if sur:
            tau = sur.get("tau")
            info += f"  surrogate {sur.get('winner')} tau " + ("n/a" if tau is None or tau != tau else f"{tau:.2f}")
        self.bar.update(self.task, info=info)
        if not self.quiet:
            self.bar.console.log(f"iteration {stats['iteration']}: {info}")


@app.command(rich_help_panel="Search")
def search(
    spec: Annotated[str, typer.Argument(help="job spec (YAML or JSON)")],
    out: Annotated[Path, typer.Option("--out", help="run folder (iter_K.stats, iter_K/, failed/); refused when it "
                                      "holds something else")],
    resume: Annotated[str | None, typer.Option("--resume", help="continue exactly from DIR/iter_K.stats of our own "
                                               "run")] = None,
    warm_start: Annotated[str | None, typer.Option("--warm-start", help="start from a foreign archive (e.g. a CNAS "
                                                   "iter_K.stats), re-scored for this spec")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="clear the run in --out first (with --resume: "
                                            "replace its later iterations)")] = False,
    threads: Annotated[int | None, typer.Option("--threads", min=1, max=256, help="torch threads (default: 1, or "
                                                "up to 4 cores for the supernet evaluator; BLAS pools get 1)")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="no progress display")] = False,
) -> None:
    """Run one search in-process and write the seed-compatible run folder; prints a JSON summary. Exit 3 (with a
    warning) when no evaluated architecture meets the constraints."""
    with RichProgress(quiet) as progress:
        res = run_search(spec, out, resume=resume, warm_start=warm_start, overwrite=overwrite, threads=threads,
                         progress=progress)
    echo_json(res.summary())
    for w in res.warnings:
        stderr.print(f"msunas: warning: {w}")
    if res.warnings:
        raise typer.Exit(EXIT_INFEASIBLE)


def _local_plot_data(source: str) -> dict[str, Any]:
    """Records, objectives, HV history, second-objective constraint and title of a run folder / stats file."""
    doc = read_stats(source)
    eng = doc.get("engine")
    history = (eng.get("history") if isinstance(eng, dict) else None) or []
    spec = load_spec(eng["spec"]) if isinstance(eng, dict) and isinstance(eng.get("spec"), dict) else None
    objectives = list(spec.objectives) if spec is not None else (doc.get("objectives") or ["top1_err", "f2"])
    lines = [c for c in constraint_lines(objectives, spec.constraints if spec else None) if c["axis"] == 1]
    return {"records": records_from_stats(doc), "objectives": objectives, "history": history,
            "constraint": lines[0]["value"] if lines else None, "title": str(doc["_path"])}


def job_plot_data(job_id: int, url: str | None, token: str | None, page_size: int = 1000) -> dict[str, Any]:
    """What ``msunas plot ID`` draws, fetched from the server (the archive ``page_size`` rows a request)."""
    with Client(url, token) as c:
        j = c.json("GET", f"/jobs/{job_id}")
        records = c.archive(job_id, page_size)
    lines = [ln for ln in j.get("constraint_lines") or [] if ln["axis"] == 1]
    title = f"job {job_id}" + (f" ({j['name']})" if j.get("name") else "") + f": {j['state']}"
    return {"records": records, "objectives": j["objectives"], "history": j["hv_history"],
            "constraint": lines[0]["value"] if lines else None, "title": title}


@app.command(rich_help_panel="Search")
def plot(
    source: Annotated[str, typer.Argument(help="a job id (fetched from the server), or a run folder or its "
                                          "iter_K.stats (ours or CNAS's)")],
    out: Annotated[Path, typer.Option("--out", help="PNG to write")] = Path("front.png"),
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Plot the archive, its Pareto front (and the constraint bounding the second objective) and the HV history of
    a job or a run folder as a PNG."""
    data = job_plot_data(int(source), url, token) if is_job_id(source) else _local_plot_data(source)
    png = plot_search(data["records"], out, objectives=data["objectives"], history=data["history"],
                      constraint=data["constraint"], title=data["title"])
    typer.echo(str(png))


@app.command(rich_help_panel="Search")
def demo(
    out: Annotated[Path, typer.Option("--out", help="where the demo writes its outputs")] = Path("demo-out"),
    iterations: Annotated[int | None, typer.Option("--iterations", min=0, max=100, help="search iterations "
                                                   "(default 3)")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run a small real search end to end on the built-in digits dataset (trains the digits supernet first when
    this machine has none: about 3 minutes; then 1-2 minutes of search on 2 cores)."""
    paths = run_demo(out, iterations=iterations)
    if as_json:
        echo_json(paths)
