"""Bayesian multi-objective engine (``engine: {kind: botorch}``): BoTorch's qNEHVI or qNParEGO over the genome.

Same ask/tell/state contract, run folder, database rows and resume as the MSuNAS engine (it subclasses
:class:`search.engine.Engine`): iteration 0 is the same initial design; every later iteration

1. fits one exact GP (BoTorch ``SingleTaskGP``: Matern-5/2 ARD kernel, inputs the integer genome scaled to
   [0, 1], outcome standardised, hyperparameters by maximum marginal likelihood) to the archive's top-1 error;
2. builds a discrete candidate pool of valid canonical genomes not yet evaluated: the designs pymoo's NSGA-II
   visits on (GP posterior mean error, exact second objective), one-gene mutations of the archive's front, and
   uniform samples (``pool_size`` at most);
3. picks ``n_iter`` of them with BoTorch's sequential greedy ``optimize_acqf_discrete`` on
   ``qLogNoisyExpectedHypervolumeImprovement`` (``acquisition: qnehvi``) or on ``qLogNoisyExpectedImprovement``
   of a random augmented-Chebyshev scalarisation per pick (``qnparego``).

The cost objective is never modelled: a :class:`botorch.models.deterministic.GenericDeterministicModel` computes
it exactly from the genome (the same :class:`search.objectives.Objectives` as the archive, penalty included), next
to the GP in a ``ModelListGP``. Objectives are divided by the engine's reference point, so the acquisition's
reference point is (1, 1) (BoTorch maximises: both are negated). ``constraint_mode: hard`` keeps only designs
whose exact costs meet the constraints in the pool (the least violating when none does).

Exact resume: every seed (GP fit, MC sampler, NSGA-II, pool) is drawn from the engine's numpy ``Generator``, whose
state is in ``state_dict()``; the GP is refitted from the archive at each ask, so nothing else is kept.
Objectives that need a predicted evaluator metric (``avg_macs``, ``top1_robust``...) are refused: the second
objective and the constraints must be exact costs.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.optimize import minimize

from search.engine import (
    Engine,
    _CanonicalRepair,
    _InnerProblem,
    _ResetMutation,
    _UniformCrossover,
    canonicalise_genomes,
)
from search.spec import BotorchEngineSpec, JobSpec
from supernets.errors import InputError

__all__ = ["BotorchEngine"]


class _GPMean:
    """The GP's posterior mean error (%) as a ``predict(genomes)`` surrogate (the pool's NSGA-II runs on it);
    the GP models ``-error / ref_err`` (BoTorch maximises)."""

    def __init__(self, model: Any, scale: np.ndarray, ref_err: float) -> None:
        self.model = model
        self.scale = scale
        self.ref_err = ref_err

    def predict(self, X: np.ndarray) -> np.ndarray:
        if len(X) == 0:
            return np.zeros(0)
        with torch.no_grad():
            x = torch.as_tensor(np.asarray(X, dtype=np.float64) / self.scale)
            return cast(np.ndarray, -self.ref_err * self.model.posterior(x).mean.squeeze(-1).numpy())


class BotorchEngine(Engine):
    """BoTorch's qNEHVI / qNParEGO on a GP over the genome, exact cost objective (see the module docstring)."""

    def __init__(self, spec: JobSpec | Mapping[str, Any] | str | Path) -> None:
        super().__init__(spec)
        self.bopts = cast(BotorchEngineSpec, self.spec.engine)
        if self.objectives.n_obj != 2:
            raise InputError("objectives", "engine kind botorch needs two objectives (the error and a cost)")
        if self.objectives.names[0] != "top1_err" or self.objectives.needs_metric_prediction():
            raise InputError(
                "engine.kind",
                "botorch models the top-1 error only: the second objective and the constraints must be exact costs"
                " (params, macs, activations, latency, tiny_ml), not predicted evaluator metrics",
            )
        self._scale = np.maximum(self.space.xu.astype(np.float64), 1.0)

    # --------------------------------------------------------------------------------------------- model
    def _fit_gp(self, seed: int) -> tuple[Any, np.ndarray, np.ndarray]:
        from botorch.fit import fit_gpytorch_mll
        from botorch.models import SingleTaskGP
        from botorch.models.transforms.outcome import Standardize
        from gpytorch.mlls import ExactMarginalLogLikelihood

        ok = [r for r in self.archive if r["status"] == "ok"]
        if len(ok) < 2:
            raise InputError("engine", "fewer than 2 successful evaluations; the GP cannot be fitted")
        X = canonicalise_genomes(self.space.encode_many([r["config"] for r in ok]))
        y = np.array([100.0 - r["metrics"]["top1"] for r in ok], dtype=np.float64)
        torch.manual_seed(seed)
        gp = SingleTaskGP(
            torch.as_tensor(X / self._scale), torch.as_tensor(-y / self.ref_point[0])[:, None],
            outcome_transform=Standardize(m=1),
        )
        # L-BFGS-B capped: past ~100 steps the marginal likelihood barely moves and the fit dominates the step
        fit_gpytorch_mll(ExactMarginalLogLikelihood(gp.likelihood, gp),
                         optimizer_kwargs={"options": {"maxiter": self.bopts.fit_maxiter}})
        gp.eval()
        return gp, X, y

    def _exact_f2(self, X: np.ndarray) -> np.ndarray:
        """The second objective of genomes, exact (penalty included), in objective units."""
        F, _, _ = self._predict(X, {"top1_err": _Zero()})
        return F[:, 1]

    def _operators(self) -> dict[str, Any]:
        return {"crossover": _UniformCrossover(prob=0.9), "mutation": _ResetMutation()}

    # --------------------------------------------------------------------------------------------- pool
    def _pool(self, gp: Any, seed: int) -> np.ndarray:
        """Valid canonical genomes not in the archive: NSGA-II's designs on the GP mean, mutants, samples."""
        rng = np.random.default_rng(seed)
        problem = _InnerProblem(self, {"top1_err": _GPMean(gp, self._scale, float(self.ref_point[0]))})
        algo = NSGA2(pop_size=self.bopts.pop_size, sampling=self._initial_population().astype(np.float64),
                     repair=_CanonicalRepair(), eliminate_duplicates=True, **self._operators())
        minimize(problem, algo, ("n_gen", self.bopts.n_gen), seed=int(rng.integers(2**31 - 1)), verbose=False)
        parts = [np.array(problem.X_seen, dtype=np.int64).reshape(-1, self.space.n_var)]
        front = canonicalise_genomes(self.space.encode_many([r["config"] for r in self.front()]))
        if len(front):
            M = np.repeat(front, 8, axis=0)
            j = rng.integers(0, self.space.n_var, size=len(M))
            M[np.arange(len(M)), j] = rng.integers(self.space.xl[j], self.space.xu[j] + 1)
            parts.append(M)
        parts.append(rng.integers(self.space.xl, self.space.xu + 1, size=(self.bopts.pool_size // 4, self.space.n_var)))
        pool = np.unique(canonicalise_genomes(np.vstack(parts)), axis=0)
        known = {g.tobytes() for g in self._archive_genomes()}
        pool = pool[[g.tobytes() not in known for g in pool]]
        if len(pool) > self.bopts.pool_size:  # keep NSGA-II's designs first (they are the promising ones)
            pool = pool[np.sort(rng.permutation(len(pool))[: self.bopts.pool_size])]
        if self.spec.constraint_mode == "hard" and self.objectives.constraint_keys and len(pool):
            cv = self._feasible_costs(self.space.decode_many(pool))
            pool = pool[cv <= 0] if (cv <= 0).any() else pool[np.argsort(cv, kind="stable")[: self.spec.n_iter]]
        return pool

    # --------------------------------------------------------------------------------------------- propose
    def _acquisition(self, gp: Any, X_train: np.ndarray, seed: int) -> Any:
        from botorch.acquisition.logei import qLogNoisyExpectedImprovement
        from botorch.acquisition.multi_objective.logei import qLogNoisyExpectedHypervolumeImprovement
        from botorch.acquisition.multi_objective.objective import MCMultiOutputObjective
        from botorch.acquisition.objective import GenericMCObjective
        from botorch.sampling.normal import SobolQMCNormalSampler
        from botorch.utils.multi_objective.scalarization import get_chebyshev_scalarization

        _no_fused_kernel()
        engine, ref_f2 = self, float(self.ref_point[1])

        class ExactCost(MCMultiOutputObjective):  # type: ignore[misc]
            """(GP sample of -error/ref, exact -f2/ref computed from the design itself)."""

            def forward(self, samples: torch.Tensor, X: torch.Tensor | None = None) -> torch.Tensor:
                assert X is not None
                g = np.rint(X.detach().reshape(-1, X.shape[-1]).numpy() * engine._scale).astype(np.int64)
                f2 = -torch.as_tensor(engine._exact_f2(g), dtype=samples.dtype).reshape(*X.shape[:-1], 1) / ref_f2
                return torch.cat([samples, f2.expand(*samples.shape[:-1], 1)], dim=-1)

        sampler = SobolQMCNormalSampler(sample_shape=torch.Size([self.bopts.mc_samples]), seed=seed)
        X_base = torch.as_tensor(X_train / self._scale)
        if self.bopts.acquisition == "qnehvi":
            return qLogNoisyExpectedHypervolumeImprovement(
                model=gp, ref_point=[-1.0, -1.0], X_baseline=X_base, sampler=sampler, objective=ExactCost(),
                prune_baseline=True, cache_root=True,
            )
        exact = ExactCost()
        with torch.no_grad():
            Y = exact(gp.posterior(X_base).mean, X_base)
        scal = get_chebyshev_scalarization(weights=torch.as_tensor(np.random.default_rng(seed).dirichlet([1, 1])), Y=Y)
        objective = GenericMCObjective(lambda Z, X: scal(exact(Z, X), X))
        return qLogNoisyExpectedImprovement(model=gp, X_baseline=X_base, sampler=sampler, objective=objective,
                                            prune_baseline=True, cache_root=True)

    def _propose(self) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        from botorch.optim import optimize_acqf_discrete

        cpu0 = time.process_time()
        seed = int(self.rng.integers(2**31 - 1))
        self._seed_globals(seed)  # numpy's global RNG too: the pool's NSGA-II operators draw from it
        t0 = time.perf_counter()
        gp, X_train, _ = self._fit_gp(seed)
        timing: dict[str, float] = {"fit": time.perf_counter() - t0}
        t0 = time.perf_counter()
        pool = self._pool(gp, seed)
        timing["search"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        n = min(self.spec.n_iter, len(pool))
        chosen: list[int] = []
        if n:
            choices = torch.as_tensor(pool / self._scale)
            if self.bopts.acquisition == "qnehvi":
                cand, _ = optimize_acqf_discrete(self._acquisition(gp, X_train, seed), q=n, choices=choices,
                                                 max_batch_size=512, unique=True)
            else:  # ParEGO: one random scalarisation per pick, earlier picks pending
                rows: list[torch.Tensor] = []
                for j in range(n):
                    acq = self._acquisition(gp, X_train, seed + j)
                    if rows:
                        acq.set_X_pending(torch.stack(rows))
                    taken = {tuple(r.tolist()) for r in rows}
                    left = choices[[i for i in range(len(choices)) if tuple(choices[i].tolist()) not in taken]]
                    c, _ = optimize_acqf_discrete(acq, q=1, choices=left, max_batch_size=512)
                    rows.append(c[0])
                cand = torch.stack(rows)
            index = {g.tobytes(): i for i, g in enumerate(pool)}
            picked = np.rint(cand.numpy() * self._scale).astype(np.int64)
            chosen = [index[g.tobytes()] for g in picked]
        timing["select"] = time.perf_counter() - t0
        timing["overhead"] = timing["fit"] + timing["search"] + timing["select"]
        timing["overhead_cpu"] = time.process_time() - cpu0
        Fp = np.zeros((0, 2))
        if chosen:
            Fp, _, _ = self._predict(pool[chosen], {"top1_err": _GPMean(gp, self._scale, float(self.ref_point[0]))})
        info = {"model": f"gp (botorch {self.bopts.acquisition})", "winner": "gp", "n_train": len(X_train)}
        return [self.space.decode(pool[i]) for i in chosen], {
            "surrogate": info,
            "predicted": [[float(v) for v in f] for f in Fp],
            "timing": timing,
            "pool": len(pool),
        }


def _no_fused_kernel() -> None:
    """Keep qLogNEHVI on its pure-PyTorch path: BoTorch >= 0.17 otherwise JIT-compiles a C++ kernel
    (``-march=native``) on first use, which takes minutes behind a file lock shared by every process of the user
    and could make results depend on the machine that compiled it (exact resume elsewhere)."""
    import botorch.acquisition.multi_objective.logei as logei

    if getattr(logei, "_C", None) is None:
        logei._load_attempted = True


class _Zero:
    """A zero error (the exact second objective does not depend on it)."""

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.zeros(len(X))
