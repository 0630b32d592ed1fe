"""The bilinear model's contributions reproduce its predictions exactly and print as a table."""

from __future__ import annotations

import numpy as np
import pytest

from acc_predictor import format_contributions, get_predictor
from acc_predictor.bilinear import bilinear_features
from supernets import codec, get_search_space


@pytest.fixture(scope="module")
def fitted():
    space = get_search_space("mobilenetv3", lr=192, ur=256)
    rng = np.random.default_rng(3)
    configs = space.sample(120, rng)
    y = np.array([88 + 0.4 * sum(c["d"]) + 0.1 * np.mean(c["ks"]) + c["r"] / 200 for c in configs])
    y += rng.normal(0, 0.05, len(y))
    return get_predictor("bilinear", search_space=space).fit(configs, y), space, configs


def _from_contributions(c: dict, config: dict, space) -> float:
    acc = c["base"]
    for s, d in enumerate(config["d"]):
        acc += c["depth"][s, codec.DEPTHS.index(d)]
        for j in range(d):
            slot = s * codec.MAX_DEPTH + j
            acc += c["op"][slot, c["op_labels"].index(f"k{config['ks'][slot]}e{config['e'][slot]}")]
    acc += c["extra"]["r"][str(config["r"])]
    return acc


def test_contributions_reproduce_predictions(fitted):
    model, space, _ = fitted
    c = model.contributions_
    others = space.sample(50, np.random.default_rng(9))
    pred = model.predict(others)
    recon = [_from_contributions(c, space.validate(cfg), space) for cfg in others]
    np.testing.assert_allclose(recon, pred, atol=1e-8)
    smallest = {"d": [2] * 5, "ks": [3] * 20, "e": [3] * 20, "r": 192}
    assert model.predict([smallest])[0] == pytest.approx(c["base"])
    # reference choices are exactly zero
    assert np.all(c["depth"][:, 0] == 0) and np.all(c["op"][:, 0] == 0)


def test_contributions_learn_the_planted_effect(fitted):
    model, _, _ = fitted
    c = model.contributions_
    # the target adds 0.4 per layer: depth 4 beats depth 2 in every stage
    assert np.all(c["depth"][:, 2] > 0.3)


def test_table_prints(fitted):
    model, _, _ = fitted
    table = format_contributions(model)
    assert table == model.contributions_table()
    assert "depth gain over 2 layers" in table and "k7e6" in table and "5.4" in table
    assert "r: gain over its first value" in table
    assert f"{model.contributions_['base']:.3f}" in table


def test_features_mask_inactive_layers():
    space = get_search_space("mobilenetv3", lr=224, ur=224)
    g = space.encode({"d": [2, 2, 2, 2, 2], "ks": [7] * 20, "e": [6] * 20, "r": 224})
    Z = bilinear_features(g[None, :])
    assert Z.shape == (1, 15 + 180)
    assert Z[0, 15:].sum() == 10  # 10 active layers, one operator each


def test_contributions_unavailable_for_generic_layout():
    X = np.random.default_rng(0).integers(0, 4, size=(30, 6))
    model = get_predictor("bilinear").fit(X, X.sum(1).astype(float))
    assert model.contributions_ is None
    with pytest.raises(ValueError, match="MobileNetV3"):
        format_contributions(model)
