"""Benchmark of the search engine on the oracle problem (``python bench/search.py``).

Problem: minimise (1 - top-1 predicted by once-for-all's ImageNet accuracy predictor, MACs) over the
``ofa_mbv3_d234_e346_k357_w1.2`` space at r 160..224 (step 4). Hypervolume of all evaluated points with a fixed
reference point (100 % error, 1.01 x the MACs of the largest network), normalised to the reference box.
Methods, same seeds, one run: msunas (100 + 30 x 8 = 340 true evaluations), random search (340), plain pymoo
NSGA-II (pymoo's integer recipe: IntegerRandomSampling, SBX + PM with RoundingRepair) at 340, 3400 and 20000, the
BoTorch engine (``engine.kind: botorch``, qNEHVI and qNParEGO, the same 340 evaluations) and the ablations of
msunas's choices. Writes ``bench/results/search.json`` and ``bench/results/search.md``; ``--only`` reruns the named
methods and keeps the other methods' runs of the previous JSON. "goal" is the issue-21 target: the midpoint between
the mean HV of NSGA-II@3400 and NSGA-II@20000.

Options: ``--seeds N`` (default 5), ``--only NAME[,NAME]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pymoo.algorithms.moo.nsga2 import NSGA2  # noqa: E402
from pymoo.core.problem import Problem  # noqa: E402
from pymoo.operators.crossover.sbx import SBX  # noqa: E402
from pymoo.operators.mutation.pm import PM  # noqa: E402
from pymoo.operators.repair.rounding import RoundingRepair  # noqa: E402
from pymoo.operators.sampling.rnd import IntegerRandomSampling  # noqa: E402
from pymoo.optimize import minimize  # noqa: E402

from search.engine import canonicalise_genomes, genome_arrays, make_engine  # noqa: E402
from search.evaluators.oracle import OracleEvaluator  # noqa: E402
from search.hv import hypervolume  # noqa: E402
from search.spec import load_spec  # noqa: E402
from supernets import get_search_space  # noqa: E402

SHARED = Path(os.environ.get("MSUNAS_SHARED_DATA", ROOT.parent / "shared" / "data"))
ORACLE = SHARED / "ofa_imagenet_predictor" / "acc_predictor.npz"
WIDTH, LR, UR = 1.2, 160, 224
REF_ERR = 25.0  # % top-1 error; the smallest network of the space has 24.69 % on the oracle


REF_MACS: list[float] = []


def base_spec(seed: int, **engine: Any) -> dict[str, Any]:
    """The msunas job spec of the benchmark (the engine defaults unless overridden)."""
    spec: dict[str, Any] = {
        "width_mult": WIDTH,
        "resolution": [LR, UR],
        "evaluator": {"kind": "oracle", "path": str(ORACLE)},
        "objectives": ["top1_err", "macs"],
        "predictor": engine.pop("predictor", "gp"),
        "n_doe": engine.pop("n_doe", 100),
        "n_iter": engine.pop("n_iter", 8),
        "iterations": engine.pop("iterations", 30),
        "seed": seed,
    }
    # cv_folds 2: the held-out statistics are not what this benchmark measures; keep the shared CPU for the search
    if engine.get("kind", "msunas") == "msunas":
        engine = {"cv_folds": 2, **engine}
    spec["engine"] = {"ref_point": [REF_ERR, REF_MACS[0]], **engine} if REF_MACS else engine
    return spec


class OracleProblem:
    """Batch oracle: (error %, MACs M) of genomes, counting evaluations."""

    def __init__(self) -> None:
        self.space = get_search_space("mobilenetv3", lr=LR, ur=UR, width_mult=WIDTH)
        self.ev = OracleEvaluator(ORACLE, width_mult=WIDTH, n_classes=1000)
        eng = make_engine(load_spec(base_spec(0)))
        self.objectives = eng.objectives
        # reference point: just above the error of the smallest network (the largest error on the front) and
        # 1.01 x the MACs of the largest network (the engine's default f2 reference), rounded; fixed for all runs
        self.ref = [REF_ERR, round(eng.ref_point[1], 1)]
        REF_MACS[:] = [self.ref[1]]

    def F(self, X: np.ndarray) -> np.ndarray:
        X = canonicalise_genomes(X)
        configs = self.space.decode_many(X)
        err = 100.0 - self.ev.predict_top1(configs)
        arrays = genome_arrays(X, self.space.resolutions)  # type: ignore[attr-defined]
        macs = self.objectives.costs_of_arrays(arrays, lambda: configs)["macs"] / 1e6
        return np.stack([err, macs], axis=1)


def run_msunas(prob: OracleProblem, seed: int, **engine: Any) -> dict[str, Any]:
    """One msunas run; returns HV, evaluations and the mean/max engine overhead per iteration."""
    eng = make_engine(load_spec(base_spec(seed, **engine)))
    assert eng.ref_point == prob.ref
    t0 = time.perf_counter()
    while eng.has_next():
        cands = eng.ask()
        eng.tell([prob.ev.evaluate(c) for c in cands])
    over = [h["timing"]["overhead"] for h in eng.history if "overhead" in h["timing"]]
    asktell = [h["timing"]["ask"] + h["timing"]["tell"] for h in eng.history[1:]]
    cpu = [h["timing"]["overhead_cpu"] for h in eng.history if "overhead_cpu" in h["timing"]]
    last = eng.history[-1]["surrogate"] or {}
    return {
        "hv": eng.hv(),
        "evals": len(eng.archive),
        "overhead_mean_s": float(np.mean(over)) if over else 0.0,
        "overhead_last_s": float(over[-1]) if over else 0.0,
        "overhead_cpu_mean_s": float(np.mean(cpu)) if cpu else 0.0,
        "overhead_cpu_last_s": float(cpu[-1]) if cpu else 0.0,
        "ask_tell_mean_s": float(np.mean(asktell)) if asktell else 0.0,
        "ask_tell_max_s": float(np.max(asktell)) if asktell else 0.0,
        "wall_s": time.perf_counter() - t0,
        "surrogate_last": {k: last.get(k) for k in ("rmse", "rho", "tau")},
    }


def run_random(prob: OracleProblem, seed: int, n: int) -> dict[str, Any]:
    """Uniform random search over distinct canonical configs."""
    rng = np.random.default_rng(seed)
    sp = prob.space
    X = np.unique(canonicalise_genomes(rng.integers(sp.xl, sp.xu + 1, size=(n * 2, sp.n_var))), axis=0)
    X = X[rng.permutation(len(X))[:n]]
    return {"hv": hypervolume(prob.F(X), prob.ref), "evals": len(X)}


class _PymooProblem(Problem):
    def __init__(self, prob: OracleProblem) -> None:
        sp = prob.space
        super().__init__(n_var=sp.n_var, n_obj=2, xl=sp.xl, xu=sp.xu, vtype=int)
        self.prob = prob
        self.F_all: list[np.ndarray] = []

    def _evaluate(self, X: np.ndarray, out: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        F = self.prob.F(np.asarray(np.round(X), dtype=np.int64))
        self.F_all.append(F)
        out["F"] = F


def run_nsga2(prob: OracleProblem, seed: int, n: int, pop: int) -> dict[str, Any]:
    """Plain pymoo NSGA-II with pymoo's integer recipe, stopped after ``n`` true evaluations."""
    p = _PymooProblem(prob)
    algo = NSGA2(
        pop_size=pop,
        sampling=IntegerRandomSampling(),
        crossover=SBX(prob=0.9, eta=15, vtype=float, repair=RoundingRepair()),
        mutation=PM(eta=20, vtype=float, repair=RoundingRepair()),
        eliminate_duplicates=True,
    )
    minimize(p, algo, ("n_eval", n), seed=seed, verbose=False)
    F = np.vstack(p.F_all)[:n]
    return {"hv": hypervolume(F, prob.ref), "evals": len(F)}


# msunas ablations: one change from the default each (the default = "msunas")
ABLATIONS: dict[str, dict[str, Any]] = {
    "msunas": {},
    "previous default: hv selection + inner 40 x 20": {"candidate_selection": "hv", "pop_size": 40, "n_gen": 20},
    "hv selection": {"candidate_selection": "hv"},
    "smaller inner search (40 x 20)": {"pop_size": 40, "n_gen": 20},
    "inner search 200 x 60": {"pop_size": 200, "n_gen": 60},
    "rbf surrogate": {"predictor": "rbf"},
    "bilinear surrogate": {"predictor": "bilinear"},
    "int encoding": {"encoding": "int"},
    "sbx operators": {"operators": "sbx"},
    "CNAS-like: rbf + int + sbx + cnas selection + inner 40 x 20": {
        "predictor": "rbf",
        "encoding": "int",
        "operators": "sbx",
        "candidate_selection": "cnas",
        "pop_size": 40,
        "n_gen": 20,
    },
}


# the BoTorch engine at the same budget (its spec defaults unless given)
BOTORCH: dict[str, dict[str, Any]] = {
    "botorch qnehvi": {"kind": "botorch", "acquisition": "qnehvi"},
    "botorch qnparego": {"kind": "botorch", "acquisition": "qnparego"},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--ablation-seeds", type=int, default=2, help="seeds of the ablation variants (the first N)")
    ap.add_argument("--only", default="", help="methods to run (comma-separated; '-' runs none, e.g. to --merge)")
    ap.add_argument("--merge", default="", help="JSON outputs of runs made in parallel (comma-separated): their "
                    "methods' runs are taken over")
    ap.add_argument("--first-seed", type=int, default=0, help="with --only: take seeds below this from the previous "
                    "JSON's runs of the same method (e.g. to add seeds to a slow method)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "search.json"))
    args = ap.parse_args()
    if not ORACLE.is_file():
        sys.exit(f"bench/search.py: the oracle {ORACLE} is absent (set MSUNAS_SHARED_DATA)")
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    prob = OracleProblem()
    seeds = list(range(args.seeds))
    runs: dict[str, list[dict[str, Any]]] = {}
    previous: dict[str, list[dict[str, Any]]] = {}
    if args.first_seed and Path(args.out).is_file():
        previous = json.loads(Path(args.out).read_text()).get("runs", {})

    def go(name: str, fn: Any, n_seeds: int | None = None) -> None:
        if only and name not in only:
            return
        runs[name] = []
        prev = previous.get(name, [])
        for s in seeds[:n_seeds]:
            if s < args.first_seed and s < len(prev):
                runs[name].append(prev[s])
                continue
            r = fn(s)
            runs[name].append(r)
            print(f"{name:40s} seed {s}: hv {r['hv']:.5f} evals {r['evals']}", flush=True)
            print("RUN " + json.dumps({"name": name, "seed": s, **r}), flush=True)

    go("random@340", lambda s: run_random(prob, s, 340))
    go("nsga2@340", lambda s: run_nsga2(prob, s, 340, 40))
    go("nsga2@3400", lambda s: run_nsga2(prob, s, 3400, 100))
    go("nsga2@20000", lambda s: run_nsga2(prob, s, 20000, 100))
    for name, kw in BOTORCH.items():
        go(name, lambda s, kw=kw: run_msunas(prob, s, **dict(kw)))
    for name, kw in ABLATIONS.items():
        go(name, lambda s, kw=kw: run_msunas(prob, s, **dict(kw)), None if name == "msunas" else args.ablation_seeds)
    if only and Path(args.out).is_file():  # keep the other methods' runs of the previous benchmark
        old = json.loads(Path(args.out).read_text())
        for extra in filter(None, args.merge.split(",")):
            other = json.loads(Path(extra).read_text())
            if other.get("seeds") == seeds:
                old["runs"].update({k: v for k, v in other["runs"].items() if k in (other.get("summary") or {})})
        if old.get("seeds") == seeds:
            order = ["random@340", "nsga2@340", "nsga2@3400", "nsga2@20000", *BOTORCH, *ABLATIONS]
            # rows of methods this script no longer defines (renamed or dropped ablations) are not carried over
            runs = {**{k: v for k, v in old["runs"].items() if k not in runs and k in order}, **runs}
            runs = dict(sorted(runs.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order)))
    ref_hv = float(np.mean([r["hv"] for r in runs["nsga2@3400"]])) if "nsga2@3400" in runs else float("nan")
    goal = float("nan")
    if "nsga2@3400" in runs and "nsga2@20000" in runs:
        goal = float(np.mean([np.mean([r["hv"] for r in runs[k]]) for k in ("nsga2@3400", "nsga2@20000")]))
    summary = {}
    for name, rs in runs.items():
        hv = np.array([r["hv"] for r in rs])
        row: dict[str, Any] = {
            "hv_mean": float(hv.mean()),
            "hv_std": float(hv.std()),
            "ratio_to_nsga2_3400": float(hv.mean() / ref_hv),
            "ratio_to_goal": float(hv.mean() / goal),
            "n_seeds": len(rs),
            "evals": int(rs[0]["evals"]),
        }
        if "overhead_mean_s" in rs[0]:
            row["overhead_mean_s"] = float(np.mean([r["overhead_mean_s"] for r in rs]))
            row["overhead_last_s"] = float(np.mean([r["overhead_last_s"] for r in rs]))
            row["overhead_cpu_mean_s"] = float(np.mean([r["overhead_cpu_mean_s"] for r in rs]))
            row["overhead_cpu_last_s"] = float(np.mean([r["overhead_cpu_last_s"] for r in rs]))
            row["surrogate_last"] = rs[0]["surrogate_last"]
            if "ask_tell_mean_s" in rs[0]:
                row["ask_tell_mean_s"] = float(np.mean([r["ask_tell_mean_s"] for r in rs]))
                row["ask_tell_max_s"] = float(np.max([r["ask_tell_max_s"] for r in rs]))
            if name != "msunas" and "msunas" in runs:  # the ablation against msunas on the same seeds
                base = np.mean([r["hv"] for r in runs["msunas"][: len(rs)]])
                row["hv_change_vs_msunas_same_seeds_pct"] = float(100 * (hv.mean() / base - 1))
        summary[name] = row
    out = {
        "benchmark": "search (oracle problem)",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_at_end": list(os.getloadavg()),
            "note": "2 cores shared with other jobs: wall times are inflated, CPU seconds are the robust figure",
        },
        "problem": {
            "space": f"mobilenetv3 w{WIDTH} r{LR}..{UR}",
            "objectives": ["top1_err %", "MACs M"],
            "ref_point": prob.ref,
        },
        "seeds": seeds,
        "goal_hv": goal,
        "summary": summary,
        "runs": runs,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    lines = [
        "| method | evals | seeds | HV (mean ± sd) | / NSGA-II@3400 | / goal | vs msunas, same seeds |"
        " overhead/iter CPU s (mean, at 340) | wall s | ask+tell wall s/iter (mean, max) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in summary.items():
        oh = wall = at = ""
        d = row.get("hv_change_vs_msunas_same_seeds_pct")
        delta = f"{d:+.2f} %" if d is not None else ""
        if "overhead_mean_s" in row:
            oh = f"{row['overhead_cpu_mean_s']:.2f}, {row['overhead_cpu_last_s']:.2f}"
            wall = f"{row['overhead_mean_s']:.2f}"
        if "ask_tell_mean_s" in row:
            at = f"{row['ask_tell_mean_s']:.2f}, {row['ask_tell_max_s']:.2f}"
        lines.append(
            f"| {name} | {row['evals']} | {row['n_seeds']} | {row['hv_mean']:.5f} ± {row['hv_std']:.5f} | "
            f"{100 * row['ratio_to_nsga2_3400']:.2f} % | {100 * row['ratio_to_goal']:.2f} % | {delta} | {oh} | {wall} |"
            f" {at} |"
        )
    md = (f"Search benchmark ({out['date']}, {platform.platform()}, {os.cpu_count()} CPUs, {len(seeds)} seeds; goal ="
          f" midpoint of NSGA-II@3400 and @20000 = {goal:.5f})\n\n" + "\n".join(lines))
    Path(args.out).with_suffix(".md").write_text(md + "\n")
    print(md)


if __name__ == "__main__":
    main()
