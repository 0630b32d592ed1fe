"""Benchmark: average MACs an early-exit network saves over its single-exit backbone at equal accuracy.

On ``digits`` (scikit-learn's 1797 real 8x8 handwritten digits, upsampled to 32x32), for a few OFA MobileNetV3
backbones at r=32:

1. the single-exit backbone is trained (same recipe, same seed) and tested: top-1 ``A0``, MACs ``M0``;
2. the same backbone with exits after stages 1-4 is trained jointly (weighted exit losses), its thresholds
   are calibrated on the validation split to the fewest average MACs at validation top-1 >= the backbone's
   validation top-1 - 0.5 points (NACHOS-style calibration, ``min_top1``);
3. both are measured on a held-out test split the calibration never saw: the saving is ``1 - avg_macs / M0``
   and the accuracy gap is ``top1_ee - A0``.

Writes ``bench/results/early_exit.json`` (machine, date, settings, per-backbone figures). CPU, one thread.
"""

from __future__ import annotations

import datetime as dt
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
# this file is named like the package: drop bench/ from the path so `import early_exit` finds the package
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))

from early_exit import metrics as eem  # noqa: E402
from early_exit.network import (  # noqa: E402
    backbone_macs,
    build_early_exit_net,
    exit_macs,
    predict_exits,
    train_joint,
)

R = 32
EPOCHS = 10
BATCH = 50
LR = 0.1
TOLERANCE = 0.5  # percentage points
LOSS_WEIGHTS = [0.5, 0.5, 0.75, 0.75, 1.0]  # exits after stages 1-4, final
BACKBONES = {
    "small": {"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": R},
    "mixed": {
        "ks": [5, 3, 3, 3, 7, 5, 3, 3, 3, 5, 7, 3, 5, 5, 3, 3, 7, 3, 3, 3],
        "e": [4, 3, 3, 3, 6, 4, 3, 3, 3, 4, 6, 3, 4, 4, 3, 3, 6, 3, 3, 3],
        "d": [2, 2, 3, 2, 2],
        "r": R,
    },
    "medium": {"ks": [5] * 20, "e": [4] * 20, "d": [3] * 5, "r": R},
}


def digits_splits(seed: int = 0) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Train 1000 / validation 400 / test 397 images of scikit-learn's digits, shuffled with ``seed``."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1).repeat(1, 3, 1, 1) / 16.0
    x = (torch.nn.functional.interpolate(x, size=R, mode="bilinear", align_corners=False) - 0.3) / 0.4
    y = torch.tensor(d.target, dtype=torch.long)
    idx = torch.tensor(np.random.default_rng(seed).permutation(len(y)))
    x, y = x[idx], y[idx]
    return {"train": (x[:1000], y[:1000]), "valid": (x[1000:1400], y[1000:1400]), "test": (x[1400:], y[1400:])}


def batches(xy: tuple[torch.Tensor, torch.Tensor], bs: int, seed: int | None = None) -> list:
    """Mini-batches of a split (shuffled with ``seed`` when given)."""
    x, y = xy
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed)) if seed is not None else None
    if order is not None:
        x, y = x[order], y[order]
    return [(x[i : i + bs], y[i : i + bs]) for i in range(0, len(y), bs)]


def run_one(name: str, backbone: dict, data: dict) -> dict:
    """Train the single-exit and the early-exit network of one backbone and compare them on the test split."""
    train = batches(data["train"], BATCH, seed=1)
    out: dict = {"backbone": name, "config": backbone}
    # single exit
    torch.manual_seed(0)
    single = build_early_exit_net(backbone | {"b": [0, 0, 0, 0]}, n_classes=10)
    t0 = time.perf_counter()
    train_joint(single, train, epochs=EPOCHS, lr=LR)
    out["train_seconds_single"] = time.perf_counter() - t0
    m0 = backbone_macs(backbone, n_classes=10)
    acc = {}
    for split in ("valid", "test"):
        p, y = predict_exits(single, batches(data[split], 200))
        acc[split] = eem.evaluate_policy(p, y, [], [m0])["top1"]
    out.update({"macs_single": m0, "top1_single_valid": acc["valid"], "top1_single_test": acc["test"]})
    # early exits after stages 1-4, trained jointly
    config = backbone | {"b": [1, 1, 1, 1]}
    torch.manual_seed(0)
    ee = build_early_exit_net(config, n_classes=10)
    t0 = time.perf_counter()
    train_joint(ee, train, epochs=EPOCHS, lr=LR, loss_weights=LOSS_WEIGHTS)
    out["train_seconds_ee"] = time.perf_counter() - t0
    macs = exit_macs(config, n_classes=10)
    pv, yv = predict_exits(ee, batches(data["valid"], 200))
    cal = eem.calibrate_thresholds(pv, yv, macs, min_top1=acc["valid"] - TOLERANCE)
    pt, yt = predict_exits(ee, batches(data["test"], 200))
    test = eem.evaluate_policy(pt, yt, cal["thresholds"], macs)
    out.update(
        {
            "exit_macs": macs,
            "thresholds": cal["thresholds"],
            "calibration_feasible": cal["feasible"],
            "top1_ee_valid": cal["top1"],
            "avg_macs_valid": cal["avg_macs"],
            "top1_ee_test": test["top1"],
            "avg_macs_test": test["avg_macs"],
            "exit_util_test": test["exit_util"],
            "exit_acc_test": test["exit_acc"],
            "macs_saved_test": 1.0 - test["avg_macs"] / m0,
            "top1_gap_test": test["top1"] - acc["test"],
        }
    )
    return out


def main() -> None:
    """Run every backbone once and write ``bench/results/early_exit.json``."""
    torch.set_num_threads(1)
    data = digits_splits()
    rows = []
    for name, bb in BACKBONES.items():
        row = run_one(name, bb, data)
        rows.append(row)
        print(
            f"{name:6s} single {row['top1_single_test']:.2f}% {row['macs_single'] / 1e6:.2f}M | early-exit "
            f"{row['top1_ee_test']:.2f}% {row['avg_macs_test'] / 1e6:.2f}M avg"
            f" | saved {100 * row['macs_saved_test']:.1f}%"
            f" gap {row['top1_gap_test']:+.2f} pt | util {np.round(row['exit_util_test'], 3).tolist()}",
            flush=True,
        )
    result = {
        "benchmark": "early_exit",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "torch_threads": 1,
            "torch": torch.__version__,
        },
        "dataset": "digits (scikit-learn, 1797 images 8x8 -> 32x32; train 1000 / valid 400 / test 397)",
        "settings": {
            "r": R,
            "epochs": EPOCHS,
            "batch": BATCH,
            "lr": LR,
            "loss_weights": LOSS_WEIGHTS,
            "tolerance_pt": TOLERANCE,
            "calibration_grid": list(eem.DEFAULT_CALIBRATION_GRID),
            "init": "random (no pretrained supernet weights available here)",
        },
        "rows": rows,
        "summary": {
            "macs_saved_test_mean": float(np.mean([r["macs_saved_test"] for r in rows])),
            "top1_gap_test_mean": float(np.mean([r["top1_gap_test"] for r in rows])),
        },
    }
    path = ROOT / "bench" / "results" / "early_exit.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
