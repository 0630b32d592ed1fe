"""Benchmark: cost of the flatness measure R per candidate, and how R ranks against corruption accuracy.

Run: ``PYTHONPATH=. python bench/robustness.py [--quick]`` (CPU, one thread). Writes
``bench/results/robustness.json``.

1. Cost: for every candidate, the seconds of R (M=20 draws, sigma=0.05, whole validation split) next to the
   seconds of one clean validation pass and of the candidate's fine-tuning (baselines measured in the same run).
2. Rank correlation (Spearman rho, Kendall tau) between R and the mean corruption accuracy (15 types x 5
   severities, generated on the fly) over the candidates, and, for comparison, between clean top-1 and
   corruption accuracy.

Candidates come from a small real search (engine + ``supernet`` evaluator with ``objectives: [top1_err,
top1_robust]`` on ``digits``) when those are installed; otherwise (``--own``) from subnets of a randomly
initialised OFA supernet, each trained briefly on digits here. The JSON says which.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from robustness.corruptions import CORRUPTIONS, SEVERITIES  # noqa: E402
from robustness.flatness import as_batches, evaluate_batches, flatness  # noqa: E402


def _spearman(a: list[float], b: list[float]) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def _spearman_p(a: list[float], b: list[float]) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).pvalue)


def _kendall(a: list[float], b: list[float]) -> float:
    from scipy.stats import kendalltau

    return float(kendalltau(a, b).statistic)


def _machine() -> dict[str, Any]:
    from supernets.latency import machine_info

    return {
        **machine_info(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }


# ------------------------------------------------------------------------------------------------ real search
def run_search(quick: bool) -> dict[str, Any]:
    """A small real search on digits with top1_robust; every candidate gets R and corruption metrics."""
    from search.engine import make_engine
    from search.evaluators.supernet import SupernetEvaluator
    from search.spec import load_spec
    from supernets.ofa_supernet import load_supernet
    from supernets.train import train_digits_supernet

    n_img = 40 if quick else 60
    spec = load_spec(
        {
            "dataset": {"name": "digits"},
            "resolution": [32, 32],
            "objectives": ["top1_err", "top1_robust"],
            "evaluator": {
                "kind": "supernet",
                "n_epochs": 3,
                "train_images": 512,
                "bn_calib_images": 256,
                "batch_size": 64,
                "lr": 0.05,
                "num_threads": 1,
            },
            "robustness": {"sigma": 0.05, "n_draws": 20, "corruptions": {"n_images": n_img}},
            "predictor": "rbf",
            "n_doe": 4 if quick else 8,
            "n_iter": 2 if quick else 4,
            "iterations": 1,
            "seed": 0,
            "engine": {"pop_size": 16, "n_gen": 5, "cv_folds": 3},
        }
    )
    # the built-in digits supernet (trained once, cached: what `make demo` uses); every candidate is fine-tuned
    # 3 x 512 images from its inherited weights
    trained = train_digits_supernet()
    ev = SupernetEvaluator(spec, supernet=load_supernet(trained["path"], n_classes=10))
    eng = make_engine(spec)
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    while eng.has_next():
        cands = eng.ask()
        results = [ev.evaluate(c) for c in cands]
        for res in results:
            if res.status != "ok":
                print("failed:", res.error, file=sys.stderr)
                continue
            m = res.metrics
            rows.append(
                {
                    "top1": m["top1"],
                    "robustness": m["robustness"],
                    "loss_increase": m["robustness_loss_increase"],
                    "corruption_acc": m["corruption_acc"],
                    "corruption_clean_acc": m["corruption_clean_acc"],
                    "t_r": m["robustness_time"],
                    "cpu_r": m["robustness_cpu_time"],
                    "t_valid": m.get("time_valid", float("nan")),
                    "t_train": m.get("time_train", float("nan")),
                    "t_corruption": m["corruption_time"],
                    "r": res.config["r"],
                }
            )
        stats = eng.tell(results)
        print(f"iteration {stats['iteration']}: archive {stats['n_archive']} hv {stats['hv']:.3f}", file=sys.stderr)
    final = eng.result()
    top1_robust = [r["metrics"].get("top1_robust") for r in final["archive"] if r["status"] == "ok"]
    return {
        "source": "real search: Engine + supernet evaluator (the trained digits supernet of `make demo`, "
        f"{trained['path']}, 3 x 512-image fine-tuning), "
        "digits r=32, objectives [top1_err, top1_robust]",
        "spec": spec.model_dump(mode="json"),
        "rows": rows,
        "wall_s": time.perf_counter() - t0,
        "archive_top1_robust": top1_robust,
    }


# ------------------------------------------------------------------------------------------------ fallback
def run_own(quick: bool) -> dict[str, Any]:
    """Sampled subnets of a random-init OFA supernet, each trained briefly on digits (r=32)."""
    from ofa.imagenet_classification.elastic_nn.networks import OFAMobileNetV3
    from PIL import Image
    from sklearn.datasets import load_digits

    from robustness.corruptions import corruption_accuracy, torch_predictor

    d = load_digits()
    imgs = (d.images / 16.0 * 255.0).round().astype(np.uint8)
    big = np.stack([np.asarray(Image.fromarray(i).resize((32, 32), Image.Resampling.BILINEAR)) for i in imgs])
    big = np.repeat(big[..., None], 3, axis=3)
    perm = np.random.default_rng(0).permutation(len(big))
    tr, va = perm[300:], perm[:300]

    def to_t(u8: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(u8).permute(0, 3, 1, 2).float().div(255).sub(0.5).div(0.5).contiguous()

    xtr, ytr = to_t(big[tr]), torch.from_numpy(d.target[tr])
    val = (to_t(big[va]), torch.from_numpy(d.target[va]))
    n_img = 60 if quick else 100
    rng = np.random.default_rng(0)
    rows = []
    n_cand = 4 if quick else 10
    t_all = time.perf_counter()
    for k in range(n_cand):
        torch.manual_seed(k)
        sup = OFAMobileNetV3(
            n_classes=10, dropout_rate=0, ks_list=[3, 5, 7], expand_ratio_list=[3, 4, 6], depth_list=[2, 3, 4]
        )
        sup.set_active_subnet(
            ks=[int(v) for v in rng.choice([3, 5, 7], 20)],
            e=[int(v) for v in rng.choice([3, 4, 6], 20)],
            d=[int(v) for v in rng.choice([2, 3, 4], 5)],
        )
        net = sup.get_active_subnet(preserve_weight=True)
        opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, weight_decay=4e-5)
        g = torch.Generator().manual_seed(k)
        steps = int(rng.integers(20, 80))  # varied training so candidates differ in accuracy and flatness
        t0 = time.perf_counter()
        net.train()
        for _ in range(steps):
            idx = torch.randint(0, xtr.shape[0], (64,), generator=g)
            loss = torch.nn.functional.cross_entropy(net(xtr[idx]), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():  # BN recalibration on training data
            for m in net.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.reset_running_stats()
                    m.momentum = None
            for i in range(0, 512, 128):
                net(xtr[i : i + 128])
        net.eval()
        t_train = time.perf_counter() - t0
        t0 = time.perf_counter()
        top1, _ = evaluate_batches(net, as_batches(val, 256))
        t_valid = time.perf_counter() - t0
        fr = flatness(net, val, sigma=0.05, n_draws=20, seed=0)
        t0 = time.perf_counter()
        acc = corruption_accuracy(torch_predictor(net), big[va][:n_img], d.target[va][:n_img], seed=0)
        t_corr = time.perf_counter() - t0
        rows.append(
            {
                "top1": top1,
                "robustness": fr.robustness,
                "loss_increase": fr.loss_increase,
                "corruption_acc": float(np.mean([np.mean(list(v.values())) for v in acc.values()])),
                "t_r": fr.seconds,
                "cpu_r": fr.cpu_seconds,
                "t_valid": t_valid,
                "t_train": t_train,
                "t_corruption": t_corr,
                "train_steps": steps,
                "r": 32,
            }
        )
        print(k, {a: round(b, 3) for a, b in rows[-1].items()}, file=sys.stderr)
    return {
        "source": "own: random-init OFA MobileNetV3 subnets trained 20-80 SGD steps on digits (r=32)",
        "rows": rows,
        "wall_s": time.perf_counter() - t_all,
    }


def summarise(run: dict[str, Any]) -> dict[str, Any]:
    rows = run["rows"]
    r = [x["robustness"] for x in rows]
    ca = [x["corruption_acc"] for x in rows]
    t1 = [x["top1"] for x in rows]
    t_r = np.array([x["t_r"] for x in rows])
    t_v = np.array([x["t_valid"] for x in rows])
    t_t = np.array([x["t_train"] for x in rows])
    return {
        "n_candidates": len(rows),
        "cost_of_R": {
            "M": 20,
            "sigma": 0.05,
            "seconds_per_candidate_mean": float(t_r.mean()),
            "seconds_per_candidate_median": float(np.median(t_r)),
            "cpu_seconds_per_candidate_mean": float(np.mean([x["cpu_r"] for x in rows])),
            "ratio_to_one_validation_pass": float(np.median(t_r / t_v)),
            "ratio_to_finetuning": float(np.median(t_r / t_t)),
            "corruption_seconds_per_candidate_mean": float(np.mean([x["t_corruption"] for x in rows])),
        },
        "rank_correlation": {
            "spearman_R_vs_corruption_acc": _spearman(r, ca),
            "spearman_R_vs_corruption_acc_pvalue": _spearman_p(r, ca),
            "spearman_loss_increase_vs_corruption_acc": _spearman([x["loss_increase"] for x in rows], ca),
            "kendall_R_vs_corruption_acc": _kendall(r, ca),
            "spearman_top1_vs_corruption_acc": _spearman(t1, ca),
            "spearman_R_vs_top1": _spearman(r, t1),
            "note": "R is lower-is-better, corruption accuracy higher-is-better: a negative rho means flat "
            "networks are the robust ones",
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes (smoke run)")
    ap.add_argument("--own", action="store_true", help="skip the real search, train own subnets")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "robustness.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    run: dict[str, Any] | None = None
    if not args.own:
        import importlib.util

        missing = [m for m in ("search.engine", "search.evaluators.supernet") if importlib.util.find_spec(m) is None]
        if missing:
            print(f"{', '.join(missing)} not installed; training own subnets", file=sys.stderr)
        else:
            run = run_search(args.quick)
    if run is None:
        run = run_own(args.quick)
    out = {
        "benchmark": "robustness",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": _machine(),
        "quick": args.quick,
        "corruptions": list(CORRUPTIONS),
        "severities": list(SEVERITIES),
        **summarise(run),
        "run": run,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(json.dumps({k: v for k, v in out.items() if k != "run"}, indent=2))


if __name__ == "__main__":
    main()
