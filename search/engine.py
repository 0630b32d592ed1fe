"""The MSuNAS engine: a resumable ask/tell surrogate-assisted NSGA-II over a search space.

::

    eng = Engine(spec)                  # spec: JobSpec (or a dict/path accepted by load_spec); needs no evaluator
    eng.load_state_dict(state)          # optional: a JSON dict saved after any tell() -> resumes exactly
    while eng.has_next():
        cands = eng.ask()               # canonical config dicts (iteration 0 = the n_doe initial design)
        results = [evaluator.evaluate(c) for c in cands]   # EvalResult list, any order, matched by config key
        stats = eng.tell(results)       # iteration, n_archive, hv, hv_cnas, surrogate{...}, timing, candidates
        state = eng.state_dict()        # JSON-able: archive, RNG, reference point, pending candidates
    eng.result()                        # {"archive": [...records...], "front": [...records...], ...}

Iteration 0 is the initial design: ``n_doe`` distinct canonical configs, the smallest and the largest network of
the space among them (in ``hard`` mode only feasible ones, by the exact costs, as long as they can be found).
Every later iteration fits the surrogate on the archive's successful results (failed ones are kept with their
reason and left out), runs pymoo's NSGA-II with integer operators on (surrogate ``top1_err``, exact second
objective) seeded with the archive's best ranked designs, and proposes ``n_iter`` distinct designs that are not
in the archive, spread along the predicted front (greedy predicted-hypervolume gain, or max-min spacing).
Evaluator metrics that an objective or constraint needs are predicted too: ``avg_macs`` of an early-exit search
(objective, or NACHOS' constraint on predicted cost) by exact per-exit MACs times exit leave rates learnt from
the archive (:class:`early_exit.objectives.ExitRateSurrogate`; held-out statistics under ``surrogate.avg_macs``),
any other metric by the job's predictor.

Archive record: ``{"config", "key", "iteration", "status", "metrics", "objectives": [f1, f2], "error",
"feasible"}``; ``metrics`` holds the evaluator's metrics plus the exact costs (counts) of the config.

Determinism: all randomness comes from one ``numpy.random.Generator`` whose state is part of ``state_dict()``;
pymoo and the predictors get seeds drawn from it (the global numpy/torch seeds are set from it before a fit,
because pymoo and some predictors draw from them).
"""

from __future__ import annotations

import importlib
import math
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.core.crossover import Crossover
from pymoo.core.mutation import Mutation
from pymoo.core.problem import Problem
from pymoo.core.repair import Repair
from pymoo.operators.crossover.sbx import SBX
from pymoo.operators.mutation.pm import PM
from pymoo.operators.repair.rounding import RoundingRepair
from pymoo.optimize import minimize
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

from early_exit.objectives import ExitRateSurrogate
from search.evaluator import EvalResult
from search.hv import hv2d_gains, hv_cnas, hypervolume, non_dominated, normalise, rank_order
from search.objectives import COST_KEYS, Objectives
from search.spec import EarlyExitSpec, JobSpec, MsunasEngineSpec, load_spec
from search.surrogate import Surrogate, rank_stats
from supernets import codec, get_search_space
from supernets.errors import InputError

STATE_VERSION = 1
# spec fields a saved state must agree on to be resumed under a (possibly extended) spec
_STATE_MUST_MATCH = ("search_space", "width_mult", "resolution", "objectives", "constraints", "constraint_mode")


def canonicalise_genomes(X: np.ndarray) -> np.ndarray:
    """Integer genomes with the genes of inactive slots set to 0 (one genome per network)."""
    X = np.asarray(X, dtype=np.int64).copy()
    depths = np.asarray(codec.DEPTHS)
    for s in range(codec.N_STAGES):
        b = s * codec.N_STAGE_GENES
        depth = depths[np.clip(X[:, b], 0, len(depths) - 1)]
        for j in range(codec.MAX_DEPTH):
            off = depth <= j
            X[off, b + 1 + j] = 0
            X[off, b + 5 + j] = 0
    return X


def genome_arrays(X: np.ndarray, resolutions: Sequence[int]) -> dict[str, np.ndarray]:
    """Backbone arrays (``ks``/``e`` (N, 20), ``d`` (N, 5), ``r`` (N,)) of genomes, as ``codec.backbone_arrays``."""
    X = np.asarray(X, dtype=np.int64)
    n = len(X)
    kern, expd, deps = np.asarray(codec.KERNELS), np.asarray(codec.EXPANDS), np.asarray(codec.DEPTHS)
    ks = np.full((n, codec.N_SLOTS), 3, dtype=np.int64)
    e = np.full((n, codec.N_SLOTS), 3, dtype=np.int64)
    d = np.empty((n, codec.N_STAGES), dtype=np.int64)
    for s in range(codec.N_STAGES):
        b = s * codec.N_STAGE_GENES
        d[:, s] = deps[X[:, b]]
        for j in range(codec.MAX_DEPTH):
            on = d[:, s] > j
            ks[on, s * codec.MAX_DEPTH + j] = kern[X[on, b + 1 + j]]
            e[on, s * codec.MAX_DEPTH + j] = expd[X[on, b + 5 + j]]
    res = np.asarray(resolutions, dtype=np.int64)
    r = res[X[:, codec.N_BACKBONE_GENES]] if len(res) > 1 else np.full(n, res[0], dtype=np.int64)
    return {"ks": ks, "e": e, "d": d, "r": r}


class _CanonicalRepair(Repair):
    """Round, clip to the bounds and canonicalise (inactive slots to 0): exact duplicate elimination."""

    def _do(self, problem: Any, X: np.ndarray, **kwargs: Any) -> np.ndarray:
        X = np.clip(np.round(np.asarray(X, dtype=np.float64)), problem.xl, problem.xu).astype(np.int64)
        return canonicalise_genomes(X)


class _UniformCrossover(Crossover):
    """Uniform crossover for categorical integer genes (each gene from either parent with probability 1/2)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(2, 2, **kwargs)

    def _do(self, problem: Any, X: np.ndarray, **kwargs: Any) -> np.ndarray:
        _, n_matings, n_var = X.shape
        mask = np.random.random((n_matings, n_var)) < 0.5
        Y = X.copy()
        Y[0][mask], Y[1][mask] = X[1][mask], X[0][mask]
        return Y


class _ResetMutation(Mutation):
    """Random-reset mutation for categorical integer genes: a gene changes to another allowed value."""

    def __init__(self, rate: float | None = None, **kwargs: Any) -> None:
        super().__init__(prob=1.0, **kwargs)
        self.rate = rate

    def _do(self, problem: Any, X: np.ndarray, **kwargs: Any) -> np.ndarray:
        X = np.asarray(X, dtype=np.int64).copy()
        n, n_var = X.shape
        rate = self.rate if self.rate is not None else 1.0 / n_var
        xl = np.asarray(problem.xl, dtype=np.int64)
        span = np.asarray(problem.xu, dtype=np.int64) - xl + 1
        hit = (np.random.random((n, n_var)) < rate) & (span > 1)
        shift = 1 + np.floor(np.random.random((n, n_var)) * np.maximum(span - 1, 1)).astype(np.int64)
        newv = xl + (X - xl + shift) % span
        X[hit] = newv[hit]
        return X


class _InnerProblem(Problem):
    """Surrogate top-1 error + exact second objective (and hard constraints) of integer genomes."""

    def __init__(self, engine: Engine, surrogates: Mapping[str, Any]) -> None:
        sp = engine.space
        super().__init__(
            n_var=sp.n_var,
            n_obj=engine.objectives.n_obj,
            n_ieq_constr=engine.objectives.n_constr,
            xl=sp.xl.astype(np.float64),
            xu=sp.xu.astype(np.float64),
            vtype=int,
        )
        self.engine = engine
        self.surrogates = surrogates
        self.seen: dict[bytes, int] = {}
        self.X_seen: list[np.ndarray] = []

    def _evaluate(self, X: np.ndarray, out: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        X = np.asarray(np.round(X), dtype=np.int64)
        F, G, _ = self.engine._predict(X, self.surrogates, population=True)
        out["F"] = F
        if self.n_ieq_constr:
            out["G"] = G
        for row in X:
            k = row.tobytes()
            if k not in self.seen:
                self.seen[k] = len(self.X_seen)
                self.X_seen.append(row)


def _rng_state_to_json(state: Mapping[str, Any]) -> dict[str, Any]:
    """numpy bit-generator state with its big integers as strings (portable JSON)."""

    def conv(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        if isinstance(v, int) and not isinstance(v, bool) and abs(v) >= 2**53:
            return {"__int__": str(v)}
        return v

    return conv(dict(state))  # type: ignore[no-any-return]


def _rng_state_from_json(state: Mapping[str, Any]) -> dict[str, Any]:
    def conv(v: Any) -> Any:
        if isinstance(v, dict):
            if set(v) == {"__int__"}:
                return int(v["__int__"])
            return {k: conv(x) for k, x in v.items()}
        return v

    return conv(dict(state))  # type: ignore[no-any-return]


def _floats(v: Any) -> Any:
    """Plain Python floats/ints/lists (JSON-able) from numpy values."""
    if isinstance(v, np.ndarray):
        return [_floats(x) for x in v.tolist()]
    if isinstance(v, (list, tuple)):
        return [_floats(x) for x in v]
    if isinstance(v, np.floating):
        return float(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, dict):
        return {k: _floats(x) for k, x in v.items()}
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


class Engine:
    """Surrogate-assisted NSGA-II (MSuNAS) as a resumable ask/tell object; see the module docstring."""

    def __init__(self, spec: JobSpec | Mapping[str, Any] | str | Path) -> None:
        if not isinstance(spec, JobSpec):
            spec = load_spec(dict(spec) if isinstance(spec, Mapping) else spec)
        self.spec = spec
        self.space = get_search_space(self.spec.search_space, **self.spec.search_space_kwargs())
        self.objectives = Objectives(self.spec)
        self._resolutions: list[int] = list(cast(Any, self.space).resolutions)
        # other kinds subclass Engine or implement its ask/tell/state contract with their own spec class
        self.opts = cast(MsunasEngineSpec, self.spec.engine)
        self.rng = np.random.default_rng(self.spec.seed)
        self.iteration = 0
        self.archive: list[dict[str, Any]] = []
        self._keys: set[str] = set()
        self.history: list[dict[str, Any]] = []
        self.pending: dict[str, Any] | None = None
        self.stopped = False
        self.stop_reason: str | None = None
        if self.opts.ref_point is not None:
            if len(self.opts.ref_point) != self.objectives.n_obj:
                raise InputError(
                    "engine.ref_point",
                    f"expected {self.objectives.n_obj} values (one per objective),"
                    f" got {len(self.opts.ref_point)}"
                )
            self.ref_point = [float(v) for v in self.opts.ref_point]
        else:
            largest = self.space.decode(self.space.xu.tolist())
            self.ref_point = self.objectives.reference_point(largest)

    # ---------------------------------------------------------------------------------------- ask/tell
    def has_next(self) -> bool:
        """True while there is an iteration to run (or pending candidates to tell)."""
        if self.pending is not None:
            return True
        return not self.stopped and self.iteration <= self.spec.iterations

    def ask(self) -> list[dict[str, Any]]:
        """The next candidates (canonical configs); asking again before :meth:`tell` returns the same ones."""
        if self.pending is None:
            if not self.has_next():
                raise InputError("engine", "the search is finished (has_next() is False)")
            t0 = time.perf_counter()
            if self.iteration == 0 and not self.archive:
                configs = self._initial_design()
                info: dict[str, Any] = {"surrogate": None, "predicted": None, "timing": {}}
            else:
                configs, info = self._propose()
            info["timing"]["ask"] = time.perf_counter() - t0
            self.pending = {
                "iteration": self.iteration,
                "configs": configs,
                "keys": [codec.config_key(c) for c in configs],
                **info,
            }
        return [dict(c) for c in self.pending["configs"]]

    def tell(self, results: Sequence[EvalResult | Mapping[str, Any]]) -> dict[str, Any]:
        """Add the evaluated candidates of the last :meth:`ask` (any order) and return the iteration stats."""
        if self.pending is None:
            raise InputError("engine", "tell() without a pending ask()")
        t0 = time.perf_counter()
        by_key: dict[str, EvalResult] = {}
        for r in results:
            res = r if isinstance(r, EvalResult) else EvalResult.from_dict(r)
            k = self.space.key(res.config)
            if k in by_key:
                raise InputError("results", f"config {k} is reported twice")
            by_key[k] = res
        keys = self.pending["keys"]
        unknown = set(by_key) - set(keys)
        if unknown:
            raise InputError("results", f"config {sorted(unknown)[0]} was not asked for in this iteration")
        missing = [k for k in keys if k not in by_key]
        if missing:
            raise InputError("results", f"{len(missing)} of {len(keys)} candidates have no result (e.g. {missing[0]})")
        ordered = [by_key[k] for k in keys]
        records = self._records(ordered, self.pending["iteration"])
        self.archive.extend(records)
        self._keys.update(keys)
        self._rescore()
        stats = self._iteration_stats(records)
        stats["timing"]["tell"] = time.perf_counter() - t0
        self.history.append(stats)
        self._check_patience()
        self.pending = None
        self.iteration += 1
        return stats

    def result(self) -> dict[str, Any]:
        """The archive, its (feasible) Pareto front, the last HV and the per-iteration history."""
        return {
            "archive": [dict(r) for r in self.archive],
            "front": self.front(),
            "hv": self.history[-1]["hv"] if self.history else 0.0,
            "ref_point": list(self.ref_point),
            "history": list(self.history),
            "stopped": self.stopped,
            "stop_reason": self.stop_reason,
        }

    def front(self) -> list[dict[str, Any]]:
        """Non-dominated successful feasible records (sorted by the first objective)."""
        recs = [r for r in self.archive if r["status"] == "ok" and r["feasible"]]
        if not recs:
            return []
        F = np.array([r["objectives"] for r in recs], dtype=np.float64)
        order = sorted(non_dominated(F), key=lambda i: tuple(F[i]))
        return [dict(recs[i]) for i in order]

    def hv(self) -> float:
        """Hypervolume of the successful feasible archive w.r.t. the fixed reference point (normalised box)."""
        recs = [r for r in self.archive if r["status"] == "ok" and r["feasible"]]
        if not recs:
            return 0.0
        return hypervolume(np.array([r["objectives"] for r in recs], dtype=np.float64), self.ref_point)

    def hv_cnas(self) -> float:
        """CNAS's hypervolume (:func:`search.hv.hv_cnas`): every successful record (CNAS's archive has no
        feasibility flag; a violator's penalised objectives count as they are), reference point from the records of
        the archive's first iteration (the initial design; on a warm start, the archive it started from, as CNAS's
        resume fixes it)."""
        recs = [r for r in self.archive if r["status"] == "ok"]
        if not recs:
            return 0.0
        first = min(int(r["iteration"]) for r in recs)
        F = np.array([r["objectives"] for r in recs], dtype=np.float64)
        F0 = np.array([r["objectives"] for r in recs if int(r["iteration"]) == first], dtype=np.float64)
        return hv_cnas(F, F0)

    # ---------------------------------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """Complete JSON-able state: spec, iteration, archive, pending candidates, history, RNG, reference point."""
        return _floats(
            {
                "version": STATE_VERSION,
                "spec": self.spec.model_dump(mode="json"),
                "iteration": self.iteration,
                "ref_point": list(self.ref_point),
                "rng": _rng_state_to_json(self.rng.bit_generator.state),
                "archive": self.archive,
                "pending": self.pending,
                "history": self.history,
                "stopped": self.stopped,
                "stop_reason": self.stop_reason,
            }
        )

    def load_state_dict(self, state: Mapping[str, Any]) -> Engine:
        """Restore a :meth:`state_dict` (e.g. parsed back from JSON); raises ``ValueError`` on a foreign state."""
        if not isinstance(state, Mapping):
            raise InputError("state", "expected a mapping (an engine state_dict)")
        for field in ("version", "spec", "iteration", "ref_point", "rng", "archive"):
            if field not in state:
                raise InputError(f"state.{field}", "missing (not an engine state_dict)")
        if state["version"] != STATE_VERSION:
            raise InputError("state.version", f"{state['version']!r} is not supported (expected {STATE_VERSION})")
        saved = load_spec(dict(state["spec"]))
        for f in _STATE_MUST_MATCH:
            a, b = getattr(saved, f), getattr(self.spec, f)
            if a != b:
                raise InputError(f"state.spec.{f}", f"the saved search has {a!r}, this spec {b!r}")
        rng = np.random.default_rng()
        try:
            rng.bit_generator.state = _rng_state_from_json(state["rng"])
        except (TypeError, ValueError, KeyError) as e:
            raise InputError("state.rng", f"not a numpy PCG64 state ({e})") from None
        self.rng = rng
        self.iteration = int(state["iteration"])
        self.ref_point = [float(v) for v in state["ref_point"]]
        self.archive = [dict(r) for r in state["archive"]]
        self._keys = {r["key"] for r in self.archive}
        self.pending = dict(state["pending"]) if state.get("pending") else None
        self.history = [dict(h) for h in state.get("history") or []]
        self.stopped = bool(state.get("stopped", False))
        self.stop_reason = state.get("stop_reason")
        if self.stopped and self.spec.hv_patience != saved.hv_patience:
            self.stopped, self.stop_reason = False, None
        self._rescore()  # alpha_norm of top1_robust follows from the archive (idempotent)
        return self

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Engine:
        """An engine built from the spec stored in ``state`` and resumed from it."""
        if not isinstance(state, Mapping) or "spec" not in state:
            raise InputError("state.spec", "missing (not an engine state_dict)")
        return make_engine(load_spec(dict(state["spec"]))).load_state_dict(state)

    def load_archive(self, rows: Sequence[Mapping[str, Any]], iteration: int) -> Engine:
        """Start from an existing archive (e.g. a CNAS ``iter_K.stats``), as if ``iteration`` had just been told.

        ``rows`` are ``{"config", "metrics"}`` mappings (``metrics["top1"]`` in %); costs and objectives are
        recomputed for this spec. The RNG is seeded from ``(seed, iteration)`` so the continuation is reproducible.
        """
        results = []
        for i, row in enumerate(rows):
            try:
                cfg = self.space.validate(row["config"])
            except ValueError as e:
                raise InputError(f"archive[{i}].config", f"{e}") from None
            results.append(EvalResult(cfg, "ok", metrics=dict(row["metrics"])))
        seen: set[str] = set()
        uniq = []
        for r in results:
            k = codec.config_key(r.config)
            if k not in seen:
                seen.add(k)
                uniq.append(r)
        self.archive = self._records(uniq, iteration)
        self._keys = {r["key"] for r in self.archive}
        self._rescore()
        self.iteration = iteration + 1
        self.rng = np.random.default_rng([self.spec.seed, iteration])
        self.pending = None
        self.history = []
        self.history.append(self._iteration_stats(self.archive))
        return self

    # ---------------------------------------------------------------------------------------- internals
    def _records(self, results: Sequence[EvalResult], iteration: int) -> list[dict[str, Any]]:
        ok_idx: list[int] = []
        errors: dict[int, str] = {}
        need = self.objectives.needs_metric_prediction()
        for i, r in enumerate(results):
            if r.status != "ok":
                errors[i] = r.error or "failed (no reason given)"
                continue
            top1 = r.metrics.get("top1")
            if top1 is None or not isinstance(top1, (int, float)) or not math.isfinite(float(top1)):
                errors[i] = f"metrics.top1: missing or not a finite number ({top1!r})"
                continue
            miss = [m for m in need if not isinstance(r.metrics.get(m), (int, float))]
            if miss:
                errors[i] = f"metrics.{miss[0]}: missing (the objectives/constraints need it)"
                continue
            ok_idx.append(i)
        configs = [self.space.validate(r.config) for r in results]
        costs = self.objectives.costs(configs) if configs else {}
        metr = {m: np.array([float(results[i].metrics.get(m, np.nan)) for i in range(len(results))]) for m in need}
        top1_arr = np.full(len(results), np.nan)
        top1_arr[ok_idx] = [float(results[i].metrics["top1"]) for i in ok_idx]
        F, _ = self.objectives.evaluate(top1_arr, costs, metr) if configs else (np.zeros((0, 2)), None)
        cv = self.objectives.violation(costs, metr) if configs else np.zeros(0)
        out = []
        for i, (r, cfg) in enumerate(zip(results, configs, strict=True)):
            metrics = {k: float(v) for k, v in r.metrics.items() if isinstance(v, (int, float))}
            for k, arr in costs.items():
                metrics[k] = float(arr[i])
            ok = i in ok_idx
            out.append(
                {
                    "config": cfg,
                    "key": codec.config_key(cfg),
                    "iteration": int(iteration),
                    "status": "ok" if ok else "failed",
                    "metrics": metrics,
                    "objectives": [float(v) for v in F[i]] if ok else None,
                    "error": None if ok else errors[i],
                    "feasible": bool(ok and np.isfinite(cv[i]) and cv[i] <= 0),
                }
            )
        return out

    def _rescore(self) -> None:
        """``top1_robust``: re-estimate ``alpha_norm`` from the archive and re-score every successful record.

        Objectives are recomputed from each record's stored raw metrics (``top1``, ``robustness``, exact costs),
        which are never changed; ``metrics.top1_robust`` records the figure without penalty.
        """
        if not self.objectives.rescored:
            return
        ok = [r for r in self.archive if r["status"] == "ok"]
        self.objectives.update_alpha_norm([r["metrics"] for r in ok])
        if not ok:
            return
        top1 = np.array([r["metrics"]["top1"] for r in ok], dtype=np.float64)
        cost_keys = [k for k in (*COST_KEYS, "latency_ms") if k in ok[0]["metrics"]]
        costs = {k: np.array([r["metrics"][k] for r in ok], dtype=np.float64) for k in cost_keys}
        need = self.objectives.needs_metric_prediction()
        metr = {m: np.array([r["metrics"][m] for r in ok], dtype=np.float64) for m in need}
        F, _ = self.objectives.evaluate(top1, costs, metr)
        robust = self.objectives.top1_robust(100.0 - top1, metr["robustness"])
        for r, f, v in zip(ok, F, robust, strict=True):
            r["objectives"] = [float(x) for x in f]
            r["metrics"]["top1_robust"] = float(v)

    def _iteration_stats(self, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        p = self.pending or {}
        hv = self.hv()
        cand = []
        pred = p.get("predicted")
        true_f1, pred_f1 = [], []
        for j, r in enumerate(records):
            c = {"config": r["config"], "status": r["status"], "objectives": r["objectives"], "error": r["error"]}
            if self.objectives.rescored and r["status"] == "ok":  # FlatNAS: raw R and the combined figure
                c["robustness"] = r["metrics"].get("robustness")
                c["top1_robust"] = r["metrics"].get("top1_robust")
            if pred is not None and j < len(pred):
                c["predicted"] = pred[j]
                if r["status"] == "ok":
                    true_f1.append(r["objectives"][0])
                    pred_f1.append(pred[j][0])
            cand.append(c)
        surrogate = dict(p["surrogate"]) if p.get("surrogate") else None
        if surrogate is not None and len(true_f1) >= 2:
            surrogate["candidates"] = rank_stats(np.array(true_f1), np.array(pred_f1))
        n_ok = sum(r["status"] == "ok" for r in self.archive)
        extra = {"alpha_norm": self.objectives.alpha_norm} if self.objectives.rescored else {}
        return _floats(
            {
                **extra,
                "iteration": int(p.get("iteration", self.iteration)),
                "n_archive": len(self.archive),
                "n_ok": n_ok,
                "n_failed": len(self.archive) - n_ok,
                "n_front": len(self.front()),
                "hv": hv,
                "hv_cnas": self.hv_cnas(),
                "surrogate": surrogate,
                "timing": dict(p.get("timing") or {}),
                "candidates": cand,
            }
        )

    def _check_patience(self) -> None:
        pat = self.spec.hv_patience
        hvs = [h["hv"] for h in self.history]
        if pat is None or len(hvs) <= pat:
            return
        if hvs[-1] - max(hvs[:-pat]) <= self.opts.hv_tol:
            self.stopped = True
            self.stop_reason = f"no hypervolume gain in {pat} iterations"

    def _feasible_costs(self, configs: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Exact-cost violation of configs (constraints on evaluator metrics count as satisfied here)."""
        if not self.objectives.constraint_keys or not configs:
            return np.zeros(len(configs))
        costs = self.objectives.costs(configs)
        g = []
        for k in self.objectives.constraint_keys:
            if k in costs:  # params, macs, activations, latency_ms; avg_macs is only known after evaluation
                g.append(np.maximum(costs[k] / self.objectives.constraints[k] - 1.0, 0.0))
        return np.sum(g, axis=0) if g else np.zeros(len(configs))

    def _initial_design(self) -> list[dict[str, Any]]:
        """``n_doe`` distinct canonical configs: smallest, largest, then uniform samples (hard: feasible ones)."""
        n = self.spec.n_doe
        if self.opts.doe == "cnas":
            return self._cnas_design(n)
        hard = self.spec.constraint_mode == "hard" and bool(self.objectives.constraint_keys)
        picked: list[dict[str, Any]] = []
        keys: set[str] = set(self._keys)
        spare: list[tuple[float, dict[str, Any]]] = []

        def add(cands: list[dict[str, Any]]) -> None:
            cv = self._feasible_costs(cands) if hard else np.zeros(len(cands))
            for c, v in zip(cands, cv, strict=True):
                k = codec.config_key(c)
                if k in keys or len(picked) >= n:
                    continue
                if v > 0:
                    spare.append((float(v), c))
                    continue
                keys.add(k)
                picked.append(c)

        add([self.space.decode(self.space.xl.tolist()), self.space.decode(self.space.xu.tolist())])
        for _ in range(200):
            if len(picked) >= n:
                break
            add(self.space.sample(max(4 * (n - len(picked)), 16), self.rng))
        if len(picked) < n:  # hard mode with a tiny feasible region: the least violating fill the design
            spare.sort(key=lambda t: t[0])
            for _, c in spare:
                k = codec.config_key(c)
                if k not in keys and len(picked) < n:
                    keys.add(k)
                    picked.append(c)
        return picked

    def _cnas_design(self, n: int) -> list[dict[str, Any]]:
        """CNAS@HEAD's initial design (``cnas.py``: ``initialize_seed(seed)`` then ``search_space.sample(n_doe)``,
        ``search_space.py`` ``OFASearchSpace.sample``): numpy's global RNG seeded with the job's seed; per sample
        the 5 depths, then kernel sizes and expand ratios of the sum(d) active layers, then the resolution when
        lr != ur. CNAS evaluates a repeated draw twice; here it is skipped and the next draw taken (an archive
        holds a config once). Constraints are not applied, as in CNAS."""
        lr, ur = self.spec.resolution
        grid = codec.resolution_grid(lr, ur)
        rs = np.random.RandomState(self.spec.seed)
        keys: set[str] = set(self._keys)
        picked: list[dict[str, Any]] = []
        for _ in range(100 * n + 1000):
            if len(picked) >= n:
                break
            depth = rs.choice(list(codec.DEPTHS), codec.N_STAGES, replace=True).tolist()
            ks = rs.choice(list(codec.KERNELS), size=int(np.sum(depth)), replace=True).tolist()
            e = rs.choice(list(codec.EXPANDS), size=int(np.sum(depth)), replace=True).tolist()
            r = lr if lr == ur else int(rs.choice(grid))
            cfg = self.space.validate({"ks": ks, "e": e, "d": depth, "r": r})
            k = codec.config_key(cfg)
            if k not in keys:
                keys.add(k)
                picked.append(cfg)
        return picked

    def _fit_surrogates(self) -> tuple[dict[str, Any], dict[str, Any], dict[str, float]]:
        if self.spec.predictor_spec().fit == "contributions":  # BINAS's measured table: nothing to fit
            from search.contributions import table_surrogates

            return table_surrogates(self)
        ok = [r for r in self.archive if r["status"] == "ok"]
        if len(ok) < 2:
            raise InputError("engine", "fewer than 2 successful evaluations; the surrogate cannot be fitted")
        X = self.space.encode_many([r["config"] for r in ok])
        seed = int(self.rng.integers(2**31 - 1))
        self._seed_globals(seed)
        t0 = time.perf_counter()
        sur: dict[str, Any] = {}  # metric -> fitted model with predict(genomes)
        ps = self.spec.predictor_spec()
        y = np.array([100.0 - r["metrics"]["top1"] for r in ok])
        sur["top1_err"] = Surrogate(ps.name, self.space, self.opts.encoding, seed, ps.variant).fit(X, y)
        extra_info: dict[str, Any] = {}
        for m in self.objectives.needs_metric_prediction():
            if m == "avg_macs" and self.spec.search_space == "eemobilenetv3":
                ers = self._fit_exit_rates(ok, seed)
                if ers is not None:  # exact per-exit MACs x leave rates learnt from the archive (NACHOS)
                    sur[m], extra_info[m] = ers
                    continue
            ym = np.array([r["metrics"][m] for r in ok])
            sur[m] = Surrogate(ps.name, self.space, self.opts.encoding, seed, ps.variant).fit(X, ym)
        t_fit = time.perf_counter() - t0
        t0, c0 = time.perf_counter(), time.process_time()
        cv_rng = np.random.default_rng(seed)
        cv = sur["top1_err"].cross_validate(X, y, self.opts.cv_folds, cv_rng)
        t_cv, c_cv = time.perf_counter() - t0, time.process_time() - c0
        info = {
            "model": ps.name,
            "variant": ps.variant,
            "winner": sur["top1_err"].winner,
            "encoding": self.opts.encoding,
            "n_train": len(ok),
            "cv_folds": min(self.opts.cv_folds, len(ok)),
            **cv,
            **extra_info,
        }
        return sur, info, {"fit": t_fit, "cv": t_cv, "_cv_cpu": c_cv}

    def _fit_exit_rates(self, ok: Sequence[Mapping[str, Any]], seed: int) -> tuple[Any, dict[str, Any]] | None:
        """``avg_macs`` model of an early-exit search: :class:`early_exit.objectives.ExitRateSurrogate` fitted on
        the archive's measured exit utilisation, and its held-out statistics; ``None`` when no archived candidate
        reports its utilisation (e.g. an imported archive), so the generic surrogate is used instead."""
        ee = self.spec.early_exit or EarlyExitSpec()
        ers = ExitRateSurrogate(
            self.space,
            n_classes=self.objectives.n_classes,
            width_mult=self.objectives.width_mult,
            head_width=ee.head_width,
            head=ee.head,
        )
        configs, metrics = [r["config"] for r in ok], [r["metrics"] for r in ok]
        ers.fit(configs, metrics)
        if ers.n_train_ == 0:
            return None
        y, p = ers.cross_validate(configs, metrics, self.opts.cv_folds, np.random.default_rng(seed))
        return ers, {"model": "exit_rate", "n_train": ers.n_train_, **rank_stats(y, p)}

    @staticmethod
    def _seed_globals(seed: int) -> None:
        np.random.seed(seed % (2**32))
        torch = sys.modules.get("torch")
        if torch is not None:
            torch.manual_seed(seed)

    def _predict(
        self, X: np.ndarray, surrogates: Mapping[str, Any], population: bool = False
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Predicted objectives F, hard constraints G and total violation of genomes (exact costs); ``population``:
        the rows form one population (NACHOS's phi-adaptive penalty, ``constraint_mode: nachos``)."""
        arrays = genome_arrays(X, self._resolutions)
        costs = self.objectives.costs_of_arrays(arrays, lambda: self.space.decode_many(X))
        err = surrogates["top1_err"].predict(X)
        metr = {m: s.predict(X) for m, s in surrogates.items() if m != "top1_err"}
        F, G = self.objectives.evaluate(100.0 - err, costs, metr, population)
        cv = self.objectives.violation(costs, metr)
        return F, G, cv

    def _initial_population(self) -> np.ndarray:
        ok = [r for r in self.archive if r["status"] == "ok"]
        F = np.array([r["objectives"] for r in ok], dtype=np.float64)
        cv = np.array([0.0 if r["feasible"] else 1.0 for r in ok])
        order = rank_order(F, cv)
        pop = self.opts.pop_size
        X = canonicalise_genomes(self.space.encode_many([ok[i]["config"] for i in order[:pop]]))
        X = np.unique(X, axis=0) if len(X) else X
        if len(X) < pop:
            extra = self.rng.integers(self.space.xl, self.space.xu + 1, size=(pop - len(X), self.space.n_var))
            X = np.vstack([X, canonicalise_genomes(extra)]) if len(X) else canonicalise_genomes(extra)
        return X

    def _operators(self) -> dict[str, Any]:
        if self.opts.operators == "sbx":
            return {
                "crossover": SBX(prob=0.9, eta=15, vtype=float, repair=RoundingRepair()),
                "mutation": PM(eta=20, vtype=float, repair=RoundingRepair()),
            }
        return {"crossover": _UniformCrossover(prob=0.9), "mutation": _ResetMutation()}

    def _propose(self) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        cpu0 = time.process_time()
        sur, info, timing = self._fit_surrogates()
        t0 = time.perf_counter()
        if self.spec.optimizer == "milp":  # exact epsilon-constraint front of the bilinear surrogate (search/milp.py)
            from search.milp import engine_pool

            seen = engine_pool(self, sur)
        else:
            problem = _InnerProblem(self, sur)
            X0 = self._initial_population()
            algo = NSGA2(
                pop_size=self.opts.pop_size,
                sampling=X0.astype(np.float64),
                repair=_CanonicalRepair(),
                eliminate_duplicates=True,
                **self._operators(),
            )
            inner_seed = int(self.rng.integers(2**31 - 1))
            res = minimize(problem, algo, ("n_gen", self.opts.n_gen), seed=inner_seed, verbose=False)
            seen = np.array(problem.X_seen, dtype=np.int64)
            if self.opts.candidate_selection == "cnas" and res.pop is not None:
                # CNAS chooses among the inner NSGA-II's final population, not every design it saw
                seen = np.unique(np.asarray(np.round(res.pop.get("X")), dtype=np.int64), axis=0)
        timing["search"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        pool = canonicalise_genomes(seen.reshape(-1, self.space.n_var))
        known = {g.tobytes() for g in self._archive_genomes()}
        fresh = [i for i, g in enumerate(pool) if g.tobytes() not in known]
        pool = pool[fresh]
        Fp, _, cvp = self._predict(pool, sur, population=True) if len(pool) else (np.zeros((0, 2)), None, np.zeros(0))
        chosen = self._select(Fp, cvp, self.spec.n_iter)
        configs = [self.space.decode(pool[i]) for i in chosen]
        timing["select"] = time.perf_counter() - t0
        timing["overhead"] = timing["fit"] + timing["search"] + timing["select"]
        # CPU seconds of the same work (robust to a busy machine); the held-out CV is excluded like above
        timing["overhead_cpu"] = time.process_time() - cpu0 - timing.pop("_cv_cpu")
        return configs, {
            "surrogate": info,
            "predicted": [[float(v) for v in Fp[i]] for i in chosen],
            "timing": timing,
            "pool": len(pool),
        }

    def _archive_genomes(self) -> np.ndarray:
        """Canonical genomes of every archived config (successful or not: never proposed again)."""
        if not self.archive:
            return np.zeros((0, self.space.n_var), dtype=np.int64)
        return canonicalise_genomes(self.space.encode_many([r["config"] for r in self.archive]))

    def _archive_front_norm(self) -> np.ndarray:
        recs = [r for r in self.archive if r["status"] == "ok" and r["feasible"]]
        if not recs:
            return np.zeros((0, self.objectives.n_obj))
        F = normalise(np.array([r["objectives"] for r in recs], dtype=np.float64), self.ref_point)
        return F[non_dominated(F)]

    def _select(self, F: np.ndarray, cv: np.ndarray, n: int) -> list[int]:
        """Indices of up to ``n`` pool members: feasible first, spread along the predicted front."""
        idx = np.arange(len(F))
        if len(idx) == 0:
            return []
        if self.spec.constraint_mode == "hard" and (cv <= 0).any():
            idx = idx[cv[idx] <= 0]  # never propose an infeasible design while a feasible one is known
        elif self.spec.constraint_mode == "hard":
            idx = idx[np.argsort(cv[idx], kind="stable")][:n]  # none feasible: the least violating
            return [int(i) for i in idx]
        if F.shape[1] == 1:
            return [int(i) for i in idx[np.argsort(F[idx, 0], kind="stable")][:n]]
        if self.opts.candidate_selection == "cnas":
            recs = [r for r in self.archive if r["status"] == "ok"]
            A = np.array([r["objectives"] for r in recs], dtype=np.float64).reshape(-1, F.shape[1])
            front_f2 = A[non_dominated(A), 1] if len(A) else np.zeros(0)
            return [int(idx[i]) for i in cnas_subset(F[idx, 1], front_f2, n, self.rng)]
        Fn = normalise(F, self.ref_point)
        base = self._archive_front_norm()
        chosen: list[int] = []
        if self.opts.candidate_selection == "hv" and F.shape[1] == 2:
            cur = base
            live = idx[np.all(Fn[idx] < 1.0, axis=1)]
            while len(live) and len(chosen) < n:
                gains = hv2d_gains(cur, Fn[live])
                j = int(np.argmax(gains))
                if gains[j] <= 0:
                    break
                chosen.append(int(live[j]))
                cur = np.vstack([cur, Fn[live[j]][None]])
                live = np.delete(live, j)[gains[np.arange(len(live)) != j] > 0]
        if len(chosen) < n:
            rest = [int(i) for i in idx if int(i) not in set(chosen)]
            chosen += self._spread(Fn, rest, np.vstack([base] + [Fn[chosen]] if chosen else [base]), n - len(chosen))
        return chosen

    @staticmethod
    def _spread(Fn: np.ndarray, cand: list[int], anchors: np.ndarray, k: int) -> list[int]:
        """Greedy max-min spacing in the normalised objective space, best non-domination fronts first."""
        if not cand or k <= 0:
            return []
        Fc = np.minimum(Fn[cand], 10.0)  # penalised violators would swamp the distances
        rank_of = np.empty(len(cand), dtype=int)
        for r, fr in enumerate(NonDominatedSorting().do(Fc)):
            rank_of[fr] = r
        out: list[int] = []
        pts = np.minimum(anchors, 10.0) if len(anchors) else np.zeros((0, Fn.shape[1]))
        remaining = list(range(len(cand)))
        while remaining and len(out) < k:
            best_rank = min(rank_of[i] for i in remaining)
            tier = [i for i in remaining if rank_of[i] == best_rank]
            if len(pts):
                d = np.min(np.linalg.norm(Fc[tier][:, None, :] - pts[None, :, :], axis=2), axis=1)
                j = tier[int(np.argmax(d))]
            else:
                j = tier[int(np.argmin(Fc[tier, 0]))]
            out.append(cand[j])
            remaining.remove(j)
            pts = np.vstack([pts, Fc[j][None]])
        return out


def subset_spread(f2: np.ndarray, front_f2: np.ndarray) -> float:
    """CNAS's subset objective: the standard deviation of the gaps between the sorted second objectives of the
    archive's front and the chosen candidates (smaller = more evenly spread along f2)."""
    v = np.sort(np.concatenate([np.asarray(front_f2, dtype=np.float64), np.asarray(f2, dtype=np.float64)]))
    return float(np.std(np.diff(v))) if len(v) > 1 else 0.0


def cnas_subset(f2: np.ndarray, front_f2: np.ndarray, k: int, rng: np.random.Generator,
                pop_size: int = 100, n_gen: int = 60) -> list[int]:
    """CNAS's candidate selection (``cnas.py`` ``_subset_selection`` / ``SubsetProblem``, the operators of its
    ``utils.py``): a genetic algorithm over subsets of exactly ``k`` candidates minimising :func:`subset_spread`
    (population 100, 60 generations; offspring keep both parents' common members and fill up from the members
    only one parent has; mutation swaps one member in and one out; elitist survival of distinct subsets).
    Returns the chosen indices into ``f2`` (all of them when there are at most ``k``)."""
    m = len(f2)
    if m <= k:
        return list(range(m))
    f2 = np.asarray(f2, dtype=np.float64)

    def score(s: np.ndarray) -> float:
        return subset_spread(f2[s], front_f2)

    def canon(s: np.ndarray) -> tuple[int, ...]:
        return tuple(sorted(int(i) for i in s))

    pop: dict[tuple[int, ...], float] = {}
    for _ in range(pop_size * 4):
        if len(pop) >= pop_size:
            break
        s = canon(rng.permutation(m)[:k])
        pop.setdefault(s, score(np.array(s)))
    for _ in range(n_gen):
        members = list(pop)
        children: dict[tuple[int, ...], float] = {}
        for _ in range(pop_size):
            a, b = (members[int(i)] for i in rng.integers(len(members), size=2))
            c, d = (members[int(i)] for i in rng.integers(len(members), size=2))
            p1 = a if pop[a] <= pop[b] else b  # binary tournaments
            p2 = c if pop[c] <= pop[d] else d
            common = sorted(set(p1) & set(p2))
            only = np.array(sorted(set(p1) ^ set(p2)), dtype=np.int64)
            child = np.array(common + rng.permutation(only)[: k - len(common)].tolist(), dtype=np.int64)
            outside = np.setdiff1d(np.arange(m), child)
            if len(outside):  # mutation: one member out, one in
                child[int(rng.integers(k))] = int(rng.choice(outside))
            key = canon(child)
            if key not in pop and key not in children:
                children[key] = score(np.array(key))
        merged = {**pop, **children}
        pop = dict(sorted(merged.items(), key=lambda kv: (kv[1], kv[0]))[:pop_size])
    best = min(pop.items(), key=lambda kv: (kv[1], kv[0]))[0]
    return list(best)


# engine kinds (the spec's ``engine.kind``) -> "module:Class"; each class has Engine's ask/tell/state contract and
# is imported only when a job asks for it (optional dependencies stay optional)
ENGINE_KINDS: dict[str, str] = {"msunas": "search.engine:Engine", "botorch": "search.engine_botorch:BotorchEngine",
                                "solver": "search.engine_solver:SolverEngine",
                                "gradient": "search.engine_gradient:GradientEngine"}


def make_engine(spec: JobSpec | Mapping[str, Any] | str | Path) -> Engine:
    """The engine a job spec asks for (``engine.kind``), fresh (load a state with ``load_state_dict``)."""
    job = spec if isinstance(spec, JobSpec) else load_spec(dict(spec) if isinstance(spec, Mapping) else spec)
    kind = job.engine.kind
    if kind not in ENGINE_KINDS:
        raise InputError("engine.kind", f"{kind!r} is not one of {sorted(ENGINE_KINDS)}")
    module, _, name = ENGINE_KINDS[kind].partition(":")
    cls = getattr(importlib.import_module(module), name)
    return cast(Engine, cls(job))
