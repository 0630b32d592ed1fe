"""Benchmark of the zero-shot proxies and of the MILP solver; writes bench/results/proxies.json.

Parts (``--part``; ``all`` runs both; each part updates its own keys of the JSON):

``corr``    rank correlation (Spearman rho, Kendall tau) of every proxy with
            (a) once-for-all's ImageNet accuracy predictor on 500 random configs (w1.2, r 160..224), and
            (b) the real fine-tuned CIFAR-10 top-1 of subnets from two finished MSuNAS searches (CNAS archives,
                w1.0, r 192..256, 10 classes), a random sample of each run's archive;
            plus the CPU time per architecture of each proxy (``torch.set_num_threads(1)`` per worker process).
            The raw per-config values are stored, so ``--part analysis`` recomputes the statistics without the
            networks.
``analysis`` the statistics of ``corr`` from the stored raw values, and whether a proxy helps the surrogate:
            held-out Kendall tau of a predictor trained on n random configs vs (i) the top n of a 3n pool ranked
            by the proxy (warm start) and (ii) n random configs with the proxy as an extra feature.
``solver``  on the oracle problem (bilinear predictor fitted on oracle-labelled configs, MACs bound): predicted
            accuracy of the MILP optimum vs pymoo NSGA-II on the same predictor and bound, wall time of each, and
            the oracle's accuracy of both answers.

Usage: ``PYTHONPATH=. MSUNAS_SHARED_DATA=../shared/data python bench/proxies.py --part all``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats as sps

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = Path(os.environ.get("MSUNAS_BENCH_OUT", ROOT / "bench" / "results" / "proxies.json"))
DATA = Path(os.environ.get("MSUNAS_SHARED_DATA", ROOT.parent / "shared" / "data"))
NET_PROXIES = {"zen": 4, "naswot": 8, "gradnorm": 4, "synflow": 2}  # name -> batch size used here
COST_PROXIES = ("params", "macs")


def _oracle(configs: list[dict[str, Any]]) -> np.ndarray:
    """once-for-all's ImageNet predictor (top-1 %), through the oracle evaluator."""
    from search.evaluators.oracle import OracleEvaluator

    return OracleEvaluator(DATA / "ofa_imagenet_predictor" / "acc_predictor.npz").predict_top1(configs)


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)


def _score(task: tuple[dict[str, Any], float, int]) -> dict[str, float]:
    from search import proxies

    config, width, n_classes = task
    out: dict[str, float] = {}
    for name, bs in NET_PROXIES.items():
        t0 = time.perf_counter()
        out[name] = proxies.compute_proxy(name, config, width_mult=width, n_classes=n_classes, batch_size=bs, seed=0)
        out[name + "_s"] = time.perf_counter() - t0
    return out


def _cnas_sample(n_per_run: int) -> list[tuple[dict[str, Any], float]]:
    import csv

    from supernets import codec

    rows: list[tuple[dict[str, Any], float]] = []
    rng = np.random.default_rng(0)
    for f in sorted((DATA / "cnas_cifar10").glob("cnas_msunas_c10_*.csv")):
        with f.open() as fh:
            recs = [
                (codec.normalize_backbone(json.loads(r["config_json"])), float(r["top1"])) for r in csv.DictReader(fh)
            ]
        seen: dict[str, tuple[dict[str, Any], float]] = {}
        for c, a in recs:
            seen.setdefault(codec.config_key(c), (c, a))
        uniq = list(seen.values())
        idx = rng.choice(len(uniq), size=min(n_per_run, len(uniq)), replace=False)
        rows += [uniq[i] for i in sorted(idx)]
    return rows


def _load() -> dict[str, Any]:
    return json.loads(OUT.read_text()) if OUT.is_file() else {}


def _save(res: dict[str, Any]) -> None:
    OUT.parent.mkdir(parents=True, exist_ok=True)
    res["machine"] = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
    }
    res["date"] = datetime.now(UTC).isoformat(timespec="seconds")
    OUT.write_text(json.dumps(res, indent=1))


def _score_indexed(task: tuple[int, dict[str, Any], float, int]) -> tuple[int, dict[str, float]]:
    return task[0], _score(task[1:])  # type: ignore[arg-type]


def part_corr(n: int, n_cnas: int, workers: int, budget_s: float) -> None:
    """Score the configs in an interleaved order, saving every few results; stops at ``budget_s`` seconds."""
    from supernets.spaces import get_search_space

    res = _load()
    space = get_search_space("mobilenetv3", lr=160, ur=224, width_mult=1.2)
    rng = np.random.default_rng(2024)
    configs: dict[str, dict[str, Any]] = {}
    while len(configs) < n:
        for c in space.sample(n, rng):
            if len(configs) < n:
                configs.setdefault(space.key(c), c)
    imagenet = list(configs.values())
    cnas = _cnas_sample(n_cnas)
    oracle = _oracle(imagenet)
    tasks = [("imagenet", i, c, 1.2, 1000) for i, c in enumerate(imagenet)]
    tasks += [("cnas_cifar10", i, c, 1.0, 10) for i, (c, _) in enumerate(cnas)]
    order = np.random.default_rng(0).permutation(len(tasks))  # interleaved: any prefix is a random subsample
    tasks = [tasks[i] for i in order]
    done: dict[str, dict[int, dict[str, Any]]] = {"imagenet": {}, "cnas_cifar10": {}}
    t0 = time.perf_counter()
    load0 = os.getloadavg()

    def flush(complete: bool) -> None:
        res["corr_run"] = {
            "wall_s": time.perf_counter() - t0,
            "workers": workers,
            "loadavg_before": load0,
            "loadavg_after": os.getloadavg(),
            "batch_sizes": NET_PROXIES,
            "seed": 0,
            "planned": {"imagenet": len(imagenet), "cnas_cifar10": len(cnas)},
            "scored": {k: len(v) for k, v in done.items()},
            "complete": complete,
        }
        res["raw"] = {
            "imagenet": [
                {"config": imagenet[i], "oracle_top1": float(oracle[i]), **done["imagenet"][i]}
                for i in sorted(done["imagenet"])
            ],
            "cnas_cifar10": [
                {"config": cnas[i][0], "top1": cnas[i][1], **done["cnas_cifar10"][i]}
                for i in sorted(done["cnas_cifar10"])
            ],
        }
        _save(res)

    flat = [(k, (i, c, w, nc)) for k, i, c, w, nc in tasks]
    with get_context("fork").Pool(workers, initializer=_init_worker) as pool:
        it = pool.imap(_score_indexed, [t for _, t in flat], chunksize=1)
        for j, (i, scores) in enumerate(it):
            done[flat[j][0]][i] = scores
            if (j + 1) % 10 == 0:
                flush(False)
            if time.perf_counter() - t0 > budget_s:
                pool.terminate()
                break
    flush(sum(len(v) for v in done.values()) == len(flat))


def _rank(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    return {"spearman": float(sps.spearmanr(y, p).statistic), "kendall": float(sps.kendalltau(y, p).statistic)}


def part_analysis(n_train: int = 60, repeats: int = 10) -> None:
    from supernets.cost import cost_metrics

    res = _load()
    if "raw" not in res:
        raise SystemExit("no raw proxy values: run --part corr first")
    summary: dict[str, Any] = {}
    for key, width, classes, target in (("imagenet", 1.2, 1000, "oracle_top1"), ("cnas_cifar10", 1.0, 10, "top1")):
        rows = res["raw"][key]
        cs = [r["config"] for r in rows]
        y = np.array([r[target] for r in rows])
        cost = cost_metrics(cs, width_mult=width, n_classes=classes)
        table: dict[str, Any] = {"n": len(rows)}
        for name in list(NET_PROXIES) + list(COST_PROXIES):
            v = np.array([r[name] for r in rows]) if name in NET_PROXIES else np.asarray(cost[name])
            table[name] = _rank(y, v)
            if name in NET_PROXIES:
                t = np.array([r[name + "_s"] for r in rows])
                table[name]["cpu_s_median"] = float(np.median(t))
                table[name]["cpu_s_mean"] = float(np.mean(t))
                table[name]["batch_size"] = NET_PROXIES[name]
        summary[key] = table
    res["correlation"] = summary
    res["surrogate"] = _surrogate_study(res["raw"]["imagenet"], n_train, repeats)
    _save(res)


def _surrogate_study(rows: list[dict[str, Any]], n_train: int, repeats: int) -> dict[str, Any]:
    """Held-out Kendall tau of a surrogate: random design vs proxy warm start vs proxy as an extra feature."""
    from acc_predictor import get_predictor
    from supernets.spaces import get_search_space

    space = get_search_space("mobilenetv3", lr=160, ur=224, width_mult=1.2)
    X = space.encode_many([r["config"] for r in rows])
    y = np.array([r["oracle_top1"] for r in rows])
    n_test = int(0.4 * len(rows))
    n_train = min(n_train, (len(rows) - n_test) // 3)
    out: dict[str, Any] = {
        "n_train": n_train,
        "n_pool": 3 * n_train,
        "n_test": n_test,
        "repeats": repeats,
        "test": "random configs outside the pool (held out)",
    }
    for proxy in NET_PROXIES:
        p = np.array([r[proxy] for r in rows])
        pz = (p - p.mean()) / (p.std() + 1e-12)
        for model in ("rbf", "bilinear"):
            taus: dict[str, list[float]] = {"random": [], "warm_start": [], "feature": []}
            for rep in range(repeats):
                rng = np.random.default_rng(rep)
                perm = rng.permutation(len(rows))
                test, pool = perm[:n_test], perm[n_test : n_test + 3 * n_train]
                rand = pool[:n_train]
                warm = pool[np.argsort(-p[pool], kind="stable")[:n_train]]
                for label, idx, feat in (("random", rand, False), ("warm_start", warm, False), ("feature", rand, True)):
                    Z = np.hstack([X, pz[:, None]]) if feat else X
                    try:
                        m = get_predictor(model, random_state=rep) if model == "mlp" else get_predictor(model)
                    except ValueError:
                        m = get_predictor(model)
                    m.fit(Z[idx], y[idx])
                    taus[label].append(float(sps.kendalltau(y[test], m.predict(Z[test])).statistic))
            out.setdefault(proxy, {})[model] = {
                k: {"mean": float(np.mean(v)), "std": float(np.std(v))} for k, v in taus.items()
            }
    return out


def part_solver(
    n_fit: int = 500,
    macs_bounds: tuple[float, ...] = (300e6, 400e6),
    gens: tuple[int, ...] = (50, 200),
    seeds: int = 2,
) -> None:
    """MILP vs NSGA-II on the same bilinear predictor fitted on oracle-labelled configs, under a MACs bound."""
    from pymoo.algorithms.moo.nsga2 import NSGA2
    from pymoo.core.problem import Problem
    from pymoo.operators.crossover.sbx import SBX
    from pymoo.operators.mutation.pm import PM
    from pymoo.operators.repair.rounding import RoundingRepair
    from pymoo.operators.sampling.rnd import IntegerRandomSampling
    from pymoo.optimize import minimize

    from acc_predictor import get_predictor
    from search import milp
    from supernets.cost import cost_metrics
    from supernets.spaces import get_search_space

    res = _load()
    space = get_search_space("mobilenetv3", lr=160, ur=224, width_mult=1.2)
    train = space.sample(n_fit, np.random.default_rng(11))
    model = get_predictor("bilinear", search_space=space).fit(space.encode_many(train), _oracle(train))
    t0 = time.perf_counter()
    acc = milp.additive_model(lambda cs: model.predict(space.encode_many(list(cs))), space.resolutions)
    macs_model = milp.cost_model("macs", space.resolutions, width_mult=1.2)
    t_models = time.perf_counter() - t0

    class P(Problem):
        def __init__(self, bound: float) -> None:
            super().__init__(n_var=space.n_var, n_obj=1, n_ieq_constr=1, xl=space.xl, xu=space.xu, vtype=int)
            self.bound = bound

        def _evaluate(self, x: np.ndarray, out: dict[str, Any], *a: Any, **k: Any) -> None:
            x = np.round(x).astype(np.int64)
            cs = space.decode_many(x)
            out["F"] = -model.predict(x).reshape(-1, 1)
            out["G"] = (np.asarray(cost_metrics(cs, width_mult=1.2)["macs"]) / self.bound - 1.0).reshape(-1, 1)

    rows = []
    for bound in macs_bounds:
        sol = milp.solve(acc, {"macs": (macs_model, bound)})
        row: dict[str, Any] = {
            "macs_bound": bound,
            "milp": {
                "pred_top1": sol.value,
                "seconds": sol.seconds,
                "macs": float(cost_metrics([sol.config], width_mult=1.2)["macs"][0]),
                "oracle_top1": float(_oracle([sol.config])[0]),
                "config": sol.config,
            },
        }
        for n_gen in gens:
            vals, secs, oracle, macs = [], [], [], []
            for seed in range(seeds):
                t0 = time.perf_counter()
                r = minimize(
                    P(bound),
                    NSGA2(
                        pop_size=100,
                        sampling=IntegerRandomSampling(),
                        crossover=SBX(prob=0.9, eta=15, vtype=float, repair=RoundingRepair()),
                        mutation=PM(eta=20, vtype=float, repair=RoundingRepair()),
                        eliminate_duplicates=True,
                    ),
                    ("n_gen", n_gen),
                    seed=seed,
                    verbose=False,
                )
                secs.append(time.perf_counter() - t0)
                xb = np.round(np.atleast_2d(r.X)).astype(np.int64)[:1]
                cfg = space.decode(xb[0])
                vals.append(float(model.predict(xb)[0]))
                oracle.append(float(_oracle([cfg])[0]))
                macs.append(float(cost_metrics([cfg], width_mult=1.2)["macs"][0]))
            row[f"nsga2_pop100_gen{n_gen}"] = {
                "pred_top1_mean": float(np.mean(vals)),
                "pred_top1_best": max(vals),
                "seconds_mean": float(np.mean(secs)),
                "macs_max": max(macs),
                "oracle_top1_mean": float(np.mean(oracle)),
                "seeds": seeds,
            }
        rows.append(row)
    res["solver"] = {
        "predictor": "bilinear",
        "n_fit": n_fit,
        "space": space.describe(),
        "decomposition_seconds": t_models,
        "predictor_decomposition_max_error": acc.max_error,
        "rows": rows,
    }
    _save(res)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=["corr", "analysis", "solver", "all"], default="all")
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--n-cnas", type=int, default=80, help="configs sampled from each CNAS run's archive")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--budget-s", type=float, default=4 * 3600, help="wall-time budget of the corr part")
    a = ap.parse_args()
    if a.part in ("corr", "all"):
        part_corr(a.n, a.n_cnas, a.workers, a.budget_s)
    if a.part in ("analysis", "all"):
        part_analysis()
    if a.part in ("solver", "all"):
        part_solver()
    print(json.dumps({k: v for k, v in _load().items() if k != "raw"}, indent=1))


if __name__ == "__main__":
    main()
