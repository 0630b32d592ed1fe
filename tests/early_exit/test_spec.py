"""The job spec's early_exit options build the right eemobilenetv3 space; bad options name the field."""

from __future__ import annotations

import pytest

from search.spec import load_spec
from supernets import get_search_space


def test_spec_builds_the_early_exit_space() -> None:
    spec = load_spec(
        {
            "search_space": "eemobilenetv3",
            "resolution": [32, 32],
            "objectives": ["top1_err", "avg_macs"],
            "early_exit": {"exit_mode": "b", "loss_weights": [0.5, 0.5, 1, 1, 1]},
            "constraints": {"avg_macs": 2.0e6},
        }
    )
    ss = get_search_space(spec.search_space, **spec.search_space_kwargs())
    assert ss.describe()["exit_mode"] == "b" and ss.n_var == 49
    plain = load_spec({"search_space": "eemobilenetv3"})  # defaults: EDANAS thresholds
    ss2 = get_search_space(plain.search_space, **plain.search_space_kwargs())
    assert ss2.describe()["t_values"] == [0.1, 0.2, 1.0] and ss2.n_var == 50


@pytest.mark.parametrize(
    "spec,msg",
    [
        ({"search_space": "eemobilenetv3", "early_exit": {"exit_mode": "x"}}, "early_exit.exit_mode"),
        ({"search_space": "eemobilenetv3", "early_exit": {"t_values": [0.1, 2]}}, r"early_exit.t_values.1: Input should be less than or equal to 1"),  # noqa: E501
        ({"search_space": "eemobilenetv3", "early_exit": {"loss_weights": [1, 1]}}, "early_exit.loss_weights"),
        ({"search_space": "eemobilenetv3", "early_exit": {"head": 3}}, "early_exit.head"),
        ({"early_exit": {}}, "early_exit: early-exit options need search_space eemobilenetv3"),
        ({"objectives": ["top1_err", "avg_macs"]}, "avg_macs needs the early-exit space"),
    ],
)
def test_bad_early_exit_specs(spec: dict, msg: str) -> None:
    with pytest.raises(ValueError, match=msg):
        load_spec(spec)
