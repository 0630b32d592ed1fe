"""Benchmark: fp32 vs INT8 ONNX (``msunas export --format onnx-int8``) on digits: validation top-1, prediction
agreement, ORT CPU batch-1 latency (1 thread, median of 30) and file size.

The subnet comes from a random-init supernet (seed 0) and is fine-tuned ``--n-epochs`` on digits first (what
``--n-epochs`` of the export does), so its accuracy is a trained net's, not chance. Writes
``bench/results/int8.json``. Run: ``PYTHONPATH=. python bench/int8.py`` (about a minute per config on one core).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path

import onnxruntime as ort
import torch

ROOT = Path(__file__).resolve().parents[1]
# bench/search.py is named like the package: drop bench/ from the path so `import search` finds the package
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))

from search.export import export_architecture  # noqa: E402
from search.spec import load_spec  # noqa: E402
from supernets.latency import machine_info  # noqa: E402
from supernets.ofa_supernet import build_supernet  # noqa: E402

CONFIGS = {
    "mid_r32": {"ks": [3, 5, 7, 3] * 5, "e": [3, 4, 6, 3] * 5, "d": [2, 3, 4, 2, 2], "r": 32},
    "max_r48": {"ks": [7] * 20, "e": [6] * 20, "d": [4] * 5, "r": 48},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-epochs", type=int, default=15)
    ap.add_argument("--configs", default="mid_r32", help=f"comma-separated of {sorted(CONFIGS)}")
    ap.add_argument("--out", default="bench/results/int8.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    sn = build_supernet(1.0, 10, seed=0)
    rows = []
    for name in args.configs.split(","):
        cfg = CONFIGS[name]
        spec = load_spec({"dataset": {"name": "digits"}, "supernet": {"random_init": True},
                          "resolution": [cfg["r"], cfg["r"]], "evaluator": {"kind": "supernet"}, "seed": 0})
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as d:
            info = export_architecture(cfg, spec, "onnx-int8", Path(d) / "net.onnx", supernet=sn, prepare=True,
                                       n_epochs=args.n_epochs)
        rows.append({"config": name, "arch": cfg, "n_epochs": args.n_epochs, "seconds": time.perf_counter() - t0,
                     **info["quantization"]})
        print(json.dumps(rows[-1]), flush=True)
    doc = {"date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
           "machine": {**machine_info(), "onnxruntime": ort.__version__, "torch": torch.__version__},
           "results": rows}
    Path(args.out).write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
