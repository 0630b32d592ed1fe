"""Shared fixtures: the location of ``../shared/data`` (real records for tests; skipped when absent)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """``$MSUNAS_SHARED_DATA`` or ``../shared/data`` beside the checkout."""
    return Path(os.environ.get("MSUNAS_SHARED_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    d = shared_data_dir()
    if not d.is_dir():
        pytest.skip(f"shared data folder {d} is absent (set MSUNAS_SHARED_DATA to a copy of ../shared/data)")
    return d


SHAPES = {
    "0.weight": (400, 128),
    "0.bias": (400,),
    "2.weight": (400, 400),
    "2.bias": (400,),
    "4.weight": (400, 400),
    "4.bias": (400,),
    "6.weight": (1, 400),
    "6.bias": (1,),
}


def write_random_oracle(path: Path, seed: int = 0) -> Path:
    """A real .npz in once-for-all's predictor format with seeded random weights (top-1 around 0.8)."""
    rng = np.random.default_rng(seed)
    arrays = {
        k: (rng.standard_normal(s) * (0.05 if "weight" in k else 0.01)).astype(np.float32) for k, s in SHAPES.items()
    }
    arrays["6.bias"] = np.array([0.8], dtype=np.float32)
    np.savez(path, **arrays)
    return path


def run_cli(args: list[str]) -> int:
    """Run ``msunas ARGS`` in-process; its exit code (0 when it returns normally)."""
    from service.cli import main

    with pytest.raises(SystemExit) as e:
        main(args)
        raise SystemExit(0)
    return int(e.value.code or 0)


def write_image_folder(root: Path, classes: int = 3, per_class: int = 24, with_val: bool = True) -> Path:
    """A real ImageFolder tree (``train/<class>/*.png`` and ``val/<class>/*.png``) of scikit-learn's digits."""
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    for split, n in (("train", per_class), ("val", per_class // 3)) if with_val else (("train", per_class),):
        for c in range(classes):
            folder = root / split / f"digit_{c}"
            folder.mkdir(parents=True, exist_ok=True)
            imgs = d.images[d.target == c]
            offset = 0 if split == "train" else per_class
            for i in range(n):
                a = (imgs[(offset + i) % len(imgs)] * 255 / 16).astype(np.uint8)
                Image.fromarray(a).convert("RGB").resize((32, 32)).save(folder / f"{i}.png")
    return root


@pytest.fixture(scope="session")
def oracle_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real once-for-all predictor when ../shared/data is there, else a seeded file of the same format."""
    real = shared_data_dir() / "ofa_imagenet_predictor" / "acc_predictor.npz"
    if real.is_file():
        return real
    return write_random_oracle(tmp_path_factory.mktemp("oracle") / "acc_predictor.npz")


def write_cifar10(root: Path, per_batch: int = 40) -> Path:
    """A real CIFAR-10 tree (``cifar-10-batches-py/data_batch_1..5`` and ``test_batch``, the python pickles) of
    scikit-learn's digits upscaled to 32x32 colour images (the documented layout, small)."""
    import pickle

    import torch
    import torch.nn.functional as F
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.from_numpy((d.images * 255 / 16).astype(np.float32))[:, None]
    x = F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False).repeat(1, 3, 1, 1)
    data = x.round().clamp(0, 255).to(torch.uint8).reshape(len(d.target), 3072).numpy()
    base = root / "cifar-10-batches-py"
    base.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        sl = slice(i * per_batch, (i + 1) * per_batch)
        with open(base / name, "wb") as fh:
            pickle.dump({b"data": data[sl], b"labels": [int(v) for v in d.target[sl]]}, fh)
    return root


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``cuda`` are skipped where no CUDA GPU is available."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
