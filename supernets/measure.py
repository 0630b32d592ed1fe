"""Measured latency of a few chosen subnets, with a repeatability figure (``msunas select/export --measure``).

A LUT predicts latency; this measures the real networks end to end on one runtime:

- ``cpu``: ONNX Runtime, CPU execution provider, one intra-op thread (as the LUTs are built);
- ``torch-cpu``: eager torch on the CPU, one thread;
- ``cuda`` / ``cuda:N``: torch on that GPU, each run timed with CUDA events around a CUDA-graph replay (eager
  when a graph cannot be captured), so host overhead and Python jitter stay out of the figure.

Every net is timed in two independent passes (``warmup`` untimed runs, then ``repeat`` timed runs each; the
second pass starts after the first has finished for all nets). Reported per net: ``min_ms`` and ``median_ms``
over both passes, and each pass's median. ``tau`` is Kendall's tau-b between the two passes' medians: how well a
second measurement reproduces the ranking (1: identical order; near 0: the ranking is noise). Batch-1 GPU
latencies of similar subnets differ by less than their run-to-run noise, which is why it matters.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from ofa.imagenet_classification.elastic_nn.networks import OFAMobileNetV3

from supernets.codec import EXPANDS, KERNELS, check_width, normalize_backbone
from supernets.errors import InputError
from supernets.latency import Runtime, machine_info

MEASURE_DEVICES = "cpu (ONNX Runtime CPU), torch-cpu, cuda or cuda:N (torch CUDA, CUDA events + graphs)"
MAX_REPEAT = 10_000


def parse_device(text: str, field: str = "measure") -> str:
    """``cpu`` -> ``onnxruntime-cpu``; ``torch-cpu``; ``cuda``/``cuda:N`` -> ``cuda:N`` (the GPU must exist here).
    Anything else is an ``InputError`` naming ``field``."""
    t = str(text).strip().lower()
    if t in ("cpu", "onnxruntime-cpu", "ort-cpu"):
        return "onnxruntime-cpu"
    if t == "torch-cpu":
        return "torch-cpu"
    m = re.fullmatch(r"(?:torch-)?cuda(?::(\d+))?", t)
    if m is None:
        raise InputError(field, f"unknown device {text!r}; expected {MEASURE_DEVICES}")
    idx = int(m.group(1) or 0)
    if not torch.cuda.is_available():
        raise InputError(field, f"{text!r}: CUDA is not available on this machine (no GPU or no CUDA torch)")
    if idx >= torch.cuda.device_count():
        raise InputError(field, f"{text!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return f"cuda:{idx}"


def kendall_tau(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Kendall's tau-b of two equally long sequences (ties handled); None below 2 items or when one is constant."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    n = len(x)
    if n < 2 or len(y) != n:
        return None
    i, j = np.triu_indices(n, 1)
    dx, dy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
    n0 = len(i)
    tx, ty = int(np.sum(dx == 0)), int(np.sum(dy == 0))
    denom = np.sqrt(float(n0 - tx) * float(n0 - ty))
    if denom == 0:
        return None
    return float(np.clip(np.sum(dx * dy) / denom, -1.0, 1.0))


def _cuda_runner(module: torch.nn.Module, shape: Sequence[int], device: str) -> Callable[[], float]:
    """One timed run (ms, CUDA events) of ``module`` on ``device``: a CUDA-graph replay, eager when capture fails."""
    dev = torch.device(device)
    mod = module.to(dev).eval()
    x = torch.rand(*shape, device=dev)
    run: Callable[[], Any]
    with torch.no_grad():
        side = torch.cuda.Stream(dev)
        side.wait_stream(torch.cuda.current_stream(dev))
        with torch.cuda.stream(side):
            for _ in range(3):
                mod(x)
        torch.cuda.current_stream(dev).wait_stream(side)
        try:
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                mod(x)
            run = graph.replay
        except Exception:  # capture unsupported for this net/driver: eager, still event-timed

            def run() -> None:
                with torch.no_grad():
                    mod(x)

    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    stream = torch.cuda.current_stream(dev)

    def timed() -> float:
        start.record(stream)
        run()
        end.record(stream)
        end.synchronize()
        return float(start.elapsed_time(end))

    return timed


def _host_runner(rt: Runtime, module: torch.nn.Module, shape: Sequence[int]) -> Callable[[], float]:
    import time

    run = rt.runner(module, shape)

    def timed() -> float:
        t = time.perf_counter()
        run()
        return (time.perf_counter() - t) * 1e3

    return timed


def runners(configs: Sequence[Mapping[str, Any]], device: str, *, width_mult: float = 1.0, n_classes: int = 1000,
            batch_size: int = 1) -> list[Callable[[], float]]:
    """A timed-run callable (returns ms) per config's subnet (``ofa`` MobileNetV3, random weights: latency does not
    depend on them) on ``device`` as :func:`parse_device` returns it."""
    net = OFAMobileNetV3(n_classes=int(n_classes), width_mult=check_width(width_mult), ks_list=list(KERNELS),
                         expand_ratio_list=list(EXPANDS), depth_list=[2, 3, 4])
    rt = None if device.startswith("cuda") else Runtime(device, threads=1, batch_size=batch_size)
    out = []
    for config in configs:
        c = normalize_backbone(config)
        net.set_active_subnet(ks=c["ks"], e=c["e"], d=c["d"])
        sub = net.get_active_subnet(preserve_weight=False)
        shape = (batch_size, 3, c["r"], c["r"])
        out.append(_cuda_runner(sub, shape, device) if rt is None else _host_runner(rt, sub, shape))
    return out


def measure_picks(
    configs: Sequence[Mapping[str, Any]],
    device: str,
    *,
    width_mult: float = 1.0,
    n_classes: int = 1000,
    batch_size: int = 1,
    warmup: int = 10,
    repeat: int = 50,
    predicted: Sequence[float | None] | None = None,
) -> dict[str, Any]:
    """Measure each config's subnet in two independent passes (module docstring). ``device`` is what a user typed
    (``cpu``, ``torch-cpu``, ``cuda[:N]``). ``predicted`` (the LUT's ms, one per config or None) is reported beside
    the measurement. Returns ``{"device", "runtime", "unit": "ms", "batch_size", "warmup", "repeat", "tau",
    "rows": [{"predicted_ms", "min_ms", "median_ms", "pass1_median_ms", "pass2_median_ms", "error_pct"}]}``."""
    for name, v, lo in (("repeat", repeat, 2), ("warmup", warmup, 0), ("batch_size", batch_size, 1)):
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= MAX_REPEAT:
            raise InputError(name, f"expected an integer in {lo}..{MAX_REPEAT}, got {v!r}")
    dev = parse_device(device)
    if predicted is not None and len(predicted) != len(configs):
        raise InputError("predicted", f"expected {len(configs)} predictions, got {len(predicted)}")
    bench = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = dev.startswith("cuda")  # each net's fixed shape: the fastest kernels
    try:
        runs = runners(configs, dev, width_mult=width_mult, n_classes=n_classes, batch_size=batch_size)
        return measure_runs(runs, dev, warmup=warmup, repeat=repeat, batch_size=batch_size, predicted=predicted)
    finally:
        torch.backends.cudnn.benchmark = bench


def onnx_file_runner(path: str, batch_size: int = 1) -> Callable[[], float]:
    """A timed run (ms) of an ONNX file in ONNX Runtime (CPU, one thread) on a fixed random input of its shape."""
    import time

    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = 1, 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    shape = [batch_size if not isinstance(d, int) or i == 0 else d for i, d in enumerate(inp.shape)]
    feed = {inp.name: np.random.default_rng(0).random(shape, dtype=np.float32)}

    def timed() -> float:
        t = time.perf_counter()
        sess.run(None, feed)
        return (time.perf_counter() - t) * 1e3

    return timed


def measure_runs(runs: Sequence[Callable[[], float]], device: str, *, warmup: int, repeat: int, batch_size: int = 1,
                 predicted: Sequence[float | None] | None = None) -> dict[str, Any]:
    """Two independent passes over ``runs`` (timed-run callables on ``device``, as :func:`parse_device` returns
    it): the report of :func:`measure_picks`."""
    dev = device
    passes: list[list[list[float]]] = [[], []]
    for k in range(2):
        for run in runs:
            for _ in range(warmup):
                run()
            passes[k].append([run() for _ in range(repeat)])
    rows: list[dict[str, Any]] = []
    for i in range(len(runs)):
        both = passes[0][i] + passes[1][i]
        p = None if predicted is None or predicted[i] is None else float(predicted[i])  # type: ignore[arg-type]
        med = statistics.median(both)
        m1, m2 = statistics.median(passes[0][i]), statistics.median(passes[1][i])
        rows.append({
            "predicted_ms": p,
            "min_ms": min(both),
            "median_ms": med,
            "pass1_median_ms": m1,
            "pass2_median_ms": m2,
            "pass_diff_pct": (m2 - m1) / m1 * 100 if m1 > 0 else None,
            "error_pct": (med - p) / p * 100 if p else None,
        })
    runtime: dict[str, Any] = {"torch": torch.__version__}
    if dev == "onnxruntime-cpu":
        import onnxruntime as ort

        runtime.update(onnxruntime=ort.__version__, threads=1, cpu=machine_info()["cpu"])
    elif dev == "torch-cpu":
        runtime.update(threads=1, cpu=machine_info()["cpu"])
    else:
        runtime.update(gpu=torch.cuda.get_device_name(torch.device(dev)), cuda=torch.version.cuda,
                       timing="CUDA events around a CUDA-graph replay")
    return {
        "device": dev,
        "runtime": runtime,
        "unit": "ms",
        "batch_size": batch_size,
        "warmup": warmup,
        "repeat": repeat,
        "passes": 2,
        "tau": kendall_tau([r["pass1_median_ms"] for r in rows], [r["pass2_median_ms"] for r in rows]),
        "tau_lut": kendall_tau([r["predicted_ms"] for r in rows], [r["median_ms"] for r in rows])
        if rows and all(r["predicted_ms"] is not None for r in rows) else None,
        "rows": rows,
    }


__all__ = ["MEASURE_DEVICES", "kendall_tau", "measure_picks", "measure_runs", "onnx_file_runner", "parse_device",
           "runners"]
