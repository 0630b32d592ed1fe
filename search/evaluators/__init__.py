"""Built-in evaluators; importing this package registers them (``oracle``, ``supernet``, ``proxy``;
``early_exit`` routes eemobilenetv3 jobs of kind ``supernet`` to the early-exit evaluator)."""

from __future__ import annotations

import importlib

for _name in ("oracle", "supernet", "proxy", "early_exit"):  # early_exit after supernet: it wraps that kind
    try:
        importlib.import_module(f"search.evaluators.{_name}")
    except ModuleNotFoundError as _e:  # an evaluator whose module has not landed yet is simply not registered
        if _e.name != f"search.evaluators.{_name}":
            raise
