"""``msunas lut build|predict``: measure a latency lookup table on this machine, predict subnet latency."""

from __future__ import annotations

import json
from typing import Any

import typer

from service.cli_cost import load_config_arg, parse_resolution_range


def _resolutions(text: str) -> list[int]:
    lo, hi = parse_resolution_range(text.replace("--resolution", "--resolutions"))
    if lo < 32 or hi < lo or (hi - lo) % 4:
        raise ValueError(f"--resolutions: expected LR:UR with 32 <= LR <= UR and UR - LR a multiple of 4, got {text!r}")
    return list(range(lo, hi + 1, 4))


def register(app: typer.Typer) -> None:
    """Add the ``lut`` command group to ``app``."""
    lut = typer.Typer(help="Latency lookup tables: build one on this machine, predict subnet latency.")
    app.add_typer(lut, name="lut")

    @lut.command("build")
    def build(
        out: str = typer.Option(
            ..., "--out", help="Table JSON to write (an existing one with the same settings is continued)."
        ),
        device: str = typer.Option("onnxruntime-cpu", "--device", help="onnxruntime-cpu | torch-cpu | torch-cuda"),
        width: float = typer.Option(1.0, "--width", help="Width multiplier: 1.0 or 1.2."),
        resolutions: str = typer.Option("160:224", "--resolutions", help="LR:UR, step 4."),
        batch_size: int = typer.Option(1, "--batch-size"),
        threads: int = typer.Option(1, "--threads"),
        clock: str = typer.Option(
            "wall", "--clock", help="wall (latency) | cpu (thread CPU time, threads 1: for a loaded machine)."
        ),
        statistic: str = typer.Option(
            "median", "--statistic", help="median | min of the timed runs (min repeats best on a noisy shared machine)."
        ),
        repeat: int = typer.Option(30, "--repeat", help="Timed runs per block (their --statistic is stored)."),
        warmup: int = typer.Option(5, "--warmup", help="Untimed runs before timing."),
        n_classes: int = typer.Option(1000, "--n-classes"),
        calibrate: int = typer.Option(
            10, "--calibrate", help="Random subnets measured end to end for the bias correction (0: none)."
        ),
        seed: int = typer.Option(0, "--seed"),
        quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
    ) -> None:
        """Measure every distinct block of the space on a runtime (median of R runs) into a JSON table."""
        from supernets.latency import DEVICES, build_table, table_summary

        if device not in DEVICES:
            raise ValueError(f"--device: expected one of {list(DEVICES)}, got {device!r}")
        table = build_table(
            out,
            device=device,
            width_mult=width,
            resolutions=_resolutions(resolutions),
            n_classes=n_classes,
            batch_size=batch_size,
            threads=threads,
            clock=clock,
            statistic=statistic,
            repeat=repeat,
            warmup=warmup,
            calibrate=calibrate,
            seed=seed,
            progress=not quiet,
        )
        typer.echo(json.dumps(table_summary(table)))

    @lut.command("predict")
    def predict(
        table_path: str = typer.Option(
            ..., "--lut", help="msunas JSON table, NSGANetV2 YAML or once-for-all YAML file/folder."
        ),
        config: str = typer.Option(..., "--config", help="Config JSON (or a list of them), or a JSON file path."),
        width: float | None = typer.Option(None, "--width", help="Width of a foreign table holding both (NSGANetV2)."),
        raw: bool = typer.Option(False, "--raw", help="The plain block sum, without the bias correction."),
        breakdown: bool = typer.Option(False, "--breakdown", help="Also print each block's key and ms."),
    ) -> None:
        """Print the predicted latency (ms) of a config (or a list of configs) from a table."""
        from supernets.latency import LatencyTable, table_summary

        table = LatencyTable.load(table_path, width_mult=width)
        cfg = load_config_arg(config)
        many = isinstance(cfg, list)
        configs = cfg if many else [cfg]
        if not configs or not all(isinstance(c, dict) for c in configs):
            raise ValueError("--config: expected a JSON object (ks, e, d, r) or a non-empty list of them")
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
        typer.echo(json.dumps(out))
