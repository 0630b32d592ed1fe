"""What a worker does with a leased training: load the job's supernet and dataset, train the archived
architecture with :func:`supernets.train_subnet.train_subnet` in a scratch folder (continuing from the stored
checkpoint when an earlier worker got part of the way), store each epoch's checkpoint, and return the measured
result and the files to store."""

from __future__ import annotations

import json
import tempfile
import threading
from pathlib import Path
from typing import Any

from search.export import onnx_metadata
from search.provenance import arch_artefact, check_artefact, describe, load_job_supernet
from service import trainings as tr
from service.db import Database
from supernets import get_search_space
from supernets.datasets import load_dataset
from supernets.device import RunOptions
from supernets.train_subnet import SubnetTrainConfig, train_subnet

OPTION_KEYS = ("epochs", "batch_size", "lr", "label_smoothing", "kd_ratio", "ema", "ema_decay", "train_images",
               "int8", "seed")


def train_claimed(db: Database, claim: tr.TrainingClaim, *, stop: threading.Event | None = None
                  ) -> tuple[dict[str, Any], dict[str, bytes]] | None:
    """Train the claimed architecture; ``(result, files)`` when done, ``None`` when it stopped at an epoch's end
    (its lease was lost, or ``stop`` was set): the stored checkpoint is where the next claim continues."""
    spec = claim.spec
    check_artefact(spec, claim.artefact)
    net = load_job_supernet(spec)
    data = load_dataset(spec.dataset.name, spec.dataset.root, spec.dataset.vld_size)
    r = claim.config["r"]
    r = int(r[0] if isinstance(r, list) else r)
    arch = get_search_space("mobilenetv3", lr=r, ur=r, width_mult=spec.width_mult).validate(claim.config)
    art = arch_artefact(arch, claim.artefact or describe(spec))
    cfg = SubnetTrainConfig(**{k: claim.options[k] for k in OPTION_KEYS if k in claim.options})
    device = getattr(spec.evaluator, "device", "cpu")
    with tempfile.TemporaryDirectory(prefix=f"msunas-training{claim.training_id}-") as d:
        out = Path(d)
        if claim.checkpoint is not None:
            (out / tr.CHECKPOINT).write_bytes(claim.checkpoint)

        def on_epoch(epoch: int, history: list[dict[str, Any]]) -> bool:
            saved = tr.save_epoch(db, claim, epoch, history, (out / tr.CHECKPOINT).read_bytes())
            return saved and not (stop is not None and stop.is_set())

        doc = train_subnet(arch, net, data, out, cfg, artefact=art, run=RunOptions(device=device),
                           resume=claim.checkpoint is not None, log=None, on_epoch=on_epoch,
                           metadata=lambda m: onnx_metadata(arch, art, {k: v for k, v in m.items() if k != "latency"}))
        if not doc.get("done"):
            return None
        result = {k: v for k, v in doc.items() if k != "files"}  # no scratch paths in what is stored
        files = {n: (out / n).read_bytes() for n in tr.RESULT_FILES if (out / n).is_file()}
        files["net.stats"] = json.dumps(result, indent=1, default=float).encode()
        return result, files
