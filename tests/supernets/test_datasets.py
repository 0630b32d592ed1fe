"""Dataset loaders on tiny synthetic files written in the real on-disk formats."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from search.spec import load_spec
from supernets.datasets import DIGITS_TEST, SPLIT_SEED, load_dataset, split_train


def _cifar_batch(path: Path, n: int, label_key: bytes, n_classes: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    labels = [int(v) for v in rng.integers(0, n_classes, n)]
    with open(path, "wb") as f:
        pickle.dump({b"batch_label": b"x", label_key: labels, b"data": data, b"filenames": [b"f"] * n}, f, protocol=2)
    return data


@pytest.fixture()
def cifar10_root(tmp_path: Path) -> Path:
    base = tmp_path / "cifar-10-batches-py"
    base.mkdir()
    for i in range(1, 6):
        _cifar_batch(base / f"data_batch_{i}", 20, b"labels", 10, i)
    _cifar_batch(base / "test_batch", 10, b"labels", 10, 9)
    return tmp_path


def test_cifar10_pickles(cifar10_root: Path) -> None:
    d = load_dataset("cifar10", cifar10_root, vld_size=30)
    assert d.n_classes == 10 and len(d.train) == 70 and len(d.valid) == 30 and d.test is not None and len(d.test) == 10
    # pixels arrive as (C, H, W) from the row-major 3072 vector, exactly as torchvision reads them
    raw = pickle.load(open(cifar10_root / "cifar-10-batches-py" / "data_batch_1", "rb"), encoding="bytes")[b"data"]
    all_imgs = torch.cat([d.train.images, d.valid.images])
    assert any(torch.equal(img, torch.from_numpy(raw[0].reshape(3, 32, 32))) for img in all_imgs)
    x, y = next(d.valid.batches(40, 16))
    assert x.shape == (16, 3, 40, 40) and x.dtype == torch.float32 and y.dtype == torch.int64


def test_validation_is_carved_from_training_with_fixed_seed(cifar10_root: Path) -> None:
    a = load_dataset("cifar10", cifar10_root, vld_size=25)
    b = load_dataset("cifar10", cifar10_root, vld_size=25)
    assert torch.equal(a.valid.images, b.valid.images)
    tr, va = split_train(100, 25, "cifar10")
    assert set(tr).isdisjoint(va) and len(set(tr) | set(va)) == 100
    assert np.array_equal(np.sort(np.random.default_rng(SPLIT_SEED).permutation(100)[:25]), va)
    # no validation image comes from the test batch
    test_rows = {bytes(t.numpy().tobytes()) for t in a.test.images}  # type: ignore[union-attr]
    assert not any(bytes(v.numpy().tobytes()) in test_rows for v in a.valid.images)


def test_cifar100_pickles(tmp_path: Path) -> None:
    base = tmp_path / "cifar-100-python"
    base.mkdir()
    _cifar_batch(base / "train", 50, b"fine_labels", 100, 1)
    _cifar_batch(base / "test", 10, b"fine_labels", 100, 2)
    d = load_dataset("cifar100", tmp_path, vld_size=10)
    assert d.n_classes == 100 and len(d.train) == 40 and len(d.valid) == 10


def test_svhn_mat(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for split, n in (("train", 30), ("test", 8)):
        X = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
        y = rng.integers(1, 11, (n, 1)).astype(np.uint8)
        scipy.io.savemat(tmp_path / f"{split}_32x32.mat", {"X": X, "y": y})
    d = load_dataset("svhn", tmp_path, vld_size=5)
    assert len(d.train) == 25 and len(d.valid) == 5 and d.test is not None and len(d.test) == 8
    labels = torch.cat([d.train.labels, d.valid.labels])
    assert int(labels.min()) >= 0 and int(labels.max()) <= 9  # label 10 means digit 0
    m = scipy.io.loadmat(tmp_path / "train_32x32.mat")
    assert (labels == 0).sum() == int((m["y"] == 10).sum())


def _image_folder(root: Path, classes: list[str], n: int, size: int = 12) -> None:
    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(root / c / f"{i}.png")


@pytest.mark.parametrize("name,test_dir", [("cinic10", "test"), ("imagenet", "val")])
def test_image_folder(tmp_path: Path, name: str, test_dir: str) -> None:
    _image_folder(tmp_path / "train", ["a", "b", "c"], 4)
    _image_folder(tmp_path / test_dir, ["a", "b", "c"], 1)
    d = load_dataset(name, tmp_path, vld_size=3)
    assert d.n_classes == 3 and len(d.train) == 9 and len(d.valid) == 3 and d.test is not None and len(d.test) == 3
    x, y = next(d.train.batches(36, 4, shuffle=True, augment=True, generator=torch.Generator().manual_seed(0)))
    assert x.shape == (4, 3, 36, 36) and y.shape == (4,)
    x2, _ = next(d.valid.batches(40, 8))
    assert x2.shape == (3, 3, 40, 40)


def test_digits_builtin() -> None:
    d = load_dataset("digits")
    assert d.n_classes == 10 and len(d.train) + len(d.valid) == 1797 - DIGITS_TEST and len(d.valid) == 300
    x, y = next(d.train.batches(32, 64, shuffle=True, augment=True, generator=torch.Generator().manual_seed(1)))
    assert x.shape == (64, 3, 32, 32) and torch.isfinite(x).all()
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    a = next(d.train.batches(48, 16, shuffle=True, augment=True, generator=g1))
    b = next(d.train.batches(48, 16, shuffle=True, augment=True, generator=g2))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_digits_vld_size_too_large_is_clear() -> None:
    with pytest.raises(ValueError, match=r"dataset.vld_size: 5000 leaves no training images \(digits has 1500"):
        load_dataset("digits", vld_size=5000)
    assert load_spec({"dataset": {"name": "digits"}}).dataset.vld_size is None  # default adapts to the dataset


@pytest.mark.parametrize(
    "name,make,needle",
    [
        ("cifar10", lambda p: None, "data_batch_1: file not found"),
        (
            "cifar10",
            lambda p: [(p / f"data_batch_{i}").write_bytes(b"junk") for i in range(1, 6)],
            "not a readable python",
        ),
        ("cifar100", lambda p: None, "train: file not found"),
        ("svhn", lambda p: None, "train_32x32.mat: file not found"),
        ("svhn", lambda p: scipy.io.savemat(p / "train_32x32.mat", {"Z": np.zeros(3)}), "lacks the variables X and y"),
        ("cinic10", lambda p: (p / "train").mkdir(), "no class sub-folders"),
        ("imagenet", lambda p: None, "train: folder not found"),
    ],
)
def test_missing_or_malformed_data_names_path_and_layout(tmp_path: Path, name: str, make, needle: str) -> None:  # type: ignore[no-untyped-def]
    make(tmp_path)
    with pytest.raises(ValueError) as e:
        load_dataset(name, tmp_path, vld_size=1)
    msg = str(e.value)
    assert needle in msg and str(tmp_path) in msg and "expected layout" in msg


def test_cifar_wrong_shape(tmp_path: Path) -> None:
    for i in range(1, 6):
        with open(tmp_path / f"data_batch_{i}", "wb") as f:
            pickle.dump({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, f)
    with pytest.raises(ValueError, match=r"uint8 \(N, 3072\)"):
        load_dataset("cifar10", tmp_path, vld_size=1)


def test_root_required_and_missing_root(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="dataset.root"):
        load_dataset("cifar10", None)
    with pytest.raises(ValueError, match="root folder not found"):
        load_dataset("cifar10", tmp_path / "nope")
