"""Benchmark: configs/s of the analytic cost model vs once-for-all's build-and-count path, in one run.

Analytic: ``cost_metrics`` over a vectorised population of 10,000 random configs (stacked arrays from
``codec.backbone_arrays``; also the list-of-dicts path, which validates every config), median of repeats.
Baseline: per config ``set_active_subnet`` + ``get_active_subnet`` + ``ofa.utils.count_net_flops`` + parameter
count on a prebuilt supernet (its one-off construction is not charged). One core: ``torch.set_num_threads(1)``.
Writes ``bench/results/cost_model.json``. Run: ``PYTHONPATH=. python bench/cost_model.py``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from supernets import codec, get_search_space
from supernets.cost import cost_metrics, cost_metrics_full
from supernets.latency import machine_info


def machine() -> dict[str, object]:
    """Platform, CPU model, core count, load and library versions (the figures depend on all of them)."""
    return {
        **machine_info(),
        "loadavg_1m_at_start": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--population", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--ofa-configs", type=int, default=20)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "cost_model.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    from ofa.imagenet_classification.elastic_nn.networks import OFAMobileNetV3
    from ofa.utils import count_net_flops

    ss = get_search_space("mobilenetv3", lr=160, ur=224, width_mult=1.0)
    configs = ss.sample(args.population, np.random.default_rng(0))
    arrays = codec.backbone_arrays(configs)

    def timed(fn) -> float:
        times = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return statistics.median(times)

    cost_metrics(arrays)  # warm the coefficient tables
    t_arrays = timed(lambda: cost_metrics(arrays))
    t_full = timed(lambda: cost_metrics_full(arrays))
    t_dicts = statistics.median([_once(lambda: cost_metrics(configs)) for _ in range(3)])

    net = OFAMobileNetV3(
        n_classes=1000, width_mult=1.0, ks_list=[3, 5, 7], expand_ratio_list=[3, 4, 6], depth_list=[2, 3, 4]
    )
    sub_configs = configs[: args.ofa_configs]
    got = cost_metrics_full(sub_configs)
    t = time.perf_counter()
    for i, c in enumerate(sub_configs):
        net.set_active_subnet(ks=c["ks"], e=c["e"], d=c["d"])
        sub = net.get_active_subnet()
        params = sum(p.numel() for p in sub.parameters())
        flops = count_net_flops(sub, (1, 3, c["r"], c["r"]))
        if params != got["params"][i] or flops != got["macs_counter"][i]:
            raise SystemExit(
                f"mismatch on config {i}: {params} vs {got['params'][i]}, {flops} vs {got['macs_counter'][i]}"
            )
    t_ofa = (time.perf_counter() - t) / len(sub_configs)

    n = args.population
    result = {
        "benchmark": "cost_model",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "setup": {
            "population": n,
            "resolutions": "160..224 step 4",
            "width_mult": 1.0,
            "n_classes": 1000,
            "repeats": args.repeats,
            "ofa_configs": len(sub_configs),
        },
        "analytic_arrays_configs_per_s": round(n / t_arrays),
        "analytic_arrays_with_counter_macs_configs_per_s": round(n / t_full),
        "analytic_list_of_dicts_configs_per_s": round(n / t_dicts),
        "ofa_build_and_count_configs_per_s": round(1 / t_ofa, 3),
        "ofa_seconds_per_config": round(t_ofa, 4),
        "speedup_arrays_vs_ofa": round(t_ofa * n / t_arrays),
        "speedup_list_of_dicts_vs_ofa": round(t_ofa * n / t_dicts),
        "ofa_results_equal_analytic": True,
        "targets": {"configs_per_s": 100_000, "speedup": 10_000},
    }
    result["targets_met"] = (
        result["analytic_arrays_configs_per_s"] >= 100_000 and result["speedup_arrays_vs_ofa"] >= 10_000
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


def _once(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


if __name__ == "__main__":
    main()
