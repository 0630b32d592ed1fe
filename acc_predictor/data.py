"""Loaders for the real accuracy records the predictors are benchmarked and tested on.

The records live outside the project (``../shared/data``); these functions read them, canonicalise every config
with the search-space codec, drop exact duplicates (averaging repeated measurements of one network) and return
``(configs, top1, space)`` ready for :meth:`SearchSpace.encode_many`.
"""

from __future__ import annotations

import ast
import csv
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from supernets import get_search_space
from supernets.spaces import SearchSpace

DYNAST_FILES = ("mbnv3w10_evoga_acc.csv", "mbnv3w10_evonsga2_acc_macs.csv", "mbnv3w10_linasga_acc.csv")
CNAS_RUNS = ("cnas_msunas_c10_r192-256_noconstraints.csv", "cnas_msunas_c10_r192-256_tinyml.csv")


def dedupe(space: SearchSpace, configs: Sequence[Mapping[str, Any]], y: np.ndarray) -> tuple[list[dict], np.ndarray]:
    """Canonicalise ``configs`` and average ``y`` over configs with the same key (first-seen order kept)."""
    sums: dict[str, list[float]] = {}
    canon: dict[str, dict] = {}
    for c, v in zip(configs, y, strict=True):
        cc = space.validate(c)
        k = space.key(cc)
        canon.setdefault(k, cc)
        sums.setdefault(k, []).append(float(v))
    keys = list(canon)
    return [canon[k] for k in keys], np.array([np.mean(sums[k]) for k in keys])


def load_dynast_imagenet(folder: str | Path) -> tuple[list[dict], np.ndarray, SearchSpace]:
    """DyNAS-T ImageNet records (w1.0, r=224): unique canonical configs and mean top-1 (%)."""
    folder = Path(folder)
    space = get_search_space("mobilenetv3", lr=224, ur=224, width_mult=1.0)
    configs: list[dict] = []
    acc: list[float] = []
    for name in DYNAST_FILES:
        with open(folder / name, newline="") as f:
            for row in csv.DictReader(f):
                c = ast.literal_eval(row["Sub-network"])
                configs.append({"ks": c["ks"], "e": c["e"], "d": c["d"], "r": c["r"]})
                acc.append(float(row["Top-1 Acc (%)"]))
    cfgs, y = dedupe(space, configs, np.array(acc))
    return cfgs, y, space


def load_cnas_cifar10(path: str | Path) -> tuple[list[dict], np.ndarray, SearchSpace]:
    """One CNAS/MSuNAS CIFAR-10 run (r 192..256, w1.0): unique canonical configs and mean top-1 (%)."""
    space = get_search_space("mobilenetv3", lr=192, ur=256, width_mult=1.0)
    configs: list[dict] = []
    acc: list[float] = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            configs.append(json.loads(row["config_json"]))
            acc.append(float(row["top1"]))
    cfgs, y = dedupe(space, configs, np.array(acc))
    return cfgs, y, space
