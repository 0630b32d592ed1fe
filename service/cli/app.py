"""The root typer app, ``--version``, and the entry point that maps errors to one line and an exit code."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from search.provenance import msunas_version
from service.cli.common import ServiceError

app = typer.Typer(
    name="msunas",
    help="Multi-objective neural architecture search over once-for-all MobileNetV3 subnets.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

EXIT_INPUT, EXIT_SERVICE, EXIT_INFEASIBLE = 2, 1, 3


def _version(value: bool) -> None:
    if value:
        typer.echo(f"msunas {msunas_version()}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                         help="print the version and exit")] = False,
) -> None:
    """msunas: multi-objective NAS over once-for-all MobileNetV3 subnets."""


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script: run the app; map errors to one line and an exit code."""
    args = sys.argv[1:] if argv is None else argv
    try:
        rv = app(args=args or ["--help"], standalone_mode=False, prog_name="msunas")
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.Abort:
        print("msunas: aborted", file=sys.stderr)
        sys.exit(130)
    except typer.TyperException as e:  # usage errors: bad or missing options, bad option values
        print(f"msunas: error: {e.format_message()}", file=sys.stderr)  # type: ignore[attr-defined]
        sys.exit(EXIT_INPUT)
    except ServiceError as e:
        print(f"msunas: error: {e}", file=sys.stderr)
        sys.exit(EXIT_SERVICE)
    except (ValueError, LookupError, FileNotFoundError) as e:  # InputError is a ValueError; NotFoundError a LookupError
        print(f"msunas: error: {e}", file=sys.stderr)
        sys.exit(EXIT_INPUT)
    if isinstance(rv, int) and rv:
        sys.exit(rv)
