"""INT8 ONNX: ONNX Runtime static quantisation of an exported fp32 ONNX file, and what it is measured with.

- :func:`quantize_onnx_int8`: QDQ format, per-channel int8 weights, uint8 activations calibrated (MinMax) on a few
  batches of real images (the architecture's dataset's training split at its resolution);
- :func:`onnx_top1`: top-1 (%) of an ONNX classifier over labelled batches in ONNX Runtime (CPU);
- :func:`ort_latency_ms`: median ONNX Runtime CPU latency at batch 1 with a fixed number of threads.
"""

from __future__ import annotations

import logging
import os
import statistics
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from supernets.export import temp_beside


def _session(path: str | Path, threads: int | None = None) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.log_severity_level = 3  # not a warning per initializer the quantiser left unused
    if threads is not None:
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])


def quantize_onnx_int8(fp32_path: str | Path, out: str | Path, calibration: Iterable[np.ndarray]) -> dict[str, Any]:
    """Quantise ``fp32_path`` into ``out`` (written atomically) with ORT static quantisation (QDQ, per-channel
    weights) calibrated on ``calibration`` (float32 (B, 3, r, r) normalised batches). Returns what was done."""
    from onnxruntime.quantization import (  # heavy, only for INT8 exports
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    batches = [np.ascontiguousarray(b, dtype=np.float32) for b in calibration]
    n_images = int(sum(b.shape[0] for b in batches))
    if not n_images:
        raise ValueError("quantisation needs at least one calibration image")

    class _Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self._it: Iterator[np.ndarray] = iter(batches)

        def get_next(self) -> dict[str, np.ndarray] | None:
            b = next(self._it, None)
            return None if b is None else {"input": b}

        def rewind(self) -> None:
            self._it = iter(batches)

    path = Path(out).expanduser()
    tmp = temp_beside(path)
    # its calibration sessions warn about every unused initializer, and it logs a pre-processing advice (the
    # exported graph is already shape-inferred with BN folded): both quiet for the call, then restored
    root, level = logging.getLogger(), logging.getLogger().level
    ort.set_default_logger_severity(3)
    root.setLevel(logging.ERROR)
    try:
        quantize_static(str(fp32_path), str(tmp), _Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax)
        os.replace(tmp, path)
    finally:
        root.setLevel(level)
        ort.set_default_logger_severity(2)
        if tmp.exists():
            tmp.unlink()
    return {"method": "onnxruntime.quantization.quantize_static", "format": "QDQ", "per_channel": True,
            "weights": "int8", "activations": "uint8", "calibration": "minmax", "calibration_images": n_images,
            "onnxruntime": ort.__version__}


def onnx_top1(path: str | Path, batches: Iterable[tuple[np.ndarray, np.ndarray]]) -> tuple[float, np.ndarray]:
    """(top-1 %, predicted classes) of the ONNX classifier ``path`` over ``(images, labels)`` batches (ORT CPU)."""
    sess = _session(path)
    out = sess.get_outputs()[0].name
    preds, labels = [], []
    for x, y in batches:
        preds.append(np.asarray(sess.run([out], {"input": np.ascontiguousarray(x, dtype=np.float32)})[0]).argmax(1))
        labels.append(np.asarray(y))
    p, t = np.concatenate(preds), np.concatenate(labels)
    return float((p == t).mean() * 100.0) if len(t) else float("nan"), p


def ort_latency_ms(path: str | Path, r: int, *, runs: int = 30, warmup: int = 5, threads: int = 1) -> float:
    """Median wall-clock latency (ms) of one batch-1 ``r x r`` inference in ONNX Runtime CPU with ``threads``."""
    sess = _session(path, threads)
    out = sess.get_outputs()[0].name
    x = np.random.default_rng(0).standard_normal((1, 3, r, r)).astype(np.float32)
    for _ in range(warmup):
        sess.run([out], {"input": x})
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        sess.run([out], {"input": x})
        times.append((time.perf_counter() - t0) * 1e3)
    return float(statistics.median(times))
