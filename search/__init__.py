"""Search: the job spec, objectives and constraints, the engines (ask/tell), evaluators, selection and export.

The Python API::

    from search import run_search, load_spec, select_records, SelectOptions, export_architecture
    result = run_search("spec.yaml", "runs/mine")                 # a whole search in-process
    picks = select_records(result.archive, load_spec("spec.yaml"), SelectOptions(n=3, prefer="trade-off"))
    export_architecture(picks[0]["config"], load_spec("spec.yaml"), "onnx", "net.onnx")

Importing ``search`` registers the early-exit search space (``import early_exit``), so every spec can name it.
"""

import early_exit  # noqa: F401  (registers eemobilenetv3)
from search.engine import ENGINE_KINDS, Engine, make_engine
from search.evaluator import EvalResult, Evaluator, get_evaluator, register_evaluator
from search.export import export_architecture
from search.runner import SearchResult, run_search
from search.select import SelectOptions, select, select_records
from search.spec import JobSpec, load_spec

__all__ = [
    "ENGINE_KINDS", "Engine", "EvalResult", "Evaluator", "JobSpec", "SearchResult", "SelectOptions",
    "export_architecture", "get_evaluator", "load_spec", "make_engine", "register_evaluator", "run_search",
    "select", "select_records",
]
