"""``{kind: python, callable: "pkg.module:fn"}``: your own evaluator, in-process (see ``PythonEvaluatorSpec``).

The callable gets a candidate's canonical config and the spec's ``options`` and returns metrics with ``top1``
(%); exceptions become failed candidates (with their reason), as for every evaluator. The exact costs of the
config are added, so cost objectives and constraints work as with the built-in evaluators.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from typing import Any

from search.evaluator import Evaluator, register_evaluator
from search.objectives import exact_costs, n_classes_of
from search.spec import JobSpec, PythonEvaluatorSpec
from supernets.errors import InputError


def load_callable(ref: str) -> Callable[..., Any]:
    """The function ``package.module:function`` names (``InputError`` naming ``evaluator.callable``)."""
    module, _, name = ref.partition(":")
    try:
        fn = getattr(importlib.import_module(module), name)
    except ImportError as e:
        raise InputError("evaluator.callable", f"cannot import {module!r}: {e}") from None
    except AttributeError:
        raise InputError("evaluator.callable", f"module {module!r} has no {name!r}") from None
    if not callable(fn):
        raise InputError("evaluator.callable", f"{ref} is not callable")
    return fn  # type: ignore[no-any-return]


class PythonEvaluator(Evaluator):
    """Calls the user's function per candidate; adds the exact costs."""

    def __init__(self, fn: Callable[..., Any], options: dict[str, Any], width_mult: float, n_classes: int) -> None:
        self.fn, self.options, self.width_mult, self.n_classes = fn, options, width_mult, n_classes

    def _evaluate(self, config: dict[str, Any]) -> dict[str, float]:
        out = self.fn(dict(config), **self.options)
        if not isinstance(out, dict) or "top1" not in out:
            raise ValueError(f"the evaluator returned {type(out).__name__} without top1; return a dict with top1 (%)")
        metrics = {str(k): float(v) for k, v in out.items()}
        if not all(math.isfinite(v) for v in metrics.values()):
            raise ValueError(f"the evaluator returned non-finite metrics {metrics}")
        costs = exact_costs([{k: config[k] for k in ("ks", "e", "d", "r")}], self.width_mult, self.n_classes)
        for k, v in costs.items():
            metrics.setdefault(k, float(v[0]))
        return metrics


@register_evaluator("python")
def _python(job: JobSpec) -> Evaluator:
    ev = job.evaluator
    if not isinstance(ev, PythonEvaluatorSpec):
        raise InputError("evaluator.kind", f"expected python, got {ev.kind}")
    return PythonEvaluator(load_callable(ev.callable), dict(ev.options), float(job.width_mult), n_classes_of(job))
