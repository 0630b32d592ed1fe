"""Image-classification datasets from local paths only (no downloads), in torchvision's on-disk formats.

=========  ==========================================================================  =======  =========
name       layout under ``root``                                                       classes  test split
=========  ==========================================================================  =======  =========
cifar10    ``cifar-10-batches-py/data_batch_1..5`` + ``test_batch`` (python pickles,    10       test_batch
           ``b"data"`` uint8 (N, 3072), ``b"labels"``); the folder itself may be root
cifar100   ``cifar-100-python/train`` + ``test`` (pickles, ``b"fine_labels"``)          100      test
svhn       ``train_32x32.mat`` + ``test_32x32.mat`` (``X`` uint8 (32, 32, 3, N), ``y``  10       test_32x32
           (N, 1) in 1..10, 10 meaning digit 0)
cinic10    ImageFolder: ``train/<class>/*.png`` (+ ``test/`` or ``valid/``)              10       test|valid
imagenet   ImageFolder: ``train/<wnid>/*.JPEG`` (+ ``val/<wnid>/*``)                     1000     val
digits     built in: scikit-learn's 1797 8x8 grey digits, upsampled, 3 channels        10       297 held out
=========  ==========================================================================  =======  =========

The validation split used by the search (``vld_size`` images) is always carved from the **training** set with
a fixed seed (:data:`SPLIT_SEED`), never from the test set, so the test set stays untouched for the final
report. Missing or malformed data raise :class:`ValueError` naming the path and the expected layout.

In-memory datasets (cifar*, svhn, digits) are kept as one uint8 tensor and resized to the subnet's resolution
``r`` a batch at a time (bilinear, antialiased): much faster than per-image PIL transforms on CPU. ImageFolder
datasets decode files per batch through a ``DataLoader`` with torchvision transforms built for ``r``.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import scipy.io
import torch
import torch.nn.functional as F
from PIL import Image
from sklearn.datasets import load_digits
from torch.utils.data import DataLoader, Subset
from torchvision import transforms as T

from supernets.errors import InputError
from supernets.interrupt import check

SPLIT_SEED = 0x5EED
DIGITS_TEST = 297
# ImageNet statistics (the OFA supernets were trained with these); used for every dataset.
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
DEFAULT_VLD = 5000

LAYOUTS = {
    "cifar10": "ROOT/cifar-10-batches-py/{data_batch_1..5,test_batch} (or those files directly in ROOT), the python"
    " pickle version from https://www.cs.toronto.edu/~kriz/cifar.html",
    "cifar100": "ROOT/cifar-100-python/{train,test} (or those files directly in ROOT), the python pickle version",
    "svhn": "ROOT/train_32x32.mat and ROOT/test_32x32.mat (SVHN format 2, keys X (32,32,3,N) and y (N,1))",
    "cinic10": "ROOT/train/<class>/*.png and ROOT/test/<class>/*.png (ImageFolder; ROOT/valid/ accepted for test)",
    "imagenet": "ROOT/train/<wnid>/*.JPEG and ROOT/val/<wnid>/*.JPEG (ImageFolder)",
    "digits": "built in (scikit-learn's 8x8 digits); no root needed",
    "imagefolder": "ROOT/train/<class>/<image> (ImageFolder: .jpg .png ...; classes are the sorted folder names) and "
    "optionally ROOT/val/<class>/... (or test/, valid/) for the final test split",
}
N_CLASSES = {"cifar10": 10, "cifar100": 100, "svhn": 10, "cinic10": 10, "imagenet": 1000, "digits": 10}
DATASETS = (*N_CLASSES, "imagefolder")


def dataset_classes(name: str, root: str | Path | None = None) -> int:
    """Classes of a dataset: fixed for the named ones; an ``imagefolder``'s ``ROOT/train`` class folders."""
    if name in N_CLASSES:
        return N_CLASSES[name]
    if name != "imagefolder":
        raise InputError("dataset.name", f"{name!r} is not one of {list(DATASETS)}")
    train = Path(root or "") / "train"
    if root is None or not train.is_dir():
        raise _bad(name, train, "no train/ folder")
    n = sum(1 for d in train.iterdir() if d.is_dir())
    if n < 2:
        raise _bad(name, train, f"needs at least 2 class folders, found {n}")
    return n
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def _bad(name: str, path: Path | str, what: str) -> InputError:
    return InputError("dataset.root", f"dataset {name}: {path}: {what}", hint=f"expected layout: {LAYOUTS[name]}")


class ImageSet(Protocol):
    """A split that yields ``(images float32 (B, 3, r, r) normalised, labels int64 (B,))`` batches at any ``r``."""

    def __len__(self) -> int: ...

    def batches(
        self,
        r: int,
        batch_size: int,
        *,
        shuffle: bool = False,
        augment: bool = False,
        generator: torch.Generator | None = None,
        limit: int | None = None,
        num_workers: int = 0,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]: ...


def _normalise(x: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(MEAN, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(STD, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def resize_batch(images: torch.Tensor, r: int) -> torch.Tensor:
    """uint8 (B, C, H, W) -> normalised float32 (B, 3, r, r) (bilinear, antialiased when shrinking)."""
    x = images.float().div_(255.0)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    if x.shape[-1] != r or x.shape[-2] != r:
        x = F.interpolate(x, size=(r, r), mode="bilinear", align_corners=False, antialias=x.shape[-1] > r)
    return _normalise(x)



def _order(total: int, limit: int | None, shuffle: bool, generator: torch.Generator | None) -> torch.Tensor:
    """The indices a pass visits: the first ``limit`` (all without one), or a seeded random ``limit`` of them."""
    n = total if limit is None else min(limit, total)
    return torch.randperm(total, generator=generator)[:n] if shuffle else torch.arange(n)

@dataclass
class TensorImages:
    """An in-memory split: uint8 images (N, C, H, W) and int64 labels; ``flip``: random h-flip when augmenting."""

    images: torch.Tensor
    labels: torch.Tensor
    flip: bool = True
    pad: int = 0

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, idx: Sequence[int] | np.ndarray) -> TensorImages:
        """The images at ``idx`` (a view that shares nothing mutable)."""
        t = torch.as_tensor(np.asarray(idx, dtype=np.int64)).to(self.images.device)
        return TensorImages(self.images[t], self.labels[t], self.flip, self.pad)

    def to(self, device: torch.device | str) -> TensorImages:
        """The split held on ``device`` (uint8, moved once): its batches are then cut, augmented and resized there,
        with the same draws (index order and augmentation come from the CPU ``generator``)."""
        return TensorImages(self.images.to(device), self.labels.to(device), self.flip, self.pad)

    def batches(
        self,
        r: int,
        batch_size: int,
        *,
        shuffle: bool = False,
        augment: bool = False,
        generator: torch.Generator | None = None,
        limit: int | None = None,
        num_workers: int = 0,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Batches resized to ``r``; ``shuffle``/``augment`` draw from ``generator`` only (deterministic)."""
        order = _order(len(self), limit, shuffle, generator)
        for s in range(0, len(order), batch_size):
            idx = order[s : s + batch_size].to(self.images.device)
            x = self.images[idx]
            if augment:
                x = self._augment(x, generator)
            check()
            yield resize_batch(x, r), self.labels[idx]

    def _augment(self, x: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
        # random translation by up to `pad` pixels (zero padding) and optional horizontal flip
        b, _, h, w = x.shape
        if self.pad:
            p = self.pad
            xp = F.pad(x, (p, p, p, p))
            dx = torch.randint(0, 2 * p + 1, (b,), generator=g).tolist()
            dy = torch.randint(0, 2 * p + 1, (b,), generator=g).tolist()
            x = torch.stack([xp[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(b)])
        if self.flip:
            m = (torch.rand(b, generator=g) < 0.5).to(x.device)
            x = torch.where(m.view(b, 1, 1, 1), x.flip(-1), x)
        return x


@dataclass
class FolderImages:
    """An ImageFolder split: ``samples`` (path, class index) decoded per batch with transforms built for ``r``."""

    samples: list[tuple[str, int]]
    classes: list[str]
    center_crop: bool = True

    def __len__(self) -> int:
        return len(self.samples)

    def subset(self, idx: Sequence[int] | np.ndarray) -> FolderImages:
        return FolderImages([self.samples[int(i)] for i in idx], self.classes, self.center_crop)

    def batches(
        self,
        r: int,
        batch_size: int,
        *,
        shuffle: bool = False,
        augment: bool = False,
        generator: torch.Generator | None = None,
        limit: int | None = None,
        num_workers: int = 0,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = _order(len(self), limit, shuffle, generator)
        ds = _FolderDataset(self.samples, _folder_transform(r, augment, self.center_crop))
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator)) if augment else 0
        loader = DataLoader(
            Subset(ds, order.tolist()),
            batch_size=batch_size,
            shuffle=False,
            num_workers=num_workers,
            worker_init_fn=_seed_worker,
            generator=torch.Generator().manual_seed(seed),
        )
        if augment:  # per-sample augmentation RNG for the main process (num_workers=0)
            torch.manual_seed(seed)
        for batch in loader:
            check()
            yield batch


def _seed_worker(worker_id: int) -> None:
    torch.manual_seed(torch.initial_seed() % 2**31 + worker_id)


def _folder_transform(r: int, augment: bool, center_crop: bool) -> Any:
    if augment:
        tf = [T.RandomResizedCrop(r, scale=(0.35, 1.0)) if center_crop else T.Resize((r, r)), T.RandomHorizontalFlip()]
    elif center_crop:
        tf = [T.Resize(int(round(r / 0.875))), T.CenterCrop(r)]
    else:
        tf = [T.Resize((r, r))]
    return T.Compose([*tf, T.ToTensor(), T.Normalize(MEAN, STD)])


class _FolderDataset(torch.utils.data.Dataset):  # type: ignore[type-arg]
    def __init__(self, samples: list[tuple[str, int]], transform: Any) -> None:
        self.samples, self.transform = samples, transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        path, y = self.samples[i]
        with Image.open(path) as im:
            return self.transform(im.convert("RGB")), y


@dataclass
class DatasetSplits:
    """Train (minus validation), validation (carved from train) and test splits of one dataset."""

    name: str
    n_classes: int
    train: TensorImages | FolderImages
    valid: TensorImages | FolderImages
    test: TensorImages | FolderImages | None
    info: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------------- readers
def _unpickle(name: str, path: Path) -> dict[bytes, Any]:
    try:
        with open(path, "rb") as f:
            d = pickle.load(f, encoding="bytes")
    except Exception as e:  # noqa: BLE001 - any unreadable file is a layout error for the user
        raise _bad(name, path, f"not a readable python pickle ({type(e).__name__}: {e})") from None
    if not isinstance(d, dict):
        raise _bad(name, path, "pickle does not hold a dict")
    return d


def _cifar_arrays(name: str, files: list[Path], label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for p in files:
        d = _unpickle(name, p)
        if b"data" not in d or label_key not in d:
            raise _bad(name, p, f"pickle lacks the keys b'data' and {label_key!r}")
        x = np.asarray(d[b"data"])
        y = np.asarray(d[label_key], dtype=np.int64)
        if x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3072 or len(y) != len(x):
            raise _bad(name, p, f"b'data' must be uint8 (N, 3072) with N labels, got {x.dtype} {x.shape}")
        xs.append(x.reshape(-1, 3, 32, 32))
        ys.append(y)
    return np.concatenate(xs), np.concatenate(ys)


def _find_dir(root: Path, sub: str, marker: str) -> Path:
    return root / sub if (root / sub / marker).exists() else root


def read_cifar(name: str, root: Path, train: bool) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10/100 arrays (uint8 (N, 3, 32, 32), int64 labels) of the train or test pickles."""
    if name == "cifar10":
        base = _find_dir(root, "cifar-10-batches-py", "data_batch_1")
        files = [base / f"data_batch_{i}" for i in range(1, 6)] if train else [base / "test_batch"]
        key = b"labels"
    else:
        base = _find_dir(root, "cifar-100-python", "train")
        files = [base / ("train" if train else "test")]
        key = b"fine_labels"
    for p in files:
        if not p.is_file():
            raise _bad(name, p, "file not found")
    return _cifar_arrays(name, files, key)


def read_svhn(root: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """SVHN format-2 arrays from ``{split}_32x32.mat`` (label 10 -> 0)."""
    p = root / f"{split}_32x32.mat"
    if not p.is_file():
        raise _bad("svhn", p, "file not found")
    try:
        m = scipy.io.loadmat(str(p))
    except Exception as e:  # noqa: BLE001
        raise _bad("svhn", p, f"not a readable .mat file ({type(e).__name__}: {e})") from None
    if "X" not in m or "y" not in m:
        raise _bad("svhn", p, "the .mat file lacks the variables X and y")
    x, y = np.asarray(m["X"]), np.asarray(m["y"]).reshape(-1).astype(np.int64)
    if x.ndim != 4 or x.shape[:3] != (32, 32, 3) or x.shape[3] != len(y) or x.dtype != np.uint8:
        raise _bad("svhn", p, f"X must be uint8 (32, 32, 3, N) with N labels, got {x.dtype} {x.shape}")
    if len(y) and (y.min() < 1 or y.max() > 10):
        raise _bad("svhn", p, "y must hold labels 1..10 (10 = digit 0)")
    return np.ascontiguousarray(x.transpose(3, 2, 0, 1)), y % 10


def read_folder(name: str, folder: Path) -> FolderImages:
    """An ImageFolder tree ``folder/<class>/<image>`` (classes sorted by name, as torchvision does)."""
    if not folder.is_dir():
        raise _bad(name, folder, "folder not found")
    classes = sorted(d.name for d in folder.iterdir() if d.is_dir())
    if not classes:
        raise _bad(name, folder, "no class sub-folders")
    samples = []
    for ci, c in enumerate(classes):
        files = sorted(p for p in (folder / c).iterdir() if p.suffix.lower() in IMG_EXTENSIONS)
        samples += [(str(p), ci) for p in files]
    if not samples:
        raise _bad(name, folder, "no image files in the class folders")
    return FolderImages(samples, classes, center_crop=name == "imagenet")


def read_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8x8 digits as uint8 (1797, 1, 8, 8) in 0..255 and labels."""
    d = load_digits()
    x = np.clip(np.round(d.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)[:, None]
    return x, d.target.astype(np.int64)


# ---------------------------------------------------------------------------------------------------- splits
def default_vld_size(n_train: int) -> int:
    """5000 as CNAS/MSuNAS use, or a fifth of the training set when that has fewer than 25,000 images."""
    return DEFAULT_VLD if n_train >= 5 * DEFAULT_VLD else max(1, n_train // 5)


def split_train(n: int, vld_size: int, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, validation indices) of ``n`` training images; fixed seed, so every run agrees."""
    if vld_size >= n:
        raise InputError(
            "dataset.vld_size",
            f"{vld_size} leaves no training images ({name} has {n} training images; "
            f"use at most {n - 1}, e.g. {default_vld_size(n)})"
        )
    perm = np.random.default_rng(SPLIT_SEED).permutation(n)
    return np.sort(perm[vld_size:]), np.sort(perm[:vld_size])


CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def class_names(name: str, root: str | Path | None = None) -> list[str] | None:
    """The class names of a dataset in label order, when known without loading it (None otherwise)."""
    if name in ("digits", "svhn"):
        return [str(i) for i in range(10)]
    if name in ("cifar10", "cinic10"):
        return list(CIFAR10_CLASSES)
    if name == "cifar100" and root is not None:
        for meta in (Path(root) / "cifar-100-python" / "meta", Path(root) / "meta"):
            if meta.is_file():
                d = _unpickle(name, meta)
                names = d.get(b"fine_label_names")
                return [n.decode() if isinstance(n, bytes) else str(n) for n in names] if names else None
        return None
    if root is not None and Path(root, "train").is_dir():
        return sorted(d.name for d in Path(root, "train").iterdir() if d.is_dir()) or None
    return None


def load_dataset(name: str, root: str | Path | None = None, vld_size: int | None = None) -> DatasetSplits:
    """Load ``name`` from ``root`` and carve ``vld_size`` validation images from its training set.

    ``vld_size=None`` takes :func:`default_vld_size`. Raises ``ValueError`` naming the path and the expected
    layout when the data is missing or malformed.
    """
    if name not in LAYOUTS:
        raise InputError("dataset.name", f"{name!r} is not one of {sorted(LAYOUTS)}")
    test: TensorImages | FolderImages | None
    if name == "digits":
        x, y = read_digits()
        perm = np.random.default_rng(SPLIT_SEED).permutation(len(y))
        te, tr = np.sort(perm[:DIGITS_TEST]), np.sort(perm[DIGITS_TEST:])
        full = TensorImages(torch.from_numpy(x[tr]), torch.from_numpy(y[tr]), flip=False, pad=1)
        test = TensorImages(torch.from_numpy(x[te]), torch.from_numpy(y[te]), flip=False, pad=1)
        return _carve(name, full, test, vld_size)
    if root is None:
        raise InputError("dataset.root",
                         f"dataset {name!r} needs a local root folder; expected layout: {LAYOUTS[name]}")
    rootp = Path(root).expanduser()
    if not rootp.is_dir():
        raise _bad(name, rootp, "root folder not found")
    if name in ("cifar10", "cifar100"):
        x, y = read_cifar(name, rootp, train=True)
        full = TensorImages(torch.from_numpy(x), torch.from_numpy(y), flip=True, pad=4)
        xt, yt = read_cifar(name, rootp, train=False)
        test = TensorImages(torch.from_numpy(xt), torch.from_numpy(yt), flip=True, pad=4)
        _check_labels(name, rootp, y, N_CLASSES[name])
        return _carve(name, full, test, vld_size)
    if name == "svhn":
        x, y = read_svhn(rootp, "train")
        full = TensorImages(torch.from_numpy(x), torch.from_numpy(y), flip=False, pad=2)
        test = None
        if (rootp / "test_32x32.mat").is_file():
            xt, yt = read_svhn(rootp, "test")
            test = TensorImages(torch.from_numpy(xt), torch.from_numpy(yt), flip=False, pad=2)
        return _carve(name, full, test, vld_size)
    # ImageFolder datasets
    full_f = read_folder(name, rootp / "train")
    test = None
    for sub in ("test", "val", "valid"):
        if (rootp / sub).is_dir():
            test = read_folder(name, rootp / sub)
            if test.classes != full_f.classes:
                raise _bad(name, rootp / sub, "its class folders differ from train/'s")
            break
    return _carve(name, full_f, test, vld_size, n_classes=len(full_f.classes))


def _check_labels(name: str, root: Path, y: np.ndarray, n_classes: int) -> None:
    if len(y) and (y.min() < 0 or y.max() >= n_classes):
        raise _bad(name, root, f"labels must lie in 0..{n_classes - 1}")


def _carve(
    name: str,
    full: TensorImages | FolderImages,
    test: TensorImages | FolderImages | None,
    vld_size: int | None,
    n_classes: int | None = None,
) -> DatasetSplits:
    n = len(full)
    v = default_vld_size(n) if vld_size is None else int(vld_size)
    tr, va = split_train(n, v, name)
    nc = n_classes or N_CLASSES[name]
    return DatasetSplits(
        name,
        nc,
        full.subset(tr),
        full.subset(va),
        test,
        info={"n_train": len(tr), "n_valid": len(va), "n_test": len(test) if test is not None else 0},
    )
