"""OFA supernet building, checkpoint loading (once-for-all's format) and subnet extraction."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from supernets import get_search_space
from supernets.ofa_supernet import (
    build_static,
    build_supernet,
    extract_subnet,
    load_supernet,
    set_active,
    subnet_net_config,
)

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def net() -> torch.nn.Module:
    return build_supernet(1.0, 10, seed=0).eval()


def _cfg(seed: int = 0, r: int = 40) -> dict:
    c = get_search_space("mobilenetv3", lr=32, ur=64).sample(1, np.random.default_rng(seed))[0]
    return dict(c, r=r)


def test_ofa_format_round_trip(net: torch.nn.Module, tmp_path: Path) -> None:
    path = tmp_path / "ofa_mbv3_d234_e346_k357_w1.0"
    torch.save({"state_dict": net.state_dict()}, path)  # exactly how once-for-all stores its supernets
    back = load_supernet(path).eval()
    x = torch.randn(2, 3, 40, 40)
    for seed in (0, 1):
        c = _cfg(seed)
        set_active(net, c)
        set_active(back, c)
        assert torch.equal(net(x), back(x))
    assert back.msunas_meta["width_mult"] == 1.0 and back.msunas_meta["n_classes"] == 10


def test_older_official_key_names_load(net: torch.nn.Module, tmp_path: Path) -> None:
    # the first released checkpoints name each block's layer "mobile_inverted_conv"; ofa maps it back
    sd = {re.sub(r"^(blocks\.\d+)\.conv\.", r"\1.mobile_inverted_conv.", k): v for k, v in net.state_dict().items()}
    assert any(".mobile_inverted_conv." in k for k in sd)
    path = tmp_path / "old.pth"
    torch.save({"state_dict": sd, "epoch": 180}, path)
    back = load_supernet(path).eval()
    x = torch.randn(1, 3, 32, 32)
    net.set_max_net()
    back.set_max_net()
    assert torch.equal(net(x), back(x))


def test_imagenet_head_is_reinitialised_for_fewer_classes(tmp_path: Path) -> None:
    big = build_supernet(1.0, 1000, seed=1)
    path = tmp_path / "imagenet.pth"
    torch.save({"state_dict": big.state_dict()}, path)
    small = load_supernet(path, n_classes=10)
    sd_big, sd_small = big.state_dict(), small.state_dict()
    assert sd_small["classifier.linear.weight"].shape == (10, 1280)
    for k, v in sd_small.items():
        if not k.startswith("classifier."):
            assert torch.equal(v, sd_big[k]), k


def test_bad_checkpoints_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no such file"):
        load_supernet(tmp_path / "missing.pth")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"nope")
    with pytest.raises(ValueError, match="not a readable torch checkpoint"):
        load_supernet(junk)
    w12 = tmp_path / "w12.pth"
    torch.save({"state_dict": build_supernet(1.2, 10).state_dict()}, w12)
    with pytest.raises(ValueError, match="width_mult: the job asks for 1.0 but .* is a width-1.2 supernet"):
        load_supernet(w12, width_mult=1.0)
    assert load_supernet(w12).width_mult == 1.2


def test_fast_extraction_equals_ofa_extraction(net: torch.nn.Module) -> None:
    c = _cfg(3)
    a = extract_subnet(net, c, fast=False).eval()
    b = extract_subnet(net, c, fast=True).eval()
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    x = torch.randn(2, 3, 40, 40)
    set_active(net, c)
    assert torch.allclose(b(x), net(x), atol=1e-5)
    # rebuilt from ofa's JSON config + state dict: the same network
    rebuilt = build_static(subnet_net_config(net, c)).eval()
    rebuilt.load_state_dict(sb)
    assert torch.equal(rebuilt(x), b(x))
