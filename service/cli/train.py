"""``msunas train``: train one chosen architecture (a ``.subnet``) to convergence from its inherited supernet
weights, with knowledge distillation from the supernet's largest subnet (:mod:`supernets.train_subnet`); with
``--job J --arch A`` the server's workers train that archived architecture and the files come back into ``--out``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from search.export import onnx_metadata
from search.io import read_subnet
from search.provenance import file_sha256
from service.cli.app import app
from service.cli.common import Client, TokenOpt, UrlOpt, stderr
from supernets import get_search_space
from supernets.datasets import load_dataset
from supernets.device import RunOptions
from supernets.errors import InputError
from supernets.ofa_supernet import head_classes, load_supernet, net_width
from supernets.train_subnet import SubnetTrainConfig, train_subnet


def _supernet_path(artefact: dict[str, Any] | None, supernet: str | None) -> str:
    """The supernet to inherit from: ``--supernet`` (checked against the artefact's) or the artefact's own."""
    ref = (artefact or {}).get("supernet") or {}
    if supernet is not None:
        p = Path(supernet).expanduser()
        if not p.is_file():
            raise InputError("--supernet", f"no such file {p}")
        if ref.get("sha256") and file_sha256(p) != ref["sha256"]:
            raise InputError("--supernet", f"{p} is not the supernet the architecture was found with "
                             f"({ref.get('path')}, sha256 {str(ref['sha256'])[:12]})",
                             hint="train with the supernet of the search (omit --supernet)")
        return str(p)
    if ref.get("kind") in ("file", "builtin") and ref.get("path"):
        if not Path(ref["path"]).is_file():
            raise InputError("--supernet", f"the supernet the architecture was found with, {ref['path']}, is not "
                             "on this machine", hint="pass --supernet PATH (the same file)")
        return str(ref["path"])
    if artefact is None:
        raise InputError("--supernet", "this config does not say which supernet it was found with",
                         hint="pass --supernet PATH")
    raise InputError("--supernet", f"the architecture was found without trained supernet weights ({ref.get('kind')})"
                     , hint="pass --supernet PATH of a trained supernet")


def _check_artefact(artefact: dict[str, Any] | None, raw: dict[str, Any], net: Any, dataset: str,
                    n_classes: int) -> None:
    """Refuse, naming the field, what differs from what the architecture was found with."""
    a = artefact or {}
    if a.get("search_space") not in (None, "mobilenetv3"):
        raise InputError("--config", f"msunas train trains mobilenetv3 architectures, this one is "
                         f"{a['search_space']}", hint="train early-exit nets with msunas export --n-epochs")
    if a.get("width_mult") is not None and float(a["width_mult"]) != net_width(net):
        raise InputError("--supernet", f"width {net_width(net)} differs from the architecture's {a['width_mult']}")
    if head_classes(net) != n_classes:
        raise InputError("--dataset", f"{dataset} has {n_classes} classes, the supernet {head_classes(net)}")
    if a.get("n_classes") is not None and int(a["n_classes"]) != n_classes:
        raise InputError("--dataset", f"{n_classes} classes differ from the architecture's {a['n_classes']}")
    r = raw.get("r")
    r = r[0] if isinstance(r, list) else r
    if a.get("resolution") is not None and r is not None and int(a["resolution"]) != int(r):
        raise InputError("--config", f"resolution {r} differs from the artefact's {a['resolution']}")


@app.command("train", rich_help_panel="Architectures")
def train(
    out: Annotated[Path, typer.Option("--out", help="output folder: checkpoint.pth, net.pth, net.onnx, "
                                      "net.int8.onnx, net.stats")],
    config: Annotated[Path | None, typer.Option("--config", help="the architecture: a net_i.subnet (from a search "
                                                "run or msunas select --save); its artefact names supernet, dataset, "
                                                "width")] = None,
    job: Annotated[int | None, typer.Option("--job", min=1, help="instead of --config: have the server's workers "
                                            "train architecture --arch of this job (on the job's device); the files "
                                            "come back into --out")] = None,
    arch: Annotated[int | None, typer.Option("--arch", min=1, help="architecture id (with --job)")] = None,
    supernet: Annotated[str | None, typer.Option("--supernet", help="the supernet (default: the artefact's; "
                                                 "must be the same file)")] = None,
    dataset: Annotated[str | None, typer.Option("--dataset", help="default: the artefact's")] = None,
    root: Annotated[str | None, typer.Option("--root", help="dataset folder (default: the artefact's)")] = None,
    vld_size: Annotated[int | None, typer.Option("--vld-size", min=1, max=10_000_000)] = None,
    epochs: Annotated[int, typer.Option("--epochs", min=1, max=100_000)] = 30,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, max=65_536)] = 64,
    lr: Annotated[float, typer.Option("--lr", min=0.0, max=10.0, help="peak learning rate (cosine)")] = 0.02,
    label_smoothing: Annotated[float, typer.Option("--label-smoothing", min=0.0, max=0.99)] = 0.1,
    kd_ratio: Annotated[float, typer.Option("--kd-ratio", min=0.0, max=1.0, help="weight of the distillation "
                                            "loss (teacher: the supernet's largest subnet)")] = 0.5,
    ema: Annotated[bool, typer.Option("--ema/--no-ema", help="keep and evaluate an EMA of the weights")] = False,
    ema_decay: Annotated[float, typer.Option("--ema-decay", min=0.0, max=0.999999)] = 0.999,
    train_images: Annotated[int | None, typer.Option("--train-images", min=1, max=100_000_000)] = None,
    int8: Annotated[bool, typer.Option("--int8/--no-int8", help="also write net.int8.onnx (measured)")] = True,
    device: Annotated[str | None, typer.Option("--device", help="cpu|cuda|cuda:N (default cpu)")] = None,
    amp: Annotated[bool | None, typer.Option("--amp/--no-amp", help="bf16 autocast (default: on for CUDA)")] = None,
    workers: Annotated[int, typer.Option("--workers", min=0, max=256)] = 0,
    seed: Annotated[int, typer.Option("--seed", min=0)] = 0,
    resume: Annotated[bool, typer.Option("--resume", help="continue --out's checkpoint")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="replace a non-empty --out")] = False,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="with --job: follow the training and download its "
                                       "files (--no-wait: queue it and print its id)")] = True,
    interval: Annotated[float, typer.Option("--interval", min=0.05, max=3600, help="with --job: seconds between "
                                            "polls")] = 2.0,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Train a chosen architecture to convergence (KD from the supernet, cosine, label smoothing, optional EMA);
    writes the checkpoint, ONNX (fp32 and int8) and net.stats with the measured top-1. With --job/--arch the
    server's workers train it (POST /jobs/{id}/archs/{arch_id}/train)."""
    if resume and overwrite:
        raise InputError("--resume", "give --resume or --overwrite, not both")
    opts: dict[str, Any] = {"epochs": epochs, "batch_size": batch_size, "lr": lr,
                            "label_smoothing": label_smoothing, "kd_ratio": kd_ratio, "ema": ema,
                            "ema_decay": ema_decay, "train_images": train_images, "int8": int8, "seed": seed}
    if job is not None:
        if config is not None:
            raise InputError("--config", "give either --config or --job with --arch")
        if arch is None:
            raise InputError("--arch", "--job needs --arch (an architecture id of its archive)")
        local = {"--supernet": supernet, "--dataset": dataset, "--root": root, "--vld-size": vld_size,
                 "--device": device, "--amp/--no-amp": amp, "--resume": resume or None}
        given = [k for k, v in local.items() if v is not None]
        if given:
            raise InputError(given[0], "with --job, the server trains on the job's own supernet, data and device")
        _train_remote(job, arch, opts, out, overwrite=overwrite, wait=wait, interval=interval, url=url, token=token)
        return
    if config is None:
        raise InputError("--config", "give --config X.subnet, or --job J --arch A")
    raw, artefact = read_subnet(config.expanduser())
    ds_name = dataset or ((artefact or {}).get("dataset") or {}).get("name")
    if ds_name is None:
        raise InputError("--dataset", "this config does not say which dataset it was found on")
    found_on = ((artefact or {}).get("dataset") or {}).get("name")
    if found_on and found_on != ds_name:
        raise InputError("--dataset", f"the architecture was found on {found_on}, not {ds_name}")
    root = root if root is not None else ((artefact or {}).get("dataset") or {}).get("root")
    net = load_supernet(_supernet_path(artefact, supernet))
    data = load_dataset(ds_name, root, vld_size)
    _check_artefact(artefact, raw, net, ds_name, data.n_classes)
    if "t" in raw or "b" in raw:
        raise InputError("--config", "an early-exit architecture", hint="train it with msunas export --n-epochs N")
    r = raw.get("r")
    r = r[0] if isinstance(r, list) and r else r
    if not isinstance(r, int) or isinstance(r, bool):
        raise InputError("--config", "needs an integer resolution r")
    try:
        space = get_search_space("mobilenetv3", lr=r, ur=r, width_mult=net_width(net))
        arch_cfg = space.validate(raw)
    except InputError as e:
        raise InputError("--config", f"{e.field}: {e.message}") from None
    except (KeyError, ValueError, TypeError) as e:
        raise InputError("--config", str(e)) from None
    art = dict(artefact or {"search_space": "mobilenetv3", "width_mult": net_width(net),
                           "n_classes": data.n_classes, "dataset": {"name": ds_name, "root": root}})
    art["resolution"] = int(arch_cfg["r"])
    doc = train_subnet(arch_cfg, net, data, out, SubnetTrainConfig(**opts), artefact=art, resume=resume,
                       overwrite=overwrite, run=RunOptions(device=device or "cpu", amp=amp, workers=workers),
                       log=typer.echo, metadata=lambda m: onnx_metadata(arch_cfg, art, {k: v for k, v in m.items()
                                                                                        if k != "latency"}))
    _report(doc, out)


def _report(doc: dict[str, Any], out: Path) -> None:
    m = doc["metrics"]
    test = f", test {m['top1_test']:.2f}%" if "top1_test" in m else ""
    typer.echo(f"trained {doc['epochs']} epochs into {out}: validation top-1 {m['top1']:.2f}% (inherited "
               f"{m['top1_inherited']:.2f}%){test}")
    if "top1_int8" in m:
        typer.echo(f"  int8 ONNX: validation top-1 {m['top1_int8']:.2f}%; ORT CPU latency (batch 1, 1 thread) "
                   f"fp32 {m['latency_ms_fp32']:.3f} ms, int8 {m['latency_ms_int8']:.3f} ms")


def _train_remote(job: int, arch: int, opts: dict[str, Any], out: Path, *, overwrite: bool, wait: bool,
                  interval: float, url: str | None, token: str | None) -> None:
    """Queue the training on the server, follow it (epochs) and download its files into ``out``."""
    out = out.expanduser()
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite and wait:
        raise InputError("--out", f"{out} is not empty", hint="pass --overwrite or another --out")
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[info]}"), TimeElapsedColumn())
    with Client(url, token) as c:
        t = c.json("POST", f"/jobs/{job}/archs/{arch}/train", json=opts)
        where = f"/jobs/{job}/trainings/{t['id']}"
        stderr.print(f"training {t['id']} of job {job} architecture {arch} {t['state']} at {where}")
        if not wait:
            typer.echo(t["id"])
            return
        with Progress(*columns, console=stderr) as prog:
            bar = prog.add_task("epochs", total=t["epochs"], info="")
            while t["state"] in ("queued", "running"):
                time.sleep(interval)
                t = c.json("GET", where)
                last = t["history"][-1] if t["history"] else None
                prog.update(bar, completed=t["epoch"], info=f"state={t['state']}" + (
                    f" top-1 {last['top1_valid']:.2f}%" if last else ""))
        if t["state"] != "succeeded":
            typer.echo(f"training {t['id']} {t['state']}" + (f": {t['error']}" if t.get("error") else ""))
            raise typer.Exit(1)
        out.mkdir(parents=True, exist_ok=True)
        for f in t["files"]:
            (out / f["name"]).write_bytes(c.call("GET", f"{where}/files/{f['name']}").content)
    doc = {"metrics": t["metrics"], "epochs": t["epoch"]}
    _report(doc, out)
