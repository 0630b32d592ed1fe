"""A user's own evaluator for the ``python`` evaluator kind's tests (imported by name from the spec)."""

from __future__ import annotations

from typing import Any


def score(config: dict[str, Any], bonus: float = 0.0) -> dict[str, float]:
    """A made-up top-1 that grows with depth, kernel and expansion (and the ``bonus`` option)."""
    active = [i for s, d in enumerate(config["d"]) for i in range(4 * s, 4 * s + d)]
    size = sum(config["ks"][i] * config["e"][i] for i in active)
    return {"top1": 50.0 + 40.0 * size / (49 * 6 * len(config["ks"])) + bonus, "custom_metric": float(size)}


def broken(config: dict[str, Any]) -> dict[str, float]:
    """An evaluator that fails for every candidate."""
    raise RuntimeError("the lab's GPU is on fire")
