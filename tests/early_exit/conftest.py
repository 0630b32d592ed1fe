"""Helpers shared by the early-exit tests."""

from __future__ import annotations

from typing import Any

from early_exit.space import EEMobileNetV3Space
from supernets import get_search_space


def ee_space(**kw: Any) -> EEMobileNetV3Space:
    """The registered ``eemobilenetv3`` space (typed), built through the registry as users build it."""
    ss = get_search_space("eemobilenetv3", **kw)
    assert isinstance(ss, EEMobileNetV3Space)
    return ss
