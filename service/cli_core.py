"""Core commands: ``demo`` (and, as they land, the commands of the other areas)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the core commands to ``app``."""

    @app.callback()
    def _root() -> None:
        """msunas: multi-objective NAS over once-for-all MobileNetV3 subnets."""

    @app.command()
    def demo() -> None:
        """Run a small real search end to end on the built-in digits dataset."""
        typer.echo(
            "msunas demo: the end-to-end demo (train a small supernet on digits, run a search, print and plot\n"
            "the front, export the chosen architecture to ONNX) lands with the search engine and evaluator.\n"
            "Today it checks the install and prints the search space."
        )
        import numpy as np

        from supernets import get_search_space

        ss = get_search_space("mobilenetv3", lr=32, ur=64)
        config = ss.sample(1, np.random.default_rng(0))[0]
        typer.echo(f"a random subnet of {ss.describe()}: {config}")
