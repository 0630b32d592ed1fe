"""Benchmark of the zero-shot proxies and of the MILP solver; writes bench/results/proxies.json.

Parts (``--part``; ``all`` runs them in order; each part updates its own keys of the JSON):

``corr``     every proxy on (a) 500 random configs (w1.2, r 160..224) labelled by once-for-all's ImageNet
             accuracy predictor, and (b) a random sample of the real fine-tuned CIFAR-10 subnets of two finished
             MSuNAS searches (CNAS archives, w1.0, r 192..256, 10 classes), with the CPU time of each proxy per
             architecture (``torch.set_num_threads(1)`` per worker process; thread CPU seconds and wall seconds).
             Resumable (``--resume`` keeps the rows already scored with the same settings).
``digits``   a finished ``digits`` search of our own (the supernet evaluator on the cached trained digits
             supernet: candidates extracted, BN-recalibrated, fine-tuned, validated; or ``--digits-run DIR``, an
             existing search folder), and every proxy on its archive: random init (as everywhere), and naswot /
             synflow / gradnorm on the *inherited* supernet weights, naswot / gradnorm also on a real digits
             mini-batch. The raw values are stored.
``analysis`` from the stored raw values: Spearman rho / Kendall tau of each proxy with the target of each set,
             CPU time per architecture, and whether a proxy helps the surrogate: held-out Kendall tau of a
             predictor trained on n random configs vs (i) the top n of a 3n pool ranked by the proxy (warm start)
             and (ii) the same n random configs with the proxy as a feature (a linear prior mean in the proxy,
             the surrogate fitted on the residuals: the surrogate's own encoding is unchanged).
``zennas``   ours vs Zen-NAS's implementations (``variant="zennas"``, github.com/idstcv/ZenNAS
             ``ZeroShotProxy/``) on the same nets: the first ``--n-zennas`` oracle configs of ``corr`` (whose stored
             scores are ours; 3 of them are recomputed to check they still are), each proxy's Zen-NAS variant
             (repeat 1, as its search runs) and Zen-score averaged over ``--zen-repeat`` draws; Kendall tau of ours
             vs theirs per proxy, and of each with the oracle. Stops at ``--budget-s``, keeping what it scored.
``solver``   on the oracle problem (bilinear predictor fitted on oracle-labelled configs, MACs bound): predicted
             accuracy of the MILP optimum vs pymoo NSGA-II on the same predictor and bound, wall time of each, and
             the oracle's accuracy of both answers.

Usage: ``PYTHONPATH=. MSUNAS_SHARED_DATA=../shared/data python bench/proxies.py --part all``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
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
# digits: proxies on the trained supernet's inherited weights (zen re-initialises by definition), and on a real
# mini-batch of digits training images (naswot and gradnorm take data; synflow's input is all ones)
INHERITED = ("naswot", "synflow", "gradnorm")
WITH_DATA = ("naswot", "gradnorm")
# the digits search: the demo's spec (service/demo.py) with a larger random initial design, so the archive is
# mostly an unbiased sample of the space (the rest follows the search) and large enough for a rank correlation
DIGITS_SEARCH = {"n_doe": 60, "n_iter": 10, "iterations": 3, "seed": 0}
SPEC_KEYS = ("width_mult", "resolution", "dataset", "evaluator", "objectives", "predictor", "n_doe", "n_iter")


def _oracle(configs: list[dict[str, Any]]) -> np.ndarray:
    """once-for-all's ImageNet predictor (top-1 %), through the oracle evaluator."""
    from search.evaluators.oracle import OracleEvaluator

    return OracleEvaluator(DATA / "ofa_imagenet_predictor" / "acc_predictor.npz").predict_top1(configs)


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)


def _timed(fn: Any, *args: Any, **kw: Any) -> tuple[float, float, float]:
    """(value, thread CPU seconds, wall seconds) of ``fn(*args, **kw)``."""
    c0, t0 = time.thread_time(), time.perf_counter()
    v = fn(*args, **kw)
    return float(v), time.thread_time() - c0, time.perf_counter() - t0


def _score(task: tuple[dict[str, Any], float, int]) -> dict[str, float]:
    from search import proxies

    config, width, n_classes = task
    out: dict[str, float] = {}
    for name, bs in NET_PROXIES.items():
        v, cpu, wall = _timed(
            proxies.compute_proxy, name, config, width_mult=width, n_classes=n_classes, batch_size=bs, seed=0
        )
        out[name], out[name + "_cpu_s"], out[name + "_s"] = v, cpu, wall
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
    from supernets.latency import machine_info

    OUT.parent.mkdir(parents=True, exist_ok=True)
    res["machine"] = {**machine_info(), "python": sys.version.split()[0]}
    res["date"] = datetime.now(UTC).isoformat(timespec="seconds")
    tmp = OUT.with_name(OUT.name + ".tmp")
    tmp.write_text(json.dumps(res, indent=1))
    os.replace(tmp, OUT)


def _score_indexed(task: tuple[int, dict[str, Any], float, int]) -> tuple[int, dict[str, float]]:
    return task[0], _score(task[1:])  # type: ignore[arg-type]


def part_corr(n: int, n_cnas: int, workers: int, budget_s: float, resume: bool = False) -> None:
    """Score the configs in an interleaved order, saving every few results; stops at ``budget_s`` seconds."""
    from supernets import codec
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
    done: dict[str, dict[int, dict[str, Any]]] = {"imagenet": {}, "cnas_cifar10": {}}
    prev_run = res.get("corr_run", {})
    if resume and prev_run.get("batch_sizes") == NET_PROXIES and "raw" in res:
        for key, cs in (("imagenet", imagenet), ("cnas_cifar10", [c for c, _ in cnas])):
            index = {codec.config_key(c): i for i, c in enumerate(cs)}
            for row in res["raw"].get(key, []):
                i = index.get(codec.config_key(row["config"]))
                if i is not None and all(p + "_cpu_s" in row for p in NET_PROXIES):
                    done[key][i] = {k: v for k, v in row.items() if k not in ("config", "oracle_top1", "top1")}
    tasks = [("imagenet", i, c, 1.2, 1000) for i, c in enumerate(imagenet) if i not in done["imagenet"]]
    tasks += [("cnas_cifar10", i, c, 1.0, 10) for i, (c, _) in enumerate(cnas) if i not in done["cnas_cifar10"]]
    # the oracle set first, then the CNAS set, each in a random order: a run cut by its budget leaves a random
    # subsample of the set it was scoring
    order = np.random.default_rng(0).permutation(len(tasks))
    tasks = sorted((tasks[i] for i in order), key=lambda t: t[0] != "imagenet")
    t0 = time.perf_counter()
    wall0 = float(prev_run.get("wall_s", 0.0)) if any(done.values()) else 0.0
    load0 = os.getloadavg()

    def flush(complete: bool) -> None:
        res["corr_run"] = {
            "wall_s": wall0 + time.perf_counter() - t0,
            "workers": workers,
            "torch_threads_per_worker": 1,
            "loadavg_before": load0,
            "loadavg_after": os.getloadavg(),
            "batch_sizes": NET_PROXIES,
            "seed": 0,
            "planned": {"imagenet": len(imagenet), "cnas_cifar10": len(cnas)},
            "scored": {k: len(v) for k, v in done.items()},
            "complete": complete,
        }
        res["raw"] = {
            **res.get("raw", {}),
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
                print(f"corr: {j + 1}/{len(flat)} scored, {time.perf_counter() - t0:.0f} s", flush=True)
            if time.perf_counter() - t0 > budget_s:
                pool.terminate()
                break
    flush(sum(len(v) for v in done.values()) == len(imagenet) + len(cnas))


ZEN_REPEAT_KEY = "zen_zennas_repeat"


def _score_zennas(task: tuple[int, dict[str, Any], int]) -> tuple[int, dict[str, float]]:
    from search import proxies

    i, config, zen_repeat = task
    out: dict[str, float] = {}
    for name, bs in NET_PROXIES.items():
        kw = {"width_mult": 1.2, "n_classes": 1000, "batch_size": bs, "seed": 0, "variant": "zennas"}
        out[name + "_zennas"], out[name + "_zennas_cpu_s"], _ = _timed(proxies.compute_proxy, name, config, **kw)
    kw = {"width_mult": 1.2, "n_classes": 1000, "batch_size": NET_PROXIES["zen"], "seed": 0, "variant": "zennas"}
    out[ZEN_REPEAT_KEY], out[ZEN_REPEAT_KEY + "_cpu_s"], _ = _timed(
        proxies.compute_proxy, "zen", config, repeat=zen_repeat, **kw
    )
    return i, out


def part_zennas(n: int, zen_repeat: int, workers: int, budget_s: float) -> None:
    """Ours vs Zen-NAS's proxy implementations on the same oracle configs (module doc)."""
    from search import proxies

    res = _load()
    rows = res.get("raw", {}).get("imagenet", [])[:n]
    if len(rows) < n:
        raise SystemExit(f"zennas: needs {n} scored oracle configs from --part corr, found {len(rows)}")
    recheck = {}
    for row in rows[:3]:  # the stored scores are still ours (the code of variant "ours" is unchanged)
        for name, bs in NET_PROXIES.items():
            v = proxies.compute_proxy(name, row["config"], width_mult=1.2, n_classes=1000, batch_size=bs, seed=0)
            recheck[name] = max(recheck.get(name, 0.0), abs(v - float(row[name])))
    t0, load0 = time.perf_counter(), os.getloadavg()
    done: dict[int, dict[str, float]] = {}
    with get_context("fork").Pool(workers, initializer=_init_worker) as pool:
        it = pool.imap_unordered(_score_zennas, [(i, r["config"], zen_repeat) for i, r in enumerate(rows)])
        for i, scores in it:
            done[i] = scores
            if len(done) % 10 == 0:
                print(f"zennas: {len(done)}/{n} scored, {time.perf_counter() - t0:.0f} s", flush=True)
            if time.perf_counter() - t0 > budget_s:
                pool.terminate()
                break
    idx = sorted(done)
    y = np.array([float(rows[i]["oracle_top1"]) for i in idx])
    summary: dict[str, Any] = {}
    for name in NET_PROXIES:
        ours = np.array([float(rows[i][name]) for i in idx])
        theirs = np.array([done[i][name + "_zennas"] for i in idx])
        summary[name] = {
            "tau_ours_vs_zennas": float(sps.kendalltau(ours, theirs).statistic),
            "tau_ours_vs_oracle": float(sps.kendalltau(ours, y).statistic),
            "tau_zennas_vs_oracle": float(sps.kendalltau(theirs, y).statistic),
            "zennas_cpu_s_median": float(np.median([done[i][name + "_zennas_cpu_s"] for i in idx])),
        }
    rep = np.array([done[i][ZEN_REPEAT_KEY] for i in idx])
    zen1 = np.array([done[i]["zen_zennas"] for i in idx])
    summary[f"zen_zennas_repeat{zen_repeat}"] = {
        "tau_vs_repeat1": float(sps.kendalltau(rep, zen1).statistic),
        "tau_vs_oracle": float(sps.kendalltau(rep, y).statistic),
        "tau_vs_ours": float(sps.kendalltau(rep, [float(rows[i]["zen"]) for i in idx]).statistic),
        "cpu_s_median": float(np.median([done[i][ZEN_REPEAT_KEY + "_cpu_s"] for i in idx])),
    }
    res["zennas"] = {
        "n_planned": n,
        "n_scored": len(idx),
        "zen_repeat": zen_repeat,
        "batch_sizes": NET_PROXIES,
        "seed": 0,
        "workers": workers,
        "wall_s": time.perf_counter() - t0,
        "loadavg_before": load0,
        "loadavg_after": os.getloadavg(),
        "ours_recheck_max_abs_diff": recheck,
        "summary": summary,
        "raw": [{"config": rows[i]["config"], **done[i]} for i in idx],
    }
    _save(res)


def _run_digits_search(out: Path) -> tuple[Path, float]:
    """The demo's digits search spec with a larger initial design, run via the search API into ``out``."""
    from search.runner import run_search
    from service.demo import DEMO_SPEC
    from supernets.train import train_digits_supernet

    trained = train_digits_supernet(progress=False)
    spec = {**DEMO_SPEC, **DIGITS_SEARCH, "supernet": {"path": str(trained["path"])}}
    out.mkdir(parents=True, exist_ok=True)
    spec_path = out / "spec_in.json"
    spec_path.write_text(json.dumps(spec, indent=1))
    t0 = time.perf_counter()
    run_search(spec_path, out / "search", overwrite=True)
    return out / "search", time.perf_counter() - t0


def part_digits(run_dir: str | None) -> None:
    """Proxies on the archive of a finished digits search (real fine-tuned accuracies), random and inherited."""
    import torch

    from search import proxies
    from search.io import read_stats, records_from_stats
    from search.spec import load_spec
    from supernets.datasets import load_dataset
    from supernets.ofa_supernet import load_supernet

    torch.set_num_threads(1)  # the search's evaluator too: one core, beside other work on a shared machine
    res = _load()
    seconds = None
    if run_dir is None:
        folder, seconds = _run_digits_search(Path(tempfile.mkdtemp(prefix="msunas-digits-")))
    else:
        folder = Path(run_dir)
    spec = load_spec(json.loads((folder / "spec.json").read_text()))
    if spec.dataset.name != "digits" or spec.evaluator.kind != "supernet":
        raise SystemExit(f"{folder}: not a digits search with the supernet evaluator")
    records = [r for r in records_from_stats(read_stats(folder)) if r["status"] == "ok"]
    path = spec.supernet.path
    if path is None:
        from supernets.train import digits_supernet_path

        path = str(digits_supernet_path(width_mult=spec.width_mult, progress=False))
    supernet = load_supernet(path, n_classes=10, width_mult=spec.width_mult)
    data = load_dataset("digits", None, spec.dataset.vld_size)
    g = torch.Generator().manual_seed(0)
    idx = torch.randperm(len(data.train), generator=g)[: max(NET_PROXIES.values())].tolist()
    batch = data.train.subset(idx)
    rows = []
    for rec in records:
        c = rec["config"]
        r = int(c["r"])
        kw = {"width_mult": spec.width_mult, "n_classes": 10, "seed": 0}
        row: dict[str, Any] = {"config": c, "top1": float(rec["metrics"]["top1"]), "iteration": rec["iteration"]}
        for name, bs in NET_PROXIES.items():
            variants: list[tuple[str, dict[str, Any]]] = [(name, {})]
            if name in INHERITED:
                variants.append((name + "_inherited", {"supernet": supernet}))
            if name in WITH_DATA:
                x, y = next(batch.batches(r, bs))
                variants.append((name + "_inherited_data", {"supernet": supernet, "data": (x[:bs], y[:bs])}))
            for label, extra in variants:
                v, cpu, wall = _timed(proxies.compute_proxy, name, c, batch_size=bs, **kw, **extra)
                row[label], row[label + "_cpu_s"], row[label + "_s"] = v, cpu, wall
        rows.append(row)
    res.setdefault("raw", {})["digits"] = rows
    res["digits_run"] = {
        "folder": str(folder),
        "spec": {k: v for k, v in spec.model_dump(mode="json").items() if k in SPEC_KEYS},
        "supernet": str(path),
        "n_archive": len(records),
        "n_initial_design": sum(1 for r in records if r["iteration"] == 0),
        "search_wall_s": seconds,
        "data_batch": "the first images of a seeded (0) permutation of the digits training split, resized to r",
        "torch_threads": 1,
    }
    _save(res)


def _rank(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    return {"spearman": float(sps.spearmanr(y, p).statistic), "kendall": float(sps.kendalltau(y, p).statistic)}


SETS = {  # key -> (width, classes, target, resolutions of its space)
    "imagenet": (1.2, 1000, "oracle_top1", (160, 224)),
    "cnas_cifar10": (1.0, 10, "top1", (192, 256)),
    "digits": (1.0, 10, "top1", (32, 48)),
}
# surrogates of the study per set (gp costs ~1.7 CPU-s a fit: left out on the small digits set to save time)
STUDY_MODELS = {
    "imagenet": ("rbf", "gp", "bilinear"),
    "cnas_cifar10": ("rbf", "gp", "bilinear"),
    "digits": ("rbf", "bilinear"),
}


def part_analysis(n_train: int = 60, repeats: int = 10) -> None:
    from supernets.cost import cost_metrics

    res = _load()
    if "raw" not in res:
        raise SystemExit("no raw proxy values: run --part corr first")
    summary: dict[str, Any] = {}
    surrogate: dict[str, Any] = {}
    for key, (width, classes, target, _) in SETS.items():
        rows = res["raw"].get(key)
        if not rows:
            continue
        cs = [r["config"] for r in rows]
        y = np.array([r[target] for r in rows])
        cost = cost_metrics(cs, width_mult=width, n_classes=classes)
        table: dict[str, Any] = {"n": len(rows), "target": target}
        labels = [k for k in rows[0] if k + "_cpu_s" in rows[0]]
        for name in labels + list(COST_PROXIES):
            v = np.array([r[name] for r in rows]) if name in labels else np.asarray(cost[name])
            table[name] = _rank(y, v)
            if name in labels:
                base = name.split("_")[0]
                t = np.array([r[name + "_cpu_s"] for r in rows])
                w = np.array([r[name + "_s"] for r in rows])
                table[name].update(
                    cpu_s_median=float(np.median(t)),
                    cpu_s_mean=float(np.mean(t)),
                    wall_s_median=float(np.median(w)),
                    batch_size=NET_PROXIES[base],
                )
        summary[key] = table
        surrogate[key] = _surrogate_study(rows, key, target, n_train, repeats)
    res["correlation"] = summary
    res["surrogate"] = surrogate
    _save(res)


def _surrogate_study(rows: list[dict[str, Any]], key: str, target: str, n_train: int, repeats: int) -> dict[str, Any]:
    """Held-out Kendall tau of a surrogate: random design vs proxy warm start vs proxy as a feature.

    The feature arm fits ``y ~ a + b * proxy`` on the training configs (least squares), the surrogate on the
    residuals, and predicts ``a + b * proxy + surrogate(genome)``: the surrogate's own genome encoding is the same
    in every arm (appending a float column to the genome would change it: a 47-gene matrix is no longer read as a
    MobileNetV3 genome, so the predictors would lose their masked per-slot encoding).
    """
    from acc_predictor import get_predictor
    from supernets.spaces import get_search_space

    width, _, _, (lr, ur) = SETS[key]
    space = get_search_space("mobilenetv3", lr=lr, ur=ur, width_mult=width)
    X = space.encode_many([r["config"] for r in rows])
    y = np.array([r[target] for r in rows])
    n_test = int(0.4 * len(rows))
    n_train = min(n_train, (len(rows) - n_test) // 3)
    out: dict[str, Any] = {
        "n_train": n_train,
        "n_pool": 3 * n_train,
        "n_test": n_test,
        "repeats": repeats,
        "test": "random configs outside the pool (held out)",
    }
    labels = [k for k in rows[0] if k + "_cpu_s" in rows[0]]
    for proxy in labels:
        p = np.array([r[proxy] for r in rows])
        for model in STUDY_MODELS[key]:
            taus: dict[str, list[float]] = {"random": [], "warm_start": [], "feature": []}
            for rep in range(repeats):
                rng = np.random.default_rng(rep)
                perm = rng.permutation(len(rows))
                test, pool = perm[:n_test], perm[n_test : n_test + 3 * n_train]
                rand = pool[:n_train]
                warm = pool[np.argsort(-p[pool], kind="stable")[:n_train]]
                for label, idx in (("random", rand), ("warm_start", warm), ("feature", rand)):
                    m = get_predictor(model, search_space=space)
                    if label == "feature":
                        b, a = np.polyfit(p[idx], y[idx], 1)
                        m.fit(X[idx], y[idx] - (a + b * p[idx]))
                        pred = a + b * p[test] + m.predict(X[test])
                    else:
                        m.fit(X[idx], y[idx])
                        pred = m.predict(X[test])
                    taus[label].append(float(sps.kendalltau(y[test], pred).statistic))
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
    space: Any = get_search_space("mobilenetv3", lr=160, ur=224, width_mult=1.2)
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
        if sol.config is None:
            raise SystemExit(f"solver: nothing fits under {bound:.3g} MACs")
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
    ap.add_argument("--part", choices=["corr", "digits", "analysis", "zennas", "solver", "all"], default="all")
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--n-cnas", type=int, default=80, help="configs sampled from each CNAS run's archive")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--budget-s", type=float, default=4 * 3600, help="wall-time budget of the corr part")
    ap.add_argument("--resume", action="store_true", help="corr: keep the rows already scored")
    ap.add_argument("--digits-run", default=None, help="digits: a finished digits search folder (default: run one)")
    ap.add_argument("--n-zennas", type=int, default=100, help="zennas: oracle configs compared")
    ap.add_argument("--zen-repeat", type=int, default=4, help="zennas: draws averaged by the repeated Zen-score")
    a = ap.parse_args()
    if a.part in ("corr", "all"):
        part_corr(a.n, a.n_cnas, a.workers, a.budget_s, a.resume)
    if a.part in ("digits", "all"):
        part_digits(a.digits_run)
    if a.part in ("analysis", "all"):
        part_analysis()
    if a.part in ("zennas", "all"):
        part_zennas(a.n_zennas, a.zen_repeat, a.workers, a.budget_s)
    if a.part in ("solver", "all"):
        part_solver()
    print(json.dumps({k: v for k, v in _load().items() if k != "raw"}, indent=1, default=str)[:20000])


if __name__ == "__main__":
    main()
