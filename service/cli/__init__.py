"""The ``msunas`` command line (typer): one module per command group, all registered on ``service.cli.app.app``.

Input errors (``InputError``/``ValueError``, bad options) print one line ``msunas: error: ...`` on stderr and
exit with code 2; an unreachable server or a server error exits with 1; a search or selection that finds no
feasible architecture exits with 3.
"""

from service.cli import (  # noqa: F401  (register the commands)
    arch,
    client,
    db,
    lut,
    predictor,
    search,
    server,
    supernet,
    train,
)
from service.cli.app import app, main

__all__ = ["app", "main"]
