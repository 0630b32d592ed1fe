"""Benchmark: per-candidate cost of true evaluation on digits (CPU, 1 thread), against once-for-all's own path.

For a small (min) and a large (max) subnet it times, per candidate:

* extraction + BN recalibration, msunas's way (``extract_subnet`` with the throw-away init skipped, channels-last,
  then :func:`supernets.finetune.recalibrate_bn_cached`: native batch-norm kernel, no network copy, the fixed
  stem's outputs cached once per resolution; its one-off cost is reported, and the plain / channels-last
  variants without the cache too) against once-for-all's way (``set_active_subnet`` +
  ``get_active_subnet(preserve_weight=True)`` + ``ofa.imagenet_classification.elastic_nn.utils.
  set_running_statistics``), on the same in-memory batches;
* fine-tuning (one epoch of ``train_images`` images) and validation, with images/s;
* the same with channels-last memory format, and ``torch.compile`` for validation (compile time included: every
  candidate is a new graph);
* one full ``SupernetEvaluator.evaluate`` with the demo's settings.

Both wall-clock and CPU (process) seconds are recorded; the machine may be shared, so the ratios are taken on
CPU seconds of the same run (single thread: CPU seconds are the work done). Writes bench/results/evaluation.json.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from search.evaluators.supernet import SupernetEvaluator  # noqa: E402
from search.spec import load_spec  # noqa: E402
from supernets.datasets import load_dataset  # noqa: E402
from supernets.finetune import StemCache, finetune, recalibrate_bn, recalibrate_bn_cached, validate  # noqa: E402
from supernets.latency import machine_info  # noqa: E402
from supernets.ofa_supernet import build_supernet, extract_subnet, set_active  # noqa: E402

REPEATS = 3
BATCH = 128
TRAIN_IMAGES = 512
SUBNETS = {
    "small": {"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": 32},
    "large": {"ks": [7] * 20, "e": [6] * 20, "d": [4] * 5, "r": 64},
}


def timed(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """(wall s, cpu s, result) of one call."""
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - w, time.process_time() - c, out


def median_timed(fn: Callable[[], Any], n: int = REPEATS) -> dict[str, Any]:
    runs = [timed(fn) for _ in range(n)]
    return {
        "wall_s": statistics.median(r[0] for r in runs),
        "cpu_s": statistics.median(r[1] for r in runs),
        "runs_cpu_s": [round(r[1], 4) for r in runs],
        "result": runs[-1][2],
    }


def ofa_path(supernet: torch.nn.Module, cfg: dict[str, Any], batches: list[tuple[torch.Tensor, torch.Tensor]]):
    from ofa.imagenet_classification.elastic_nn.utils import set_running_statistics

    set_active(supernet, cfg)
    sub = supernet.get_active_subnet(preserve_weight=True)
    set_running_statistics(sub, batches)
    return sub


def ours_path(
    supernet: torch.nn.Module,
    cfg: dict[str, Any],
    batches: list[tuple[torch.Tensor, torch.Tensor]],
    channels_last: bool = False,
):
    sub = extract_subnet(supernet, cfg)
    if channels_last:
        sub = sub.to(memory_format=torch.channels_last)
        recalibrate_bn(sub, (x.contiguous(memory_format=torch.channels_last) for x, _ in batches))
    else:
        recalibrate_bn(sub, (x for x, _ in batches))
    return sub


def cached_path(supernet: torch.nn.Module, cfg: dict[str, Any], cache: StemCache) -> torch.nn.Module:
    """The evaluator's path: fast extraction, channels-last, BN recalibration from the per-resolution stem cache."""
    sub = extract_subnet(supernet, cfg).to(memory_format=torch.channels_last)
    recalibrate_bn_cached(sub, cache)
    return sub


def bn_agreement(a: torch.nn.Module, b: torch.nn.Module) -> dict[str, float]:
    """Largest difference between two networks' BN running statistics (relative to the statistic's scale)."""
    dm, dv = 0.0, 0.0
    for (_, m1), (_, m2) in zip(
        ((n, m) for n, m in a.named_modules() if isinstance(m, torch.nn.BatchNorm2d)),
        ((n, m) for n, m in b.named_modules() if isinstance(m, torch.nn.BatchNorm2d)),
        strict=True,
    ):
        scale = m2.running_var.sqrt().clamp_min(1e-3)
        dm = max(dm, float(((m1.running_mean - m2.running_mean).abs() / scale).max()))
        dv = max(dv, float(((m1.running_var - m2.running_var).abs() / m2.running_var.clamp_min(1e-6)).max()))
    return {"max_mean_diff_in_std": dm, "max_var_rel_diff": dv}


def main() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    data = load_dataset("digits")
    supernet = build_supernet(1.0, 10, seed=0)
    job = load_spec(
        {
            "dataset": {"name": "digits"},
            "resolution": [32, 64],
            "seed": 0,
            "evaluator": {"kind": "supernet", "n_epochs": 1, "batch_size": BATCH},
        }
    )
    ev = SupernetEvaluator(job, supernet=supernet, data=data)
    out: dict[str, Any] = {
        "machine": {
            **machine_info(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "load_avg_at_start": os.getloadavg(),
        },
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "settings": {
            "dataset": "digits",
            "bn_calib_images": len(ev._calib_idx),
            "batch_size": BATCH,
            "finetune_images": TRAIN_IMAGES,
            "valid_images": len(data.valid),
            "repeats": REPEATS,
        },
        "subnets": {},
    }
    for name, cfg in SUBNETS.items():
        r = cfg["r"]
        calib = ev.calibration_batches(r)
        n_cal = sum(int(x.shape[0]) for x, _ in calib)
        res: dict[str, Any] = {"config": cfg}
        calib_cl = [(x.contiguous(memory_format=torch.channels_last), y) for x, y in calib]
        # extraction alone, both ways
        ext_ofa = median_timed(lambda cfg=cfg: extract_subnet(supernet, cfg, fast=False))
        ext_ours = median_timed(lambda cfg=cfg: extract_subnet(supernet, cfg, fast=True))
        # extraction + BN recalibration
        bn_ofa = median_timed(lambda cfg=cfg, calib=calib: ofa_path(supernet, cfg, calib))
        bn_plain = median_timed(lambda cfg=cfg, calib=calib: ours_path(supernet, cfg, calib))
        bn_cl = median_timed(lambda cfg=cfg, calib=calib: ours_path(supernet, cfg, calib, channels_last=True))
        build = median_timed(
            lambda cfg=cfg, c=calib_cl: StemCache.build(
                extract_subnet(supernet, cfg).to(memory_format=torch.channels_last), c
            )
        )
        cache = build["result"]
        bn_ours = median_timed(lambda cfg=cfg, cache=cache: cached_path(supernet, cfg, cache))
        keep = ("wall_s", "cpu_s", "runs_cpu_s")
        res["extract"] = {
            "ofa_cpu_s": ext_ofa["cpu_s"],
            "ours_cpu_s": ext_ours["cpu_s"],
            "speedup": ext_ofa["cpu_s"] / ext_ours["cpu_s"],
        }
        res["extract_plus_bn"] = {
            "ofa_get_active_subnet_set_running_statistics": {k: bn_ofa[k] for k in keep},
            "ours_fast_extract_native_bn": {k: bn_plain[k] for k in keep},
            "ours_fast_extract_native_bn_channels_last": {k: bn_cl[k] for k in keep},
            "ours_evaluator_path_stem_cached_channels_last": {k: bn_ours[k] for k in keep},
            "stem_cache_build_once_per_resolution": {k: build[k] for k in keep},
            "speedup_cpu": bn_ofa["cpu_s"] / bn_ours["cpu_s"],
            "speedup_wall": bn_ofa["wall_s"] / bn_ours["wall_s"],
            "speedup_cpu_first_candidate_at_resolution": bn_ofa["cpu_s"] / (bn_ours["cpu_s"] + build["cpu_s"]),
            "speedup_cpu_native_bn_only": bn_ofa["cpu_s"] / bn_plain["cpu_s"],
            "speedup_cpu_native_bn_channels_last": bn_ofa["cpu_s"] / bn_cl["cpu_s"],
            "bn_images": n_cal,
            "agreement_with_ofa": bn_agreement(bn_ours["result"], bn_ofa["result"]),
        }
        # fine-tuning (one epoch of TRAIN_IMAGES) and validation, contiguous vs channels-last
        vb = ev._fixed_batches("valid", r)
        for fmt in ("contiguous", "channels_last"):
            cl = fmt == "channels_last"
            net = ours_path(supernet, cfg, calib, channels_last=cl)
            g = torch.Generator().manual_seed(0)
            batches = list(data.train.batches(r, BATCH, shuffle=True, augment=True, generator=g, limit=TRAIN_IMAGES))
            steps = len(batches)
            w, c, st = timed(
                lambda net=net, batches=batches, steps=steps, cl=cl: finetune(
                    net, iter([batches]), n_epochs=1, steps_per_epoch=steps, lr=0.01, channels_last=cl
                )
            )
            wv, cv, vm = timed(lambda net=net, cl=cl, vb=vb: validate(net, vb, channels_last=cl))
            res[f"finetune_{fmt}"] = {"wall_s": w, "cpu_s": c, "images": TRAIN_IMAGES, "images_per_s": TRAIN_IMAGES / c}
            res[f"validate_{fmt}"] = {
                "wall_s": wv,
                "cpu_s": cv,
                "images": len(data.valid),
                "images_per_s": len(data.valid) / cv,
                "top1": vm["top1"],
            }
        # torch.compile for validation: compile time is paid per candidate (each subnet is a new graph)
        try:
            net = ours_path(supernet, cfg, calib).eval()
            cnet = torch.compile(net)
            with torch.no_grad():
                wc, cc, _ = timed(lambda cnet=cnet, vb=vb: [cnet(x) for x, _ in vb[:1]])
                wv2, cv2, _ = timed(lambda cnet=cnet, vb=vb: [cnet(x) for x, _ in vb])
            res["validate_torch_compile"] = {
                "first_call_cpu_s": cc,
                "first_call_wall_s": wc,
                "steady_cpu_s": cv2,
                "steady_images_per_s": len(data.valid) / cv2,
            }
        except Exception as e:  # noqa: BLE001 - report, do not fail the benchmark
            res["validate_torch_compile"] = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"}
        out["subnets"][name] = res
        print(name, json.dumps({k: v for k, v in res.items() if k != "config"}, default=str)[:2000], flush=True)

    # one full candidate evaluation with demo-like settings (random-init supernet: timing only)
    demo = load_spec(
        {
            "dataset": {"name": "digits"},
            "resolution": [32, 48],
            "seed": 0,
            "evaluator": {
                "kind": "supernet",
                "n_epochs": 1,
                "batch_size": 64,
                "train_images": 512,
                "bn_calib_images": 512,
                "channels_last": True,
            },
        }
    )
    ev2 = SupernetEvaluator(demo, supernet=supernet, data=data)
    mid = {"ks": [5] * 20, "e": [4] * 20, "d": [3] * 5, "r": 40}
    w, c, r = timed(lambda: ev2.evaluate(mid))
    out["demo_candidate"] = {
        "config": mid,
        "wall_s": w,
        "cpu_s": c,
        "status": r.status,
        "phases_wall_s": {
            k: r.metrics.get(k) for k in ("time_extract", "time_bn", "time_train", "time_valid", "time_data")
        },
        "settings": demo.evaluator.model_dump(),
    }
    out["target"] = {
        "extract_plus_bn_speedup_min": 2.0,
        "met": all(v["extract_plus_bn"]["speedup_cpu"] >= 2.0 for v in out["subnets"].values()),
    }
    out["load_avg_at_end"] = os.getloadavg()
    dest = ROOT / "bench" / "results" / "evaluation.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(out, indent=2, default=float))
    print(f"wrote {dest}")


if __name__ == "__main__":
    main()
