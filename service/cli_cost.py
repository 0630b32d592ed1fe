"""``msunas cost``: the exact analytic cost figures of an architecture config, printed as JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

KNOWN_FIELDS = {"ks", "e", "d", "r", "t", "b"}  # t/b: early-exit genes, ignored (backbone cost)


def load_config_arg(text: str, option: str = "--config") -> Any:
    """Parse a ``--config`` value: inline JSON, or the path of a JSON file; ``ValueError`` on bad input."""
    stripped = text.strip()
    if stripped.startswith(("{", "[")):
        source = "inline JSON"
    else:
        path = Path(text)
        if not path.is_file():
            raise ValueError(f"{option}: neither inline JSON nor an existing JSON file: {text!r}")
        stripped, source = path.read_text(), str(path)
    try:
        return json.loads(stripped)
    except json.JSONDecodeError as e:
        raise ValueError(f"{option}: invalid JSON in {source}: {e.msg} (line {e.lineno}, column {e.colno})") from None


def parse_resolution_range(text: str) -> tuple[int, int]:
    """``"LR:UR"`` (or one ``"R"``) -> ``(lr, ur)``; ``ValueError`` naming ``--resolution`` otherwise."""
    parts = text.split(":")
    try:
        if len(parts) == 1:
            lo = hi = int(parts[0])
        elif len(parts) == 2:
            lo, hi = int(parts[0]), int(parts[1])
        else:
            raise ValueError
    except ValueError:
        raise ValueError(f"--resolution: expected LR:UR (e.g. 192:256), got {text!r}") from None
    return lo, hi


def cost_report(config: Any, *, width_mult: float, n_classes: int, resolution: str | None) -> dict[str, Any]:
    """The cost figures of one config as a JSON-able dict (validated; ``ValueError`` naming the field)."""
    from supernets import codec, get_search_space
    from supernets.cost import config_cost

    if not isinstance(config, dict):
        raise ValueError(f"config: expected a JSON object with keys ks, e, d, r; got {type(config).__name__}")
    extra = set(config) - KNOWN_FIELDS
    if extra:
        raise ValueError(f"{sorted(extra)[0]}: unknown config field (fields: ks, e, d, r)")
    width_mult = codec.check_width(width_mult)
    if resolution is not None:
        lr, ur = parse_resolution_range(resolution)
        canon = get_search_space("mobilenetv3", lr=lr, ur=ur, width_mult=width_mult).validate(
            {k: config[k] for k in ("ks", "e", "d", "r") if k in config}
        )
    else:
        canon = codec.normalize_backbone(config)
    figures = config_cost(canon, width_mult=width_mult, n_classes=n_classes)
    return {
        "config": canon,
        "width_mult": width_mult,
        "n_classes": n_classes,
        **figures,
        "params_M": round(figures["params"] / 1e6, 4),
        "macs_M": round(figures["macs"] / 1e6, 4),
        "activations_M": round(figures["activations"] / 1e6, 4),
    }


def register(app: typer.Typer) -> None:
    """Add ``msunas cost`` to ``app``."""

    @app.command()
    def cost(
        config: str = typer.Option(..., "--config", help="Config JSON (ks, e, d, r) or a path to a JSON file."),
        n_classes: int = typer.Option(1000, "--n-classes", help="Classifier outputs."),
        width: float = typer.Option(1.0, "--width", help="Width multiplier: 1.0 or 1.2."),
        resolution: str | None = typer.Option(
            None, "--resolution", help="LR:UR: also check that r lies on the grid LR..UR step 4."
        ),
    ) -> None:
        """Print params, MACs (exact and as ofa's counter reports them), activations and peak activation."""
        if n_classes < 1:
            raise ValueError(f"--n-classes: expected a positive integer, got {n_classes}")
        report = cost_report(load_config_arg(config), width_mult=width, n_classes=n_classes, resolution=resolution)
        typer.echo(json.dumps(report))
