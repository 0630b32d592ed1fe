"""The job spec's ``robustness`` section: defaults and errors naming the field."""

from __future__ import annotations

import pytest

from robustness.names import CORRUPTIONS
from search.spec import load_spec


def test_defaults() -> None:
    spec = load_spec({"objectives": ["top1_err", "top1_robust"]})
    r = spec.robustness
    assert (r.alpha, r.sigma, r.n_draws, r.seed, r.measure, r.corruptions) == (0.5, 0.05, 20, None, False, None)
    c = load_spec({"robustness": {"corruptions": {}}}).robustness.corruptions
    assert c is not None and c.types == list(CORRUPTIONS) and c.severities == [1, 2, 3, 4, 5]


@pytest.mark.parametrize(
    "section, field",
    [
        ({"alpha": 1.5}, "robustness.alpha"),
        ({"sigma": -1}, "robustness.sigma"),
        ({"n_draws": 0}, "robustness.n_draws"),
        ({"sigmaa": 0.1}, "robustness.sigmaa"),
        ({"corruptions": {"types": ["fogg"]}}, "robustness.corruptions.types"),
        ({"corruptions": {"severities": [0]}}, "robustness.corruptions.severities"),
        ({"corruptions": {"preset": "mnist"}}, "robustness.corruptions.preset"),
        ({"corruptions": {"baseline": {"fog": {1: 101}}}}, "robustness.corruptions.baseline"),
    ],
)
def test_bad_values_name_the_field(section: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        load_spec({"robustness": section})
