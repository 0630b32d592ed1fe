"""``msunas demo``: a small real search end to end on the built-in digits dataset.

Steps: train (or reuse the cached) elastic digits supernet -> run a surrogate-assisted NSGA-II search whose
candidates are extracted from that supernet, BN-recalibrated, fine-tuned and validated -> print the Pareto front
and three trade-off architectures -> plot the front and the HV history -> export the chosen one to ONNX.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from search.export import export_architecture
from search.io import read_stats, records_from_stats, subnet_doc
from search.plot import plot_search
from search.runner import run_search
from search.select import SelectOptions, select_records, to_rows
from search.spec import load_spec
from supernets.errors import InputError
from supernets.train import builtin_digits_ready, train_digits_supernet

DEMO_FILES = ("demo_spec.json", "search", "front.png", "chosen.onnx", "chosen.subnet")

DEMO_SPEC: dict[str, Any] = {
    "search_space": "mobilenetv3",
    "width_mult": 1.0,
    "resolution": [32, 48],
    "dataset": {"name": "digits", "vld_size": 300},
    "evaluator": {
        "kind": "supernet", "n_epochs": 1, "train_images": 512, "batch_size": 64, "lr": 0.01, "bn_calib_images": 512
    },
    "objectives": ["top1_err", "macs"],
    "predictor": "gp",
    "n_doe": 12,
    "n_iter": 4,
    "iterations": 3,
    "seed": 0,
}


def run_demo(out: Path, *, iterations: int | None = None) -> dict[str, Any]:
    """Run the demo into ``out`` (refused when ``out`` holds anything but an earlier demo); returns the paths of
    what it wrote."""
    console = Console(stderr=True)
    t0 = time.perf_counter()
    if out.exists() and any(p.name not in DEMO_FILES for p in out.iterdir()):
        raise InputError("--out", f"{out} holds files that are not the demo's", hint="choose another folder")
    out.mkdir(parents=True, exist_ok=True)
    console.rule("[bold]1/4 supernet")
    if not builtin_digits_ready():
        console.print("training the built-in digits supernet once (about 3 minutes on 2 cores; cached for later)")
    trained = train_digits_supernet()
    how = f"trained in {trained['seconds']:.0f} s" if trained["trained"] else "cached"
    console.print(f"digits supernet: {trained['path']} ({how})")

    console.rule("[bold]2/4 search")
    spec = dict(DEMO_SPEC)
    if iterations is not None:
        spec["iterations"] = iterations
    job = load_spec(spec)
    (out / "demo_spec.json").write_text(json.dumps(spec, indent=1))
    console.print(
        f"{spec['n_doe']} initial + {spec['iterations']} x {spec['n_iter']} candidates, each extracted from the "
        f"supernet, BN-recalibrated, fine-tuned {spec['evaluator']['n_epochs']} epoch and validated on digits"
    )
    search_dir = out / "search"
    result = run_search(job, search_dir, overwrite=True)

    console.rule("[bold]3/4 front and selection")
    records = records_from_stats(read_stats(search_dir))
    front = sorted(result.front, key=lambda r: r["objectives"][1])
    table = Table(title=f"Pareto front ({len(front)} of {len(result.archive)} evaluated)")
    for col in ("top1 %", "MACs (M)", "params (M)", "r", "depths"):
        table.add_column(col, justify="right")
    for r in front:
        m = r["metrics"]
        table.add_row(
            f"{m['top1']:.2f}", f"{m['macs'] / 1e6:.2f}", f"{m['params'] / 1e6:.3f}", str(r["config"]["r"]),
            str(r["config"]["d"]),
        )
    console.print(table)
    chosen = select_records(records, job, SelectOptions(n=3, prefer="trade-off"))
    sel = Table(title="selected trade-off architectures (msunas select --prefer trade-off)")
    for col in ("rank", "top1 %", "MACs (M)", "params (M)", "config"):
        sel.add_column(col)
    for row in to_rows(chosen):
        sel.add_row(
            str(row["rank"]), f"{row['top1_pct']:.2f}", f"{row['macs_M']:.2f}", f"{row['params_M']:.3f}",
            row["config"],
        )
    console.print(sel)
    png = plot_search(
        records, out / "front.png", objectives=job.objectives, history=result.history, selected=chosen,
        title="msunas demo: digits",
    )

    console.rule("[bold]4/4 export")
    pick = chosen[1] if len(chosen) > 1 else chosen[0]
    onnx_path = out / "chosen.onnx"
    info = export_architecture(pick["config"], job, "onnx", onnx_path, metrics=pick["metrics"])
    (out / "chosen.subnet").write_text(json.dumps(subnet_doc(pick["config"], info["artefact"])))
    extra = {k: v for k, v in info.items() if k in ("format", "input_shape", "max_abs_diff")}
    console.print(f"exported {pick['config']} -> {onnx_path} ({json.dumps(extra)})")
    paths = {
        "search": str(search_dir),
        "front_png": str(png),
        "onnx": str(onnx_path),
        "subnet": str(out / "chosen.subnet"),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    console.rule("[bold]done")
    for k, v in paths.items():
        console.print(f"{k:>10}: {v}")
    return paths
