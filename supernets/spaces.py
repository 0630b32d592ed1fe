"""Search-space registry: ``get_search_space(name, **kw)`` and the MobileNetV3 space.

A search space validates and canonicalises configs, maps them to and from integer genomes (the NSGA-II
decision vector, with bounds ``xl``/``xu``), samples them with a seeded generator and gives a dedup key.
Other packages register their spaces (``early_exit`` registers ``eemobilenetv3``) with
:func:`register_search_space`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from supernets import codec
from supernets.codec import Config
from supernets.errors import InputError

_REGISTRY: dict[str, Callable[..., SearchSpace]] = {}


def register_search_space(name: str) -> Callable[[Callable[..., SearchSpace]], Callable[..., SearchSpace]]:
    """Class decorator registering a search-space factory under ``name``."""

    def deco(factory: Callable[..., SearchSpace]) -> Callable[..., SearchSpace]:
        _REGISTRY[name] = factory
        return factory

    return deco


def search_space_names() -> list[str]:
    """Names of the registered search spaces (importing ``early_exit`` adds its own)."""
    return sorted(_REGISTRY)


def get_search_space(name: str, **kw: Any) -> SearchSpace:
    """Build the registered search space ``name`` (e.g. ``mobilenetv3``) with its keyword options."""
    if name not in _REGISTRY:
        hint = " (eemobilenetv3 is registered by importing early_exit)" if name == "eemobilenetv3" else ""
        raise InputError("search_space", f"{name!r} is not one of {sorted(_REGISTRY)}{hint}")
    return _REGISTRY[name](**kw)


class SearchSpace:
    """Interface of a search space; see :class:`MobileNetV3Space` for the reference implementation."""

    name: str
    n_var: int
    xl: np.ndarray
    xu: np.ndarray

    def validate(self, config: Mapping[str, Any]) -> Config:
        """Canonical form of ``config``; ``ValueError`` naming the field on malformed input."""
        raise NotImplementedError

    def encode(self, config: Mapping[str, Any]) -> np.ndarray:
        """Integer genome of a config."""
        raise NotImplementedError

    def decode(self, x: Sequence[int]) -> Config:
        """Canonical config of a genome."""
        raise NotImplementedError

    def sample(self, n: int, rng: np.random.Generator) -> list[Config]:
        """``n`` configs drawn uniformly per gene with ``rng`` (may repeat; dedup with :meth:`key`)."""
        x = rng.integers(self.xl, self.xu + 1, size=(n, self.n_var))
        return [self.decode(row) for row in x]

    def key(self, config: Mapping[str, Any]) -> str:
        """Dedup key: equal exactly for configs that build the same network."""
        return codec.config_key(self.validate(config))

    def encode_many(self, configs: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Genomes of many configs as an (N, n_var) int array."""
        return np.array([self.encode(c) for c in configs], dtype=np.int64).reshape(len(configs), self.n_var)

    def decode_many(self, x: np.ndarray) -> list[Config]:
        """Configs of many genomes."""
        return [self.decode(row) for row in np.asarray(x)]

    def describe(self) -> dict[str, Any]:
        """JSON-able parameters that rebuild this space with :func:`get_search_space`."""
        raise NotImplementedError


@register_search_space("mobilenetv3")
class MobileNetV3Space(SearchSpace):
    """Once-for-all's MobileNetV3 space: 5 stages, depth {2,3,4}, kernel {3,5,7}, expand {3,4,6}, r lr..ur/4."""

    name = "mobilenetv3"

    def __init__(self, lr: int = 192, ur: int = 256, width_mult: float = 1.0) -> None:
        self.resolutions = codec.resolution_grid(lr, ur)
        self.lr, self.ur = int(lr), int(ur)
        self.width_mult = codec.check_width(width_mult)
        self.n_backbone_var = codec.N_BACKBONE_GENES + int(len(self.resolutions) > 1)
        stage_ub = [len(codec.DEPTHS) - 1] + [len(codec.KERNELS) - 1] * 4 + [len(codec.EXPANDS) - 1] * 4
        ub = stage_ub * codec.N_STAGES + ([len(self.resolutions) - 1] if len(self.resolutions) > 1 else [])
        self.xl = np.zeros(len(ub), dtype=np.int64)
        self.xu = np.array(ub, dtype=np.int64)
        self.n_var = len(ub)

    def validate(self, config: Mapping[str, Any]) -> Config:
        if isinstance(config, Mapping):
            extra = set(config) - {"ks", "e", "d", "r"}
            if extra:
                raise InputError(f"{sorted(extra)[0]}", f"unknown field for {self.name} (fields: ks, e, d, r)")
        return codec.normalize_backbone(config, self.resolutions)

    def encode(self, config: Mapping[str, Any]) -> np.ndarray:
        return np.array(codec.encode_backbone(self.validate(config), self.resolutions), dtype=np.int64)

    def decode(self, x: Sequence[int]) -> Config:
        if len(x) != self.n_var:
            raise InputError("genome", f"expected {self.n_var} genes for {self.name}, got {len(x)}")
        return codec.decode_backbone(x, self.resolutions)

    def to_block_strings(self, config: Mapping[str, Any]) -> list[list[str]]:
        """timm/HardCoRe-style block strings of a config (see :mod:`supernets.codec`)."""
        return codec.to_block_strings(self.validate(config), self.width_mult)

    def from_block_strings(self, blocks: Any, r: int) -> Config:
        """Config of block strings at resolution ``r``; the strings' width must be this space's."""
        config, width = codec.from_block_strings(blocks, r)
        if width != self.width_mult:
            raise InputError("blocks", f"channels are those of width {width}, this space has {self.width_mult}")
        return self.validate(config)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "lr": self.lr, "ur": self.ur, "width_mult": self.width_mult}
