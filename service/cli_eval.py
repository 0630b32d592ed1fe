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
        head_width: int = typer.Option(128, "--head-width", help="early exits: channels of the exit heads"),
        thresholds: str | None = typer.Option(
            None, "--thresholds", help="early exits: max-softmax thresholds, one per early exit (e.g. 0.9,0.8)"
        ),
        exit_rule: str = typer.Option("confidence", "--exit-rule", help="early exits: confidence|margin (EDANAS)"),
        exit_head: str = typer.Option("ours", "--exit-head", help="early exits: ours|edanas (EDANAS's heads)"),
    ) -> None:
        """Export one architecture with weights inherited from a supernet as ONNX or a PyTorch checkpoint.

        An early-exit config (with ``t`` or ``b``) is exported with every exit's logits and its exit policy
        (docs/early_exit.md); with ``--dataset`` its backbone and heads are first trained jointly ``--n-epochs``
        and measured on the validation split, as the search evaluated it.
        """
        from search.evaluators.supernet import SupernetEvaluator
        from search.spec import load_spec
        from supernets import codec
        from supernets.export import FORMATS, export_subnet
        from supernets.ofa_supernet import head_classes, load_supernet, net_width

        if fmt not in FORMATS:
            raise ValueError(f"--format: expected one of {list(FORMATS)}, got {fmt!r}")
        raw = parse_config_arg(config)
        early = "t" in raw or "b" in raw
        cfg = codec.normalize_backbone(raw)
        if n_epochs and not dataset:
            raise ValueError("--n-epochs: fine-tuning needs --dataset")
        if head_width < 1:
            raise ValueError(f"--head-width: expected a positive channel count, got {head_width}")
        if thresholds is not None and not early:
            raise ValueError("--thresholds: only early-exit configs (with t or b) have exit thresholds")
        if supernet is None:
            if dataset not in (None, "digits"):
                raise ValueError("--supernet: required unless the dataset is the built-in digits")
            from supernets.train import digits_supernet_path

            supernet = str(digits_supernet_path())
        net_sn = load_supernet(supernet)
        if early:
            _export_early_exit(
                raw, config, net_sn, supernet, fmt, out, dataset, root, n_epochs, seed, head_width, thresholds,
                exit_rule, exit_head,
            )
            return
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


def _parse_thresholds(text: str) -> list[float]:
    try:
        vals = [float(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise ValueError(f"--thresholds: {text!r} is not a comma-separated list of numbers") from None
    if not vals:
        raise ValueError("--thresholds: expected at least one threshold")
    return vals


def _stats_thresholds(config_arg: str, config: dict[str, Any]) -> list[float] | None:
    """The ``threshold_s*`` of a ``net_i.stats`` beside a ``net_i.subnet`` given as ``--config`` (or None)."""
    from early_exit.objectives import thresholds_of_metrics

    p = Path(config_arg).expanduser()
    if config_arg.lstrip().startswith("{") or p.suffix != ".subnet" or not p.with_suffix(".stats").is_file():
        return None
    try:
        doc = json.loads(p.with_suffix(".stats").read_text())
    except json.JSONDecodeError:
        return None
    return thresholds_of_metrics(config, (doc.get("metrics") or {}) if isinstance(doc, dict) else {})


def _export_early_exit(
    raw: dict[str, Any],
    config_arg: str,
    net_sn: Any,
    supernet: str,
    fmt: str,
    out: Path,
    dataset: str | None,
    root: str | None,
    n_epochs: int,
    seed: int,
    head_width: int,
    thresholds: str | None,
    exit_rule: str = "confidence",
    head: str = "ours",
) -> None:
    """``msunas export`` of an early-exit config: every exit's logits + the policy (early_exit/export.py)."""
    from early_exit.evaluate import EarlyExitSettings, exit_thresholds
    from early_exit.export import export_early_exit
    from early_exit.network import exits_of
    from early_exit.space import DEFAULT_T_VALUES
    from search.evaluators.early_exit import EarlyExitEvaluator
    from search.spec import load_spec
    from supernets import get_search_space
    from supernets.ofa_supernet import head_classes, net_width

    n_classes, width = head_classes(net_sn), net_width(net_sn)
    EarlyExitSettings(n_classes=n_classes, exit_rule=exit_rule, head=head)  # names a bad --exit-rule/--exit-head
    r = int(raw["r"][0] if isinstance(raw.get("r"), list) else raw["r"])
    mode = "t" if "t" in raw else "b"
    t_values = list(DEFAULT_T_VALUES)
    if mode == "t" and isinstance(raw["t"], list):  # the config's own values (a search may use another grid)
        t_values = sorted({float(v) for v in raw["t"] if isinstance(v, (int, float))} | {1.0})
    ee = {"exit_mode": mode, "t_values": t_values, "head_width": head_width, "exit_rule": exit_rule, "head": head}
    space = get_search_space("eemobilenetv3", lr=r, ur=r, width_mult=width, exit_mode=mode, t_values=t_values)
    cfg = space.validate(raw)
    thr = _parse_thresholds(thresholds) if thresholds is not None else None
    net: Any = None  # the prepared (jointly trained) network, when --dataset is given
    metrics: dict[str, Any] | None = None
    x: Any = None  # inputs for the ONNX check (real images when --dataset is given)
    if dataset:
        job = load_spec(
            {
                "search_space": "eemobilenetv3",
                "dataset": {"name": dataset, "root": root, "n_classes": n_classes},
                "width_mult": width,
                "resolution": [r, r],
                "seed": seed,
                "supernet": {"path": supernet},
                "evaluator": {"kind": "supernet", "n_epochs": n_epochs},
                "early_exit": ee,
            }
        )
        ev = EarlyExitEvaluator(job, supernet=net_sn)
        try:
            net, prep = ev.prepare(cfg)
            metrics = {**prep, **ev.measure(net, cfg)}
        except (FloatingPointError, RuntimeError) as e:
            raise ValueError(f"export: preparing the early-exit network failed: {e}") from None
        if thr is None:
            thr = list(metrics["thresholds"])
        x = ev.calibration_batches(r)[0][0][:16].cpu() if ev.calibration_batches(r) else None
    if thr is None:
        thr = exit_thresholds(cfg, n_classes, exit_rule) if mode == "t" else _stats_thresholds(config_arg, cfg)
    if thr is None:
        raise ValueError(
            "--thresholds: b-mode exits are calibrated after training; give --thresholds, a net_i.subnet with its"
            " net_i.stats beside it, or --dataset to calibrate them"
        )
    info = export_early_exit(
        cfg, net_sn, fmt, out, thresholds=thr, net=net, head_width=head_width, metrics=metrics, seed=seed, x=x,
        head=head, exit_rule=exit_rule,
    )
    exits = ", ".join(f"s{s + 1}" for s, p in enumerate(exits_of(cfg)) if p) or "none"
    parts = [f"exits {exits} + final", "thresholds " + ", ".join(f"{t:.3g}" for t in info["thresholds"])]
    if "max_abs_diff" in info:
        parts.append(f"onnxruntime parity {info['max_abs_diff']:.2e}")
    if metrics:
        parts.append(f"validation top-1 {metrics['top1']:.2f}% at avg MACs {metrics['avg_macs'] / 1e6:.3g} M")
    typer.echo(f"exported early-exit {fmt} to {info['path']} ({'; '.join(parts)})")
    if net is None:
        typer.echo(
            "msunas: warning: exit heads are untrained (not part of the supernet); pass --dataset and --n-epochs"
            " to train them with the backbone before export",
            err=True,
        )
