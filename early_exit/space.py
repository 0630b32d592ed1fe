"""The early-exit MobileNetV3 search space ``eemobilenetv3`` (EDANAS thresholds / NACHOS exit presence).

Config
------
The MobileNetV3 config of :mod:`supernets.codec` plus one exit field, after stages 1-4 (stage 5 ends in the
backbone's own final classifier, which is always present):

- ``exit_mode="t"`` (EDANAS): ``"t": [4 floats]`` taken from ``t_values`` (default ``(0.1, 0.2, 1.0)``);
  ``t[i]`` is the confidence threshold of the exit after stage ``i+1`` and ``1.0`` means *no exit there*
  (the head is not built and costs nothing). All four at 1.0 is allowed: the plain single-exit backbone.
  ``t`` is a *normalised* max-softmax confidence (0 = chance, 1 = certainty): an input leaves when its
  max-softmax probability reaches ``1/K + t (1 - 1/K)`` (:func:`early_exit.metrics.confidence_threshold`),
  so ``t = 0.1`` is a real test for 10 classes, not ``max_p >= 0.1`` (always true).
- ``exit_mode="b"`` (NACHOS): ``"b": [4 ints]`` in {0, 1}; 1 = an exit after that stage. "At least one exit"
  is read as *at least one early exit* (``sum(b) >= 1``): the final classifier is always there, so the
  constraint only means something for the intermediate exits, and it keeps every b-mode network a genuine
  early-exit network. Thresholds of b-mode exits are calibrated after training
  (:func:`early_exit.metrics.calibrate_thresholds`).

Genome
------
The MobileNetV3 genome (45 genes, then the resolution gene only when ``lr != ur``) followed by 4 exit genes:
the index of ``t[i]`` in ``t_values`` (t-mode) or ``b[i]`` itself (b-mode). Exit genes are located from
``n_backbone_var``, so decoding is right with and without the resolution gene (CNAS reads the exit genes at a
fixed offset that assumes the resolution gene is there). In b-mode the all-zero exit genes are outside the
feasible set; :meth:`EEMobileNetV3Space.decode` repairs them to ``b = [0, 0, 0, 1]`` (the cheapest
early exit to keep, the one closest to the final classifier) so every genome NSGA-II produces decodes, and
:meth:`sample` never draws them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from supernets import codec
from supernets.codec import Config
from supernets.errors import InputError
from supernets.spaces import MobileNetV3Space, register_search_space

N_EXITS = 4  # possible early exits: after stages 1..4
EXIT_MODES: tuple[str, ...] = ("t", "b")
DEFAULT_T_VALUES: tuple[float, ...] = (0.1, 0.2, 1.0)
NO_EXIT = 1.0
_BACKBONE_FIELDS = ("ks", "e", "d", "r")


def _check_t_values(t_values: Any) -> tuple[float, ...]:
    if not isinstance(t_values, (list, tuple, np.ndarray)) or len(t_values) < 1:
        raise InputError("t_values", f"expected a non-empty list of thresholds in (0, 1], got {t_values!r}")
    out: list[float] = []
    for i, v in enumerate(t_values):
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
            raise InputError(f"t_values[{i}]", f"expected a number in (0, 1], got {v!r}")
        fv = float(v)
        if not (0.0 < fv <= 1.0) or math.isnan(fv):
            raise InputError(f"t_values[{i}]", f"{fv} is outside (0, 1]")
        if any(math.isclose(fv, o) for o in out):
            raise InputError(f"t_values[{i}]", f"{fv} is repeated")
        out.append(fv)
    return tuple(out)


@register_search_space("eemobilenetv3")
class EEMobileNetV3Space(MobileNetV3Space):
    """MobileNetV3 space with exit genes after stages 1-4 (``exit_mode`` ``"t"``: thresholds, ``"b"``: presence)."""

    name = "eemobilenetv3"

    def __init__(
        self,
        lr: int = 192,
        ur: int = 256,
        width_mult: float = 1.0,
        exit_mode: str = "t",
        t_values: Sequence[float] = DEFAULT_T_VALUES,
    ) -> None:
        super().__init__(lr=lr, ur=ur, width_mult=width_mult)
        if exit_mode not in EXIT_MODES:
            raise InputError("exit_mode", f"expected one of {list(EXIT_MODES)}, got {exit_mode!r}")
        self.exit_mode = exit_mode
        self.t_values = _check_t_values(t_values)
        self.exit_field = exit_mode
        n_choice = len(self.t_values) if exit_mode == "t" else 2
        self.xl = np.concatenate([self.xl, np.zeros(N_EXITS, dtype=np.int64)])
        self.xu = np.concatenate([self.xu, np.full(N_EXITS, n_choice - 1, dtype=np.int64)])
        self.n_var = len(self.xu)

    # -- configs ---------------------------------------------------------------------------------------------
    def _allowed_text(self) -> str:
        if self.exit_mode == "t":
            return f"{N_EXITS} thresholds from {list(self.t_values)} (1.0 = no exit)"
        return f"{N_EXITS} integers from [0, 1] with at least one 1"

    def _validate_exits(self, config: Mapping[str, Any]) -> list[Any]:
        f = self.exit_field
        other = "b" if f == "t" else "t"
        if other in config:
            raise InputError(
                f"{other}",
                f"not a field of {self.name} with exit_mode={self.exit_mode!r}"
                f" (use {f}: {self._allowed_text()})"
            )
        if f not in config:
            raise InputError(f"{f}", f"missing ({self.name} needs {f}: {self._allowed_text()})")
        v = config[f]
        if not isinstance(v, (list, tuple, np.ndarray)):
            raise InputError(f"{f}", f"expected {self._allowed_text()}, got {type(v).__name__}")
        if len(v) != N_EXITS:
            raise InputError(f"{f}", f"expected {self._allowed_text()}, got {len(v)} values")
        out: list[Any] = []
        for i, x in enumerate(v):
            if isinstance(x, bool) or not isinstance(x, (int, float, np.integer, np.floating)):
                raise InputError(f"{f}[{i}]", f"expected a number, got {x!r}; {f} takes {self._allowed_text()}")
            if self.exit_mode == "t":
                match = [t for t in self.t_values if math.isclose(float(x), t, rel_tol=0, abs_tol=1e-6)]
                if not match:
                    raise InputError(f"{f}[{i}]", f"{x!r} is not one of {list(self.t_values)}")
                out.append(match[0])
            else:
                if float(x) not in (0.0, 1.0):
                    raise InputError(f"{f}[{i}]", f"{x!r} is not one of [0, 1]")
                out.append(int(x))
        if self.exit_mode == "b" and sum(out) < 1:
            raise InputError("b", "at least one early exit must be present (sum(b) >= 1; the final exit is implicit)")
        return out

    def validate(self, config: Mapping[str, Any]) -> Config:
        """Canonical config: the backbone's canonical form plus the canonical exit field."""
        if not isinstance(config, Mapping):
            raise InputError("config", f"expected a mapping with keys ks, e, d, r, {self.exit_field}")
        allowed = set(_BACKBONE_FIELDS) | {"t", "b"}
        extra = set(config) - allowed
        if extra:
            raise InputError(
                f"{sorted(extra)[0]}",
                f"unknown field for {self.name} (fields: ks, e, d, r, {self.exit_field})"
            )
        exits = self._validate_exits(config)
        out = codec.normalize_backbone({k: config[k] for k in _BACKBONE_FIELDS if k in config}, self.resolutions)
        out[self.exit_field] = exits
        return out

    def backbone(self, config: Mapping[str, Any]) -> Config:
        """The backbone part (ks, e, d, r) of a config, canonical."""
        c = self.validate(config)
        return {k: c[k] for k in _BACKBONE_FIELDS}

    def exits_present(self, config: Mapping[str, Any]) -> list[bool]:
        """Which of the 4 early exits (after stages 1..4) exist in ``config``."""
        c = self.validate(config)
        if self.exit_mode == "t":
            return [not math.isclose(t, NO_EXIT) for t in c["t"]]
        return [bool(b) for b in c["b"]]

    def n_exits(self, config: Mapping[str, Any]) -> int:
        """Number of early exits, the final classifier not counted (CNAS's ``post_search.py --n_exits``)."""
        return sum(self.exits_present(config))

    # -- genome ----------------------------------------------------------------------------------------------
    def encode(self, config: Mapping[str, Any]) -> np.ndarray:
        c = self.validate(config)
        x = codec.encode_backbone(c, self.resolutions)
        if self.exit_mode == "t":
            x += [self.t_values.index(t) for t in c["t"]]
        else:
            x += list(c["b"])
        return np.array(x, dtype=np.int64)

    def decode(self, x: Sequence[int] | np.ndarray) -> Config:
        if len(x) != self.n_var:
            raise InputError("genome", f"expected {self.n_var} genes for {self.name}, got {len(x)}")
        genes = [int(g) for g in x]
        config = codec.decode_backbone(genes[: self.n_backbone_var], self.resolutions)
        ex = genes[self.n_backbone_var :]
        for i, g in enumerate(ex):
            hi = int(self.xu[self.n_backbone_var + i])
            if not 0 <= g <= hi:
                raise InputError(f"genome[{self.n_backbone_var + i}]", f"index {g} outside 0..{hi}")
        if self.exit_mode == "t":
            config["t"] = [self.t_values[g] for g in ex]
        else:
            config["b"] = ex if sum(ex) else [0] * (N_EXITS - 1) + [1]
        return config

    def sample(self, n: int, rng: np.random.Generator) -> list[Config]:
        """``n`` configs drawn uniformly per gene (b-mode: uniformly over the 15 feasible exit patterns)."""
        x = rng.integers(self.xl, self.xu + 1, size=(n, self.n_var))
        if self.exit_mode == "b":
            lo = self.n_backbone_var
            for i in range(n):
                while not x[i, lo:].any():
                    x[i, lo:] = rng.integers(0, 2, size=N_EXITS)
        return [self.decode(row) for row in x]

    def to_block_strings(self, config: Mapping[str, Any]) -> list[list[str]]:
        """Block strings of the backbone (exits are not part of the timm grammar)."""
        return codec.to_block_strings(self.backbone(config), self.width_mult)

    def from_block_strings(self, blocks: Any, r: int) -> Config:
        """Backbone config of block strings (no exit field: add ``t``/``b`` before validating)."""
        config, width = codec.from_block_strings(blocks, r)
        if width != self.width_mult:
            raise InputError("blocks", f"channels are those of width {width}, this space has {self.width_mult}")
        return codec.normalize_backbone(config, self.resolutions)

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d.update({"exit_mode": self.exit_mode, "t_values": list(self.t_values)})
        return d
