"""Zero-shot proxies: deterministic per seed, finite on every registered search space, sane orderings."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from search import proxies
from supernets.spaces import get_search_space, search_space_names

NET_PROXIES = ["zen", "naswot", "synflow", "gradnorm"]
R = 32  # the smallest resolution keeps the nets cheap; the proxies' code paths are the same


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One torch thread: tiny nets gain nothing from more, and a busy machine makes OpenMP spin badly."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _configs(space_name: str, n: int = 2, seed: int = 0) -> list[dict]:
    sp = get_search_space(space_name, lr=R, ur=R + 8)
    return sp.sample(n, np.random.default_rng(seed))


@pytest.mark.parametrize("space_name", search_space_names())
@pytest.mark.parametrize("name", NET_PROXIES)
def test_deterministic_and_finite(space_name: str, name: str) -> None:
    c = _configs(space_name, 1)[0]
    a = proxies.compute_proxy(name, c, batch_size=4, seed=3, n_classes=10)
    b = proxies.compute_proxy(name, c, batch_size=4, seed=3, n_classes=10)
    assert math.isfinite(a)
    assert a == b
    if name != "synflow":  # synflow's input is all ones, but its weights depend on the seed
        assert proxies.compute_proxy(name, c, batch_size=4, seed=4, n_classes=10) != a


def test_global_rng_untouched() -> None:
    c = _configs("mobilenetv3", 1)[0]
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    proxies.compute_proxy("zen", c, batch_size=2, seed=0)
    assert torch.equal(torch.rand(3), expected)


def test_bigger_net_scores_higher() -> None:
    """Deepest/widest vs shallowest/narrowest net: every proxy (all grow with capacity) must agree."""
    small = {"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": 32}
    big = {"ks": [7] * 20, "e": [6] * 20, "d": [4] * 5, "r": 32}
    for name in ("zen", "naswot", "synflow"):
        s = proxies.compute_proxy(name, small, batch_size=4, seed=0)
        b = proxies.compute_proxy(name, big, batch_size=4, seed=0)
        assert b > s, name


def test_zen_matches_its_definition_by_hand() -> None:
    """Recompute Zen-score from the paper's formula with a separate implementation (running_var, momentum 1)."""
    c = {"ks": [5] * 20, "e": [4] * 20, "d": [2, 3, 2, 3, 2], "r": 48}
    got = proxies.compute_proxy("zen", c, batch_size=6, seed=11)
    net = proxies.build_subnet(c, seed=11)
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(11)
        for m in net.modules():
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
                torch.nn.init.normal_(m.weight)
                if m.bias is not None:
                    torch.nn.init.zeros_(m.bias)
            elif isinstance(m, torch.nn.BatchNorm2d):
                m.momentum = 1.0  # running_var := this batch's (unbiased) variance
        net.train()
        x = proxies._gaussian((6, 3, 48, 48), 11)
        x2 = x + 0.01 * proxies._gaussian((6, 3, 48, 48), 11 + 1_000_003)
        f1 = proxies._forward_pre_gap(net, x)
        log_bn = sum(
            0.5 * math.log(float(m.running_var.double().mean()))
            for m in net.modules()
            if isinstance(m, torch.nn.BatchNorm2d)
        )
        f2 = proxies._forward_pre_gap(net, x2)
    assert f1.shape[2] == 2  # 48 / 32 -> pre-GAP map is 2x2, not pooled
    want = math.log(float((f1.double() - f2.double()).abs().sum(dim=(1, 2, 3)).mean())) + log_bn
    assert got == pytest.approx(want, rel=1e-4, abs=1e-3)


def test_naswot_kernel_is_hamming() -> None:
    """log|K| with K = N_A - Hamming(c_i, c_j) recomputed from the codes directly."""
    c = {"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": 32}
    net = proxies.build_subnet(c, seed=2)
    x = proxies._gaussian((5, 3, 32, 32), 2)
    codes = []
    hooks = [
        m.register_forward_pre_hook(lambda mod, inp: codes.append((inp[0].reshape(5, -1) > 0).double()))
        for m in proxies._activation_modules(net)
    ]
    net.train()
    with torch.no_grad():
        net(x)
    for h in hooks:
        h.remove()
    cat = torch.cat(codes, dim=1)
    ham = torch.cdist(cat, cat, p=1)
    k = cat.shape[1] - ham
    want = float(torch.linalg.slogdet(k)[1])
    assert proxies.compute_proxy("naswot", c, batch_size=5, seed=2) == pytest.approx(want, rel=1e-9)


def test_inherited_weights_are_used() -> None:
    from ofa.imagenet_classification.elastic_nn.networks import OFAMobileNetV3

    torch.manual_seed(0)
    sn = OFAMobileNetV3(
        n_classes=10, width_mult=1.0, ks_list=[3, 5, 7], expand_ratio_list=[3, 4, 6], depth_list=[2, 3, 4]
    )
    c = _configs("mobilenetv3", 1)[0]
    a = proxies.compute_proxy("gradnorm", c, batch_size=4, n_classes=10, supernet=sn)
    with torch.no_grad():
        for p in sn.parameters():
            p.mul_(0.5)
    b = proxies.compute_proxy("gradnorm", c, batch_size=4, n_classes=10, supernet=sn)
    assert a != b  # the score reads the supernet's weights, not a fresh init


def test_real_data_batch() -> None:
    c = _configs("mobilenetv3", 1)[0]
    g = torch.Generator().manual_seed(0)
    images, labels = torch.rand(6, 3, 32, 32, generator=g), torch.randint(0, 10, (6,), generator=g)
    v = proxies.compute_proxy("naswot", c, data=(images, labels), n_classes=10)
    assert math.isfinite(v)
    assert v != proxies.compute_proxy("naswot", c, batch_size=6, n_classes=10)


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"name": "nope"}, "name"),
        ({"batch_size": 1}, "batch_size"),
        ({"n_classes": 1}, "n_classes"),
        ({"width_mult": 0.7}, "width_mult"),
        ({"resolution": 8}, "resolution"),
    ],
)
def test_bad_input(kw: dict, field: str) -> None:
    c = _configs("mobilenetv3", 1)[0]
    name = kw.pop("name", "zen")
    with pytest.raises(ValueError, match=field):
        proxies.compute_proxy(name, c, **kw)


def test_cost_baselines() -> None:
    from supernets.cost import cost_metrics

    cs = _configs("mobilenetv3", 3)
    m = cost_metrics(cs, width_mult=1.0, n_classes=1000)
    np.testing.assert_array_equal(proxies.compute_proxies("macs", cs), m["macs"])
    assert proxies.compute_proxy("params", cs[0]) == m["params"][0]


def test_warm_start_takes_the_top_of_the_pool() -> None:
    sp = get_search_space("mobilenetv3", lr=R, ur=R + 8)
    picked = proxies.warm_start(sp, 3, name="synflow", pool_factor=2, rng=np.random.default_rng(0), batch_size=2)
    pool = sp.sample(6, np.random.default_rng(0))
    scores = sorted((proxies.compute_proxy("synflow", c, batch_size=2) for c in pool), reverse=True)
    assert [proxies.compute_proxy("synflow", c, batch_size=2) for c in picked] == scores[:3]
    with pytest.raises(ValueError, match="pool_factor"):
        proxies.warm_start(sp, 3, pool_factor=0, rng=np.random.default_rng(0))
