"""Architecture commands: ``msunas cost``, ``msunas select`` (a run folder or a job) and ``msunas export``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import torch
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from search.export import export_architecture
from search.io import add_exact_costs, read_stats, read_subnet, records_from_stats, subnet_doc
from search.provenance import describe, supernet_ref
from search.select import TABLE_COLUMNS, SelectOptions, select_records, to_rows
from search.spec import JobSpec, load_spec
from service.cli.app import EXIT_INFEASIBLE, app
from service.cli.common import Client, CsvOpt, JsonOpt, TokenOpt, UrlOpt, echo_json, is_job_id, print_table, stderr
from service.cli.common import write_csv as write_rows_csv
from service.cli.config_args import load_config_arg, parse_resolution_range
from supernets import codec, get_search_space
from supernets.cost import config_cost
from supernets.errors import InputError
from supernets.export import save_atomic, set_onnx_metadata
from supernets.latency import LatencyTable, machine_info, runtime_of, verify_latency
from supernets.measure import measure_picks, measure_runs, onnx_file_runner, parse_device
from supernets.ofa_supernet import head_classes, load_supernet, net_width

KNOWN_FIELDS = {"ks", "e", "d", "r", "t", "b", "artefact"}  # t/b: early-exit genes, ignored (backbone cost)


# ------------------------------------------------------------------------------------------------------- cost
def cost_report(config: Any, *, width_mult: float, n_classes: int, resolution: str | None) -> dict[str, Any]:
    """The cost figures of one config as a JSON-able dict (validated; ``InputError`` naming the field)."""
    if not isinstance(config, dict):
        raise InputError("config", f"expected a JSON object with keys ks, e, d, r; got {type(config).__name__}")
    extra = set(config) - KNOWN_FIELDS
    if extra:
        raise InputError(sorted(extra)[0], "unknown config field (fields: ks, e, d, r)")
    width_mult = codec.check_width(width_mult)
    backbone = {k: config[k] for k in ("ks", "e", "d", "r") if k in config}
    if resolution is not None:
        lr, ur = parse_resolution_range(resolution)
        canon = get_search_space("mobilenetv3", lr=lr, ur=ur, width_mult=width_mult).validate(backbone)
    else:
        canon = codec.normalize_backbone(backbone)
    figures = config_cost(canon, width_mult=width_mult, n_classes=n_classes)
    return {
        "config": canon, "width_mult": width_mult, "n_classes": n_classes, **figures,
        "params_M": round(figures["params"] / 1e6, 4), "macs_M": round(figures["macs"] / 1e6, 4),
        "activations_M": round(figures["activations"] / 1e6, 4),
    }


@app.command(rich_help_panel="Architectures")
def cost(
    config: Annotated[str, typer.Option("--config", help="config JSON (ks, e, d, r) or a path to a JSON file")],
    n_classes: Annotated[int, typer.Option("--n-classes", min=2, max=100_000, help="classifier outputs")] = 1000,
    width: Annotated[float, typer.Option("--width", help="width multiplier: 1.0 or 1.2")] = 1.0,
    resolution: Annotated[str | None, typer.Option("--resolution", help="LR:UR: also check that r lies on the grid "
                                                   "LR..UR step 4")] = None,
) -> None:
    """Print params, MACs (exact and as ofa's counter reports them), activations and peak activation (JSON)."""
    echo_json(cost_report(load_config_arg(config), width_mult=width, n_classes=n_classes, resolution=resolution))


# ----------------------------------------------------------------------------------------------------- select
def _local_records(target: str, width: float, n_classes: int) -> tuple[list[dict[str, Any]], JobSpec | None, str]:
    """Records, spec (None for a CNAS archive) and a title of a run folder or stats file."""
    doc = read_stats(target)
    records = records_from_stats(doc)
    eng = doc.get("engine")
    if isinstance(eng, dict) and isinstance(eng.get("spec"), dict):
        spec = load_spec(eng["spec"])
        artefact_path = Path(doc["_path"]).parent / "artefact.json"
        artefact = json.loads(artefact_path.read_text()) if artefact_path.is_file() else None
        for r in records:
            r["artefact"] = artefact
        return records, spec, str(doc["_path"])
    add_exact_costs(records, width, n_classes)  # a CNAS archive keeps only its own second objective
    return records, None, str(doc["_path"])


def _save(chosen: list[dict[str, Any]], save: Path, overwrite: bool) -> None:
    if save.exists() and any(save.iterdir()) and not overwrite:
        raise InputError("--save", f"{save} is not empty", hint="choose another folder or pass --overwrite")
    save.mkdir(parents=True, exist_ok=True)
    for i, r in enumerate(chosen):
        art = r.get("artefact")
        (save / f"net_{i}.subnet").write_text(json.dumps(subnet_doc(r["config"], art) if art else r["config"]))
        stats = {k: r.get(k) for k in ("id", "metrics", "objectives", "feasible")}
        if art:
            stats["artefact"] = art
        (save / f"net_{i}.stats").write_text(json.dumps(stats, indent=1))


@app.command(rich_help_panel="Architectures")
def select(
    target: Annotated[str, typer.Argument(help="a job id (selects on the server), or a search folder / its "
                                          "iter_K.stats (ours or CNAS's)")],
    n: Annotated[int, typer.Option("-n", min=1, max=1000, help="number of architectures")] = 3,
    prefer: Annotated[str | None, typer.Option("--prefer", help="METRIC (lowest), trade-off, or a preference point "
                                               "like top1#80+macs#150")] = None,
    n_exits: Annotated[int | None, typer.Option("--n-exits", min=0, max=4, help="keep early-exit nets with K early "
                                                "exits (the final classifier not counted, as in CNAS)")] = None,
    near: Annotated[str | None, typer.Option("--target", help="METRIC=X, e.g. latency_ms=12.5 (TF-NAS): the nets "
                                               "closest to X from below, closest first (add --verify-latency to "
                                               "measure them)")] = None,
    as_json: JsonOpt = False,
    csv_path: CsvOpt = None,
    save: Annotated[Path | None, typer.Option("--save", help="write net_i.subnet/net_i.stats of the selection "
                                              "(each saying what it is)")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="let --save write into a non-empty folder")] = False,
    width: Annotated[float, typer.Option("--width", help="width of a CNAS archive (for its exact costs)")] = 1.0,
    n_classes: Annotated[int, typer.Option("--n-classes", min=2, help="classes of a CNAS archive")] = 10,
    verify: Annotated[bool, typer.Option("--verify-latency", help="measure the selection on the latency table's "
                                         "runtime, here; exit 1 above latency_ms")] = False,
    lut: Annotated[str | None, typer.Option("--lut", help="table for --verify-latency (default: the spec's)")] = None,
    repeat: Annotated[int | None, typer.Option("--repeat", min=1, max=10_000, help="--verify-latency timed "
                                               "runs")] = None,
    warmup: Annotated[int | None, typer.Option("--warmup", min=0, max=10_000, help="--verify-latency warm-up "
                                               "runs")] = None,
    measure: Annotated[str | None, typer.Option("--measure", help="measure the picks here on DEVICE: cpu (ONNX "
                                                "Runtime), torch-cpu, cuda[:N]; min/median ms of two passes (--repeat "
                                                "runs each, default 30), their Kendall tau")] = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Pick architectures (most accurate, lowest METRIC, trade-off, preference point) from a job or a run folder;
    never one that violates the job's constraints. Exit 3 when none qualifies."""
    try:
        options = SelectOptions(n=n, prefer=prefer, n_exits=n_exits, target=near)
    except ValidationError as e:  # pydantic: name the option
        first = e.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else ("target" if near is not None else "prefer")
        cause = (first.get("ctx") or {}).get("error")
        msg = cause.message if isinstance(cause, InputError) else str(first["msg"]).removeprefix("Value error, ")
        raise InputError(f"--{field.replace('_', '-')}", msg) from None
    if measure is not None:
        parse_device(measure, "--measure")  # a bad device fails before anything is selected
    if is_job_id(target):
        with Client(url, token) as c:
            job = c.json("GET", f"/jobs/{target}")
            spec: JobSpec | None = load_spec(job["spec"])
            table = _verify_table(spec, lut) if verify else None
            chosen = c.json("POST", f"/jobs/{target}/select", json=options.model_dump(exclude_none=True))["items"]
        title = f"job {target}"
    else:
        records, spec, title = _local_records(target, width, n_classes)
        table = _verify_table(spec, lut) if verify else None
        chosen = select_records(records, spec, options)
    rows = to_rows(chosen)
    if save is not None:
        _save(chosen, save, overwrite)
    report = _verify_selection(chosen, spec, table, repeat, warmup, quiet=as_json) if table and chosen else None
    measured = _measure_selection(chosen, rows, spec, measure, repeat, warmup, n_classes) if measure and chosen \
        else None
    if as_json:
        doc: dict[str, Any] = {"items": [dict(row, config=r["config"], artefact=r.get("artefact"))
                                         for row, r in zip(rows, chosen, strict=True)]}
        if report is not None:
            doc["verify_latency"] = report
        if measured is not None:
            doc["measured"] = measured
        echo_json(doc)
    elif csv_path != "-":
        print_table(rows, [c for c in (*TABLE_COLUMNS, *MEASURED_COLUMNS) if any(c in row for row in rows)],
                    title=f"{len(chosen)} selected from {title}")
        if measured is not None:
            stderr.print(f"measured on {measured['device']} ({_runtime_words(measured)}), batch "
                         f"{measured['batch_size']}, 2 passes x {measured['repeat']} runs: repeatability tau "
                         f"{_fmt_tau(measured['tau'])}, LUT-vs-measured tau {_fmt_tau(measured['tau_lut'])}")
    if csv_path is not None:
        write_rows_csv(rows, csv_path)
    if not chosen:
        stderr.print("msunas: no architecture qualifies (failed, infeasible or filtered out)")
        raise typer.Exit(EXIT_INFEASIBLE)
    if report is not None and report["n_exceed"]:
        stderr.print(f"msunas: {report['n_exceed']} of {len(chosen)} selected architectures measure above latency_ms "
                     f"{report['bound_ms']:g} ms")
        raise typer.Exit(1)


def _verify_table(spec: JobSpec | None, lut: str | None) -> LatencyTable:
    """The table ``--verify-latency`` measures against, checked before anything is selected or written."""
    path = lut or (spec.latency_table if spec is not None else None)
    if not path:
        raise InputError("--lut", "--verify-latency needs a latency table (the spec has no latency_table)")
    if not Path(path).exists():
        raise InputError("--lut", f"the latency table {path} is not readable on this machine",
                         hint="pass a local copy with --lut")
    width = spec.width_mult if spec is not None else 1.0
    table = LatencyTable.load(path, width_mult=width)
    runtime_of(table)  # a foreign (YAML) table cannot be re-measured here: say so now
    if table.width_mult != width:
        raise InputError("--lut", f"{path} is a width {table.width_mult} table, the run has width {width}")
    return table


def _verify_selection(chosen: list[dict[str, Any]], spec: JobSpec | None, table: LatencyTable, repeat: int | None,
                      warmup: int | None, *, quiet: bool) -> dict[str, Any]:
    """``--verify-latency``: measure the selection on the table's runtime here, against ``latency_ms``; the
    measured-vs-predicted table is printed (unless ``quiet``: ``--json`` carries the report instead)."""
    rt = {**runtime_of(table), **{k: v for k, v in (("repeat", repeat), ("warmup", warmup)) if v is not None}}
    bound = spec.constraints.get("latency_ms") if spec is not None else None
    here, built = machine_info()["cpu"], (table.meta.get("machine") or {}).get("cpu")
    if built and built != here:
        stderr.print(f"msunas: warning: the table was built on {built!r}, measuring on {here!r}")
    with Progress(console=stderr, transient=True) as bar:
        task = bar.add_task(f"measuring on {rt['device']}", total=len(chosen))
        rows = verify_latency(table, [r["config"] for r in chosen], bound_ms=bound, repeat=repeat, warmup=warmup,
                              progress=lambda i: bar.update(task, completed=i))
    if not quiet:
        out = Table(title=f"latency on {rt['device']} ({rt['clock']} clock, {rt['threads']} thread(s), batch "
                    f"{rt['batch_size']})")
        for c in ("rank", "predicted ms", "measured ms", "error %", "bound ms", ""):
            out.add_column(c)
        for i, row in enumerate(rows):
            err = "-" if row["error_pct"] is None else f"{row['error_pct']:+.1f}"
            verdict = {None: "", False: "ok", True: "EXCEEDS"}[row["exceeds"]]
            out.add_row(str(i + 1), f"{row['predicted_ms']:.3f}", f"{row['measured_ms']:.3f}", err,
                        "-" if bound is None else f"{bound:g}", verdict)
        Console().print(out)
    return {"lut": table.source, **rt, "bound_ms": bound, "n_exceed": sum(bool(r["exceeds"]) for r in rows),
            "rows": rows}


MEASURED_COLUMNS = ("measured_min_ms", "measured_median_ms", "measured_device")


def _fmt_tau(t: float | None) -> str:
    return "-" if t is None else f"{t:.2f}"


def _runtime_words(m: dict[str, Any]) -> str:
    rt = m["runtime"]
    return str(rt.get("gpu") or f"{rt.get('cpu', '?')}, {rt.get('threads', 1)} thread")


def _measure_selection(chosen: list[dict[str, Any]], rows: list[dict[str, Any]], spec: JobSpec | None, device: str,
                       repeat: int | None, warmup: int | None, n_classes: int) -> dict[str, Any]:
    """``--measure``: time the picks on DEVICE here (two passes) beside the LUT's ``latency_ms``; the rows get
    ``latency_ms_measured``-style columns (``measured_min_ms``, ``measured_median_ms``, ``measured_device``)."""
    width = spec.width_mult if spec is not None else 1.0
    ds = getattr(spec, "dataset", None)
    nc = getattr(ds, "n_classes", None) or n_classes  # the head barely moves latency; the dataset's when known
    predicted = [row.get("latency_ms") for row in rows]
    with Progress(console=stderr, transient=True) as bar:
        bar.add_task(f"measuring {len(chosen)} on {device}", total=None)
        m = measure_picks([r["config"] for r in chosen], device, width_mult=width, n_classes=nc,
                          repeat=repeat or 30, warmup=5 if warmup is None else warmup, predicted=predicted)
    for row, mr in zip(rows, m["rows"], strict=True):
        row["measured_min_ms"], row["measured_median_ms"] = round(mr["min_ms"], 4), round(mr["median_ms"], 4)
        row["measured_device"] = m["device"]
    return m


def _measure_export(info: dict[str, Any], fmt: str, device: str, repeat: int, spec: JobSpec, raw: dict[str, Any]
                    ) -> dict[str, Any]:
    """``export --measure``: the exported ONNX file itself in ORT (``cpu``), else the architecture's backbone
    subnet on torch; the report goes into the file (ONNX ``msunas.latency_measured``, torch ``latency_measured``)."""
    dev = parse_device(device, "--measure")
    path = Path(info["path"])
    art = info["artefact"]
    cfg: dict[str, Any] = {k: raw[k] for k in ("ks", "e", "d", "r") if k in raw}
    if dev == "onnxruntime-cpu" and fmt != "torch":
        m = measure_runs([onnx_file_runner(str(path))], dev, warmup=10, repeat=repeat)
        m["what"] = "the exported ONNX file"
        m["runtime"] = {"onnxruntime": __import__("onnxruntime").__version__, "threads": 1,
                        "cpu": machine_info()["cpu"]}
    else:
        m = measure_picks([cfg], device, width_mult=float(spec.width_mult), n_classes=int(art["n_classes"]),
                          warmup=10, repeat=repeat)
        m["what"] = "its backbone subnet in torch"
    if fmt == "torch":
        payload = torch.load(path, map_location="cpu", weights_only=True)
        payload["latency_measured"] = json.dumps(m)
        save_atomic(payload, path)
    else:
        set_onnx_metadata(path, {"msunas.latency_measured": json.dumps(m)})
    info["latency_measured"] = m
    return m


# ----------------------------------------------------------------------------------------------------- export
def _spec_of_artefact(artefact: dict[str, Any], supernet: str | None) -> dict[str, Any]:
    """The job spec fields an artefact pins down (the supernet it was found with, unless ``supernet`` is given)."""
    ds = artefact.get("dataset") or {}
    ref = artefact.get("supernet") or {}
    sn: dict[str, Any] = {}
    if supernet is not None:
        sn = {"path": supernet}
    elif ref.get("kind") == "file":
        sn = {"path": ref["path"]}
    elif ref.get("kind") == "random":
        sn = {"random_init": True}
    elif ref.get("kind") == "none":
        raise InputError("--supernet", "this architecture was found without supernet weights (an oracle or proxy "
                         "search)", hint="pass --supernet PATH of the supernet to take its weights from")
    missing = [k for k in ("search_space", "width_mult", "n_classes", "resolution") if artefact.get(k) is None]
    if missing or not ds.get("name"):
        raise InputError("--config", f"its artefact lacks {(missing or ['dataset'])[0]}",
                         hint="pass --supernet and --dataset instead")
    r = int(artefact["resolution"])
    return {"search_space": artefact["search_space"], "width_mult": artefact["width_mult"], "resolution": [r, r],
            "dataset": {"name": ds["name"], "root": ds.get("root"), "n_classes": artefact["n_classes"]},
            "supernet": sn, "evaluator": {"kind": "supernet"}}


def _export_spec(raw: dict[str, Any], artefact: dict[str, Any] | None, supernet: str | None, dataset: str | None,
                 root: str | None, head_width: int | None, seed: int, exit_rule: str | None = None,
                 exit_head: str | None = None) -> JobSpec:
    """The job spec an export runs under: from the artefact the config carries, or from the options."""
    if artefact is not None:
        data = _spec_of_artefact(artefact, supernet)
        if dataset is not None:
            data["dataset"] = {"name": dataset, "root": root, "n_classes": artefact.get("n_classes")}
    else:
        if supernet is None:
            raise InputError("--supernet", "this config does not say which supernet it was found with",
                             hint="pass --supernet PATH (and --dataset NAME)")
        if dataset is None:
            raise InputError("--dataset", "this config does not say which dataset it was found on",
                             hint="pass --dataset NAME (and --root)")
        net = load_supernet(supernet)
        r = int(raw["r"][0] if isinstance(raw.get("r"), list) else raw.get("r", 224))
        data = {"search_space": "eemobilenetv3" if ("t" in raw or "b" in raw) else "mobilenetv3",
                "width_mult": net_width(net), "resolution": [r, r], "supernet": {"path": supernet},
                "dataset": {"name": dataset, "root": root, "n_classes": head_classes(net)},
                "evaluator": {"kind": "supernet"}}
    data["seed"] = seed
    if data["search_space"] == "eemobilenetv3":
        mode = "t" if "t" in raw else "b"
        ee: dict[str, Any] = {k: v for k, v in ((artefact or {}).get("early_exit") or {}).items()
                              if k in ("exit_rule", "head", "head_width")}
        ee["exit_mode"] = mode
        if mode == "t":  # the config's own t values (a search may use another grid than the default)
            ee["t_values"] = sorted({float(v) for v in raw["t"]} | {1.0})
        for key, value in (("head_width", head_width), ("exit_rule", exit_rule), ("head", exit_head)):
            if value is not None:
                ee[key] = value
        data["early_exit"] = ee
    else:
        for opt, value in (("--head-width", head_width), ("--exit-rule", exit_rule), ("--exit-head", exit_head)):
            if value is not None:
                raise InputError(opt, "only early-exit architectures have exit heads and rules")
    return load_spec(data)


def _parse_thresholds(text: str) -> list[float]:
    try:
        vals = [float(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise InputError("--thresholds", f"{text!r} is not a comma-separated list of numbers") from None
    if not vals:
        raise InputError("--thresholds", "expected at least one threshold")
    return vals


@app.command(rich_help_panel="Architectures")
def export(
    out: Annotated[Path, typer.Option("--out", help="output file")],
    config: Annotated[str | None, typer.Option("--config", help="architecture: a net_i.subnet (it says which "
                                               "supernet it was found with) or inline JSON")] = None,
    job: Annotated[int | None, typer.Option("--job", min=1, help="export architecture --arch of this job")] = None,
    arch: Annotated[int | None, typer.Option("--arch", min=1, help="architecture id (with --job)")] = None,
    fmt: Annotated[str, typer.Option("--format", help="onnx|onnx-int8|torch (onnx-int8: "
                                            "ORT static quantisation, accuracy and latency measured)")] = "onnx",
    supernet: Annotated[str | None, typer.Option("--supernet", help="take the weights from this supernet (default: "
                                                 "the one the architecture was found with; checked to fit)")] = None,
    dataset: Annotated[str | None, typer.Option("--dataset", help="the dataset (default: the architecture's)")] = None,
    root: Annotated[str | None, typer.Option("--root", help="dataset folder")] = None,
    prepare: Annotated[bool, typer.Option("--prepare", help="recalibrate BN (and fine-tune --n-epochs) on the "
                                          "dataset and measure validation top-1 before export")] = False,
    n_epochs: Annotated[int, typer.Option("--n-epochs", min=0, max=10_000, help="fine-tuning epochs before export "
                                          "(implies --prepare)")] = 0,
    seed: Annotated[int, typer.Option("--seed", min=0)] = 0,
    head_width: Annotated[int | None, typer.Option("--head-width", min=1, max=4096, help="early exits: channels of "
                                                   "the exit heads")] = None,
    thresholds: Annotated[str | None, typer.Option("--thresholds", help="early exits: thresholds in the exit rule's "
                                                   "units, one per early exit (e.g. 0.9,0.8)")] = None,
    exit_rule: Annotated[str | None, typer.Option("--exit-rule", help="early exits: confidence|margin (EDANAS) "
                                                  "(default: the architecture's)")] = None,
    exit_head: Annotated[str | None, typer.Option("--exit-head", help="early exits: ours|edanas (EDANAS's heads) "
                                                  "(default: the architecture's)")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="replace an existing --out file")] = False,
    measure: Annotated[str | None, typer.Option("--measure", help="measure the exported net's latency here on "
                                                "DEVICE: cpu (the ONNX file in ONNX Runtime), torch-cpu, cuda[:N]; "
                                                "recorded in its metadata")] = None,
    repeat: Annotated[int, typer.Option("--repeat", min=2, max=10_000, help="--measure timed runs per pass "
                                        "(two passes)")] = 50,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Export one architecture as ONNX (checked in ONNX Runtime; metadata say what it is) or a PyTorch checkpoint,
    with the weights of the supernet it was found with. Early-exit architectures carry every exit's logits and
    their exit policy."""
    if out.exists() and not overwrite:
        raise InputError("--out", f"{out} exists", hint="pass --overwrite to replace it")
    if (config is None) == (job is None):
        raise InputError("--config", "give either --config or --job with --arch")
    if measure is not None:
        parse_device(measure, "--measure")
    metrics: dict[str, Any] = {}
    if job is not None:
        if arch is None:
            raise InputError("--arch", "--job needs --arch (an architecture id of its archive)")
        with Client(url, token) as c:
            rec = c.json("GET", f"/jobs/{job}/archs/{arch}")
        if rec["status"] != "ok":
            raise InputError("--arch", f"architecture {arch} failed its evaluation; nothing to export")
        raw, artefact, metrics = dict(rec["config"]), rec.get("artefact"), dict(rec.get("metrics") or {})
    else:
        assert config is not None
        p = Path(config).expanduser()
        if config.lstrip().startswith("{"):
            raw, artefact = load_config_arg(config), None
            if isinstance(raw, dict):
                artefact = raw.pop("artefact", None)
        else:
            raw, artefact = read_subnet(p)
            stats = p.with_suffix(".stats")
            if p.suffix == ".subnet" and stats.is_file():
                doc = json.loads(stats.read_text())
                metrics = dict(doc.get("metrics") or {}) if isinstance(doc, dict) else {}
    if not isinstance(raw, dict):
        raise InputError("--config", "expected a JSON object with ks, e, d, r")
    spec = _export_spec(raw, artefact, supernet, dataset, root, head_width, seed, exit_rule, exit_head)
    info = export_architecture(raw, spec, fmt, out, metrics=metrics, prepare=prepare or n_epochs > 0,
                               n_epochs=n_epochs, thresholds=_parse_thresholds(thresholds) if thresholds else None)
    parts = [f"supernet {describe(spec, supernet_ref(spec))['supernet'].get('path', 'random-init')}"]
    if "thresholds" in info:
        parts.append("thresholds " + ", ".join(f"{t:.3g}" for t in info["thresholds"]))
    if "max_abs_diff" in info:
        parts.append(f"onnxruntime parity {info['max_abs_diff']:.2e}")
    m = info.get("metrics")
    if m:
        acc = f"validation top-1 {m['top1']:.2f}%"
        parts.append(acc + (f" at avg MACs {m['avg_macs'] / 1e6:.3g} M" if "avg_macs" in m else ""))
    kind = "early-exit " if spec.search_space == "eemobilenetv3" else ""
    typer.echo(f"exported {kind}{fmt} to {info['path']} ({'; '.join(parts)})")
    q = info.get("quantization")
    if q:
        typer.echo(f"  validation top-1: fp32 {q['top1_fp32']:.2f}%, int8 {q['top1_int8']:.2f}% (predictions agree on "
                   f"{q['agreement']:.1f}% of {q['validation_images']} images)")
        typer.echo(f"  ORT CPU latency (batch 1, 1 thread, median of {q['latency']['runs']}): fp32 "
                   f"{q['latency_ms_fp32']:.3f} ms, int8 {q['latency_ms_int8']:.3f} ms; size fp32 "
                   f"{q['fp32_bytes'] / 1e6:.2f} MB, int8 {q['int8_bytes'] / 1e6:.2f} MB")
    if measure is not None:
        m = _measure_export(info, fmt, measure, repeat, spec, raw)
        row = m["rows"][0]
        typer.echo(f"  measured latency on {m['device']} ({_runtime_words(m)}, batch 1, {m['what']}): min "
                   f"{row['min_ms']:.3f} ms, median {row['median_ms']:.3f} ms; two passes of {m['repeat']} runs: "
                   f"medians {row['pass1_median_ms']:.3f} / {row['pass2_median_ms']:.3f} ms "
                   f"({row['pass_diff_pct']:+.1f}%)")
    if info.get("trained_heads") is False:
        stderr.print("msunas: warning: exit heads are untrained (not part of the supernet); pass --n-epochs N to "
                     "train them with the backbone before export")
