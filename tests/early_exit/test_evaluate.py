"""evaluate_early_exit end to end on real (tiny) data: t-mode thresholds and b-mode NACHOS calibration."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from early_exit.evaluate import EarlyExitSettings, evaluate_early_exit
from early_exit.metrics import avg_macs
from early_exit.network import backbone_macs, exit_macs

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def digits() -> tuple[list, list]:
    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1).repeat(1, 3, 1, 1) / 16.0
    x = (torch.nn.functional.interpolate(x, size=32, mode="nearest") - 0.3) / 0.4
    y = torch.tensor(d.target)
    train = [(x[i : i + 50], y[i : i + 50]) for i in range(0, 300, 50)]
    valid = [(x[1500:1700], y[1500:1700])]
    return train, valid


BACKBONE = {"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": 32}


def test_t_mode_uses_the_config_thresholds(digits: tuple[list, list]) -> None:
    train, valid = digits
    config = BACKBONE | {"t": [0.2, 1.0, 0.1, 1.0]}
    torch.manual_seed(0)
    m = evaluate_early_exit(config, train, valid, EarlyExitSettings(n_classes=10, epochs=1, lr=0.1))
    # the normalised t genes 0.2 and 0.1 as max-softmax thresholds for 10 classes: 1/10 + t * 9/10
    assert m["thresholds"] == pytest.approx([0.28, 0.19]) and m["n_exits"] == 2
    assert m["exit_macs"] == exit_macs(config, n_classes=10)
    assert m["macs"] == backbone_macs(config, n_classes=10)
    assert m["avg_macs"] == pytest.approx(avg_macs(m["exit_util"], m["exit_macs"]))
    assert sum(m["exit_util"]) == pytest.approx(1.0) and 0 <= m["top1"] <= 100
    assert np.isfinite(m["train_loss"])
    assert m["exit_util_s1"] == m["exit_util"][0] and m["exit_macs_s3"] == m["exit_macs"][1]
    assert m["threshold_s3"] == pytest.approx(0.19) and m["exit_util_final"] == m["exit_util"][-1]
    assert "exit_util_s2" not in m


def test_b_mode_calibrates_under_a_budget(digits: tuple[list, list]) -> None:
    train, valid = digits
    config = BACKBONE | {"b": [0, 1, 1, 0]}
    macs = exit_macs(config, n_classes=10)
    budget = 0.5 * (macs[1] + macs[2])
    torch.manual_seed(0)
    m = evaluate_early_exit(
        config, train, valid, EarlyExitSettings(n_classes=10, epochs=1, lr=0.1, max_avg_macs=budget, max_steps=4)
    )
    assert len(m["thresholds"]) == 2 and m["feasible"] is (m["avg_macs"] <= budget)
    assert m["avg_macs"] == pytest.approx(avg_macs(m["exit_util"], macs))
    # no training at all still measures (random heads), and without a budget the thresholds keep accuracy
    m0 = evaluate_early_exit(config, train, valid, EarlyExitSettings(n_classes=10, epochs=0))
    assert m0["train_loss"] is None and m0["avg_macs"] <= m0["macs"]


def test_bad_settings() -> None:
    with pytest.raises(ValueError, match="loss_weights: expected 5 weights"):
        EarlyExitSettings(n_classes=10, loss_weights=[1.0, 1.0])
    with pytest.raises(ValueError, match="loss_weights: expected non-negative"):
        EarlyExitSettings(n_classes=10, loss_weights=[1.0, -1.0, 1.0, 1.0, 1.0])
