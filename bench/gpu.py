"""Benchmark: every figure of issue 20 on one device (``--device cpu`` or ``--device cuda``), in under 5 minutes.

1. Supernet evaluator throughput (candidates per hour): BN recalibration + fine-tuning + validation of random
   subnets inherited from a random-init supernet, on digits (8x8 upscaled) and on CIFAR-sized inputs (32x32x3,
   10 classes: CIFAR-10 from ``--cifar-root`` when given, else synthesised from digits: upscaled to 32x32,
   3 channels with a seeded colour gain per image). The first candidate (warm-up: caches, cuDNN) is not counted.
   Concurrency: the same evaluation in K worker processes sharing the device (what ``msunas worker
   --concurrency K`` does with ``evaluator.device: cuda``): candidates per hour of all K together, K = 1, 2, 4 on a
   GPU (1, 2 on a CPU), so the figure says whether several candidates at once help on that device.
2. Supernet training images/s with and without AMP through ``supernets.train``'s public API (``TrainConfig`` +
   ``train_supernet``); a figure its ``TrainConfig`` cannot express (no ``device``/``amp`` field) is skipped with
   a message. Images/s counts training-batch images (each trains 2 + n_random subnets).
3. INT8 vs fp32 (``msunas export --format onnx-int8``, :mod:`supernets.quantize`): validation top-1 and ONNX
   Runtime CPU batch-1 latency of a subnet fine-tuned on digits (on the CPU: export and ORT are CPU paths).
4. Measured vs LUT latency: a table built here on the device's runtime (ONNX Runtime CPU, or torch-cuda), random
   subnets measured end to end by :func:`supernets.measure.measure_picks` (CUDA events around CUDA-graph
   replays on a GPU; two passes): Kendall tau of the LUT against the measurement and of the two passes against
   each other (repeatability), and the LUT's MAPE.

Writes ``bench/results/gpu_<device>.json`` (machine, date, settings, figures). Needs only torch, torchvision,
onnxruntime, scikit-learn, numpy, pydantic, pyyaml and the repo's packages with ``ofa``. A device machine
without internet: download the missing wheels here and carry them (``wheels/`` is git-ignored)::

    pip download --no-deps ofa pymoo -d wheels/   # here; add onnx, pydantic, pyyaml, rich, scipy if absent there
    pip install --no-deps wheels/*.whl                   # there, then:
    PYTHONPATH=. python bench/gpu.py --device cuda

Run here: ``PYTHONPATH=. python bench/gpu.py --device cpu --quick`` (a few minutes on one core).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
# bench/search.py is named like the package: drop bench/ from the path so `import search` finds the package
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))

from search.evaluators.supernet import SupernetEvaluator  # noqa: E402
from search.spec import load_spec  # noqa: E402
from supernets import get_search_space  # noqa: E402
from supernets.datasets import DatasetSplits, TensorImages, load_dataset  # noqa: E402
from supernets.latency import build_table, machine_info  # noqa: E402
from supernets.measure import kendall_tau, measure_picks  # noqa: E402
from supernets.ofa_supernet import build_supernet  # noqa: E402

# settings per mode: (full run on one GPU / CPU, --quick)
FULL = {"candidates": 12, "train_images": 2000, "calib": 500, "batch": 128, "train_steps_images": 4096,
        "int8_epochs": 3, "lut_r": 224, "subnets": 40, "repeat": 100, "warmup": 20}
QUICK = {"candidates": 3, "train_images": 128, "calib": 128, "batch": 64, "train_steps_images": 256,
         "int8_epochs": 1, "lut_r": 128, "subnets": 8, "repeat": 10, "warmup": 3}


def cifar_sized(cifar_root: str | None) -> tuple[DatasetSplits, str]:
    """CIFAR-10 from ``cifar_root``, else 32x32x3 10-class images synthesised from digits (seeded)."""
    if cifar_root:
        return load_dataset("cifar10", cifar_root, 1000), f"cifar10 from {cifar_root}"
    d = load_dataset("digits", vld_size=300)
    g = torch.Generator().manual_seed(0)

    def up(s: Any) -> TensorImages:
        x = F.interpolate(s.images.float(), size=(32, 32), mode="bilinear", align_corners=False)
        gain = 0.4 + 0.6 * torch.rand(len(s), 3, 1, 1, generator=g)
        return TensorImages((x * gain).clamp(0, 255).to(torch.uint8), s.labels, flip=True, pad=4)

    return DatasetSplits("cifar-sized", 10, up(d.train), up(d.valid), up(d.test), dict(d.info)), \
        "synthesised from digits (32x32x3, 10 classes)"


def evaluator_throughput(device: str, data: DatasetSplits, r: tuple[int, int], s: dict[str, Any]) -> dict[str, Any]:
    """Candidates/hour of the supernet evaluator (1 fine-tuning epoch of ``train_images``) on ``device``."""
    ev_opts = {"kind": "supernet", "device": device, "n_epochs": 1, "batch_size": s["batch"],
               "bn_calib_images": s["calib"], "train_images": s["train_images"]}
    spec = load_spec({"dataset": {"name": "digits", "vld_size": 300}, "supernet": {"random_init": True},
                      "resolution": list(r), "evaluator": ev_opts, "seed": 0})
    ev = SupernetEvaluator(spec, supernet=build_supernet(1.0, 10, seed=0), data=data)
    space = get_search_space("mobilenetv3", lr=r[0], ur=r[1])
    configs = space.sample(s["candidates"] + 1, np.random.default_rng(0))
    times, top1 = [], []
    for i, c in enumerate(configs):
        t = time.perf_counter()
        res = ev.evaluate(c)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        if res.status != "ok":
            raise RuntimeError(f"candidate {i} failed: {res.error}")
        if i:  # the first is warm-up
            times.append(time.perf_counter() - t)
            top1.append(res.metrics["top1"])
    sec = float(np.mean(times))
    return {"candidates_per_hour": round(3600 / sec, 1), "seconds_per_candidate": round(sec, 3),
            "candidates": len(times), "resolution": list(r), "mean_top1": round(float(np.mean(top1)), 2),
            "evaluator": ev_opts, "data_on_device": bool(getattr(ev.train_set.images, "is_cuda", False)),
            "eval_batch": ev.eval_batch}


def train_throughput(device: str, s: dict[str, Any]) -> dict[str, Any]:
    """Supernet-training images/s, fp32 and AMP, through supernets.train's public API: ``train_supernet(cfg, out,
    run=RunOptions(device=..., amp=...))`` where it takes ``run``, else ``TrainConfig`` fields if it has them."""
    import inspect

    try:
        from supernets.train import TrainConfig, train_supernet
    except ImportError as e:
        return {"skipped": f"supernets.train has no public TrainConfig/train_supernet ({e})"}
    run_options: Any = None
    if "run" in inspect.signature(train_supernet).parameters:
        try:
            from supernets.device import RunOptions as run_options
        except ImportError:
            run_options = None
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    out: dict[str, Any] = {}
    for amp in (False, True):
        key = "amp" if amp else "fp32"
        kw: dict[str, Any] = {"dataset": "digits", "epochs": 1, "batch_size": s["batch"], "resolution": (32, 40),
                              "train_images": s["train_steps_images"], "seed": 0}
        if "eval_images" in fields:
            kw["eval_images"] = 100
        extra: dict[str, Any] = {}
        if amp and device == "cpu":
            out[key] = {"skipped": "AMP is measured on CUDA (bfloat16 autocast on this CPU is slow, not a target)"}
            continue
        if run_options is not None:
            extra["run"] = run_options(device=device, amp=amp)
        elif device != "cpu" and "device" not in fields:
            out[key] = {"skipped": "supernets.train takes no device on this branch"}
            continue
        elif amp and "amp" not in fields:
            out[key] = {"skipped": "supernets.train takes no amp setting on this branch"}
            continue
        else:
            kw.update({"device": device} if device != "cpu" else {}, **({"amp": True} if amp else {}))
        with tempfile.TemporaryDirectory() as d:
            t = time.perf_counter()
            train_supernet(TrainConfig(**kw), Path(d) / "sn.pt", progress=False, log=None, **extra)
            sec = time.perf_counter() - t
        out[key] = {"images_per_s": round(s["train_steps_images"] / sec, 1), "seconds": round(sec, 2),
                    "note": "one epoch incl. its end-of-epoch evaluation; images of the training batches"
}
    return out


def int8(s: dict[str, Any]) -> dict[str, Any]:
    """fp32 vs INT8 top-1 and ORT CPU latency of a digits-fine-tuned subnet (search.export, supernets.quantize)."""
    from search.export import export_architecture

    cfg = {"ks": [3, 5, 7, 3] * 5, "e": [3, 4, 6, 3] * 5, "d": [2, 3, 4, 2, 2], "r": 32}
    # fine-tuned on the CPU whatever --device: ONNX export and ORT quantisation/latency are CPU paths
    spec = load_spec({"dataset": {"name": "digits"}, "supernet": {"random_init": True}, "resolution": [32, 32],
                      "evaluator": {"kind": "supernet", "device": "cpu"}, "seed": 0})
    with tempfile.TemporaryDirectory() as d:
        info = export_architecture(cfg, spec, "onnx-int8", Path(d) / "net.onnx",
                                   supernet=build_supernet(1.0, 10, seed=0), prepare=True, n_epochs=s["int8_epochs"])
    q = info["quantization"]
    return {k: q[k] for k in ("top1_fp32", "top1_int8", "agreement", "latency_ms_fp32", "latency_ms_int8",
                              "fp32_bytes", "int8_bytes", "latency")} | {"n_epochs": s["int8_epochs"], "arch": cfg}


def lut_vs_measured(device: str, s: dict[str, Any]) -> dict[str, Any]:
    """A LUT built here on the device's runtime vs end-to-end measurement of random subnets (two passes)."""
    runtime = "torch-cuda" if device.startswith("cuda") else "onnxruntime-cpu"
    r = s["lut_r"]
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        table = build_table(Path(d) / "lut.json", device=runtime, resolutions=[r], repeat=max(5, s["repeat"] // 4),
                            warmup=s["warmup"], calibrate=5, progress=False)
        t_lut = time.perf_counter() - t
    configs = get_search_space("mobilenetv3", lr=r, ur=r).sample(s["subnets"], np.random.default_rng(1))
    pred = table.predict(configs)
    t = time.perf_counter()
    m = measure_picks(configs, "cuda" if runtime == "torch-cuda" else "cpu", repeat=s["repeat"], warmup=s["warmup"],
                      predicted=[float(p) for p in pred])
    med = np.array([row["median_ms"] for row in m["rows"]])
    mins = np.array([row["min_ms"] for row in m["rows"]])
    return {"lut_runtime": runtime, "measured_device": m["device"], "runtime": m["runtime"], "resolution": r,
            "batch_size": 1, "subnets": len(configs), "repeat_per_pass": s["repeat"], "unit": "ms",
            "tau_repeatability": m["tau"], "tau_lut_vs_median": m["tau_lut"],
            "tau_lut_vs_min": kendall_tau(pred, mins),
            "mape_lut_pct": round(float(np.mean(np.abs(pred - med) / med) * 100), 2),
            "median_ms_range": [round(float(med.min()), 4), round(float(med.max()), 4)],
            "seconds_lut": round(t_lut, 1), "seconds_measure": round(time.perf_counter() - t, 1)}


def _concurrent_child(device: str, r: tuple[int, int], s: dict[str, Any], start: Any, q: Any) -> None:
    if device == "cpu":
        torch.set_num_threads(1)
    data, _ = cifar_sized(None)
    ev_opts = {"kind": "supernet", "device": device, "n_epochs": 1, "batch_size": s["batch"],
               "bn_calib_images": s["calib"], "train_images": s["train_images"]}
    spec = load_spec({"dataset": {"name": "digits", "vld_size": 300}, "supernet": {"random_init": True},
                      "resolution": list(r), "evaluator": ev_opts, "seed": 0})
    ev = SupernetEvaluator(spec, supernet=build_supernet(1.0, 10, seed=0), data=data)
    configs = get_search_space("mobilenetv3", lr=r[0], ur=r[1]).sample(s["candidates"] + 1, np.random.default_rng(0))
    ev.evaluate(configs[0])  # warm-up, before the common start
    start.wait()
    t = time.perf_counter()
    for c in configs[1:]:
        ev.evaluate(c)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    q.put(time.perf_counter() - t)


def evaluator_concurrency(device: str, s: dict[str, Any]) -> dict[str, Any]:
    """Candidates/hour of K evaluator processes sharing ``device`` (CIFAR-sized inputs), K = 1, 2(, 4)."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    out: dict[str, Any] = {}
    for k in (1, 2, 4) if device.startswith("cuda") else (1, 2):
        start, q = ctx.Barrier(k + 1), ctx.Queue()
        procs = [ctx.Process(target=_concurrent_child, args=(device, (32, 32), s, start, q)) for _ in range(k)]
        for p in procs:
            p.start()
        start.wait()
        walls = [q.get(timeout=1800) for _ in procs]
        for p in procs:
            p.join()
        out[f"k{k}"] = {"candidates_per_hour": round(3600 * k * s["candidates"] / max(walls), 1),
                        "processes": k, "candidates_each": s["candidates"]}
    base = out["k1"]["candidates_per_hour"]
    out["speedup_best"] = round(max(v["candidates_per_hour"] for v in out.values()) / base, 2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    ap.add_argument("--quick", action="store_true", help="short settings (CPU smoke run)")
    ap.add_argument("--cifar-root", default=None, help="a CIFAR-10 folder (default: synthesised from digits)")
    ap.add_argument("--only", default="evaluator,concurrency,train,int8,latency", help="comma-separated sections")
    ap.add_argument("--out", default=None, help="default bench/results/gpu_<device>.json")
    args = ap.parse_args()
    device = args.device
    if device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("bench/gpu.py: --device cuda but CUDA is not available here")
    if device == "cpu":
        torch.set_num_threads(1)
    s = QUICK if args.quick else FULL
    t0 = time.perf_counter()
    figures: dict[str, Any] = {}

    def section(name: str, fn: Any, *a: Any) -> None:
        t = time.perf_counter()
        try:
            figures[name] = fn(*a)
        except Exception as e:  # one failing figure must not lose the others
            figures[name] = {"error": f"{type(e).__name__}: {e}"}
        figures[name]["seconds_total"] = round(time.perf_counter() - t, 1)
        print(f"{name}: {json.dumps(figures[name])}", flush=True)

    only = set(args.only.split(","))
    if "evaluator" in only:
        section("evaluator_digits", evaluator_throughput, device, load_dataset("digits", vld_size=300), (32, 40), s)
        cifar, cifar_src = cifar_sized(args.cifar_root)
        section("evaluator_cifar_sized", evaluator_throughput, device, cifar, (32, 32), s)
        figures["evaluator_cifar_sized"]["data"] = cifar_src
    if "concurrency" in only:
        section("evaluator_concurrency", evaluator_concurrency, device, s)
    if "train" in only:
        section("supernet_train", train_throughput, device, s)
    if "int8" in only:
        section("int8", int8, s)
    if "latency" in only:
        section("latency_lut_vs_measured", lut_vs_measured, device, s)
    mach = {**machine_info(), "torch": torch.__version__}
    if device.startswith("cuda"):
        mach.update(gpu=torch.cuda.get_device_name(torch.device(device)), cuda=torch.version.cuda)
    doc = {"date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "device": device,
           "mode": "quick" if args.quick else "full", "settings": s, "machine": mach,
           "seconds": round(time.perf_counter() - t0, 1), "figures": figures}
    out = Path(args.out or ROOT / "bench" / "results" / f"gpu_{device.split(':')[0]}.json")
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {out} in {doc['seconds']} s")


if __name__ == "__main__":
    main()
