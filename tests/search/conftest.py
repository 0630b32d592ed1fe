"""Fixtures of the search tests: an oracle predictor file (the real one, or a seeded one of the same format)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


def small_spec(oracle: Path, **kw: Any) -> dict[str, Any]:
    """A fast oracle job spec (w1.2, r160..224, tiny budgets)."""
    engine = {"pop_size": 16, "n_gen": 4, "cv_folds": 3, **kw.pop("engine", {})}
    spec: dict[str, Any] = {
        "width_mult": 1.2,
        "resolution": [160, 224],
        "evaluator": {"kind": "oracle", "path": str(oracle)},
        "objectives": ["top1_err", "macs"],
        "predictor": "rbf",
        "n_doe": 12,
        "n_iter": 3,
        "iterations": 4,
        "seed": 3,
        "engine": engine,
    }
    spec.update(kw)
    return spec


LUT_RESOLUTION = 160  # the built table's one resolution (searches using it fix r to this)


@pytest.fixture(scope="session")
def ort_lut(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A latency table measured here by ``msunas lut build`` (ONNX Runtime CPU, w1.2, r 160, few repeats).

    Thread CPU time (``--clock cpu``, 1 thread) keeps it and later end-to-end checks stable on a loaded machine.
    """
    from service.cli import main

    out = tmp_path_factory.mktemp("lut") / "lut_ort_w1.2_r160.json"
    r = f"{LUT_RESOLUTION}:{LUT_RESOLUTION}"
    args = ["lut", "build", "--device", "onnxruntime-cpu", "--width", "1.2", "--resolutions", r, "--clock", "cpu"]
    main([*args, "--repeat", "3", "--warmup", "1", "--calibrate", "3", "--quiet", "--out", str(out)])
    return out
