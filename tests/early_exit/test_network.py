"""Early-exit networks: analytic per-exit MACs vs forward hooks and ofa's counter, policy, joint training."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from ofa.imagenet_classification.elastic_nn.networks import OFAMobileNetV3
from ofa.utils import count_net_flops

from early_exit import metrics
from early_exit.network import (
    backbone_macs,
    build_early_exit_net,
    count_exit_macs_with_hooks,
    exit_macs,
    joint_loss,
    predict_exits,
    train_joint,
)
from tests.early_exit.conftest import ee_space

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def supernets() -> dict[float, OFAMobileNetV3]:
    torch.manual_seed(0)
    return {
        w: OFAMobileNetV3(
            n_classes=10, width_mult=w, ks_list=[3, 5, 7], expand_ratio_list=[3, 4, 6], depth_list=[2, 3, 4]
        )
        for w in (1.0, 1.2)
    }


@pytest.mark.parametrize("width", [1.0, 1.2])
@pytest.mark.parametrize("r,mode", [(32, "b"), (36, "t"), (64, "b")])
def test_exit_macs_match_hooks_and_ofa_counter(supernets: dict, width: float, r: int, mode: str) -> None:
    ss = ee_space(lr=r, ur=r, width_mult=width, exit_mode=mode)
    for config in ss.sample(3, np.random.default_rng(r)):
        net = build_early_exit_net(config, n_classes=10, width_mult=width, supernet=supernets[width])
        analytic = exit_macs(config, n_classes=10, width_mult=width)
        assert len(analytic) == ss.n_exits(config) + 1 == net.n_exits + 1 == net.n_outputs
        assert analytic == count_exit_macs_with_hooks(net, r)
        assert analytic == sorted(analytic)  # a later exit costs more
        # the final exit is the plain subnet, as once-for-all counts it
        supernets[width].set_active_subnet(ks=config["ks"], e=config["e"], d=config["d"])
        sub = supernets[width].get_active_subnet(preserve_weight=True)
        assert analytic[-1] == backbone_macs(config, n_classes=10, width_mult=width)
        assert analytic[-1] == int(count_net_flops(sub, (1, 3, r, r)))


def test_all_exits_present_and_head_width(supernets: dict) -> None:
    ss = ee_space(lr=32, ur=32, exit_mode="b")
    config = ss.backbone(ss.sample(1, np.random.default_rng(1))[0]) | {"b": [1, 1, 1, 1]}
    net = build_early_exit_net(config, n_classes=7, supernet=supernets[1.0], head_width=32)
    got = count_exit_macs_with_hooks(net, 32)
    assert got == exit_macs(config, n_classes=7, head_width=32) and len(got) == 5
    # backbone weights are inherited from the supernet (same first conv weights)
    first: Any = net.first_conv
    assert torch.equal(first.conv.weight, supernets[1.0].first_conv.conv.weight)


def test_weights_are_inherited_so_outputs_match_the_subnet(supernets: dict) -> None:
    ss = ee_space(lr=32, ur=32, exit_mode="t")
    config = ss.sample(1, np.random.default_rng(2))[0]
    net = build_early_exit_net(config, n_classes=10, supernet=supernets[1.0]).eval()
    supernets[1.0].set_active_subnet(ks=config["ks"], e=config["e"], d=config["d"])
    sub = supernets[1.0].get_active_subnet(preserve_weight=True).eval()
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(net(x)[-1], sub(x), atol=1e-5)


def test_deployed_inference_matches_offline_policy(supernets: dict) -> None:
    ss = ee_space(lr=32, ur=32, exit_mode="b")
    config = ss.backbone(ss.sample(1, np.random.default_rng(4))[0]) | {"b": [1, 0, 1, 1]}
    torch.manual_seed(0)
    net = build_early_exit_net(config, n_classes=10, supernet=supernets[1.0])
    x = torch.randn(64, 3, 32, 32)
    for m in net.modules():  # re-estimate BN statistics so that outputs differ between inputs
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
    with torch.no_grad():
        net.train()(x)
    net.eval()
    probs, _ = predict_exits(net, [(x, torch.zeros(64, dtype=torch.long))])
    conf = probs.max(axis=2)
    # thresholds at the exits' median confidences: some samples leave at each exit
    t0 = float(np.median(conf[0]))
    t2 = float(np.median(conf[2][conf[0] < t0]))
    thr = [t0, 1.0, t2]
    where, pred = metrics.apply_policy(probs, thr)
    p2, w2 = net.forward_early_exit(x, thr)
    assert np.array_equal(w2.numpy(), where) and np.array_equal(p2.numpy(), pred)
    assert set(where.tolist()) == {0, 2, 3}
    with pytest.raises(ValueError, match="thresholds: expected 3 values"):
        net.forward_early_exit(x, [0.5])


def test_all_thresholds_one_gives_backbone_macs(supernets: dict) -> None:
    ss = ee_space(lr=32, ur=32, exit_mode="t")
    config = ss.backbone(ss.sample(1, np.random.default_rng(5))[0]) | {"t": [1.0, 1.0, 1.0, 1.0]}
    net = build_early_exit_net(config, n_classes=10, supernet=supernets[1.0])
    assert net.n_exits == 0 and net.n_outputs == 1 and len(net.heads) == 0
    x, y = torch.randn(32, 3, 32, 32), torch.randint(0, 10, (32,))
    probs, labels = predict_exits(net, [(x, y)])
    m = metrics.evaluate_policy(probs, labels, [], exit_macs(config, n_classes=10))
    assert m["avg_macs"] == backbone_macs(config, n_classes=10) and m["exit_util"] == [1.0]
    # and a network with exits whose thresholds are all 1.0 behaves as the backbone alone
    cb = dict(config, t=[0.1, 0.2, 0.1, 0.2])
    netb = build_early_exit_net(cb, n_classes=10, supernet=supernets[1.0])
    probs, labels = predict_exits(netb, [(x, y)])
    mb = metrics.evaluate_policy(probs, labels, [1.0] * 4, exit_macs(cb, n_classes=10))
    assert mb["avg_macs"] == backbone_macs(config, n_classes=10)
    assert mb["exit_util"] == [0.0, 0.0, 0.0, 0.0, 1.0] and mb["top1"] == mb["exit_acc"][-1]


def test_joint_loss_is_the_weighted_sum() -> None:
    torch.manual_seed(0)
    logits = [torch.randn(8, 5) for _ in range(3)]
    y = torch.randint(0, 5, (8,))
    ce = [torch.nn.functional.cross_entropy(lo, y) for lo in logits]
    assert torch.isclose(joint_loss(logits, y, [0.2, 0.3, 1.0]), 0.2 * ce[0] + 0.3 * ce[1] + ce[2])
    assert torch.isclose(joint_loss(logits, y), ce[0] + ce[1] + ce[2])
    with pytest.raises(ValueError, match="loss_weights: expected 3 weights"):
        joint_loss(logits, y, [1.0])


def test_joint_training_learns_every_exit(supernets: dict) -> None:
    from sklearn.datasets import load_digits

    d = load_digits()  # bundled with scikit-learn: 1797 real 8x8 handwritten digits
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1).repeat(1, 3, 1, 1) / 16.0
    x = (torch.nn.functional.interpolate(x, size=32, mode="nearest") - 0.3) / 0.4
    y = torch.tensor(d.target)
    batches = [(x[i : i + 50], y[i : i + 50]) for i in range(0, 1000, 50)]
    config = {"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": 32, "b": [1, 0, 1, 0]}
    torch.manual_seed(0)
    net = build_early_exit_net(config, n_classes=10, supernet=supernets[1.0])
    hist = train_joint(net, batches, epochs=3, lr=0.1, loss_weights=[0.5, 0.5, 1.0])
    assert hist[-1] < 0.5 * hist[0]
    probs, labels = predict_exits(net, [(x[1500:], y[1500:])])
    m = metrics.evaluate_policy(probs, labels, [1.0, 1.0], exit_macs(config, n_classes=10))
    assert min(m["exit_acc"]) > 25.0 and m["exit_acc"][-1] > 60.0  # chance is 10 %
    # a confident early exit answers part of the inputs and saves MACs at a small accuracy cost
    cal = metrics.calibrate_thresholds(probs, labels, m["exit_macs"], min_top1=m["top1"] - 2.0)
    assert cal["feasible"] and cal["avg_macs"] <= m["avg_macs"]


@pytest.mark.parametrize("width", [1.0, 1.2])
def test_final_exit_macs_equal_the_cost_model(width: float) -> None:
    from supernets.cost import cost_metrics

    for r in (32, 36, 224):
        ss = ee_space(lr=r, ur=r, width_mult=width, exit_mode="t")
        configs = ss.sample(20, np.random.default_rng(r))
        want = cost_metrics([ss.backbone(c) for c in configs], width_mult=width, n_classes=10)["macs"]
        got = [exit_macs(c, n_classes=10, width_mult=width)[-1] for c in configs]
        assert got == [int(v) for v in want]
