"""Core commands: the root callback and ``demo``."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add the core commands to ``app``."""

    @app.callback()
    def _root() -> None:
        """msunas: multi-objective NAS over once-for-all MobileNetV3 subnets."""

    @app.command()
    def demo(
        out: Path = typer.Option(Path("demo-out"), "--out", help="where the demo writes its outputs"),
        iterations: int | None = typer.Option(None, "--iterations", help="search iterations (default 3)"),
    ) -> None:
        """Run a small real search end to end on the built-in digits dataset (about 5-10 minutes on 2 cores)."""
        from service.demo import run_demo

        run_demo(out, iterations=iterations)
