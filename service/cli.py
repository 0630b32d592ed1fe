"""The ``msunas`` command line (typer).

Each area keeps its commands in its own module (``service/cli_*.py``) and registers them here. Input errors
(``ValueError``, bad options) print one line ``msunas: error: ...`` on stderr and exit with code 2.
"""

from __future__ import annotations

import sys

import typer

app = typer.Typer(
    name="msunas",
    help="Multi-objective neural architecture search over once-for-all MobileNetV3 subnets.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


# command modules, each with a ``register(app)`` function; modules not present in this install are skipped
COMMAND_MODULES = (
    "service.cli_core",
    "service.cli_cost",
    "service.cli_latency",
    "service.cli_search",
    "service.cli_eval",
    "service.cli_service",
)


def _register() -> None:
    import importlib

    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:
                raise
            continue
        module.register(app)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script: run the app and map input errors to one line + exit code 2."""
    _register()
    args = sys.argv[1:] if argv is None else argv
    try:
        rv = app(args=args or ["--help"], standalone_mode=False, prog_name="msunas")
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.Abort:
        print("msunas: aborted", file=sys.stderr)
        sys.exit(130)
    except typer.TyperException as e:  # usage errors: bad or missing options
        print(f"msunas: error: {e.format_message()}", file=sys.stderr)  # type: ignore[attr-defined]
        sys.exit(2)
    except (ValueError, FileNotFoundError) as e:
        print(f"msunas: error: {e}", file=sys.stderr)
        sys.exit(2)
    if isinstance(rv, int) and rv:
        sys.exit(rv)


if __name__ == "__main__":
    main()
