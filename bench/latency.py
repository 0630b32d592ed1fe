"""Benchmark: latency LUT vs measured end-to-end latency on this machine (ONNX Runtime CPU, batch 1, 1 thread).

1. Build the msunas table for width 1.0, r 160..224 (every distinct block measured standalone; timed), with the
   bias correction fitted from 30 random subnets measured end to end.
2. Measure 100 other random subnets end to end on the same runtime.
3. Kendall tau / Spearman rho / MAPE of the LUT prediction (raw block sum and corrected) against them, and how
   the summed NSGANetV2 i7-8700K table (a foreign device) ranks the same subnets.
Timing statistic: by default the MIN of the timed runs (``--statistic median`` for the median), and subnets are
timed in 3 interleaved passes (``--rounds``). On the 2-core development VM the median of 15 runs of the same 40
subnets, measured twice in a row on an idle machine, ranks them with Kendall tau 0.78 between the two repeats
(the min: 0.90): with medians no table can reach tau 0.90 against the measurement, because the measurement
does not agree with itself.
Writes ``bench/results/latency_<clock>.json``.
Run: ``PYTHONPATH=. MSUNAS_SHARED_DATA=../shared/data python bench/latency.py``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import kendalltau, spearmanr

from supernets import get_search_space
from supernets.latency import LatencyTable, build_table, machine_info, measure_configs


def stats(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """Rank and error figures of predictions against measurements."""
    return {
        "kendall_tau": round(float(kendalltau(pred, true).statistic), 4),
        "spearman_rho": round(float(spearmanr(pred, true).statistic), 4),
        "mape_pct": round(float(np.mean(np.abs(pred - true) / true) * 100), 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clock", default="wall", choices=["wall", "cpu"], help="wall latency or thread CPU time")
    ap.add_argument("--table", default=None, help="default bench/results/lut_ort_cpu_w1.0_r160-224_<clock>.json")
    ap.add_argument("--repeat", type=int, default=40, help="timed runs per block")
    ap.add_argument("--e2e-repeat", type=int, default=45, help="timed runs per end-to-end subnet")
    ap.add_argument("--statistic", default="min", choices=["median", "min"],
                    help="of the timed runs, for blocks and subnets alike (see the module docstring)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved passes over the subnets")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--calibrate", type=int, default=30)
    ap.add_argument("--out", default=None, help="default bench/results/latency_<clock>.json")
    ap.add_argument("--shared-data", default=os.environ.get("MSUNAS_SHARED_DATA", "../shared/data"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    load_start = os.getloadavg()

    results = Path(__file__).parent / "results"
    table_path = Path(args.table or results / f"lut_ort_cpu_w1.0_r160-224_{args.clock}.json")
    out_path = Path(args.out or results / f"latency_{args.clock}.json")
    if table_path.exists():
        table_path.unlink()  # time a fresh build
    t = time.perf_counter()
    table = build_table(
        table_path,
        device="onnxruntime-cpu",
        width_mult=1.0,
        resolutions=list(range(160, 225, 4)),
        batch_size=1,
        threads=1,
        clock=args.clock,
        statistic=args.statistic,
        repeat=args.repeat,
        warmup=3,
        calibrate=args.calibrate,
        calibrate_repeat=args.e2e_repeat,
        seed=1,
        progress=True,
    )
    total_build_s = time.perf_counter() - t
    blocks_s = table.meta["build_seconds"]

    configs = get_search_space("mobilenetv3", lr=160, ur=224).sample(args.n, np.random.default_rng(12345))
    t = time.perf_counter()
    e2e = {"device": "onnxruntime-cpu", "threads": 1, "batch_size": 1, "warmup": 5, "repeat": args.e2e_repeat,
           "clock": args.clock, "statistic": args.statistic, "rounds": args.rounds}
    measured = measure_configs(configs, **e2e)
    e2e_s = time.perf_counter() - t
    # re-measure a few subnets at the end: how stable are end-to-end timings on this (shared) machine?
    again = measure_configs(configs[:10], **e2e)
    raw = table.predict(configs, raw=True)
    corrected = table.predict(configs)

    result: dict = {
        "benchmark": "latency",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {**machine_info(), "loadavg_at_start": load_start, "loadavg_at_end": os.getloadavg()},
        "runtime": table.meta["runtime"],
        "setup": {
            "device": "onnxruntime-cpu",
            "clock": args.clock,
            "statistic": args.statistic,
            "batch_size": 1,
            "threads": 1,
            "width_mult": 1.0,
            "resolutions": "160..224 step 4",
            "blocks": len(table.entries),
            "block_repeat": args.repeat,
            "e2e_repeat": args.e2e_repeat,
            "e2e_rounds": args.rounds,
            "n_subnets": args.n,
            "calibration_subnets": args.calibrate,
        },
        "table_build_seconds_blocks": blocks_s,
        "table_build_seconds_with_calibration": round(total_build_s, 1),
        "e2e_measure_seconds": round(e2e_s, 1),
        "correction": {
            k: table.correction.get(k)
            for k in ("scale", "per_layer_ms", "offset_ms", "n", "mape_raw_pct", "mape_corrected_in_sample_pct")
        }
        if table.correction
        else None,
        "measured_ms": {
            "min": round(float(measured.min()), 3),
            "median": round(float(np.median(measured)), 3),
            "max": round(float(measured.max()), 3),
        },
        "remeasure_10_mean_abs_pct_change": round(
            float(np.mean(np.abs(again - measured[:10]) / measured[:10]) * 100), 2
        ),
        "lut_raw": stats(raw, measured),
        "lut_corrected": stats(corrected, measured),
        "targets": {"kendall_tau": 0.90, "mape_pct": 10.0, "build_minutes": 15},
    }
    result["targets_met"] = (
        result["lut_corrected"]["kendall_tau"] >= 0.90
        and result["lut_corrected"]["mape_pct"] <= 10.0
        and total_build_s <= 15 * 60
    )
    i7 = Path(args.shared_data) / "latency_luts" / "i7-8700K_lut.yaml"
    if i7.is_file():
        foreign = LatencyTable.load(i7, width_mult=1.0)
        f_raw = foreign.predict(configs, raw=True)
        # give the foreign table the same 10-subnet linear correction (fitted on this machine's calibration set)
        corr = table.correction or {}
        cal = corr.get("configs", [])
        if cal:
            foreign.set_correction(foreign.predict(cal, raw=True), corr["measured_ms"], layers=corr.get("layers"))
        result["i7_8700k_table"] = {
            "raw": stats(f_raw, measured),
            "rescaled_with_local_calibration": stats(foreign.predict(configs), measured) if cal else None,
        }
    result["per_subnet"] = [
        {"config": c, "measured_ms": round(float(m), 4), "lut_raw_ms": round(float(r), 4),
         "lut_corrected_ms": round(float(p), 4)}
        for c, m, r, p in zip(configs, measured, raw, corrected, strict=True)
    ]  # fmt: skip
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "per_subnet"}, indent=1))


if __name__ == "__main__":
    main()
