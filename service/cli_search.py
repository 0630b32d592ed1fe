"""``msunas search`` (one search in-process, seed-compatible output folder), ``select`` and ``plot``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer


def _load_engine(spec_path: str, resume: str | None) -> tuple[Any, Any]:
    from search.engine import make_engine
    from search.io import iteration_of, read_stats, records_from_stats
    from search.spec import load_spec

    spec = load_spec(spec_path)
    eng = make_engine(spec)
    if resume:
        doc = read_stats(resume)
        if isinstance(doc.get("engine"), dict):
            eng.load_state_dict(doc["engine"])
        else:  # a CNAS/MSuNAS file: its archive, re-scored for this spec
            k = iteration_of(doc["_path"])
            rows = [{"config": r["config"], "metrics": r["metrics"]} for r in records_from_stats(doc)]
            eng.load_archive(rows, k)
    return spec, eng


def run_search(spec_path: str, out: Path, resume: str | None = None, quiet: bool = False) -> dict[str, Any]:
    """Run a whole search in-process with a rich progress display; returns ``Engine.result()``."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from search.evaluator import get_evaluator
    from search.io import write_iteration

    spec, eng = _load_engine(spec_path, resume)
    evaluator = get_evaluator(spec)
    console = Console(stderr=True, quiet=quiet)
    out.mkdir(parents=True, exist_ok=True)
    (out / "spec.json").write_text(json.dumps(spec.model_dump(mode="json"), indent=1))
    total = spec.n_doe + spec.iterations * spec.n_iter
    done = sum(1 for _ in eng.archive)
    f2_name = spec.objectives[1] if len(spec.objectives) > 1 else None
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[info]}"),
        console=console,
        transient=False,
    ) as progress:
        task = progress.add_task(f"iter {eng.iteration}", total=total, completed=min(done, total), info="")
        while eng.has_next():
            k = eng.iteration
            progress.update(task, description=f"iter {k}/{spec.iterations} proposing")
            cands = eng.ask()
            progress.update(task, description=f"iter {k}/{spec.iterations} evaluating")
            results = []
            for c in cands:
                results.append(evaluator.evaluate(c))
                progress.advance(task)
            stats = eng.tell(results)
            write_iteration(out, eng, stats, results)
            front = eng.front()
            best = min(front, key=lambda r: r["objectives"][0]) if front else None
            info = f"HV {stats['hv']:.4f}  archive {stats['n_archive']}  failed {stats['n_failed']}"
            if best is not None:
                info += f"  best top1 {100 - best['objectives'][0]:.2f} %"
            if f2_name and front:
                info += f"  min {f2_name} {min(r['objectives'][1] for r in front):.3g}"
            sur = stats.get("surrogate") or {}
            if sur:
                info += f"  surrogate {sur.get('winner')} tau {sur.get('tau', float('nan')):.2f}"
            progress.update(task, info=info)
            console.log(f"iteration {stats['iteration']}: {info}")
        if eng.stop_reason:
            console.log(f"stopped early: {eng.stop_reason}")
    res: dict[str, Any] = eng.result()
    return res


def register(app: typer.Typer) -> None:
    """Add ``search`` and ``select`` to ``app``."""

    @app.command()
    def search(
        spec: str = typer.Argument(..., help="job spec (YAML or JSON)"),
        out: Path = typer.Option(..., "--out", help="output folder (iter_K.stats, iter_K/, failed/)"),
        resume: str | None = typer.Option(None, "--resume", help="continue from DIR/iter_K.stats (ours or CNAS's)"),
        quiet: bool = typer.Option(False, "--quiet", help="no progress display"),
    ) -> None:
        """Run one search in-process and write the seed-compatible folder."""
        res = run_search(spec, out, resume, quiet)
        typer.echo(
            json.dumps(
                {"out": str(out), "n_archive": len(res["archive"]), "n_front": len(res["front"]), "hv": res["hv"]}
            )
        )

    @app.command()
    def plot(
        source: str = typer.Argument(..., help="a job id (fetched from the server), or a search folder or its "
                                     "iter_K.stats (ours or CNAS's)"),
        out: Path = typer.Option(Path("front.png"), "--out", help="PNG to write"),
        url: str | None = typer.Option(None, "--url", help="server of a job id (default: $MSUNAS_URL or "
                                       "http://127.0.0.1:8000)"),
        token: str | None = typer.Option(None, "--token", help="bearer token of a job id (default: $MSUNAS_TOKEN)"),
    ) -> None:
        """Plot the archive, its Pareto front (and the constraint bounding the second objective) and the HV
        history of a job or a search folder as a PNG."""
        from search.plot import plot_search

        if source.isdigit() and not Path(source).exists():
            from service.cli_service import job_plot_data

            data = job_plot_data(int(source), url, token)
        else:
            data = _local_plot_data(source)
        png = plot_search(data["records"], out, objectives=data["objectives"], history=data["history"],
                          constraint=data["constraint"], title=data["title"])
        typer.echo(str(png))

    @app.command()
    def select(
        stats: str = typer.Argument(..., help="a search folder or its iter_K.stats (ours or CNAS's)"),
        n: int = typer.Option(3, "-n", help="number of architectures"),
        prefer: str | None = typer.Option(
            None, "--prefer", help="METRIC (lowest), trade-off, or a preference point like top1#80+macs#150"
        ),
        n_exits: int | None = typer.Option(None, "--n-exits", help="keep early-exit nets with K exits"),
        csv_path: Path | None = typer.Option(None, "--csv", help="write the selection as CSV"),
        save: Path | None = typer.Option(None, "--save", help="write net_i.subnet/net_i.stats of the selection"),
        width: float = typer.Option(1.0, "--width", help="width of a CNAS archive (for its exact costs)"),
        n_classes: int = typer.Option(10, "--n-classes", help="classes of a CNAS archive (for its exact costs)"),
        verify_latency: bool = typer.Option(
            False,
            "--verify-latency",
            help="measure the selection end to end on the latency table's runtime; exit 1 if any exceeds latency_ms",
        ),
        lut: str | None = typer.Option(None, "--lut", help="table for --verify-latency (default: the spec's)"),
        repeat: int | None = typer.Option(None, "--repeat", help="--verify-latency timed runs (default: the table's)"),
        warmup: int | None = typer.Option(
            None, "--warmup", help="--verify-latency warm-up runs (default: the table's)"
        ),
    ) -> None:
        """Pick architectures from a finished search (most accurate, lowest METRIC, trade-off, preference).

        ``--verify-latency`` then measures the selected architectures end to end on the runtime the latency table
        was built with (device, threads, batch size, clock from the table), prints measured vs predicted ms, and
        exits with code 1 when any measures above the job's ``latency_ms`` bound (2 for a table that cannot be
        re-measured here, e.g. an imported YAML).
        """
        from rich.console import Console
        from rich.table import Table

        from search.io import add_exact_costs, read_stats, records_from_stats
        from search.select import select as do_select
        from search.select import to_rows, write_csv

        doc = read_stats(stats)
        records = records_from_stats(doc)
        constraints: dict[str, float] = {}
        eng = doc.get("engine")
        sp: dict[str, Any] = {}
        if isinstance(eng, dict):
            sp = eng.get("spec") or {}
            constraints = dict(sp.get("constraints") or {})  # records also carry their feasible flag
        else:
            try:
                add_exact_costs(records, width, n_classes)
            except ImportError:
                pass
        table_path = (lut or sp.get("latency_table")) if verify_latency else None
        if verify_latency and not table_path:
            raise ValueError("--lut: --verify-latency needs a latency table (the run's spec has no latency_table)")
        lat_table = _verify_table(table_path, float(sp.get("width_mult", width))) if table_path else None
        chosen = do_select(records, n=n, prefer=prefer, n_exits=n_exits, constraints=constraints)
        rows = to_rows(chosen)
        table = Table(title=f"{len(chosen)} selected from {doc['_path']}")
        shown = ("rank", "f1", "f2", "top1", "params", "macs", "activations", "n_exits")
        cols = [c for c in shown if rows and c in rows[0]]
        for c in cols + ["d", "r"]:
            table.add_column(c)
        for row, rec in zip(rows, chosen, strict=True):
            vals = [f"{row[c]:.4g}" if isinstance(row[c], float) else str(row[c]) for c in cols]
            table.add_row(*vals, str(rec["config"]["d"]), str(rec["config"]["r"]))
        Console().print(table)
        if not chosen:
            typer.echo("no architecture matches (failed, infeasible or filtered out)", err=True)
        if csv_path is not None:
            write_csv(chosen, csv_path)
        if save is not None:
            save.mkdir(parents=True, exist_ok=True)
            for i, r in enumerate(chosen):
                (save / f"net_{i}.subnet").write_text(json.dumps(r["config"]))
                (save / f"net_{i}.stats").write_text(json.dumps({k: r.get(k) for k in ("metrics", "objectives")}))
        if lat_table is not None:
            bound = constraints.get("latency_ms")
            n_bad = _verify(lat_table, chosen, bound, repeat, warmup)
            if n_bad:
                typer.echo(
                    f"msunas: {n_bad} of {len(chosen)} selected architectures measure above latency_ms {bound:g} ms",
                    err=True,
                )
                raise typer.Exit(1)


def _local_plot_data(source: str) -> dict[str, Any]:
    """Records, objectives, HV history, second-objective constraint and title of a search folder / stats file."""
    from search.io import read_stats, records_from_stats
    from search.objectives import constraint_lines

    doc = read_stats(source)
    eng = doc.get("engine")
    history = (eng.get("history") if isinstance(eng, dict) else None) or []
    objectives = doc.get("objectives") or ["top1_err", "f2"]
    sp = (eng.get("spec") if isinstance(eng, dict) else None) or {}
    lines = [c for c in constraint_lines(objectives, sp.get("constraints")) if c["axis"] == 1]
    return {"records": records_from_stats(doc), "objectives": objectives, "history": history,
            "constraint": lines[0]["value"] if lines else None, "title": str(doc["_path"])}


def _verify_table(path: str, width_mult: float) -> Any:
    """The latency table of ``--verify-latency``, checked to be re-measurable here and of the run's width."""
    from supernets.latency import LatencyTable, runtime_of

    table = LatencyTable.load(path, width_mult=width_mult)
    runtime_of(table)  # a foreign (YAML) table: clear error before anything is measured
    if table.width_mult != width_mult:
        raise ValueError(f"--lut: {path} is a width {table.width_mult} table, the run has width {width_mult}")
    return table


def _verify(
    table: Any, chosen: list[dict[str, Any]], bound: float | None, repeat: int | None, warmup: int | None
) -> int:
    """Measure the selection on the table's runtime, print measured vs predicted; the number above ``bound``."""
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    from supernets.latency import machine_info, runtime_of, verify_latency

    rt = {**runtime_of(table), **{k: v for k, v in (("repeat", repeat), ("warmup", warmup)) if v is not None}}
    here, built = machine_info()["cpu"], (table.meta.get("machine") or {}).get("cpu")
    if built and built != here:
        typer.echo(f"msunas: warning: the table was built on {built!r}, measuring on {here!r}", err=True)
    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(f"measuring on {rt['device']}", total=len(chosen))
        rows = verify_latency(
            table,
            [r["config"] for r in chosen],
            bound_ms=bound,
            repeat=repeat,
            warmup=warmup,
            progress=lambda i: bar.update(task, completed=i),
        )
    title = f"latency on {rt['device']} ({rt['clock']} clock, {rt['threads']} thread(s), batch {rt['batch_size']})"
    out = Table(title=title)
    for c in ("rank", "predicted ms", "measured ms", "error %", "bound ms", ""):
        out.add_column(c)
    for i, row in enumerate(rows):
        err = "-" if row["error_pct"] is None else f"{row['error_pct']:+.1f}"
        status = {None: "", False: "ok", True: "EXCEEDS"}[row["exceeds"]]
        bound_s = "-" if bound is None else f"{bound:g}"
        out.add_row(str(i + 1), f"{row['predicted_ms']:.3f}", f"{row['measured_ms']:.3f}", err, bound_s, status)
    Console().print(out)
    n_bad = sum(bool(r["exceeds"]) for r in rows)
    summary = {"lut": table.source, **rt, "bound_ms": bound, "n_exceed": n_bad, "rows": rows}
    typer.echo(json.dumps({"verify_latency": summary}))
    return n_bad
