"""Fixtures for the robustness tests: real photos (scikit-learn's bundled samples) and a small real network
(an OFA MobileNetV3 subnet at r=32, 10 classes) trained for a few steps on scikit-learn's digits."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

torch.set_num_threads(1)  # the machine is shared: no thread oversubscription


def photo_crops(size: int, n: int, seed: int = 0) -> list[np.ndarray]:
    """``n`` random square crops of scikit-learn's two sample photographs, resized to ``size`` (uint8 HWC)."""
    from sklearn.datasets import load_sample_images

    imgs = load_sample_images().images
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        im = imgs[k % len(imgs)]
        s = int(rng.integers(100, 400))
        y = int(rng.integers(0, im.shape[0] - s))
        x = int(rng.integers(0, im.shape[1] - s))
        out.append(np.asarray(Image.fromarray(im[y : y + s, x : x + s]).resize((size, size), Image.BILINEAR)))
    return out


def digits_uint8(size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn digits as uint8 RGB images (N, size, size, 3) and int64 labels."""
    from sklearn.datasets import load_digits

    d = load_digits()
    imgs = (d.images / 16.0 * 255.0).round().astype(np.uint8)
    big = np.stack([np.asarray(Image.fromarray(i).resize((size, size), Image.BILINEAR)) for i in imgs])
    return np.repeat(big[..., None], 3, axis=3), d.target.astype(np.int64)


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 NHWC -> float NCHW normalised with mean = std = 0.5."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255.0).sub(0.5).div(0.5).contiguous()


@pytest.fixture(scope="session")
def digits_data() -> dict[str, object]:
    images, labels = digits_uint8(32)
    return {
        "train_images": images[:1400],
        "train_labels": labels[:1400],
        "val_images": images[1400:],
        "val_labels": labels[1400:],
    }


@pytest.fixture(scope="session")
def digits_net(digits_data: dict) -> torch.nn.Module:
    """A smallest OFA MobileNetV3 subnet (ks 3, e 3, d 2; r=32; 10 classes) trained 40 SGD steps on digits."""
    from ofa.imagenet_classification.elastic_nn.networks import OFAMobileNetV3

    torch.manual_seed(0)
    sup = OFAMobileNetV3(
        n_classes=10,
        dropout_rate=0,
        width_mult=1.0,
        ks_list=[3, 5, 7],
        expand_ratio_list=[3, 4, 6],
        depth_list=[2, 3, 4],
    )
    sup.set_active_subnet(ks=3, e=3, d=2)
    net = sup.get_active_subnet(preserve_weight=True)
    x = to_tensor(digits_data["train_images"])
    y = torch.from_numpy(digits_data["train_labels"])
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    g = torch.Generator().manual_seed(0)
    net.train()
    for _ in range(40):
        idx = torch.randint(0, x.shape[0], (64,), generator=g)
        loss = torch.nn.functional.cross_entropy(net(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    # recalibrate BN running statistics on training data (as the supernet evaluator does)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
    with torch.no_grad():
        for i in range(0, 512, 128):
            net(x[i : i + 128])
    net.eval()
    return net
