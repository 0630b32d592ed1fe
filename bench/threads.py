"""Benchmark: does `msunas search` pick sane thread counts itself? (``python bench/threads.py``)

The same oracle search (the default predictor ``as``, 3 iterations) is run as a user would run it, as a
subprocess of the real CLI, with the environment left as it is ("unset": no OMP/MKL/OpenBLAS variables, msunas
chooses) and with the environment pinned (OMP_NUM_THREADS=MKL_NUM_THREADS=OPENBLAS_NUM_THREADS=1), interleaved,
``--repeats`` times each. Then the same pair with one busy process per core beside it (a loaded machine, where
oversubscription hurts most). The figure is the ratio of the medians, unset / pinned; the goal is <= 1.5.
Results: bench/results/threads.json (machine and date included).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing as mp
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MSUNAS_SHARED_DATA", ROOT.parent / "shared" / "data"))
ORACLE = SHARED / "ofa_imagenet_predictor" / "acc_predictor.npz"
PINNED = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
MSUNAS = [sys.executable, "-m", "service.cli"]


def _spec(path: Path) -> None:
    spec = {"width_mult": 1.2, "resolution": [160, 224], "evaluator": {"kind": "oracle", "path": str(ORACLE)},
            "objectives": ["top1_err", "macs"], "n_doe": 50, "n_iter": 8, "iterations": 3, "seed": 0}
    path.write_text(yaml.safe_dump(spec))


def _env(pinned: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in PINNED and k != "MSUNAS_WORKER_THREADS"}
    env["PYTHONPATH"] = str(ROOT)
    return {**env, **PINNED} if pinned else env


def _run(spec: Path, pinned: bool) -> float:
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        subprocess.run([*MSUNAS, "search", str(spec), "--out", f"{out}/run", "--quiet"], env=_env(pinned),
                       check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
        return time.perf_counter() - t0


def _burn(stop: Any) -> None:
    x = 0
    while not stop.is_set():
        x = (x * 1103515245 + 12345) % 2**31


def _pair(spec: Path, repeats: int, load: int) -> dict[str, Any]:
    stop = mp.Event()
    burners = [mp.Process(target=_burn, args=(stop,), daemon=True) for _ in range(load)]
    for p in burners:
        p.start()
    try:
        times: dict[str, list[float]] = {"unset": [], "pinned": []}
        for _ in range(repeats):
            times["unset"].append(_run(spec, pinned=False))
            times["pinned"].append(_run(spec, pinned=True))
    finally:
        stop.set()
        for p in burners:
            p.join()
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"busy_processes": load, "seconds": times, "median_s": med, "ratio": med["unset"] / med["pinned"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "threads.json"))
    a = ap.parse_args()
    if not ORACLE.is_file():
        sys.exit(f"bench/threads.py: the oracle {ORACLE} is absent (set MSUNAS_SHARED_DATA)")
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "spec.yaml"
        _spec(spec)
        cases = [_pair(spec, a.repeats, 0), _pair(spec, a.repeats, os.cpu_count() or 1)]
    res = {"benchmark": "threads: msunas search with the environment unset vs pinned to 1 thread",
           "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
           "date": dt.date.today().isoformat(), "goal": "ratio unset/pinned <= 1.5", "cases": cases,
           "ok": all(c["ratio"] <= 1.5 for c in cases)}
    Path(a.out).write_text(json.dumps(res, indent=1))
    for c in cases:
        med = c["median_s"]
        print(f"busy={c['busy_processes']}: unset {med['unset']:.1f} s, pinned {med['pinned']:.1f} s,",
              f"ratio {c['ratio']:.2f}")
    print("ok" if res["ok"] else "ratio above 1.5")


if __name__ == "__main__":
    main()
