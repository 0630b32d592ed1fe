"""Worker plugin for the reliability tests: the real ``oracle`` evaluator, made slow (``MSUNAS_TEST_EVAL_DELAY``
seconds per evaluation) so a test can kill a worker while it is in the middle of an evaluation."""

from __future__ import annotations

import os
import time
from typing import Any

import search.evaluators  # noqa: F401  (registers the built-in oracle first, so we wrap it)
from search.evaluator import _REGISTRY, Evaluator, register_evaluator

_real = _REGISTRY["oracle"]


class _Slow(Evaluator):
    def __init__(self, inner: Evaluator, delay: float) -> None:
        self.inner, self.delay = inner, delay

    def _evaluate(self, config: dict[str, Any]) -> dict[str, float]:
        time.sleep(self.delay)
        r = self.inner.evaluate(config)
        if r.status != "ok":
            raise RuntimeError(r.error)
        return r.metrics


@register_evaluator("oracle")
def _slow_oracle(spec: Any) -> Evaluator:
    return _Slow(_real(spec), float(os.environ.get("MSUNAS_TEST_EVAL_DELAY", "0.2")))
