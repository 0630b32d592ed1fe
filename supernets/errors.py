"""The one error type for bad user input, raised by every package and mapped once at the edges.

``InputError`` names the offending field (``dataset.root``, ``--config``, ``cursor``) and, where one helps, a
hint saying what to pass instead. The REST API answers it with 422 problem+json whose ``field`` member is
``err.field``; the CLI prints ``msunas: error: <field>: <message>`` and exits with code 2. Nobody parses the
message: the field travels as an attribute. It subclasses ``ValueError`` so that pydantic validators and code
that catches ``ValueError`` keep working.
"""

from __future__ import annotations


class InputError(ValueError):
    """Bad input: ``field`` names what to fix, ``message`` says why, ``hint`` (optional) what to pass instead."""

    def __init__(self, field: str, message: str, *, hint: str | None = None) -> None:
        self.field = field
        self.message = message
        self.hint = hint
        super().__init__(f"{field}: {message}" + (f"; {hint}" if hint else ""))
