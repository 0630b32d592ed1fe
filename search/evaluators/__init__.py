"""Built-in evaluators; importing this package registers them (``oracle``, ``supernet``, ``proxy``, ``python``).

``kind: supernet`` jobs on the early-exit space ``eemobilenetv3`` get the early-exit evaluator
(``search/evaluators/early_exit.py``).
"""

from __future__ import annotations

from search.evaluators import oracle, proxy, python, supernet  # noqa: F401  (registration on import)
