"""``msunas predictor contributions``: BINAS's measured accuracy contributions (search/contributions.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, cast

import typer

from service.cli.app import app
from supernets.errors import InputError

predictor_app = typer.Typer(help="Accuracy predictors: measure BINAS contribution tables.", no_args_is_help=True)
app.add_typer(predictor_app, name="predictor", rich_help_panel="Architectures")


def _job(dataset: str, root: str | None, supernet: str | None, random_init: bool, width_mult: float,
         resolution: tuple[int, int], vld_size: int | None, bn_calib_images: int, batch_size: int, seed: int) -> Any:
    from search.spec import load_spec

    return load_spec({
        "dataset": {"name": dataset, "root": root, "vld_size": vld_size},
        "supernet": {"path": supernet, "random_init": random_init},
        "width_mult": width_mult, "resolution": list(resolution), "seed": seed,
        "evaluator": {"kind": "supernet", "n_epochs": 0, "bn_calib_images": bn_calib_images, "batch_size": batch_size},
    })


@predictor_app.command("contributions")
def contributions(
    out: Annotated[Path, typer.Option("--out", help="the table (JSON), rewritten after every measurement")],
    dataset: Annotated[str, typer.Option("--dataset", help="cifar10|cifar100|svhn|cinic10|imagenet|imagefolder|"
                                         "digits")] = "digits",
    root: Annotated[str | None, typer.Option("--root", help="dataset folder (not needed for digits)")] = None,
    supernet: Annotated[str | None, typer.Option("--supernet", help="supernet checkpoint")] = None,
    builtin: Annotated[str | None, typer.Option("--builtin", help="the built-in supernet NAME (digits), as "
                                                "`msunas search` finds it")] = None,
    random_init: Annotated[bool, typer.Option("--random-init", help="a randomly initialised supernet")] = False,
    width_mult: Annotated[float, typer.Option("--width-mult", help="1.0 or 1.2")] = 1.0,
    resolution: Annotated[tuple[int, int], typer.Option("--resolution", help="lr ur: the job's resolution range "
                                                        "(a base accuracy per resolution of its grid)")] = (32, 64),
    vld_size: Annotated[int | None, typer.Option("--vld-size", min=1, help="validation images held out")] = None,
    bn_calib_images: Annotated[int, typer.Option("--bn-calib-images", min=0, max=1_000_000)] = 500,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, max=4096)] = 128,
    seed: Annotated[int, typer.Option("--seed", min=0)] = 0,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="stop after this many new measurements "
                                              "(the table stays partial; --resume continues it)")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="continue a partial --out table")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="measure again over an existing --out")] = False,
    threads: Annotated[int | None, typer.Option("--threads", min=1, max=256, help="torch CPU threads")] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress")] = True,
) -> None:
    """Measure each (stage depth, layer operator) accuracy contribution on the supernet (BINAS; docs/search.md)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from search.contributions import measure_contributions, table_artefact
    from search.evaluators.supernet import SupernetEvaluator

    if builtin is not None and (builtin != "digits" or dataset != "digits" or supernet):
        raise InputError("--builtin", "the only built-in supernet is digits (with --dataset digits, no --supernet)")
    if resume and overwrite:
        raise InputError("--resume", "give --resume or --overwrite, not both")
    if threads:
        import torch

        torch.set_num_threads(threads)
    job = _job(dataset, root, supernet, random_init, width_mult, resolution, vld_size, bn_calib_images, batch_size,
               seed)
    artefact = table_artefact(job)
    if out.exists() and not (resume or overwrite):
        raise InputError("--out", f"{out} exists (pass --resume to continue it or --overwrite to redo it)")
    ev = SupernetEvaluator(job)

    def top1(cfg: dict[str, Any]) -> float:
        r = ev.evaluate(cfg)
        if r.status != "ok":
            raise InputError("--supernet", f"evaluating {cfg} failed: {r.error}")
        return float(r.metrics["top1"])

    bar = Progress(TextColumn("[bold]contributions[/] {task.fields[name]}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), disable=not progress)
    with bar:
        task = bar.add_task("measure", total=None, name="")

        def step(done: int, total: int, name: str) -> None:
            bar.update(task, completed=done, total=total, name=name)

        table = measure_contributions(top1, out, artefact=artefact, resolutions=list(cast(Any, ev.space).resolutions),
                                      resume=resume, overwrite=overwrite, limit=limit, progress=step)
    state = "complete" if table["complete"] else "partial (continue with --resume)"
    typer.echo(f"{out}: {len(table['measured'])} of {table['n_probes']} measured, {state}; supernet "
               f"{artefact['supernet_id']}")
