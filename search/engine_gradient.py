"""Gradient search over the once-for-all supernet (``engine: {kind: gradient, method: hardcore|tfnas}``).

The architecture is relaxed into probabilities: per slot (stage x layer, 20) one distribution over the kernels
(3, 5, 7) and one over the expand ratios (3, 4, 6); per stage (5) one over the depths (2, 3, 4). The resolution is
fixed to the job's largest (``resolution[1]``).

Relaxed forward (weight sharing, the supernet's weights are frozen): every step draws one hard Gumbel-softmax
sample per distribution with the straight-through estimator, as both seeds do (TF-NAS
``models/model_search.py``, ``F.gumbel_softmax(..., hard=True)``; HardCoRe-NAS ``nas/src/...`` samples the
alphas/betas the same way). A slot runs the supernet's elastic layer at the sampled kernel/expand and its
residual branch is scaled by the (value 1) product of the two sampled one-hots, so its gradient reaches the
sampled choices; a stage computes all four layers and mixes its outputs after layer 2, 3, 4 with the depth
one-hot (HardCoRe-NAS's beta-weighted stage outputs), so every depth receives a gradient. The loss is the
cross-entropy on the supernet's validation split (the evaluator's data).

Expected latency: ``E[lat] = scale * (fixed + sum_slots P(slot active) * p_k^T L_slot p_e) + offset
+ per_layer_ms * E[layers]``, with ``L_slot`` the latency table's 3x3 (kernel, expand) block latencies at the
search resolution and ``P(active)`` from the depth probabilities: differentiable (multilinear) in the
probabilities, and affine in each one distribution when the others are fixed.

``hardcore`` (HardCoRe-NAS ``nas/src/optim/block_frank_wolfe.py``): the probabilities themselves are the
variables. The start is feasible (uniform mixed towards the lightest architecture until ``E[lat] <= T``). Each
step computes the loss gradient, then for each distribution in turn solves the linear minimisation oracle
``min g.s`` over the simplex with the affine latency ``<= T`` (exact: a vertex or a point on an edge) and moves
``x <- (1 - gamma) x + gamma s`` with ``gamma = min(lr, 2/(t+2))``: a convex combination of two feasible points
of a set that is convex in that block, so ``E[lat] <= T`` holds after every update.

``tfnas`` (TF-NAS ``train_search.py``: ``loss_l = |lat / target_lat - 1| * lambda_lat``): Adam on logits,
``loss = CE + lambda_lat * |E[lat] / target - 1|``.

The Gumbel temperature decays exponentially from ``temperature`` to ``temperature_min``. The result is the argmax
architecture; with ``constraint_mode: hard`` and ``constraints.latency_ms`` it is repaired with the exact table
latency (greedily the single step down of a kernel, expand or depth that saves the most, until it fits), so the
proposed network never exceeds the limit. It is the engine's one candidate: evaluated and stored like any other.

Resume: all gradient steps run inside the one :meth:`ask`; the state holds the proposed candidate (and the final
probabilities), so a search stopped after its ask resumes at the evaluation; one stopped during the steps
reruns them (seeded, same result on CPU).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from search.engine import Engine, EvalResult
from search.spec import GradientEngineSpec, JobSpec
from supernets import codec
from supernets.errors import InputError
from supernets.latency import LatencyTable

__all__ = ["GradientEngine", "LatencyModel", "fw_oracle"]

N_SLOTS, MAX_DEPTH, N_STAGES = codec.N_SLOTS, codec.MAX_DEPTH, codec.N_STAGES


class LatencyModel:
    """The table's expected latency as a torch function of (p_k (20,3), p_e (20,3), q_d (5,3)) at resolution r."""

    def __init__(self, table: LatencyTable, r: int) -> None:
        rows, fixed, missing = table._per_r(r)
        if missing:
            raise InputError("latency_table", f"no entry for block {missing[0]} (needed at r={r})")
        L = np.asarray(rows[: N_SLOTS * 9], dtype=np.float64).reshape(N_SLOTS, 3, 3)
        if np.isnan(L).any():
            raise InputError("latency_table", f"the table lacks (kernel, expand) blocks at r={r}")
        self.table, self.r = table, r
        self.L = torch.as_tensor(L)
        self.fixed = float(fixed)
        c = table.correction or {}
        self.scale = float(c.get("scale", 1.0))
        self.offset = float(c.get("offset_ms", 0.0))
        self.per_layer = float(c.get("per_layer_ms") or 0.0)

    @staticmethod
    def active(q: torch.Tensor) -> torch.Tensor:
        """P(slot active) (20,) from the depth distributions (5,3) over (2, 3, 4)."""
        one = torch.ones_like(q[:, 0])
        a = torch.stack([one, one, q[:, 1] + q[:, 2], q[:, 2]], dim=1)
        return a.reshape(-1)

    def slot_ms(self, pk: torch.Tensor, pe: torch.Tensor) -> torch.Tensor:
        return torch.einsum("sk,ske,se->s", pk, self.L.to(pk), pe)

    def expected(self, pk: torch.Tensor, pe: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        a = self.active(q)
        raw = self.fixed + (a * self.slot_ms(pk, pe)).sum()
        return self.scale * raw + self.offset + self.per_layer * a.sum()

    def exact(self, config: Mapping[str, Any]) -> float:
        return float(self.table.predict([dict(config)])[0])


def fw_oracle(g: np.ndarray, coef: np.ndarray, budget: float) -> np.ndarray:
    """argmin ``g.s`` over the simplex with ``coef.s <= budget`` (a vertex, or a point on an edge that meets the
    constraint); the lightest vertex when nothing is feasible (never for a feasible iterate)."""
    n = len(g)
    best, best_v = None, math.inf
    for i in range(n):
        if coef[i] <= budget + 1e-12 and g[i] < best_v:
            best, best_v = np.eye(n)[i], float(g[i])
        for j in range(n):
            if coef[i] < budget < coef[j]:
                lam = (coef[j] - budget) / (coef[j] - coef[i])
                s = lam * np.eye(n)[i] + (1 - lam) * np.eye(n)[j]
                v = float(g @ s)
                if v < best_v:
                    best, best_v = s, v
    return best if best is not None else np.eye(n)[int(np.argmin(coef))]


class GradientEngine(Engine):
    """HardCoRe-NAS / TF-NAS gradient search over the supernet; one candidate, the argmax (module docstring)."""

    def __init__(
        self,
        spec: JobSpec | Mapping[str, Any] | str | Path,
        *,
        supernet: nn.Module | None = None,
        data: Any = None,
    ) -> None:
        super().__init__(spec)
        self.gopts = cast(GradientEngineSpec, self.spec.engine)
        if self.gopts.kind != "gradient":
            raise InputError("engine.kind", f"expected 'gradient', got {self.gopts.kind!r}")
        self._supernet, self._data = supernet, data
        self.r = int(self.spec.resolution[1])
        assert self.spec.latency_table is not None  # the spec's rules
        self.lat = LatencyModel(LatencyTable.load(self.spec.latency_table, width_mult=self.spec.width_mult), self.r)
        self.limit = self.spec.constraints.get("latency_ms")
        if self.gopts.method == "hardcore":
            assert self.limit is not None
            self.T = float(self.limit)
        else:
            self.T = float(self.gopts.target.latency_ms if self.gopts.target else cast(float, self.limit))
        self.device = torch.device(getattr(self.spec.evaluator, "device", "cpu"))

    # ---------------------------------------------------------------------------------------- ask/tell
    def has_next(self) -> bool:
        return self.pending is not None or (not self.stopped and self.iteration == 0)

    def ask(self) -> list[dict[str, Any]]:
        if self.pending is None:
            if not self.has_next():
                raise InputError("engine", "the search is finished (has_next() is False)")
            t0 = time.perf_counter()
            cfg, summary = self.search()
            summary_t = {"search": time.perf_counter() - t0}
            self.pending = {
                "iteration": self.iteration,
                "configs": [cfg],
                "keys": [codec.config_key(cfg)],
                "surrogate": None,
                "predicted": None,
                "timing": {**summary_t, "ask": time.perf_counter() - t0, "overhead": summary_t["search"]},
                "gradient": summary,
            }
        return [dict(c) for c in self.pending["configs"]]

    def tell(self, results: Sequence[EvalResult | Mapping[str, Any]]) -> dict[str, Any]:
        grad = (self.pending or {}).get("gradient")
        stats = super().tell(results)
        stats["gradient"] = grad
        self.history[-1]["gradient"] = grad
        self.stopped, self.stop_reason = True, "gradient search done (one architecture)"
        return stats

    # ---------------------------------------------------------------------------------------- search
    def _load(self) -> tuple[nn.Module, Any]:
        from search.provenance import load_job_supernet
        from supernets.datasets import load_dataset

        net = copy.deepcopy(self._supernet) if self._supernet is not None else load_job_supernet(self.spec)
        ds = self.spec.dataset
        data = self._data if self._data is not None else load_dataset(ds.name, ds.root, ds.vld_size)
        return net.to(self.device), data

    def _batches(self, data: Any, g: torch.Generator) -> Any:
        while True:
            for x, y in data.valid.batches(self.r, self.gopts.batch_size, shuffle=True, generator=g):
                yield x.to(self.device), y.to(self.device)

    def relaxed_forward(self, net: Any, x: torch.Tensor, pk: torch.Tensor, pe: torch.Tensor, q: torch.Tensor,
                        tau: float) -> torch.Tensor:
        """One straight-through Gumbel sample of the architecture, run on the supernet (module docstring)."""
        eps = 1e-12
        zk = F.gumbel_softmax(torch.log(pk.clamp_min(eps)), tau=tau, hard=True)
        ze = F.gumbel_softmax(torch.log(pe.clamp_min(eps)), tau=tau, hard=True)
        zd = F.gumbel_softmax(torch.log(q.clamp_min(eps)), tau=tau, hard=True)
        x = net.blocks[0](net.first_conv(x))
        for s, idx in enumerate(net.block_group_info):
            outs = []
            for j, bi in enumerate(idx[:MAX_DEPTH]):
                slot = s * MAX_DEPTH + j
                ki, ei = int(zk[slot].argmax()), int(ze[slot].argmax())
                block = net.blocks[bi]
                block.conv.active_kernel_size = codec.KERNELS[ki]
                block.conv.active_expand_ratio = codec.EXPANDS[ei]
                w = zk[slot, ki] * ze[slot, ei]
                y = block.conv(x) * w
                x = y + block.shortcut(x) if block.shortcut is not None else y
                outs.append(x)
            x = zd[s, 0] * outs[1] + zd[s, 1] * outs[2] + zd[s, 2] * outs[3]
        x = net.final_expand_layer(x)
        x = x.mean(3, keepdim=True).mean(2, keepdim=True)
        x = net.feature_mix_layer(x)
        return cast(torch.Tensor, net.classifier(x.view(x.size(0), -1)))

    def _feasible_start(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Uniform probabilities mixed towards the lightest architecture until E[lat] <= T (hardcore)."""
        u = np.full((N_SLOTS, 3), 1 / 3)
        ud = np.full((N_STAGES, 3), 1 / 3)
        low = np.zeros((N_SLOTS, 3))
        low[:, 0] = 1
        lowd = np.zeros((N_STAGES, 3))
        lowd[:, 0] = 1
        for lam in np.linspace(0, 1, 41):
            pk, pe, q = ((1 - lam) * a + lam * b for a, b in ((u, low), (u, low), (ud, lowd)))
            if self._elat(pk, pe, q) <= self.T:
                return pk, pe, q
        lightest = self._elat(low, low, lowd)
        raise InputError("constraints.latency_ms", f"{self.T:g} ms is below the lightest architecture's "
                         f"{lightest:.4g} ms (latency table at r={self.r})")

    def _elat(self, pk: np.ndarray, pe: np.ndarray, q: np.ndarray) -> float:
        return float(self.lat.expected(torch.as_tensor(pk), torch.as_tensor(pe), torch.as_tensor(q)))

    def bcfw_step(self, P: list[np.ndarray], G: list[np.ndarray], gamma: float) -> None:
        """One block coordinate Frank-Wolfe pass over every distribution, in place; E[lat] stays <= T."""
        pk, pe, q = P
        L = self.lat.L.numpy()
        sc, pl = self.lat.scale, self.lat.per_layer
        blocks: list[tuple[int, int]] = [(0, i) for i in range(N_SLOTS)] + [(1, i) for i in range(N_SLOTS)]
        blocks += [(2, s) for s in range(N_STAGES)]
        for which, i in blocks:
            a = LatencyModel.active(torch.as_tensor(q)).numpy()
            if which == 0:
                coef = sc * a[i] * (L[i] @ pe[i])
            elif which == 1:
                coef = sc * a[i] * (L[i].T @ pk[i])
            else:
                c = np.einsum("jk,jke,je->j", pk[4 * i: 4 * i + 4], L[4 * i: 4 * i + 4], pe[4 * i: 4 * i + 4])
                coef = sc * np.array([0.0, c[2], c[2] + c[3]]) + pl * np.array([0.0, 1.0, 2.0])
            x = P[which][i]
            budget = self.T - (self._elat(pk, pe, q) - float(coef @ x))
            s = fw_oracle(G[which][i], coef, budget)
            P[which][i] = (1 - gamma) * x + gamma * s

    def search(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """Run the steps; (the repaired argmax config, a summary: trace of E[lat] and loss, final probabilities)."""
        o = self.gopts
        torch.manual_seed(self.spec.seed)
        g = torch.Generator().manual_seed(self.spec.seed)
        net, data = self._load()
        net.train()  # batch statistics (the supernet's BN running stats are not used by the evaluator's subnets)
        for p in net.parameters():
            p.requires_grad_(False)
        batches = self._batches(data, g)
        dt = torch.float32
        if o.method == "hardcore":
            P = [a.copy() for a in self._feasible_start()]
        else:
            logits = [torch.zeros(n, 3, dtype=dt, device=self.device, requires_grad=True)
                      for n in (N_SLOTS, N_SLOTS, N_STAGES)]
            opt = torch.optim.Adam(logits, lr=o.lr)
        trace: list[dict[str, float]] = []
        lat_max = -math.inf
        for t in range(o.steps):
            tau = o.temperature * (o.temperature_min / o.temperature) ** (t / max(o.steps - 1, 1))
            x, y = next(batches)
            if o.method == "hardcore":
                probs = [torch.tensor(a, dtype=dt, device=self.device, requires_grad=True) for a in P]
            else:
                probs = [torch.softmax(lg, dim=1) for lg in logits]
            ce = F.cross_entropy(self.relaxed_forward(net, x, probs[0], probs[1], probs[2], tau), y)
            elat = self.lat.expected(*(p.double() for p in probs))
            if o.method == "hardcore":
                grads = torch.autograd.grad(ce, probs)
                self.bcfw_step(P, [gr.double().cpu().numpy() for gr in grads], min(o.lr, 2 / (t + 2)))
                elat_v = self._elat(*P)
                lat_max = max(lat_max, elat_v)
            else:
                loss = ce + o.lambda_lat * (elat / self.T - 1).abs().to(ce)
                opt.zero_grad()
                loss.backward()
                opt.step()
                elat_v = float(elat.detach())
            if t % max(1, o.steps // 20) == 0 or t == o.steps - 1:
                trace.append({"step": t, "loss": float(ce.detach()), "expected_latency_ms": elat_v, "tau": tau})
        if o.method == "tfnas":
            P = [torch.softmax(lg.detach(), dim=1).double().cpu().numpy() for lg in logits]
        cfg = self._argmax(P)
        before = self.lat.exact(cfg)
        repaired = 0
        if self.spec.constraint_mode == "hard" and self.limit is not None:
            cfg, repaired = self.repair(cfg, float(self.limit))
        summary = {
            "method": o.method, "steps": o.steps, "resolution": self.r, "target_ms": self.T,
            "expected_latency_ms": self._elat(*P), "max_expected_latency_ms": lat_max if o.method == "hardcore"
            else None, "argmax_latency_ms": before, "latency_ms": self.lat.exact(cfg), "repair_steps": repaired,
            "trace": trace, "probs": {"ks": P[0].tolist(), "e": P[1].tolist(), "d": P[2].tolist()},
        }
        return cfg, summary

    def _argmax(self, P: Sequence[np.ndarray]) -> dict[str, Any]:
        ks = [codec.KERNELS[int(i)] for i in np.argmax(P[0], axis=1)]
        e = [codec.EXPANDS[int(i)] for i in np.argmax(P[1], axis=1)]
        d = [codec.DEPTHS[int(i)] for i in np.argmax(P[2], axis=1)]
        return cast(dict[str, Any], self.space.validate({"ks": ks, "e": e, "d": d, "r": self.r}))

    def repair(self, cfg: dict[str, Any], limit: float) -> tuple[dict[str, Any], int]:
        """Step down the choice whose one-step reduction saves the most exact latency until ``cfg`` fits."""
        n = 0
        while self.lat.exact(cfg) > limit:
            moves = []
            for s in range(N_STAGES):
                if cfg["d"][s] > codec.DEPTHS[0]:
                    moves.append({**cfg, "d": [v - (i == s) for i, v in enumerate(cfg["d"])]})
                for j in range(cfg["d"][s]):
                    slot = s * MAX_DEPTH + j
                    for key, opts in (("ks", codec.KERNELS), ("e", codec.EXPANDS)):
                        i = opts.index(cfg[key][slot])
                        if i > 0:
                            v = list(cfg[key])
                            v[slot] = opts[i - 1]
                            moves.append({**cfg, key: v})
            if not moves:
                raise InputError("constraints.latency_ms", f"{limit:g} ms is below the lightest architecture's "
                                 f"{self.lat.exact(cfg):.4g} ms (latency table at r={self.r})")
            lats = self.lat.table.predict(moves)
            cfg = cast(dict[str, Any], self.space.validate(moves[int(np.argmin(lats))]))
            n += 1
        return cfg, n
