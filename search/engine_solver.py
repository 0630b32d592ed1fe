"""One-shot constrained solvers (``engine: {kind: solver, method: milp|bcfw|evo}``): BINAS/HardCoRe-NAS's search.

The bilinear accuracy estimator (``predictor: {name: bilinear}``, fitted on the initial design with
``fit: archive``, or read from a measured table with ``fit: contributions``, :mod:`search.contributions`) is
maximised once under the job's constraints; every cost is additive in the per-stage depth and per-layer choices
(params and MACs exact, latency the sum of the LUT's blocks: :mod:`search.milp`). Three methods:

* ``milp``: the exact integer program of :func:`search.milp.solve` (HiGHS) -- BINAS ``nas/src/optim/iqcp.py``
  (its integer quadratically constrained program, linearised exactly as in :mod:`search.milp`).
* ``bcfw``: block coordinate Frank-Wolfe over relaxed per-stage depth probabilities ``beta`` and per-layer
  operator probabilities ``alpha`` (HardCoRe-NAS / BINAS ``nas/src/optim/block_frank_wolfe.py``): the expected
  accuracy and expected costs are bilinear in (alpha, beta), so with one block fixed the problem in the other is
  a linear program over a product of simplices with the linear cost rows; each step moves towards that LP's
  vertex (step ``2 / (t + 2)``), starting from the smallest network (feasible whenever anything is). The
  relaxation is rounded by argmax per block; a rounded network that breaks a bound is repaired greedily (the
  downgrade that removes the most violation per point of predicted accuracy) until it fits.
* ``evo``: an evolutionary search on the predictor (BINAS ``nas/src/optim/evo.py``): truncation selection,
  uniform crossover of blocks and per-block mutation, with the constraints as a hard filter on every child.

Picks (``n_picks``): the best network under the job's constraints, then the same method under a sweep of tighter
bounds on the second objective (evenly spaced between its smallest feasible value and the best pick's), distinct
and never already evaluated. The picks are then evaluated like any candidate (run folder, database). Iterations:
with ``fit: archive`` iteration 0 is the initial design (to fit the predictor) and iteration 1 the picks; with
``fit: contributions`` iteration 0 is the picks. Nothing infeasible is ever proposed (every pick is checked with
the exact cost functions). Resume is the engine's ``state_dict`` (the solver's randomness, ``evo``'s, is drawn
from the engine's RNG, which it holds).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
from scipy.optimize import linprog

from search import milp as M
from search.engine import Engine
from search.spec import JobSpec, SolverEngineSpec
from supernets import codec

__all__ = ["SolverEngine", "bcfw_solve", "evo_solve"]

Cons = Mapping[str, tuple[M.AdditiveModel, float]]
N_OPS = len(M.OPS)
K3E3 = M.K3E3
_cfg = M.canonical_config


def _feasible(cfg: Mapping[str, Any], cons: Cons, exact: bool = True) -> bool:
    return all(float((m.exact if exact else m.value)([cfg])[0]) <= v for m, v in cons.values())


def _act(beta: np.ndarray) -> np.ndarray:
    """Probability that each slot exists, (20,), from per-stage depth probabilities (5, 3)."""
    out = np.empty(codec.N_SLOTS)
    for slot in range(codec.N_SLOTS):
        s, j = divmod(slot, codec.MAX_DEPTH)
        out[slot] = sum(beta[s, b] for b, dv in enumerate(codec.DEPTHS) if dv > j)
    return out


def _alpha_coef(m: M.AdditiveModel, i: int, beta: np.ndarray) -> np.ndarray:
    return (_act(beta)[:, None] * m.op[i]).reshape(-1)


def _beta_coef(m: M.AdditiveModel, i: int, alpha: np.ndarray) -> np.ndarray:
    per_slot = (alpha * m.op[i]).sum(1)
    c = m.depth[i].copy()
    for s in range(codec.N_STAGES):
        for b, dv in enumerate(codec.DEPTHS):
            c[s, b] += per_slot[s * codec.MAX_DEPTH : s * codec.MAX_DEPTH + dv].sum()
    return c.reshape(-1)


def _simplex_eq(n_blocks: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    a = np.zeros((n_blocks, n_blocks * width))
    for b in range(n_blocks):
        a[b, b * width : (b + 1) * width] = 1.0
    return a, np.ones(n_blocks)


def _fw_step(x: np.ndarray, obj: np.ndarray, rows: list[np.ndarray], rhs: list[float],
             eq: tuple[np.ndarray, np.ndarray], gamma: float) -> np.ndarray:
    """One Frank-Wolfe move of block ``x`` towards the LP vertex maximising ``obj`` under ``rows <= rhs`` on the
    product of simplices ``eq`` (``x`` unchanged when the LP has no solution)."""
    lp = linprog(-obj, A_ub=np.array(rows) if rows else None, b_ub=np.array(rhs) if rows else None,
                 A_eq=eq[0], b_eq=eq[1], bounds=(0, 1), method="highs")
    return x if lp.x is None else (1 - gamma) * x + gamma * lp.x.reshape(x.shape)


def _repair(cfg: dict[str, Any], acc: M.AdditiveModel, cons: Cons) -> dict[str, Any] | None:
    """Greedy downgrades (a layer to k3/e3, a stage one layer shallower) until every bound holds."""
    def viol(c: Mapping[str, Any]) -> float:
        return sum(max(0.0, float(m.value([c])[0]) / v - 1.0) for m, v in cons.values())

    cur = dict(cfg)
    for _ in range(codec.N_SLOTS + codec.N_STAGES * 2 + 1):
        if _feasible(cur, cons):
            return cur
        v0, a0 = viol(cur), float(acc.value([cur])[0])
        best: tuple[float, dict[str, Any]] | None = None
        for s in range(codec.N_STAGES):
            cands = []
            if cur["d"][s] > codec.DEPTHS[0]:
                d = list(cur["d"])
                d[s] -= 1
                cands.append({**cur, "d": d})
            for j in range(cur["d"][s]):
                slot = s * codec.MAX_DEPTH + j
                if (cur["ks"][slot], cur["e"][slot]) != (3, 3):
                    ks, e = list(cur["ks"]), list(cur["e"])
                    ks[slot], e[slot] = 3, 3
                    cands.append({**cur, "ks": ks, "e": e})
            for c in cands:
                c = codec.normalize_backbone(c)
                gain = v0 - viol(c)
                if gain <= 0:
                    continue
                score = gain / max(a0 - float(acc.value([c])[0]), 1e-9)
                if best is None or score > best[0]:
                    best = (score, c)
        if best is None:
            return None
        cur = best[1]
    return cur if _feasible(cur, cons) else None


def bcfw_solve(acc: M.AdditiveModel, cons: Cons, *, iters: int = 200, exclude: Sequence[Mapping[str, Any]] = ()
               ) -> dict[str, Any] | None:
    """Block coordinate Frank-Wolfe on the relaxed (alpha, beta), per resolution; the best rounded feasible net."""
    eq_alpha, eq_beta = _simplex_eq(codec.N_SLOTS, N_OPS), _simplex_eq(codec.N_STAGES, 3)
    skip = {codec.config_key(c) for c in exclude}
    best: tuple[float, dict[str, Any]] | None = None
    for i, r in enumerate(acc.resolutions):
        ref = _cfg([2] * 5, [K3E3] * 20, r)
        if not _feasible(ref, cons):
            continue
        alpha = np.zeros((codec.N_SLOTS, N_OPS))
        alpha[:, K3E3] = 1.0
        beta = np.zeros((codec.N_STAGES, 3))
        beta[:, 0] = 1.0
        idx = {name: m.resolutions.index(r) for name, (m, _) in cons.items()}
        for t in range(iters):
            gamma = 2.0 / (t + 2.0)
            if t % 2 == 0:  # alpha block, beta fixed: linear in alpha
                rows = [_alpha_coef(m, idx[n], beta) for n, (m, _) in cons.items()]
                rhs = [v - m.base[idx[n]] - float((m.depth[idx[n]] * beta).sum()) for n, (m, v) in cons.items()]
                alpha = _fw_step(alpha, _alpha_coef(acc, i, beta), rows, rhs, eq_alpha, gamma)
            else:  # beta block, alpha fixed: linear in beta
                rows = [_beta_coef(m, idx[n], alpha) for n, (m, _) in cons.items()]
                rhs = [v - m.base[idx[n]] for n, (m, v) in cons.items()]
                beta = _fw_step(beta, _beta_coef(acc, i, alpha), rows, rhs, eq_beta, gamma)
        d = [codec.DEPTHS[int(np.argmax(beta[s]))] for s in range(codec.N_STAGES)]
        cfg = _repair(_cfg(d, np.argmax(alpha, 1).tolist(), r), acc, cons)
        if cfg is None or codec.config_key(cfg) in skip:
            continue
        val = float(acc.value([cfg])[0])
        if best is None or val > best[0]:
            best = (val, cfg)
    return best[1] if best else None


def evo_solve(acc: M.AdditiveModel, cons: Cons, rng: np.random.Generator, *, pop: int = 100, gens: int = 50,
              exclude: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any] | None:
    """Evolutionary search on the predictor with the bounds as a hard filter; the best feasible new network."""
    skip = {codec.config_key(c) for c in exclude}
    res = list(acc.resolutions)

    def genes(c: Mapping[str, Any]) -> np.ndarray:
        ops = [M.OPS.index((c["ks"][s], c["e"][s])) for s in range(codec.N_SLOTS)]
        return np.array([codec.DEPTHS.index(v) for v in c["d"]] + ops + [res.index(int(c["r"]))])

    def cfg_of(g: np.ndarray) -> dict[str, Any]:
        return _cfg([codec.DEPTHS[int(b)] for b in g[:5]], g[5:25].tolist(), res[int(g[25])])

    hi = np.array([3] * 5 + [N_OPS] * 20 + [len(res)])
    seen: dict[str, tuple[float, np.ndarray]] = {}

    def add(G: np.ndarray) -> None:
        for g in G:
            c = cfg_of(g)
            k = codec.config_key(c)
            if k not in seen and _feasible(c, cons, exact=False):
                seen[k] = (float(acc.value([c])[0]), genes(c))

    add(np.array([genes(_cfg([2] * 5, [K3E3] * 20, r)) for r in res]))
    add(rng.integers(0, hi, size=(pop * 4, len(hi))))
    if not seen:
        return None
    for _ in range(gens):
        ranked = sorted(seen.values(), key=lambda t: -t[0])[:pop]
        parents = np.array([g for _, g in ranked[: max(2, len(ranked) // 2)]])
        a = parents[rng.integers(0, len(parents), pop)]
        b = parents[rng.integers(0, len(parents), pop)]
        child = np.where(rng.random(a.shape) < 0.5, a, b)
        mut = rng.random(child.shape) < 1.0 / len(hi) * 2
        child = np.where(mut, rng.integers(0, hi, size=child.shape), child)
        add(child)
    for _, g in sorted(seen.values(), key=lambda t: -t[0]):
        c = cfg_of(g)
        if codec.config_key(c) not in skip and _feasible(c, cons):
            return c
    return None


class SolverEngine(Engine):
    """One-shot constrained optimisation of the bilinear predictor (see the module docstring)."""

    def __init__(self, spec: JobSpec | Mapping[str, Any] | str | Path) -> None:
        super().__init__(spec)
        self.sopts = cast(SolverEngineSpec, self.spec.engine)
        self.contrib = self.spec.predictor_spec().fit == "contributions"
        self.last_iteration = min(self.spec.iterations, 0 if self.contrib else 1)

    def has_next(self) -> bool:
        if self.pending is not None:
            return True
        return not self.stopped and self.iteration <= self.last_iteration

    def ask(self) -> list[dict[str, Any]]:
        if self.pending is None and self.iteration == 0 and self.contrib and not self.archive:
            t0 = time.perf_counter()
            configs, info = self._propose()
            info["timing"]["ask"] = time.perf_counter() - t0
            self.pending = {"iteration": 0, "configs": configs, "keys": [codec.config_key(c) for c in configs],
                            **info}
        return super().ask()

    # ------------------------------------------------------------------------------------------ models
    def _models(self, sur: Mapping[str, Any]) -> tuple[M.AdditiveModel, Cons, M.AdditiveModel | None]:
        space, objectives = self.space, self.objectives
        top = sur["top1_err"]
        if hasattr(top, "model"):  # a contributions table: additive by construction
            acc = top.model
        else:
            acc = M.additive_model(lambda cs: 100.0 - top.predict(space.encode_many(list(cs))), self._resolutions)
        models: dict[str, M.AdditiveModel] = {}

        def model_of(key: str) -> M.AdditiveModel:
            key = "latency_ms" if key == "latency" else key
            if key not in models:
                if key == "latency_ms":
                    models[key] = M.latency_model(lambda cs: objectives.costs(cs)["latency_ms"], self._resolutions)
                else:
                    models[key] = M.cost_model(key, self._resolutions, width_mult=objectives.width_mult,
                                               n_classes=objectives.n_classes)
            return models[key]

        cons = {k: (model_of(k), float(v)) for k, v in self.spec.constraints.items()}
        second = model_of(self.spec.objectives[1]) if len(self.spec.objectives) == 2 else None
        return acc, cons, second

    def _solve(self, acc: M.AdditiveModel, cons: Cons, exclude: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
        o = self.sopts
        if o.method == "milp":
            return M.solve(acc, cons, exclude=exclude).config
        if o.method == "bcfw":
            return bcfw_solve(acc, cons, iters=o.bcfw_iters, exclude=exclude)
        return evo_solve(acc, cons, self.rng, pop=o.evo_pop, gens=o.evo_gens, exclude=exclude)

    def _propose(self) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        cpu0 = time.process_time()
        sur, info, timing = self._fit_surrogates()
        t0 = time.perf_counter()
        acc, cons, second = self._models(sur)
        seen: list[dict[str, Any]] = [r["config"] for r in self.archive]
        picks: list[dict[str, Any]] = []
        first = self._solve(acc, cons, seen)
        if first is not None:
            picks.append(first)
            seen.append(first)
        if first is not None and second is not None and self.sopts.n_picks > 1:
            lo_sol = M.solve(second, cons, maximize=False)
            lo = float(second.value([lo_sol.config])[0]) if lo_sol.config else 0.0
            hi = float(second.value([first])[0])
            for eps in np.linspace(hi, lo, self.sopts.n_picks + 1)[1:-1].tolist() + [lo]:
                if len(picks) >= self.sopts.n_picks:
                    break
                c2 = {**cons, "__second__": (second, float(eps) * (1 + 1e-12))}
                cfg = self._solve(acc, c2, seen)
                if cfg is not None and codec.config_key(cfg) not in {codec.config_key(p) for p in picks}:
                    picks.append(cfg)
                    seen.append(cfg)
        elif first is not None:
            while len(picks) < self.sopts.n_picks:
                cfg = self._solve(acc, cons, seen)
                if cfg is None:
                    break
                picks.append(cfg)
                seen.append(cfg)
        picks = [self.space.validate(c) for c in picks]
        timing["search"] = time.perf_counter() - t0
        timing["select"] = 0.0
        timing["overhead"] = timing["fit"] + timing["search"]
        timing["overhead_cpu"] = time.process_time() - cpu0 - timing.pop("_cv_cpu", 0.0)
        if not picks:
            self.stopped, self.stop_reason = True, "no network satisfies the constraints under the predictor"
        Fp = self._predict(self.space.encode_many(picks), sur)[0] if picks else np.zeros((0, 2))
        info = {**info, "solver": self.sopts.method}
        return picks, {"surrogate": info, "predicted": [[float(v) for v in f] for f in Fp], "timing": timing,
                       "pool": len(picks)}
