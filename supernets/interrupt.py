"""Cooperative interruption of long evaluations: a worker whose task was cancelled (or whose lease was lost)
stops the running evaluation at the next batch instead of finishing it.

The worker runs an evaluation inside ``interruptible(event)``; every batch loop (fine-tuning, BN recalibration,
validation, the datasets' batch generators) calls :func:`check`, which raises :class:`Interrupted` once the event
is set. ``Interrupted`` is a ``BaseException``: the evaluators' ``except Exception`` (a failed candidate) does not
swallow it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_EVENT: ContextVar[threading.Event | None] = ContextVar("msunas_interrupt", default=None)


class Interrupted(BaseException):  # noqa: N818 - like KeyboardInterrupt: a request to stop, not an error
    """The evaluation was asked to stop (its task was cancelled or its lease lost)."""


@contextmanager
def interruptible(event: threading.Event) -> Iterator[None]:
    """Run the block so that :func:`check` raises :class:`Interrupted` once ``event`` is set."""
    token = _EVENT.set(event)
    try:
        yield
    finally:
        _EVENT.reset(token)


def check() -> None:
    """Raise :class:`Interrupted` when the surrounding :func:`interruptible` block was asked to stop."""
    event = _EVENT.get()
    if event is not None and event.is_set():
        raise Interrupted("evaluation interrupted: its task was cancelled or its lease was lost")
