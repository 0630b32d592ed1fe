"""Objectives and constraints: what the engine minimises and what it must respect.

Objectives (all minimised; the first is ``top1_err``, or ``top1_robust`` as CNAS runs FlatNAS:
``objectives: [top1_robust, tiny_ml]``, ``cnas.py --first_obj top1_robust``)
-------------------------------------------------------------
=================  ======================================  ===========  =========================
name               value                                   unit         source
=================  ======================================  ===========  =========================
``top1_err``       100 - top-1 accuracy                    %            evaluator (``top1``)
``params``         parameter count                         millions     exact cost model
``macs``           multiply-accumulates of one image       millions     exact cost model
``activations``    CNAS activations (sum of layer outputs) millions     exact cost model
``peak_activation`` largest input+output of one layer      millions     exact cost model
``latency``        latency lookup table prediction         ms           ``supernets.latency``
``tiny_ml``        CNAS's weighted penalty (below)         M-weighted   exact cost model
``avg_macs``       exit-weighted average MACs              millions     evaluator (``avg_macs``)
``top1_robust``    FlatNAS: alpha*top1_err+alpha_norm*     %            evaluator (``top1``, ``robustness``)
                   (1-alpha)*R (:mod:`robustness.objective`)
=================  ======================================  ===========  =========================

A single objective (``objectives: [top1_err]``) is allowed too.

``top1_robust`` combines the error with the flatness R (``metrics.robustness``, percentage points lost under
weight noise); ``alpha`` is ``robustness.alpha`` of the spec and ``alpha_norm = mean(top1_err) / mean(R)`` is
re-estimated from the archive by the engine every iteration (:meth:`Objectives.update_alpha_norm`), which then
re-scores every archived record from its stored raw ``top1`` and ``robustness``. The surrogate predicts R.

Constraints (maxima, in the spec in counts: ``params: 2.0e6``, ``macs: 100e6``, ``activations: 5e6``,
``avg_macs: 50e6``; ``latency_ms`` in ms). Two modes:

- ``penalty`` (CNAS): the second objective gets ``factor * sum_k w_k * max(0, c_k - max_k)`` added, with c_k and
  max_k in millions (ms for latency). For ``tiny_ml`` this is exactly CNAS's figure of merit
  ``tiny_ml = sum_k w_k * (c_k + factor * max(0, c_k - max_k))`` over params, MACs and activations, with the
  defaults of CNAS's command line (``cnas.py`` ``--pmax 2 --mmax 10**10 --amax 5``, in millions: no MACs cap unless
  the spec gives one) when the spec gives no maximum, weights 1, 1/40, 1 and factor 1e10. A violator thus lies
  far outside the hypervolume's reference box.
- ``hard``: constraint values ``G_k = c_k / max_k - 1`` (<= 0 is feasible) go to pymoo as inequality
  constraints, so NSGA-II uses constrained domination (feasible first); the engine never proposes an infeasible
  candidate when a feasible one is known, and selection never returns a violator.

Cost objectives and constraints come from the exact analytic cost model (``supernets.cost.cost_metrics``), never
from building networks in the inner loop.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from robustness.objective import estimate_alpha_norm, top1_robust
from supernets import codec
from supernets.cost import cost_metrics
from supernets.datasets import dataset_classes
from supernets.errors import InputError
from supernets.latency import LatencyTable

if TYPE_CHECKING:
    from search.spec import JobSpec

COST_KEYS = ("params", "macs", "activations", "peak_activation")
MILLION = 1.0e6

# CNAS defaults of the tiny_ml figure of merit (counts): cnas.py's argparse defaults --pmax 2.0, --mmax 10**10,
# --amax 5.0 (millions). mmax 1e10 M means no MACs cap by default (the 100 M of AuxiliarySingleLevelProblem's
# signature is never used: cnas.py always passes its --mmax).
TINY_ML_DEFAULT_MAX = {"params": 2.0e6, "macs": 1.0e10 * 1.0e6, "activations": 5.0e6}
TINY_ML_KEYS = ("params", "macs", "activations")



@dataclass(frozen=True)
class ObjectiveDef:
    """One objective of the registry: its unit and where its value comes from."""

    name: str
    unit: str
    source: str  # "metric" (from the evaluator), "cost" (exact cost model) or "latency"
    metric: str | None = None  # metric name for source == "metric"
    help: str = ""


OBJECTIVES: dict[str, ObjectiveDef] = {}


def register_objective(obj: ObjectiveDef) -> ObjectiveDef:
    """Add an objective to the registry (other packages may add their own)."""
    OBJECTIVES[obj.name] = obj
    return obj


for _o in (
    ObjectiveDef("top1_err", "%", "metric", "top1", "100 - top-1 accuracy"),
    ObjectiveDef("params", "M", "cost", None, "parameter count"),
    ObjectiveDef("macs", "M", "cost", None, "multiply-accumulates per image"),
    ObjectiveDef("activations", "M", "cost", None, "sum of layer output sizes (CNAS)"),
    ObjectiveDef("peak_activation", "M", "cost", None, "largest input+output of a single layer"),
    ObjectiveDef("latency", "ms", "latency", None, "summed latency lookup table"),
    ObjectiveDef("tiny_ml", "M (weighted)", "cost", None, "CNAS weighted penalty of params, MACs, activations"),
    ObjectiveDef("avg_macs", "M", "metric", "avg_macs", "exit-weighted average MACs (early exit)"),
    ObjectiveDef("top1_robust", "%", "metric", "robustness", "alpha*top1_err + alpha_norm*(1-alpha)*R (FlatNAS)"),
):
    register_objective(_o)

# constraint key -> (cost/metric name, scale to the unit used in penalties)
CONSTRAINTS: dict[str, tuple[str, float]] = {
    "params": ("params", MILLION),
    "macs": ("macs", MILLION),
    "activations": ("activations", MILLION),
    "latency_ms": ("latency_ms", 1.0),
    "avg_macs": ("avg_macs", MILLION),
}

# objective -> the constraint that bounds it directly (plots draw it as a line on that objective's axis)
OBJECTIVE_CONSTRAINT: dict[str, str] = {
    "params": "params",
    "macs": "macs",
    "activations": "activations",
    "latency": "latency_ms",
    "avg_macs": "avg_macs",
}


def constraint_lines(objectives: Sequence[str], constraints: Mapping[str, float] | None) -> list[dict[str, Any]]:
    """The constraints that bound an objective directly, in that objective's unit (millions for counts, ms):
    ``[{"axis": i, "objective": name, "constraint": key, "value": v}]`` -- what plots draw as a line."""
    out: list[dict[str, Any]] = []
    for i, name in enumerate(objectives):
        key = OBJECTIVE_CONSTRAINT.get(name)
        if key is None or not constraints or constraints.get(key) is None:
            continue
        value = float(constraints[key]) / CONSTRAINTS[key][1]
        out.append({"axis": i, "objective": name, "constraint": key, "value": value})
    return out


LatencyFn = Callable[[Sequence[Mapping[str, Any]]], np.ndarray]
_LATENCY_PROVIDER: list[Callable[[str, float], LatencyFn]] = []


def set_latency_provider(factory: Callable[[str, float], LatencyFn]) -> None:
    """Override the latency model: ``factory(table_path, width_mult) -> fn(configs or arrays) -> ms array``."""
    _LATENCY_PROVIDER[:] = [factory]


def _latency_fn(path: str, width_mult: float) -> LatencyFn:
    """Latency predictor of a table: a registered provider, else ``supernets.latency.LatencyTable``."""
    if _LATENCY_PROVIDER:
        return _LATENCY_PROVIDER[0](path, width_mult)

    try:
        table = LatencyTable.load(path, width_mult=width_mult)
    except FileNotFoundError as e:
        raise InputError("latency_table", f"{e}") from None
    except ValueError as e:
        raise InputError("latency_table", f"{e}") from None
    if table.width_mult != width_mult:
        raise InputError("latency_table", f"{path} is a width {table.width_mult} table, the job has {width_mult}")
    return table.predict  # type: ignore[no-any-return]


def n_classes_of(spec: JobSpec) -> int:
    """Classes of the job's task: ``dataset.n_classes``, else 1000 for the ImageNet oracle, else the dataset's."""
    if spec.dataset.n_classes:
        return int(spec.dataset.n_classes)
    if spec.evaluator.kind == "oracle":
        return 1000
    return dataset_classes(spec.dataset.name, spec.dataset.root)


def exact_costs(configs: Sequence[Mapping[str, Any]], width_mult: float, n_classes: int) -> dict[str, np.ndarray]:
    """Exact params/MACs/activations/peak_activation (counts) of canonical configs, vectorised."""
    if len(configs) == 0:
        return {k: np.zeros(0) for k in COST_KEYS}
    arrays = codec.backbone_arrays(configs)
    out = cost_metrics(arrays, width_mult=width_mult, n_classes=n_classes)
    return {k: np.asarray(out[k], dtype=np.float64) for k in COST_KEYS}


class Objectives:
    """The objectives and constraints of one job, evaluated on configs and evaluator metrics.

    ``f1`` is ``top1_err`` (%); ``f2`` (when two objectives) in the unit of the registry table above.
    """

    def __init__(self, spec: JobSpec) -> None:
        self.names = list(spec.objectives)
        for n in self.names:
            if n not in OBJECTIVES:
                raise InputError("objectives", f"{n!r} is not one of {sorted(OBJECTIVES)}")
        self.n_obj = len(self.names)
        self.mode = spec.constraint_mode
        self.constraints = dict(spec.constraints)
        self.factor = float(spec.penalty.factor)
        self.weights = dict(spec.penalty.weights)
        self.width_mult = float(spec.width_mult)
        self.n_classes = n_classes_of(spec)
        uses_latency = "latency" in self.names or "latency_ms" in self.constraints
        self._latency: LatencyFn | None = None
        if uses_latency:
            if not spec.latency_table:
                raise InputError("latency_table", "the latency objective/constraint needs a latency table path")
            self._latency = _latency_fn(spec.latency_table, self.width_mult)
        self.second = OBJECTIVES[self.names[1]] if self.n_obj == 2 else None
        # top1_robust: alpha from the spec, alpha_norm re-estimated from the archive (update_alpha_norm)
        self.rescored = "top1_robust" in self.names
        self.alpha = float(spec.robustness.alpha)
        self.alpha_norm = 1.0
        # objective values that come from the evaluator must be predicted before evaluation
        self.predicted_metrics = [OBJECTIVES[n].metric for n in self.names if OBJECTIVES[n].source == "metric"]
        self.constraint_keys = sorted(self.constraints)
        self.n_constr = len(self.constraint_keys) if self.mode == "hard" else 0

    # -- raw figures ----------------------------------------------------------------------------------
    def costs(self, configs: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
        """Exact costs (counts) plus ``latency_ms`` when a latency table is configured."""
        out = exact_costs(configs, self.width_mult, self.n_classes)
        if self._latency is not None:
            out["latency_ms"] = np.asarray(self._latency(configs), dtype=np.float64)
        return out

    def costs_of_arrays(
        self, arrays: Mapping[str, np.ndarray], configs: Callable[[], Sequence[Mapping[str, Any]]]
    ) -> dict[str, np.ndarray]:
        """:meth:`costs` from stacked backbone arrays (the inner loop's fast path); ``configs()`` for latency."""
        out = cost_metrics(dict(arrays), width_mult=self.width_mult, n_classes=self.n_classes)
        res = {k: np.asarray(out[k], dtype=np.float64) for k in COST_KEYS}
        if self._latency is not None:  # the latency table takes stacked arrays too
            res["latency_ms"] = np.asarray(self._latency(dict(arrays)), dtype=np.float64)  # type: ignore[arg-type]
        return res

    def needs_metric_prediction(self) -> list[str]:
        """Evaluator metrics (other than ``top1``) that objectives or constraints use (predicted in the loop)."""
        names = [m for m in self.predicted_metrics if m and m != "top1"]
        if "avg_macs" in self.constraints and "avg_macs" not in names:
            names.append("avg_macs")
        return names

    def _figure(self, key: str, costs: Mapping[str, np.ndarray], metrics: Mapping[str, np.ndarray]) -> np.ndarray:
        if key in costs:
            return np.asarray(costs[key], dtype=np.float64)
        if key in metrics:
            return np.asarray(metrics[key], dtype=np.float64)
        raise InputError("constraints", f"no value for {key!r} (neither an exact cost nor an evaluator metric)")

    # -- penalty / constraints -----------------------------------------------------------------------
    def penalty(self, costs: Mapping[str, np.ndarray], metrics: Mapping[str, np.ndarray]) -> np.ndarray:
        """``factor * sum_k w_k * max(0, c_k - max_k)`` over the constraints (millions / ms), penalty mode."""
        n = len(next(iter(costs.values())))
        out = np.zeros(n)
        limits = dict(self.constraints)
        if self.names[-1] == "tiny_ml":
            for k in TINY_ML_KEYS:
                limits.setdefault(k, TINY_ML_DEFAULT_MAX[k])
        for k, vmax in limits.items():
            src, scale = CONSTRAINTS[k]
            c = self._figure(src, costs, metrics) / scale
            w = self.weights.get(k, 1.0)
            out += w * np.maximum(0.0, c - vmax / scale)
        return self.factor * out

    def constraint_values(self, costs: Mapping[str, np.ndarray], metrics: Mapping[str, np.ndarray]) -> np.ndarray:
        """Hard-mode constraint matrix ``G`` (N, n_constr): ``c_k / max_k - 1``, feasible where all <= 0."""
        n = len(next(iter(costs.values())))
        g = np.zeros((n, len(self.constraint_keys)))
        for j, k in enumerate(self.constraint_keys):
            src, _ = CONSTRAINTS[k]
            g[:, j] = self._figure(src, costs, metrics) / self.constraints[k] - 1.0
        return g

    def violation(self, costs: Mapping[str, np.ndarray], metrics: Mapping[str, np.ndarray]) -> np.ndarray:
        """Total relative constraint violation (0 = feasible) whatever the mode."""
        if not self.constraint_keys:
            n = len(next(iter(costs.values())))
            return np.zeros(n)
        return np.maximum(self.constraint_values(costs, metrics), 0.0).sum(axis=1)

    # -- objectives ----------------------------------------------------------------------------------
    def update_alpha_norm(self, metrics: Sequence[Mapping[str, Any]]) -> float:
        """Re-estimate ``alpha_norm`` of ``top1_robust`` from successful records' metrics (``top1``, ``robustness``)."""
        err = [100.0 - float(m["top1"]) for m in metrics]
        r = [float(m["robustness"]) for m in metrics]
        self.alpha_norm = estimate_alpha_norm(err, r)
        return self.alpha_norm

    def top1_robust(self, top1_err: np.ndarray, r: np.ndarray) -> np.ndarray:
        """``alpha * top1_err + alpha_norm * (1 - alpha) * R`` with the current ``alpha_norm``."""
        return np.asarray(top1_robust(top1_err, r, alpha=self.alpha, alpha_norm=self.alpha_norm), dtype=np.float64)

    def phi_adaptive(
        self, f2: np.ndarray, costs: Mapping[str, np.ndarray], metrics: Mapping[str, np.ndarray]
    ) -> np.ndarray:
        """NACHOS's phi-adaptive penalty of a population's raw f2: ``phi * f2 + (1 - phi) * penalty``.

        ``phi`` is the share of the population meeting every constraint and ``penalty`` the weighted violation
        times ``penalty.factor`` (:meth:`penalty`). Reproduces CNAS's ``cnas.py``
        (``AuxiliarySingleLevelProblem._evaluate``, NACHOS branch: ``phi = len([c <= mmax]) / len(compl)``,
        ``sec_obj = phi * ci + (1 - phi) * max(0, ci - mmax) * penalty``), generalised from one avg-MACs bound to
        every constraint of the job. With all members feasible it is f2; with none, only the violation counts.
        """
        pen = self.penalty(costs, metrics)
        phi = float(np.mean(self.violation(costs, metrics) <= 0.0)) if len(f2) else 0.0
        return phi * f2 + (1.0 - phi) * pen

    def second_objective(
        self,
        costs: Mapping[str, np.ndarray],
        metrics: Mapping[str, np.ndarray],
        f1: np.ndarray | None = None,
        population: bool = False,
    ) -> np.ndarray:
        """f2 in its unit (see the table), including the penalty in penalty mode (``f1``: top1_err, for top1_robust).

        ``constraint_mode: nachos``: for a ``population`` (the inner NSGA-II's, and the candidate pool) the
        phi-adaptive penalty (:meth:`phi_adaptive`); for archived records the penalty mode's f2.
        """
        assert self.second is not None
        name = self.second.name
        if name == "tiny_ml":
            f2 = sum(self.weights.get(k, 1.0) * costs[k] / MILLION for k in TINY_ML_KEYS)
            f2 = np.asarray(f2, dtype=np.float64)
        elif name in COST_KEYS:
            f2 = np.asarray(costs[name], dtype=np.float64) / MILLION
        elif name == "latency":
            f2 = np.asarray(costs["latency_ms"], dtype=np.float64)
        elif name == "avg_macs":
            f2 = np.asarray(metrics["avg_macs"], dtype=np.float64) / MILLION
        elif name == "top1_robust":
            if f1 is None:
                raise InputError("objectives", "top1_robust needs top1_err (pass f1)")
            f2 = self.top1_robust(np.asarray(f1, dtype=np.float64), np.asarray(metrics["robustness"], dtype=np.float64))
        else:  # pragma: no cover - registry and this switch are kept together
            raise InputError("objectives", f"no rule for {name!r}")
        if self.mode == "nachos" and population and self.constraints:
            return self.phi_adaptive(f2, costs, metrics)
        if self.mode in ("penalty", "nachos") and (self.constraints or name == "tiny_ml"):
            f2 = f2 + self.penalty(costs, metrics)
        return f2

    def evaluate(
        self,
        top1: np.ndarray,
        costs: Mapping[str, np.ndarray],
        metrics: Mapping[str, np.ndarray],
        population: bool = False,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Objective matrix F (N, n_obj) and hard-mode constraints G (N, n_constr) from top-1 (%) and costs
        (``population``: the rows are one surrogate population, for ``constraint_mode: nachos``)."""
        f1 = 100.0 - np.asarray(top1, dtype=np.float64)
        if self.names[0] == "top1_robust":  # FlatNAS as CNAS runs it: [top1_robust, f2]; f2 still sees top1_err
            cols = [self.top1_robust(f1, np.asarray(metrics["robustness"], dtype=np.float64))]
        else:
            cols = [f1]
        if self.n_obj == 2:
            cols.append(self.second_objective(costs, metrics, f1, population))
        F = np.stack(cols, axis=1)
        G = self.constraint_values(costs, metrics) if self.mode == "hard" else np.zeros((len(f1), 0))
        return F, G

    def reference_point(self, largest: Mapping[str, Any]) -> list[float]:
        """Default HV reference point fixed before the search: 100 % error and f2 of the largest network.

        Cost objectives grow with every choice of the space, so the largest config bounds them (the penalty is
        left out: penalised violators fall outside the box, as they should).
        """
        ref = [100.0]
        if self.second is None:
            return ref
        name = self.second.name
        costs = self.costs([largest])
        if name == "tiny_ml":
            v = sum(self.weights.get(k, 1.0) * costs[k][0] / MILLION for k in TINY_ML_KEYS)
        elif name in COST_KEYS:
            v = costs[name][0] / MILLION
        elif name == "latency":
            v = costs["latency_ms"][0]
        elif name == "avg_macs":
            v = costs["macs"][0] / MILLION
        else:  # top1_robust
            v = 100.0
        ref.append(float(v) * (1.0 if name == "top1_robust" else 1.01))
        return ref
