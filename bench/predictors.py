"""Benchmark of the surrogate accuracy predictors: held-out ranking quality and fit/predict time.

Quality: Kendall tau (and Spearman rho, RMSE) on the architectures NOT used for fitting, mean over 10 random
splits, fitting on n = 50, 100, 300 and testing on all the rest, on

* DyNAS-T ImageNet records (w1.0, r=224; 1203 distinct networks after canonical dedup, repeats averaged),
* each of the two CNAS/MSuNAS CIFAR-10 runs separately (340 networks each, r 192..256).

Every model sees the same splits; the CNAS-configured baselines (``bench/cnas_baselines.py``, raw integer genome)
run in the same process pool. Speed: fit on n=300 (CIFAR-10 run 1) and predict 10,000 random genomes, wall and
CPU seconds, one BLAS/torch thread (so within 2 cores), best of a few repeats (predict: best of 5).

Usage::

    PYTHONPATH=. MSUNAS_SHARED_DATA=../shared/data python bench/predictors.py [--splits 10] [--jobs 2]

Writes ``bench/results/predictors.json`` and ``bench/results/predictors.md``.

Measured contributions (BINAS, ``msunas predictor contributions``): ``--contributions TABLE [--n-archs 60]``
evaluates that many random architectures on the table's own supernet and dataset exactly as the table was
measured (inherited weights, BN recalibrated, validation split, no fine-tuning) -- none of them is one of the
table's probes -- and reports the Kendall tau / Spearman rho of the table's predictions against them (written to
``bench/results/contributions_<dataset>.json``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing as mp
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
# bench/search.py is named like the package: the package first, bench/ (cnas_baselines) last
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))
sys.path.append(str(ROOT / "bench"))

OURS = ["rbf", "gp", "mlp", "carts", "bilinear", "quadratic", "as"]
BASELINES = ["cnas_rbf", "cnas_gp", "cnas_mlp", "cnas_carts"]
AS_MEMBERS = ["rbf", "gp", "mlp", "bilinear", "quadratic"]
NS = [50, 100, 300]


def _limit_threads() -> None:
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    threadpool_limits(1)


def data_dir() -> Path:
    return Path(os.environ.get("MSUNAS_SHARED_DATA", ROOT.parent / "shared" / "data"))


def load_datasets() -> dict[str, tuple[np.ndarray, np.ndarray, Any]]:
    """name -> (genomes, top-1 %, search space)."""
    from acc_predictor.data import CNAS_RUNS, load_cnas_cifar10, load_dynast_imagenet

    d = data_dir()
    out = {}
    c, y, s = load_dynast_imagenet(d / "dynast_imagenet")
    out["imagenet"] = (s.encode_many(c), y, s)
    for i, run in enumerate(CNAS_RUNS):
        c, y, s = load_cnas_cifar10(d / "cnas_cifar10" / run)
        out[f"cifar10_run{i + 1}"] = (s.encode_many(c), y, s)
    return out


def make_model(name: str) -> Any:
    if name.startswith("cnas_"):
        from cnas_baselines import BASELINES as B

        return B[name]()
    from acc_predictor import get_predictor

    return get_predictor(name)


def run_task(task: tuple[str, int, str, int]) -> dict[str, Any]:
    """Fit ``model`` on ``n`` rows of ``dataset`` for every split; held-out scores per split."""
    _limit_threads()
    from acc_predictor.metrics import scores

    ds_name, n, model, n_splits = task
    G, y, _ = load_datasets_cached()[ds_name]
    per, winners, fit_s = [], [], []
    for split in range(n_splits):
        perm = np.random.default_rng(10_000 + 100 * n + split).permutation(len(G))
        trn, tst = perm[:n], perm[n:]
        m = make_model(model)
        t0 = time.process_time()
        m.fit(G[trn], y[trn])
        fit_s.append(time.process_time() - t0)
        per.append(scores(y[tst], m.predict(G[tst])))
        if model == "as":
            winners.append(m.winner_)
    taus = [p["tau"] for p in per]
    return {"dataset": ds_name, "n": n, "model": model, "splits": n_splits, "tau": float(np.mean(taus)),
            "tau_std": float(np.std(taus)), "rho": float(np.mean([p["rho"] for p in per])),
            "rmse": float(np.mean([p["rmse"] for p in per])),
            "taus": taus, "fit_cpu_s_mean": float(np.mean(fit_s)), "winners": winners}


_CACHE: dict[str, Any] = {}


def load_datasets_cached() -> dict[str, tuple[np.ndarray, np.ndarray, Any]]:
    if "d" not in _CACHE:
        _CACHE["d"] = load_datasets()
    return _CACHE["d"]


def timing(models: list[str], repeats: int = 2) -> dict[str, dict[str, Any]]:
    """Fit on 300 CIFAR-10 (run 1) networks and predict 10,000 random genomes; best wall/CPU seconds."""
    _limit_threads()
    G, y, space = load_datasets_cached()["cifar10_run1"]
    perm = np.random.default_rng(0).permutation(len(G))[:300]
    Q = space.encode_many(space.sample(10_000, np.random.default_rng(1)))
    make_model("mlp").fit(G[:50], y[:50])  # warm torch's lazy imports outside the timings
    out: dict[str, dict[str, Any]] = {}
    for name in models:
        fw, fc, pw, pc = [], [], [], []
        for _ in range(1 if name in ("as", "cnas_carts") else repeats):
            m = make_model(name)
            t0, c0 = time.perf_counter(), time.process_time()
            m.fit(G[perm], y[perm])
            fw.append(time.perf_counter() - t0)
            fc.append(time.process_time() - c0)
            for _ in range(5):
                t0, c0 = time.perf_counter(), time.process_time()
                m.predict(Q)
                pw.append(time.perf_counter() - t0)
                pc.append(time.process_time() - c0)
        out[name] = {"fit300_wall_s": min(fw), "fit300_cpu_s": min(fc), "predict10k_wall_s": min(pw),
                     "predict10k_cpu_s": min(pc)}
        if name == "as":
            out[name]["winner"] = m.winner_
        print(f"timing {name}: {out[name]}", flush=True)
    if "as" in models:  # the ensemble winner's predict is the slow case: time it even when CV chose otherwise
        from acc_predictor import get_predictor

        m = get_predictor("as", force="ensemble").fit(G[perm], y[perm])
        pw, pc = [], []
        for _ in range(5):
            t0, c0 = time.perf_counter(), time.process_time()
            m.predict(Q)
            pw.append(time.perf_counter() - t0)
            pc.append(time.process_time() - c0)
        out["as[ensemble]"] = {"predict10k_wall_s": min(pw), "predict10k_cpu_s": min(pc),
                               "members": list(m.ensemble_members_)}
        print(f"timing as[ensemble]: {out['as[ensemble]']}", flush=True)
    return out


def machine() -> dict[str, Any]:
    """Platform, CPU model, cores (``supernets.latency.machine_info``), Python and the load at the start."""
    from supernets.latency import machine_info

    info = machine_info()
    return {**info, "cores": info["cpu_count"], "python": platform.python_version(), "loadavg_start": os.getloadavg()}


def checks(results: list[dict[str, Any]], times: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The issue's targets, evaluated on the measured figures."""
    tab = {(r["dataset"], r["n"], r["model"]): r["tau"] for r in results}
    settings = sorted({(r["dataset"], r["n"]) for r in results})
    as_gap = {}
    for ds, n in settings:
        if (ds, n, "as") not in tab:
            continue
        best_member = max(tab[(ds, n, m)] for m in AS_MEMBERS if (ds, n, m) in tab)
        best_single = max(tab[(ds, n, m)] for m in OURS if m != "as" and (ds, n, m) in tab)
        as_gap[f"{ds}/n={n}"] = {"as": tab[(ds, n, "as")], "best_member": best_member, "best_single": best_single,
                                 "as_minus_best_member": tab[(ds, n, "as")] - best_member}
    gain = {}
    for ds in ("cifar10_run1", "cifar10_run2"):
        if (ds, 100, "cnas_rbf") not in tab:
            continue
        base = max(tab[(ds, 100, b)] for b in BASELINES if (ds, 100, b) in tab)
        best = max(tab[(ds, 100, m)] for m in OURS if (ds, 100, m) in tab)
        gain[ds] = {"best_baseline": base, "best_ours": best, "gain": best - base}
    return {
        "as_within_0.01_of_best_member": all(v["as_minus_best_member"] >= -0.01 for v in as_gap.values()),
        "as_vs_members": as_gap,
        "cifar10_n100_gain_over_baselines": gain,
        "cifar10_n100_gain_at_least_0.02": all(v["gain"] >= 0.02 for v in gain.values()) if gain else None,
        "fit300_cpu_le_5s": {m: t["fit300_cpu_s"] <= 5.0 for m, t in times.items()
                             if m in OURS and "fit300_cpu_s" in t},
        "fit300_cpu_le_5s_every_dataset_mean": {
            f"{r['dataset']}/{r['model']}": r["fit_cpu_s_mean"] <= 5.0 for r in results
            if r["n"] == 300 and r["model"] in OURS},
        "predict10k_cpu_le_0.1s": {m: t["predict10k_cpu_s"] <= 0.1 for m, t in times.items()
                                   if m.split("[")[0] in OURS},
    }


def markdown(res: dict[str, Any]) -> str:
    results, times = res["results"], res["timing"]
    dsets = ["imagenet", "cifar10_run1", "cifar10_run2"]
    tab = {(r["dataset"], r["n"], r["model"]): r for r in results}
    head = "| model | " + " | ".join(f"{ds.replace('cifar10_', 'C10 ').replace('imagenet', 'ImageNet')} n={n}"
                                     for ds in dsets for n in NS) + " | fit n=300 (s) | predict 10k (s) |"
    lines = [f"Held-out Kendall tau, mean over {res['settings']['splits']} random splits (train n, test on the rest); "
             f"{res['machine']['cpu']}, {res['date']}. Times: CPU seconds, one thread (wall under the shared "
             f"machine's load in the JSON).", "", head, "|" + "---|" * (len(dsets) * len(NS) + 3)]
    for m in OURS + BASELINES:
        k = res["settings"].get("splits_for", {}).get(m)
        label = f"{m} ({k} splits)" if k else m
        cells = []
        for ds in dsets:
            for n in NS:
                r = tab.get((ds, n, m))
                cells.append(f"{r['tau']:.3f}" if r else "-")
        t = times.get(m, {})
        ft = f"{t['fit300_cpu_s']:.2f}" if t else "-"
        pt = f"{t['predict10k_cpu_s']:.3f}" if t else "-"
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {ft} | {pt} |")
    if "as[ensemble]" in times:
        t = times["as[ensemble]"]
        lines += ["", f"`as` with the ensemble forced ({'+'.join(t['members'])}): predict 10k "
                      f"{t['predict10k_cpu_s']:.3f} CPU-s. `as` fit n=300, mean CPU-s over the splits: "
                      + ", ".join(f"{r['dataset']} {r['fit_cpu_s_mean']:.2f}" for r in results
                                  if r["model"] == "as" and r["n"] == 300) + "."]
    for note in res.get("remeasured", []):
        lines += ["", f"Re-measured {note['date']}: {note['what']} ({note['why']}); other rows from "
                      f"{note['previous_date']}."]
    lines += ["", "`as` winners (per setting, over the splits):", ""]
    for ds in dsets:
        for n in NS:
            r = tab.get((ds, n, "as"))
            if r:
                w = {k: r["winners"].count(k) for k in sorted(set(r["winners"]))}
                lines.append(f"- {ds} n={n}: {w}")
    return "\n".join(lines) + "\n"


class _Inline:
    """``--jobs 1``: run the tasks in this process (no worker processes at all)."""

    def __enter__(self) -> _Inline:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def imap_unordered(self, fn: Any, tasks: list[Any]) -> Any:
        return map(fn, tasks)


def contributions_tau(table_path: str, n_archs: int, seed: int = 0) -> dict[str, Any]:
    """Held-out rank agreement of a contributions table with ``n_archs`` random architectures evaluated on the
    table's supernet and dataset (BN recalibration, no fine-tuning, the validation split)."""
    from search.contributions import ContributionTable, load_table, probe_configs
    from search.evaluators.supernet import SupernetEvaluator
    from search.spec import load_spec
    from search.surrogate import rank_stats
    from supernets import codec

    t = load_table(table_path)
    art = t["artefact"]
    sid = str(art["supernet_id"])
    sup: dict[str, Any] = {}
    if sid.startswith("random-init"):
        sup = {"random_init": True}
    elif not sid.startswith("builtin:"):
        sup = {"path": sid.rsplit("@", 1)[0]}
    res = t["resolutions"]
    job = load_spec({"dataset": art["dataset"], "supernet": sup, "width_mult": art["width_mult"],
                     "resolution": [res[0], res[-1]], "seed": seed,
                     "evaluator": {"kind": "supernet", "n_epochs": 0, "bn_calib_images": 500}})
    ev = SupernetEvaluator(job)
    est = ContributionTable(t, ev.space)
    probes = {codec.config_key(c) for _, c in probe_configs(res)}
    rng = np.random.default_rng(seed)
    cfgs = [c for c in ev.space.sample(3 * n_archs, rng) if codec.config_key(c) not in probes][:n_archs]
    t0 = time.time()
    y = np.array([ev.evaluate(c).metrics["top1"] for c in cfgs])
    stats = rank_stats(y, est.accuracy(cfgs))
    return {"table": str(table_path), "supernet": sid, "dataset": art["dataset"]["name"], "n_archs": len(cfgs),
            "top1_range": [float(y.min()), float(y.max())], **stats, "eval_seconds": time.time() - t0,
            "table_seconds": t.get("seconds"), "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--contributions", default="", metavar="TABLE", help="held-out tau of a contributions table")
    ap.add_argument("--n-archs", type=int, default=60, help="random architectures evaluated (--contributions)")
    ap.add_argument("--splits", type=int, default=10)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--models", default=",".join(OURS + BASELINES))
    ap.add_argument("--ns", default=",".join(map(str, NS)))
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "predictors"))
    ap.add_argument("--splits-for", default="", help="per-model split counts, e.g. cnas_mlp=3 (costly baselines)")
    ap.add_argument("--resume", action="store_true", help="keep the finished tasks of <out>.partial.json")
    ap.add_argument("--update", default="", metavar="WHY",
                    help="replace only the re-run rows (and their timings) in the existing <out>.json, noting WHY")
    args = ap.parse_args()
    if args.contributions:
        r = contributions_tau(args.contributions, args.n_archs)
        dest = ROOT / "bench" / "results" / f"contributions_{r['dataset']}.json"
        dest.write_text(json.dumps(r, indent=1))
        print(json.dumps(r, indent=1))
        return
    models = args.models.split(",")
    splits_for = {k: int(v) for k, v in (kv.split("=") for kv in args.splits_for.split(",") if kv)}
    ns = [int(v) for v in args.ns.split(",")]
    started = time.time()
    info = machine()
    dsets = list(load_datasets_cached())
    # slow models first so the pool's tail is short
    order = {"as": 0, "cnas_mlp": 1, "cnas_carts": 2, "gp": 3, "mlp": 4}
    results: list[dict[str, Any]] = []
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.resume and out.with_suffix(".partial.json").exists():
        results = json.loads(out.with_suffix(".partial.json").read_text())
    done = {(r["dataset"], r["n"], r["model"]) for r in results}
    tasks = sorted(((ds, n, m, splits_for.get(m, args.splits)) for ds in dsets for n in ns for m in models
                    if (ds, n, m) not in done), key=lambda t: (order.get(t[2], 9), -t[1]))
    with mp.get_context("fork").Pool(args.jobs) if args.jobs > 1 else _Inline() as pool:
        for r in pool.imap_unordered(run_task, tasks):
            results.append(r)
            took = time.time() - started
            print(f"{r['dataset']:>13} n={r['n']:<3} {r['model']:<10} tau={r['tau']:.3f} ({took:.0f}s)", flush=True)
            out.with_suffix(".partial.json").write_text(json.dumps(results))
    times = timing([m for m in models if m != "cnas_mlp"]) if models else {}
    info["loadavg_end"] = os.getloadavg()
    res: dict[str, Any] = {"date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "machine": info,
           "settings": {"splits": args.splits, "splits_for": splits_for, "ns": ns, "threads": 1, "jobs": args.jobs,
                        "datasets": {k: len(v[1]) for k, v in load_datasets_cached().items()}},
           "results": sorted(results, key=lambda r: (r["dataset"], r["n"], r["model"])), "timing": times,
           "elapsed_s": time.time() - started}
    if args.update:
        old = json.loads(out.with_suffix(".json").read_text())
        redone = {(r["dataset"], r["n"], r["model"]) for r in results}
        kept = [r for r in old["results"] if (r["dataset"], r["n"], r["model"]) not in redone]
        res["results"] = sorted(kept + results, key=lambda r: (r["dataset"], r["n"], r["model"]))
        res["timing"] = {**old.get("timing", {}), **times}
        res["machine"] = {**old["machine"], "rerun": info}
        res["settings"] = {**old["settings"], "rerun": res["settings"]}
        res["remeasured"] = old.get("remeasured", []) + [
            {"date": res["date"], "previous_date": old["date"], "why": args.update,
             "what": f"models {','.join(models)} on {len(redone)} settings x splits, and their timings"}]
        for k in ("timing_note",):
            if k in old:
                res[k] = old[k]
        times = res["timing"]
    res["checks"] = checks(res["results"], times)
    out.with_suffix(".json").write_text(json.dumps(res, indent=1))
    out.with_suffix(".md").write_text(markdown(res))
    out.with_suffix(".partial.json").unlink(missing_ok=True)
    print(markdown(res))
    print(json.dumps(res["checks"], indent=1))


if __name__ == "__main__":
    main()
