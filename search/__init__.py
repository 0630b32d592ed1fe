"""Search: the job spec, objectives and constraints, the engines (ask/tell), evaluators, selection and export.

Importing ``search`` registers the early-exit search space (``import early_exit``), so every spec can name it.
"""

import early_exit  # noqa: F401  (registers eemobilenetv3)
