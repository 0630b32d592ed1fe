"""Search methods at equal wall time on digits (``python bench/methods.py``).

Problem: digits (scikit-learn 8x8, upscaled to r 32), the mobilenetv3 space at w1.0 and r 32, the built-in digits
supernet (``--supernet builtin``, the default: train it first with ``msunas supernet train --builtin digits``;
``--supernet random``: a randomly initialised one, where only the evaluator's fine-tuning on ``--train-images``
images gives a candidate its accuracy), a latency table measured here (ONNX Runtime CPU, one thread, thread CPU
time, r 32), three latency limits at 20/40/60 % of the way from the lightest to the heaviest architecture,
``constraint_mode: hard``.

Methods: every engine kind in ``search.engine.ENGINE_KINDS`` that can run this job: ``gradient`` (hardcore and
tfnas, ``--steps`` steps, target = the limit) runs first and sets the wall budget of the limit; ``msunas`` and the
three ``solver`` methods (milp, bcfw, evo on the bilinear predictor fitted on the initial design; with
``--contributions TABLE`` also milp on BINAS's measured contributions) then run ask/tell iterations until that
wall time is spent. Reported per (method, limit):
the best feasible top-1, the evaluations, the wall/CPU seconds (the search cost) and, for each returned feasible
architecture (the front's most accurate one), its latency measured end to end (ONNX Runtime CPU on the exported
network, the table's runtime and clock): the share of runs whose result meets the limit when measured.
Writes ``bench/results/methods.json`` (with machine and date).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from search.engine import ENGINE_KINDS, make_engine  # noqa: E402
from search.evaluator import get_evaluator  # noqa: E402
from supernets.latency import LatencyTable, build_table, machine_info, measure_configs  # noqa: E402
from supernets.train import builtin_digits_ready  # noqa: E402

R = 32


def _spec(lut: Path, limit: float, engine: dict[str, Any], a: argparse.Namespace) -> dict[str, Any]:
    predictor: Any = "rbf"
    if engine["kind"] == "solver":
        predictor = "bilinear" if not engine.pop("contributions", False) else {
            "name": "bilinear", "fit": "contributions", "table": str(a.contributions)}
    return {
        "dataset": {"name": "digits", "vld_size": 300}, "resolution": [R, R],
        "supernet": {"random_init": True} if a.supernet == "random" else {},
        "evaluator": {"kind": "supernet", "n_epochs": a.n_epochs, "batch_size": 32, "bn_calib_images": 128,
                      "train_images": a.train_images, "lr": 0.05},
        "objectives": ["top1_err", "latency"], "latency_table": str(lut), "constraints": {"latency_ms": limit},
        "constraint_mode": "hard", "seed": a.seed, "n_doe": a.n_doe, "n_iter": 2, "iterations": 1000,
        "predictor": predictor, "engine": engine,
    }


def _run(spec: dict[str, Any], wall: float | None) -> dict[str, Any]:
    t0, c0 = time.perf_counter(), time.process_time()
    eng = make_engine(spec)
    ev = get_evaluator(eng.spec)
    n = 0
    while eng.has_next() and (wall is None or time.perf_counter() - t0 < wall):
        cands = eng.ask()
        eng.tell([ev.evaluate(c) for c in cands])
        n += len(cands)
    front = eng.front()
    best = max(front, key=lambda r: r["metrics"]["top1"]) if front else None
    return {"evaluations": n, "wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0,
            "best_top1": best["metrics"]["top1"] if best else None, "best_config": best["config"] if best else None,
            "n_feasible": len(front)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--train-images", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-epochs", type=int, default=1, help="the evaluator's fine-tuning epochs per candidate")
    ap.add_argument("--n-doe", type=int, default=6)
    ap.add_argument("--supernet", choices=("builtin", "random"), default="builtin")
    ap.add_argument("--contributions", type=Path, default=None, help="a `msunas predictor contributions` table of "
                    "the same supernet: adds solver-milp on it")
    ap.add_argument("--only", default=None, help="comma-separated method names to run (default: all)")
    ap.add_argument("--lut", type=Path, default=None, help="reuse this r32/w1.0/10-class table")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "methods.json")
    a = ap.parse_args()
    if a.supernet == "builtin" and not builtin_digits_ready():
        sys.exit("bench/methods.py: the built-in digits supernet is not trained here; run `msunas supernet train "
                 "--builtin digits` first (about 4 min) or pass --supernet random")
    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp())
    lut = a.lut or tmp / "lut32.json"
    if a.lut is None:
        build_table(lut, device="onnxruntime-cpu", width_mult=1.0, resolutions=[R], n_classes=10, clock="cpu",
                    repeat=5, warmup=2, calibrate=0, progress=False)
    table = LatencyTable.load(lut)
    lo, hi = table.predict([{"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": R},
                            {"ks": [7] * 20, "e": [6] * 20, "d": [4] * 5, "r": R}])
    methods = [(f"gradient-{m}", {"kind": "gradient", "method": m, "steps": a.steps, "batch_size": 32, "lr": 0.2})
               for m in ("hardcore", "tfnas")]
    methods += [("msunas", {"kind": "msunas"})]
    if "solver" in ENGINE_KINDS:
        methods += [(f"solver-{m}", {"kind": "solver", "method": m, "n_picks": 3}) for m in ("milp", "bcfw", "evo")]
        if a.contributions is not None:
            methods += [("solver-milp-contributions", {"kind": "solver", "method": "milp", "n_picks": 3,
                                                       "contributions": True})]
    if a.only:
        keep = set(a.only.split(","))
        methods = [m for m in methods if m[0] in keep or m[0].startswith("gradient")]
    runs = []
    for frac in (0.2, 0.4, 0.6):
        limit = float(lo + frac * (hi - lo))
        wall: float | None = None
        for name, eng in methods:
            try:
                res = _run(_spec(lut, limit, dict(eng), a), None if wall is None else wall)
            except Exception as e:  # noqa: BLE001 - a method that cannot run this job is reported, not fatal
                runs.append({"method": name, "limit_ms": limit, "error": f"{type(e).__name__}: {e}"})
                continue
            if name.startswith("gradient") and wall is None:
                wall = res["wall_s"]
            if res["best_config"] is not None:
                m = measure_configs([res["best_config"]], device="onnxruntime-cpu", n_classes=10, clock="cpu",
                                    repeat=20, warmup=5)
                res["measured_ms"] = float(m[0]) if not isinstance(m, dict) else float(m["ms"][0])
                res["predicted_ms"] = float(table.predict([res["best_config"]])[0])
                res["meets_limit_measured"] = res["measured_ms"] <= limit
            runs.append({"method": name, "limit_ms": limit, "limit_fraction": frac, **res})
            print(json.dumps(runs[-1]), flush=True)
    summary: dict[str, Any] = {}
    for name, _ in methods:
        mine = [r for r in runs if r["method"] == name and "error" not in r]
        summary[name] = {
            "share_meeting_limit_measured": (sum(bool(r.get("meets_limit_measured")) for r in mine) / len(mine))
            if mine else None,
            "mean_wall_s": sum(r["wall_s"] for r in mine) / len(mine) if mine else None,
        }
    a.out.write_text(json.dumps({"date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                                 "machine": {**machine_info(), "python": platform.python_version()},
                                 "settings": vars(a) | {"lut": str(lut), "out": str(a.out)},
                                 "runs": runs, "summary": summary}, indent=1, default=str))


if __name__ == "__main__":
    main()
