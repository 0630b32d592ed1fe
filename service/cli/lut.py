"""``msunas lut build|predict``: measure a latency lookup table on this machine, predict subnet latency."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from service.cli.app import app
from service.cli.common import echo_json
from service.cli.config_args import load_config_arg, parse_resolution_range
from supernets.errors import InputError
from supernets.latency import DEVICES, LatencyTable, build_table, table_summary

lut_app = typer.Typer(help="Latency lookup tables: build one on this machine, predict subnet latency.",
                      no_args_is_help=True)
app.add_typer(lut_app, name="lut", rich_help_panel="Architectures")


@lut_app.command("build")
def build(
    out: Annotated[str, typer.Option("--out", help="table JSON to write (an existing one with the same settings is "
                                     "continued)")],
    device: Annotated[str, typer.Option("--device", help="onnxruntime-cpu | torch-cpu | torch-cuda")]
    = "onnxruntime-cpu",
    width: Annotated[float, typer.Option("--width", help="width multiplier: 1.0 or 1.2")] = 1.0,
    resolutions: Annotated[str, typer.Option("--resolutions", help="LR:UR, step 4")] = "160:224",
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, max=1024)] = 1,
    threads: Annotated[int, typer.Option("--threads", min=1, max=256)] = 1,
    clock: Annotated[str, typer.Option("--clock", help="wall (latency) | cpu (thread CPU time, threads 1: for a "
                                       "loaded machine)")] = "wall",
    statistic: Annotated[str, typer.Option("--statistic", help="median | min of the timed runs (min repeats best on "
                                           "a noisy shared machine)")] = "median",
    repeat: Annotated[int, typer.Option("--repeat", min=1, max=10_000, help="timed runs per block")] = 30,
    warmup: Annotated[int, typer.Option("--warmup", min=0, max=10_000, help="untimed runs before timing")] = 5,
    n_classes: Annotated[int, typer.Option("--n-classes", min=2, max=100_000)] = 1000,
    calibrate: Annotated[int, typer.Option("--calibrate", min=0, max=10_000, help="random subnets measured end to "
                                           "end for the bias correction (0: none)")] = 10,
    seed: Annotated[int, typer.Option("--seed", min=0)] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", help="no progress bar")] = False,
) -> None:
    """Measure every distinct block of the space on a runtime into a JSON table."""
    if device not in DEVICES:
        raise InputError("--device", f"expected one of {list(DEVICES)}, got {device!r}")
    lo, hi = parse_resolution_range(resolutions, "--resolutions")
    table = build_table(out, device=device, width_mult=width, resolutions=list(range(lo, hi + 1, 4)),
                        n_classes=n_classes, batch_size=batch_size, threads=threads, clock=clock,
                        statistic=statistic, repeat=repeat, warmup=warmup, calibrate=calibrate, seed=seed,
                        progress=not quiet)
    echo_json(table_summary(table))


@lut_app.command("predict")
def predict(
    table_path: Annotated[str, typer.Option("--lut", help="msunas JSON table, NSGANetV2 YAML or once-for-all YAML "
                                            "file/folder")],
    config: Annotated[str, typer.Option("--config", help="config JSON (or a list of them), or a JSON file path")],
    width: Annotated[float | None, typer.Option("--width", help="width of a foreign table holding both")] = None,
    raw: Annotated[bool, typer.Option("--raw", help="the plain block sum, without the bias correction")] = False,
    breakdown: Annotated[bool, typer.Option("--breakdown", help="also print each block's key and ms")] = False,
) -> None:
    """Print the predicted latency (ms) of a config (or a list of configs) from a table."""
    table = LatencyTable.load(table_path, width_mult=width)
    cfg = load_config_arg(config)
    many = isinstance(cfg, list)
    configs = cfg if many else [cfg]
    if not configs or not all(isinstance(c, dict) for c in configs):
        raise InputError("--config", "expected a JSON object (ks, e, d, r) or a non-empty list of them")
    configs = [{k: v for k, v in c.items() if k != "artefact"} for c in configs]
    lat = table.predict(configs, raw=raw).tolist()
    block_sum = table.block_sum(configs).tolist()
    out: dict[str, Any] = {
        "latency_ms": lat if many else lat[0],
        "block_sum_ms": block_sum if many else block_sum[0],
        "corrected": bool(table.correction) and not raw,
        "table": table_summary(table),
    }
    if breakdown:
        out["blocks"] = [table.breakdown(c) for c in configs] if many else table.breakdown(configs[0])
    echo_json(out)
