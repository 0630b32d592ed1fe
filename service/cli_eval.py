"""Evaluation commands: ``msunas supernet train`` and ``msunas export``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer


def parse_config_arg(value: str) -> dict[str, Any]:
    """A config given as a JSON string or as a path to a JSON file (e.g. a search's ``net_i.subnet``)."""
    text = value
    p = Path(value).expanduser()
    if not value.lstrip().startswith("{"):
        if not p.is_file():
            raise ValueError(f"--config: {value!r} is neither a JSON object nor an existing file")
        text = p.read_text()
    try:
        cfg = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"--config: not valid JSON ({e})") from None
    if not isinstance(cfg, dict):
        raise ValueError("--config: expected a JSON object with ks, e, d, r")
    return cfg


def register(app: typer.Typer) -> None:
    """Add ``supernet train`` and ``export`` to ``app``."""
    supernet_app = typer.Typer(help="Once-for-all supernets: train one on your own dataset.", no_args_is_help=True)
    app.add_typer(supernet_app, name="supernet")

    @supernet_app.command("train")
    def train(
        dataset: str = typer.Option(..., "--dataset", help="cifar10|cifar100|svhn|cinic10|imagenet|digits"),
        out: Path = typer.Option(..., "--out", help="checkpoint file (once-for-all format), rewritten every epoch"),
        root: str | None = typer.Option(None, "--root", help="dataset folder (not needed for digits)"),
        vld_size: int | None = typer.Option(None, "--vld-size", help="validation images held out of training"),
        width_mult: float = typer.Option(1.0, "--width-mult", help="1.0 or 1.2"),
        resolution: tuple[int, int] = typer.Option((32, 64), "--resolution", help="lr ur: resolutions trained"),
        epochs: int = typer.Option(20, "--epochs"),
        batch_size: int = typer.Option(64, "--batch-size"),
        lr: float = typer.Option(0.05, "--lr", help="peak learning rate (cosine schedule per step)"),
        n_random: int = typer.Option(2, "--n-random", help="random subnets per step besides the largest/smallest"),
        train_images: int | None = typer.Option(None, "--train-images", help="images per epoch (default: all)"),
        init: str | None = typer.Option(None, "--init", help="start from this supernet (e.g. an official OFA one)"),
        seed: int = typer.Option(0, "--seed"),
        threads: int | None = typer.Option(None, "--threads", help="torch CPU threads"),
        resume: bool = typer.Option(False, "--resume", help="continue an unfinished --out checkpoint"),
        progress: bool = typer.Option(True, "--progress/--no-progress"),
    ) -> None:
        """Train an elastic supernet with the sandwich rule and in-place distillation (see docs/evaluation.md)."""
        import torch

        from supernets import codec
        from supernets.train import TrainConfig, train_supernet

        if threads:
            torch.set_num_threads(threads)
        codec.check_width(width_mult)
        codec.resolution_grid(*resolution)
        cfg = TrainConfig(
            dataset=dataset,
            root=root,
            vld_size=vld_size,
            width_mult=width_mult,
            resolution=resolution,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            n_random=n_random,
            train_images=train_images,
            init=init,
            seed=seed,
        )
        summary = train_supernet(cfg, out, resume=resume, progress=progress, log=typer.echo)
        last = summary["history"][-1] if summary["history"] else {}
        typer.echo(
            f"supernet written to {out} ({summary['epochs']} epochs; validation top-1 of the largest subnet "
            f"{last.get('top1_max', float('nan')):.1f}%, smallest {last.get('top1_min', float('nan')):.1f}%)"
        )

    @app.command("export")
    def export(
        config: str = typer.Option(..., "--config", help="architecture: JSON object or a JSON file"),
        fmt: str = typer.Option("onnx", "--format", help="onnx|torch"),
        out: Path = typer.Option(..., "--out", help="output file"),
        supernet: str | None = typer.Option(None, "--supernet", help="supernet checkpoint (default: built-in digits)"),
        dataset: str | None = typer.Option(
            None, "--dataset", help="recalibrate BN (and fine-tune with --n-epochs) on this dataset before export"
        ),
        root: str | None = typer.Option(None, "--root", help="dataset folder"),
        n_epochs: int = typer.Option(0, "--n-epochs", help="fine-tuning epochs before export (needs --dataset)"),
        seed: int = typer.Option(0, "--seed"),
    ) -> None:
        """Export one architecture with weights inherited from a supernet as ONNX or a PyTorch checkpoint."""
        from search.evaluators.supernet import SupernetEvaluator
        from search.spec import load_spec
        from supernets import codec
        from supernets.export import FORMATS, export_subnet
        from supernets.ofa_supernet import head_classes, load_supernet, net_width

        if fmt not in FORMATS:
            raise ValueError(f"--format: expected one of {list(FORMATS)}, got {fmt!r}")
        cfg = codec.normalize_backbone(parse_config_arg(config))
        if n_epochs and not dataset:
            raise ValueError("--n-epochs: fine-tuning needs --dataset")
        if supernet is None:
            if dataset not in (None, "digits"):
                raise ValueError("--supernet: required unless the dataset is the built-in digits")
            from supernets.train import digits_supernet_path

            supernet = str(digits_supernet_path())
        net_sn = load_supernet(supernet)
        prepared, metrics = None, None
        if dataset:
            r = int(cfg["r"])
            job = load_spec(
                {
                    "dataset": {"name": dataset, "root": root, "n_classes": head_classes(net_sn)},
                    "width_mult": net_width(net_sn),
                    "resolution": [r, r],
                    "seed": seed,
                    "supernet": {"path": supernet},
                    "evaluator": {"kind": "supernet", "n_epochs": n_epochs},
                }
            )
            ev = SupernetEvaluator(job, supernet=net_sn)
            try:
                prepared, metrics = ev.prepare(cfg)
                metrics.update(ev.validate_net(prepared, r))
            except (FloatingPointError, RuntimeError) as e:
                raise ValueError(f"export: preparing the subnet failed: {e}") from None
        info = export_subnet(cfg, net_sn, fmt, out, net=prepared, metrics=metrics)
        extra = f", onnxruntime parity {info['max_abs_diff']:.2e}" if "max_abs_diff" in info else ""
        acc = f", validation top-1 {metrics['top1']:.2f}%" if metrics else ""
        typer.echo(f"exported {fmt} to {info['path']}{extra}{acc}")
