"""``msunas supernet train``: train an elastic supernet on your dataset (or the built-in digits one)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import torch
import typer

from service.cli.app import app
from supernets import codec
from supernets.device import RunOptions
from supernets.errors import InputError
from supernets.train import TrainConfig, train_digits_supernet, train_supernet

supernet_app = typer.Typer(help="Once-for-all supernets: train one on your own dataset.", no_args_is_help=True)
app.add_typer(supernet_app, name="supernet", rich_help_panel="Architectures")


@supernet_app.command("train")
def train(
    dataset: Annotated[str | None, typer.Option("--dataset", help="cifar10|cifar100|svhn|cinic10|imagenet|"
                                                "imagefolder|digits")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="checkpoint file (once-for-all format), rewritten "
                                             "every epoch")] = None,
    builtin: Annotated[str | None, typer.Option("--builtin", help="train the built-in supernet NAME (digits) into "
                                                "the cache, where searches on digits find it")] = None,
    root: Annotated[str | None, typer.Option("--root", help="dataset folder (not needed for digits)")] = None,
    vld_size: Annotated[int | None, typer.Option("--vld-size", min=1, help="validation images held out")] = None,
    width_mult: Annotated[float, typer.Option("--width-mult", help="1.0 or 1.2")] = 1.0,
    resolution: Annotated[tuple[int, int], typer.Option("--resolution", help="lr ur: resolutions trained")]
    = (32, 64),
    epochs: Annotated[int, typer.Option("--epochs", min=1, max=10_000)] = 20,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, max=4096)] = 64,
    lr: Annotated[float, typer.Option("--lr", min=0.0, max=10.0, help="peak learning rate (cosine per step)")]
    = 0.05,
    n_random: Annotated[int, typer.Option("--n-random", min=0, max=16, help="random subnets per step besides the "
                                          "largest/smallest")] = 2,
    train_images: Annotated[int | None, typer.Option("--train-images", min=1, help="images per epoch (default: "
                                                     "all)")] = None,
    init: Annotated[str | None, typer.Option("--init", help="start from this supernet (e.g. an official OFA "
                                             "one)")] = None,
    seed: Annotated[int, typer.Option("--seed", min=0)] = 0,
    eval_images: Annotated[int, typer.Option("--eval-images", min=1, max=1_000_000, help="images of the "
                                             "epoch-end check (BN calibration and validation)")] = 500,
    method: Annotated[str, typer.Option("--method", help="sandwich (the sandwich rule, default) or hardcore "
                                        "(HardCoRe-NAS: heaviest first, then multipath)")] = "sandwich",
    threads: Annotated[int | None, typer.Option("--threads", min=1, max=256, help="torch CPU threads")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="continue an unfinished --out checkpoint")] = False,
    device: Annotated[str, typer.Option("--device", help="cpu|cuda|cuda:N (under torchrun: each rank its "
                                        "LOCAL_RANK GPU)")] = "cpu",
    amp: Annotated[bool | None, typer.Option("--amp/--no-amp", help="mixed precision, bf16 where supported "
                                             "(default: on for CUDA, off for CPU)")] = None,
    channels_last: Annotated[bool | None, typer.Option("--channels-last/--no-channels-last", help="channels_last "
                                                       "memory format (default: on for CUDA)")] = None,
    workers: Annotated[int, typer.Option("--workers", min=0, max=256, help="DataLoader worker processes "
                                         "(pinned memory on CUDA)")] = 0,
    progress: Annotated[bool, typer.Option("--progress/--no-progress")] = True,
) -> None:
    """Train an elastic supernet with the sandwich rule and in-place distillation (see docs/evaluation.md)."""
    if threads:
        torch.set_num_threads(threads)
    if builtin is not None:
        if builtin != "digits":
            raise InputError("--builtin", f"the only built-in supernet is digits, got {builtin!r}")
        res = train_digits_supernet(width_mult=width_mult, progress=progress)
        how = f"trained in {res['seconds']:.0f} s" if res["trained"] else "already trained"
        typer.echo(f"built-in digits supernet (width {width_mult}): {res['path']} ({how})")
        return
    if dataset is None or out is None:
        raise InputError("--dataset" if dataset is None else "--out", "required (or --builtin digits)")
    codec.check_width(width_mult)
    codec.resolution_grid(*resolution)
    cfg = TrainConfig(dataset=dataset, root=root, vld_size=vld_size, width_mult=width_mult, resolution=resolution,
                      epochs=epochs, batch_size=batch_size, lr=lr, n_random=n_random, train_images=train_images,
                      init=init, seed=seed, eval_images=eval_images, method=method)
    run = RunOptions(device=device, amp=amp, channels_last=channels_last, workers=workers)
    summary = train_supernet(cfg, out, resume=resume, progress=progress, log=typer.echo, run=run)
    if summary.get("rank", 0) != 0:  # torchrun: rank 0 reports
        return
    last = summary["history"][-1] if summary["history"] else {}
    typer.echo(f"supernet written to {out} ({summary['epochs']} epochs; validation top-1 of the largest subnet "
               f"{last.get('top1_max', float('nan')):.1f}%, smallest {last.get('top1_min', float('nan')):.1f}%)")
