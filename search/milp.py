"""BINAS-style exact constrained search: maximise an additive (bilinear) accuracy model under additive costs.

Why it is exact
---------------
A function ``f`` of a MobileNetV3 config is *additive* when, for every resolution ``r``::

    f(config) = base[r] + sum_s depth[s, d_s] + sum_{active slots (s, j)} op[4 s + j, k_j, e_j]

(``depth[s, 0] = 0``, ``op[., k3, e3] = 0``). BINAS's bilinear accuracy estimator is of this form (its
depth x layer-choice products are exactly "an operator counts only on a layer the depth keeps"), and so are
params and MACs at a fixed resolution: a layer's cost depends only on its stage, on whether it is the stage's
first layer, on its kernel/expand choice and on ``r`` (input/output channels and strides are fixed by the
position). :func:`additive_model` reads ``base``/``depth``/``op`` off any such function by probing it
(1 + 10 + 180 configs per resolution) and then *verifies* the decomposition on random configs, raising
``ValueError`` when the function is not additive (e.g. an MLP predictor) -- so the solver is never silently
wrong. A latency lookup table's prediction is additive too (:func:`latency_model`): a subnet's latency is the sum
of its blocks' entries, each block fixed by its position, kernel/expand choice and ``r``, and the table's bias
correction ``scale * block_sum + offset_ms`` is affine with ``scale > 0``, so it only rescales the per-choice
terms and moves ``base``.

The integer program (one per resolution, HiGHS via ``scipy.optimize.milp``)
---------------------------------------------------------------------------
Binary ``y[s, b]`` = stage ``s`` has depth ``(2, 3, 4)[b]``; binary ``z[s, j, c]`` = layer ``j`` of stage ``s``
exists *and* uses operator ``c`` (9 kernel/expand pairs). ``z`` is BINAS's product ``alpha[s, j, c] *
beta_active[s, j]`` linearised the standard way, with the operator one-hot eliminated: ``sum_c z[s, j, c]``
equals the slot's activity, which is linear in ``y`` (1 for j < 2, ``y[s,1] + y[s,2]`` for j = 2, ``y[s,2]``
for j = 3). Objective and every cost are then linear in (y, z); each cost bound is one row. Configs to avoid
(already evaluated) are cut off with no-good cuts. The best of the per-resolution optima is the global optimum
(195 binaries per resolution; milliseconds each). Every answer is checked against the constraints' own functions
(the exact cost model, ``LatencyTable.predict``), not only against the linear rows: an answer that exceeds a bound
by floating-point rounding (the solver's row tolerance) is cut off and the resolution solved again, so a returned
config always satisfies every bound as the rest of msunas computes it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import csr_matrix, lil_matrix

from supernets import codec
from supernets.cost import cost_metrics
from supernets.errors import InputError

OPS: list[tuple[int, int]] = [(k, e) for k in codec.KERNELS for e in codec.EXPANDS]
N_OPS = len(OPS)
N_Y = codec.N_STAGES * len(codec.DEPTHS)
N_Z = codec.N_SLOTS * N_OPS
N_VARS = N_Y + N_Z
ConfigFn = Callable[[Sequence[Mapping[str, Any]]], np.ndarray]


def _config(d: Sequence[int], ops: Sequence[int], r: int) -> dict[str, Any]:
    return {"ks": [OPS[c][0] for c in ops], "e": [OPS[c][1] for c in ops], "d": list(d), "r": int(r)}


K3E3 = OPS.index((3, 3))  # the lightest operator: the reference of the contributions and the solvers' start


def canonical_config(d: Sequence[int], ops: Sequence[int], r: int) -> dict[str, Any]:
    """The canonical config of per-stage depths ``d``, per-slot operator indices into :data:`OPS` and ``r``."""
    return codec.normalize_backbone(_config(list(d), list(ops), int(r)))


@dataclass
class AdditiveModel:
    """``f = base[r] + sum_s depth[s, d_s] + sum_active op[slot, c]`` (see the module docstring)."""

    resolutions: list[int]
    base: np.ndarray  # (R,)
    depth: np.ndarray  # (R, 5, 3), [..., 0] == 0
    op: np.ndarray  # (R, 20, 9), [..., k3e3] == 0
    max_error: float = 0.0  # largest |f - decomposition| seen in the verification
    fn: ConfigFn | None = field(default=None, repr=False, compare=False)  # the function itself (exact checks)

    def exact(self, configs: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """``f`` itself on canonical configs where it is known (the decomposition otherwise)."""
        if self.fn is None:
            return self.value(configs)
        return np.asarray(self.fn(list(configs)), dtype=np.float64).reshape(-1)

    def value(self, configs: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """The decomposition evaluated on canonical configs (equals ``f`` for an additive ``f``)."""
        out = np.empty(len(configs))
        ri = {r: i for i, r in enumerate(self.resolutions)}
        for n, c in enumerate(configs):
            i = ri[int(c["r"])]
            v = self.base[i]
            for s in range(codec.N_STAGES):
                v += self.depth[i, s, codec.DEPTHS.index(c["d"][s])]
                for j in range(c["d"][s]):
                    slot = s * codec.MAX_DEPTH + j
                    v += self.op[i, slot, OPS.index((c["ks"][slot], c["e"][slot]))]
            out[n] = v
        return out

    def coefficients(self, r: int) -> np.ndarray:
        """Linear coefficients over the MILP variables (y then z) at resolution ``r``; the constant is ``base``."""
        i = self.resolutions.index(int(r))
        return np.concatenate([self.depth[i].reshape(-1), self.op[i].reshape(-1)])

    def constant(self, r: int) -> float:
        """``base`` at resolution ``r``."""
        return float(self.base[self.resolutions.index(int(r))])


def additive_model(
    fn: ConfigFn,
    resolutions: Sequence[int],
    *,
    n_check: int = 300,
    rtol: float = 1e-7,
    seed: int = 0,
    what: str = "predictor",
) -> AdditiveModel:
    """Read the additive decomposition of ``fn(configs) -> values`` and verify it on ``n_check`` random configs.

    Raises ``ValueError`` starting with ``what`` (the field to blame) when ``fn`` is not additive (largest
    deviation above ``rtol`` times its value range).
    """
    res = [int(r) for r in resolutions]
    k3e3 = OPS.index((3, 3))
    probes: list[dict[str, Any]] = []
    for r in res:
        probes.append(_config([2] * 5, [k3e3] * 20, r))
        for s in range(codec.N_STAGES):
            for dv in codec.DEPTHS[1:]:
                d = [2] * 5
                d[s] = dv
                probes.append(_config(d, [k3e3] * 20, r))
        for slot in range(codec.N_SLOTS):
            d = [2] * 5
            d[slot // codec.MAX_DEPTH] = 4
            for c in range(N_OPS):
                ops = [k3e3] * 20
                ops[slot] = c
                probes.append(_config(d, ops, r))
    per_r = 1 + codec.N_STAGES * 2 + N_Z
    v = np.asarray(fn(probes), dtype=np.float64).reshape(len(res), per_r)
    base = v[:, 0].copy()
    depth = np.zeros((len(res), codec.N_STAGES, len(codec.DEPTHS)))
    depth[:, :, 1:] = v[:, 1:11].reshape(len(res), codec.N_STAGES, 2) - base[:, None, None]
    op_raw = v[:, 11:].reshape(len(res), codec.N_SLOTS, N_OPS)
    op = op_raw - op_raw[:, :, [k3e3]]
    model = AdditiveModel(res, base, depth, op, fn=fn)
    rng = np.random.default_rng(seed)
    checks = [
        _config(rng.choice(codec.DEPTHS, 5).tolist(), rng.integers(0, N_OPS, 20).tolist(), int(rng.choice(res)))
        for _ in range(n_check)
    ]
    checks = [codec.normalize_backbone(c) for c in checks]
    truth = np.asarray(fn(checks), dtype=np.float64).reshape(-1)
    err = np.abs(truth - model.value(checks))
    scale = max(float(np.ptp(np.concatenate([truth, v.ravel()]))), float(np.max(np.abs(truth))), 1e-12)
    model.max_error = float(err.max()) if len(err) else 0.0
    if model.max_error > rtol * scale:
        hint = "; the MILP needs a bilinear model" if what == "predictor" else ""
        raise InputError(
            f"{what}",
            f"the function is not additive in per-stage depth and per-layer choices (max deviation"
            f" {model.max_error:.3g} on {n_check} random configs){hint}"
        )
    return model


def cost_model(
    metric: str, resolutions: Sequence[int], *, width_mult: float = 1.0, n_classes: int = 1000
) -> AdditiveModel:
    """Additive model of an exact cost (``params`` or ``macs``) from :func:`supernets.cost.cost_metrics`."""
    if metric not in ("params", "macs"):
        raise InputError("constraints", f"{metric!r} is not additive (the MILP supports params and macs)")

    def fn(configs: Sequence[Mapping[str, Any]]) -> np.ndarray:
        return np.asarray(cost_metrics(list(configs), width_mult=width_mult, n_classes=n_classes)[metric])

    return additive_model(fn, resolutions, rtol=0.0)


def latency_model(
    table: Any, resolutions: Sequence[int], *, width_mult: float | None = None, rtol: float = 1e-9
) -> AdditiveModel:
    """Additive model of a latency table's prediction in ms (block sum, then its affine bias correction).

    ``table`` is a :class:`supernets.latency.LatencyTable` (its ``predict``) or any ``fn(configs) -> ms``, e.g.
    the engine's latency provider; the decomposition is verified like any other (``rtol`` of the value range
    covers the float rounding of summing the blocks in another order). A table without an entry for some
    block of the space, or a latency model that is not additive, raises ``ValueError`` naming ``latency_table``.
    """
    fn = table.predict if hasattr(table, "predict") else table
    if width_mult is not None and hasattr(table, "width_mult") and float(table.width_mult) != float(width_mult):
        raise InputError("latency_table", f"a width {table.width_mult} table, the search has {width_mult}")
    if hasattr(table, "correction") and table.correction and not float(table.correction.get("scale", 1.0)) > 0:
        raise InputError("latency_table", "its bias correction has a non-positive scale")

    def ms(configs: Sequence[Mapping[str, Any]]) -> np.ndarray:
        return np.asarray(fn(list(configs)), dtype=np.float64).reshape(-1)

    try:
        return additive_model(ms, resolutions, rtol=rtol, what="latency_table")
    except ValueError as e:  # a block or resolution the table lacks: the table's fault, blamed on the field
        if isinstance(e, InputError) and e.field == "latency_table":
            raise
        raise InputError("latency_table", str(e)) from None


def _structure_rows() -> tuple[csr_matrix, np.ndarray]:
    """Equality rows: one depth per stage; each slot's operator count equals its activity."""
    a = lil_matrix((codec.N_STAGES + codec.N_SLOTS, N_VARS))
    rhs = np.zeros(codec.N_STAGES + codec.N_SLOTS)
    for s in range(codec.N_STAGES):
        for b in range(3):
            a[s, s * 3 + b] = 1.0
        rhs[s] = 1.0
    for slot in range(codec.N_SLOTS):
        s, j = divmod(slot, codec.MAX_DEPTH)
        row = codec.N_STAGES + slot
        for c in range(N_OPS):
            a[row, N_Y + slot * N_OPS + c] = 1.0
        if j < 2:
            rhs[row] = 1.0
        else:  # sum_c z = activity(y): j=2 needs depth >= 3 (b >= 1), j=3 needs depth 4 (b = 2)
            for b in range(j - 1, 3):
                a[row, s * 3 + b] = -1.0
    return a.tocsr(), rhs


def _assignment(config: Mapping[str, Any]) -> np.ndarray:
    """The 0/1 variable vector of a canonical config (inactive slots carry no operator)."""
    x = np.zeros(N_VARS)
    for s in range(codec.N_STAGES):
        x[s * 3 + codec.DEPTHS.index(config["d"][s])] = 1.0
        for j in range(config["d"][s]):
            slot = s * codec.MAX_DEPTH + j
            x[N_Y + slot * N_OPS + OPS.index((config["ks"][slot], config["e"][slot]))] = 1.0
    return x


def _decode(x: np.ndarray, r: int) -> dict[str, Any]:
    xi = np.round(x).astype(int)
    d = [codec.DEPTHS[int(np.argmax(xi[s * 3 : s * 3 + 3]))] for s in range(codec.N_STAGES)]
    ops = []
    for slot in range(codec.N_SLOTS):
        zz = xi[N_Y + slot * N_OPS : N_Y + (slot + 1) * N_OPS]
        ops.append(int(np.argmax(zz)) if zz.any() else OPS.index((3, 3)))
    return codec.normalize_backbone(_config(d, ops, r))


@dataclass
class Solution:
    """The solver's answer: the config, its predicted value and the time it took."""

    config: dict[str, Any] | None
    value: float
    seconds: float
    status: str


def solve(
    objective: AdditiveModel,
    constraints: Mapping[str, tuple[AdditiveModel, float]] | None = None,
    *,
    resolutions: Sequence[int] | None = None,
    exclude: Sequence[Mapping[str, Any]] = (),
    maximize: bool = True,
    time_limit: float = 60.0,
    max_repairs: int = 20,
) -> Solution:
    """Best config under ``objective`` with every ``constraints[name] = (cost model, maximum)`` satisfied.

    ``exclude`` lists canonical configs that must not be returned (no-good cuts); ``resolutions`` restricts
    the resolutions tried (default: the objective's). Status ``infeasible`` (config None) when nothing fits.
    Each answer is checked with the constraint models' own functions (``AdditiveModel.exact``); one that
    exceeds a bound by rounding is cut off and the resolution re-solved (at most ``max_repairs`` times).
    """
    t0 = time.perf_counter()
    constraints = dict(constraints or {})
    res = [int(r) for r in (resolutions if resolutions is not None else objective.resolutions)]
    a_eq, b_eq = _structure_rows()
    sign = -1.0 if maximize else 1.0
    best: Solution = Solution(None, -np.inf if maximize else np.inf, 0.0, "infeasible")
    for r in res:
        rows = [LinearConstraint(a_eq, b_eq, b_eq)]
        for name, (m, vmax) in constraints.items():
            if r not in m.resolutions:
                raise InputError(f"constraints.{name}", f"no cost model for resolution {r}")
            rows.append(LinearConstraint(m.coefficients(r)[None, :], -np.inf, float(vmax) - m.constant(r)))
        cuts = [_assignment(c) for c in exclude if int(c["r"]) == r]
        for _ in range(max_repairs + 1):
            cut_rows = list(rows)
            if cuts:
                a_cut = np.array(cuts)
                cut_rows.append(LinearConstraint(a_cut, -np.inf, a_cut.sum(axis=1) - 1.0))
            out = milp(
                sign * objective.coefficients(r),
                constraints=cut_rows,
                integrality=np.ones(N_VARS),
                bounds=Bounds(0, 1),
                options={"time_limit": time_limit, "mip_rel_gap": 0.0},
            )
            if out.x is None:
                break
            cfg = _decode(out.x, r)
            if all(float(m.exact([cfg])[0]) <= float(vmax) for m, vmax in constraints.values()):
                break
            cuts.append(_assignment(cfg))  # over a bound by the row tolerance: cut it off, solve again
        else:
            continue
        if out.x is None:
            continue
        val = objective.constant(r) + float(objective.coefficients(r) @ np.round(out.x))
        if (maximize and val > best.value) or (not maximize and val < best.value):
            best = Solution(cfg, float(val), 0.0, "optimal" if out.status == 0 else str(out.message))
    best.seconds = time.perf_counter() - t0
    return best


def solve_front(
    objective: AdditiveModel,
    second: AdditiveModel,
    n: int,
    constraints: Mapping[str, tuple[AdditiveModel, float]] | None = None,
    *,
    exclude: Sequence[Mapping[str, Any]] = (),
    bounds: Sequence[float] | None = None,
) -> list[Solution]:
    """Up to ``n`` distinct configs on the predicted front of (max ``objective``, min ``second``).

    Epsilon-constraint method: ``second <= eps`` for ``n`` bounds spread evenly between the smallest feasible
    ``second`` and that of the unconstrained optimum (or the given ``bounds``); each answer is then excluded
    from the next solves, so the configs are distinct and never one of ``exclude``.
    """
    constraints = dict(constraints or {})
    seen = list(exclude)
    if bounds is None:
        lo = solve(second, constraints, maximize=False, exclude=seen)
        hi = solve(objective, constraints, exclude=seen)
        if lo.config is None or hi.config is None:
            return []
        b_lo = float(second.value([lo.config])[0])
        b_hi = float(second.value([hi.config])[0])
        bounds = list(np.linspace(b_lo, b_hi, n)) if n > 1 else [b_hi]
    out: list[Solution] = []
    for b in bounds:
        cons = dict(constraints)
        cons["__second__"] = (second, float(b) * (1 + 1e-12))
        sol = solve(objective, cons, exclude=seen)
        if sol.config is None:
            continue
        out.append(sol)
        seen.append(sol.config)
    return out


def engine_pool(engine: Any, surrogates: Mapping[str, Any], n: int | None = None) -> np.ndarray:
    """Candidate genomes for the engine's ``optimizer: milp``: the MILP's predicted front under the job's bounds.

    The surrogate's ``top1_err`` (a bilinear predictor: verified additive) is minimised, exact params/MACs
    constraints and a ``latency_ms`` bound (the job's latency table, :func:`latency_model`) are hard rows,
    archived configs are excluded by no-good cuts. With two objectives (the second params, macs or latency)
    the epsilon-constraint front of ``2 * n_iter`` configs is returned (the engine's selection then picks
    ``n_iter`` by predicted hypervolume gain); with one, the ``n_iter`` best distinct configs.
    """
    space = engine.space
    spec = engine.spec
    n = int(n or 2 * spec.n_iter)
    objectives = engine.objectives
    width, classes = objectives.width_mult, objectives.n_classes
    sur = surrogates["top1_err"]
    acc = additive_model(lambda cs: -sur.predict(space.encode_many(list(cs))), space.resolutions)
    models: dict[str, AdditiveModel] = {}

    def model_of(key: str) -> AdditiveModel:
        key = "latency_ms" if key == "latency" else key
        if key not in models:
            if key == "latency_ms":
                models[key] = latency_model(lambda cs: objectives.costs(cs)["latency_ms"], space.resolutions)
            else:
                models[key] = cost_model(key, space.resolutions, width_mult=width, n_classes=classes)
        return models[key]

    cons = {k: (model_of(k), float(v)) for k, v in spec.constraints.items()}
    exclude = [r["config"] for r in engine.archive]
    if len(spec.objectives) == 2:
        second = model_of(spec.objectives[1])
        sols = solve_front(acc, second, n, cons, exclude=exclude)
    else:
        sols = []
        seen = list(exclude)
        for _ in range(n):
            s = solve(acc, cons, exclude=seen)
            if s.config is None:
                break
            sols.append(s)
            seen.append(s.config)
    if not sols:
        return np.zeros((0, space.n_var), dtype=np.int64)
    return space.encode_many([s.config for s in sols])
