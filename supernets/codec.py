"""The one codec for MobileNetV3 architecture configs: validation, canonical form, genome and block strings.

Config (the one format everywhere)
----------------------------------
``{"ks": [20 ints], "e": [20 ints], "d": [5 ints], "r": int}``: once-for-all's per-slot form, 5 stages x 4
slots. Slot ``4*s + j`` is layer ``j`` of stage ``s``; slots with ``j >= d[s]`` are inactive and normalised to
kernel 3 / expand 3 in the canonical form, so two configs that build the same network are equal (and have
the same :func:`config_key`). On input the compact CNAS form is accepted as well: ``ks``/``e`` list only the
``sum(d)`` active layers. ``r`` may be given as ``[r]`` (DyNAS-T writes it so).

Genome (CNAS's integer vector)
------------------------------
Per stage: depth index into (2, 3, 4), four kernel indices into (3, 5, 7), four expand indices into
(3, 4, 6) -- 9 genes per stage, 45 in all (inactive slots carry index 0) -- then the resolution index into
``range(lr, ur + 1, 4)`` (32 <= lr <= ur <= 512), present only when ``lr != ur``. Search spaces built on this
one (early exits) append their genes after the resolution gene.

Block strings (timm / HardCoRe-NAS style)
----------------------------------------
A list of stages, each a list of block strings; the first stage is the fixed depthwise-separable block, the
last the final 1x1 expansion::

    blocks  := [[ds], stage_1, ..., stage_5, [cn]]
    ds      := "ds_r1_k3_s1_e1_c{C0}_nre"
    stage_i := [ir, ...]                     (d_i layers in all, repeats summed)
    ir      := "ir_r{R}_k{K}_s{S}_e{E}_c{C}[_se0.25][_nre]"
    cn      := "cn_r1_k1_s1_c{C_head}"

``r`` repeats the layer R times (output strings always use r1, one string per layer), ``k`` is the
depthwise kernel, ``s`` the stride (the stage's stride on its first layer, 1 after), ``e`` the expand ratio,
``c`` the output channels (which fix the width multiplier), ``_se0.25`` marks squeeze-excitation and
``_nre`` a ReLU activation (no suffix: hard-swish). Block strings carry no input resolution: parsing takes
``r`` separately.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from supernets.errors import InputError

N_STAGES = 5
MAX_DEPTH = 4
N_SLOTS = N_STAGES * MAX_DEPTH
KERNELS: tuple[int, ...] = (3, 5, 7)
EXPANDS: tuple[int, ...] = (3, 4, 6)
DEPTHS: tuple[int, ...] = (2, 3, 4)
WIDTHS: tuple[float, ...] = (1.0, 1.2)
RES_STEP = 4
MIN_RESOLUTION = 32
MAX_RESOLUTION = 512  # bounds every input: one evaluation step must fit the smallest supported machine
N_STAGE_GENES = 1 + 2 * MAX_DEPTH
N_BACKBONE_GENES = N_STAGES * N_STAGE_GENES

# once-for-all's MobileNetV3 macro-architecture (first block + 5 searchable stages)
BASE_STAGE_WIDTH = (16, 16, 24, 40, 80, 112, 160, 960, 1280)
STAGE_STRIDES = (2, 2, 2, 1, 2)
STAGE_SE = (False, True, False, True, True)
STAGE_RELU = (True, True, False, False, False)

Config = dict[str, Any]


def largest_backbone(r: int) -> Config:
    """The heaviest backbone (kernel 7, expand 6, depth 4 everywhere) at resolution ``r``."""
    return {"ks": [max(KERNELS)] * N_SLOTS, "e": [max(EXPANDS)] * N_SLOTS, "d": [max(DEPTHS)] * N_STAGES, "r": r}


def smallest_backbone(r: int) -> Config:
    """The lightest backbone (kernel 3, expand 3, depth 2 everywhere) at resolution ``r``."""
    return {"ks": [min(KERNELS)] * N_SLOTS, "e": [min(EXPANDS)] * N_SLOTS, "d": [min(DEPTHS)] * N_STAGES, "r": r}


def make_divisible(v: float, divisor: int = 8) -> int:
    """Round channels as once-for-all does (nearest multiple of ``divisor``, never 10 % below ``v``)."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def stage_widths(width_mult: float) -> list[int]:
    """Channels of [stem, first block, stage 1..5, final expand, feature mix] for a width multiplier."""
    check_width(width_mult)
    return [make_divisible(w * width_mult) for w in BASE_STAGE_WIDTH]


def check_width(width_mult: Any) -> float:
    """Return ``width_mult`` as a float or raise ``ValueError`` naming the allowed values."""
    if isinstance(width_mult, bool) or not isinstance(width_mult, (int, float, np.integer, np.floating)):
        raise InputError("width_mult", f"expected one of {list(WIDTHS)}, got {width_mult!r}")
    w = float(width_mult)
    if w not in WIDTHS:
        raise InputError("width_mult", f"expected one of {list(WIDTHS)}, got {width_mult!r}")
    return w


def resolution_grid(lr: int, ur: int) -> list[int]:
    """The allowed input resolutions ``lr, lr+4, ..., ur``; raises ``ValueError`` on a bad range."""
    for name, v in (("lr", lr), ("ur", ur)):
        if not _is_int(v):
            raise InputError("resolution", f"{name} must be an integer, got {v!r}")
    if lr < MIN_RESOLUTION or ur < lr or ur > MAX_RESOLUTION or (ur - lr) % RES_STEP:
        raise InputError(
            "resolution",
            f"expected lr <= ur, both in [{MIN_RESOLUTION}, {MAX_RESOLUTION}], ur - lr a multiple of {RES_STEP};"
            f" got lr={lr}, ur={ur}",
        )
    return list(range(int(lr), int(ur) + 1, RES_STEP))


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _int_list(config: Mapping[str, Any], field: str, allowed: Sequence[int]) -> list[int]:
    v = config.get(field)
    if not isinstance(v, (list, tuple, np.ndarray)):
        raise InputError(f"{field}", f"expected a list of integers from {list(allowed)}, got {type(v).__name__}")
    out = []
    for i, x in enumerate(v):
        if not _is_int(x):
            raise InputError(f"{field}[{i}]", f"expected an integer from {list(allowed)}, got {x!r}")
        if int(x) not in allowed:
            raise InputError(f"{field}[{i}]", f"{int(x)} is not one of {list(allowed)}")
        out.append(int(x))
    return out


def normalize_backbone(config: Mapping[str, Any], resolutions: Sequence[int] | None = None) -> Config:
    """Validate the backbone part of a config and return its canonical per-slot form.

    Accepts the per-slot and the compact CNAS form. Raises ``ValueError`` naming the field and the allowed
    values for wrong lengths, values outside the sets, a resolution off ``resolutions`` and wrong types.
    """
    if not isinstance(config, Mapping):
        raise InputError("config", f"expected a mapping with keys ks, e, d, r; got {type(config).__name__}")
    for field in ("ks", "e", "d", "r"):
        if field not in config:
            raise InputError(f"{field}", "missing (a config needs ks, e, d and r)")
    d = _int_list(config, "d", DEPTHS)
    if len(d) != N_STAGES:
        raise InputError("d", f"expected {N_STAGES} stage depths from {list(DEPTHS)}, got {len(d)}")
    ks = _int_list(config, "ks", KERNELS)
    e = _int_list(config, "e", EXPANDS)
    n_active = sum(d)
    for field, vals in (("ks", ks), ("e", e)):
        if len(vals) not in (N_SLOTS, n_active):
            raise InputError(
                f"{field}",
                f"expected {N_SLOTS} values (per slot) or sum(d)={n_active} (compact), got {len(vals)}"
            )
    if len(ks) != len(e):
        raise InputError("e", f"expected as many values as ks ({len(ks)}), got {len(e)}")
    ks, e = _to_slots(ks, d), _to_slots(e, d)
    r = config["r"]
    if isinstance(r, (list, tuple)) and len(r) == 1:
        r = r[0]
    if not _is_int(r):
        raise InputError("r", f"expected an integer resolution, got {r!r}")
    r = int(r)
    if resolutions is not None and r not in resolutions:
        lo, hi = min(resolutions), max(resolutions)
        raise InputError("r", f"{r} is not on the resolution grid {lo}..{hi} step {RES_STEP}")
    if resolutions is None and r < MIN_RESOLUTION:
        raise InputError("r", f"expected >= {MIN_RESOLUTION}, got {r}")
    return {"ks": ks, "e": e, "d": d, "r": r}


def _to_slots(vals: list[int], d: list[int]) -> list[int]:
    """Per-slot list with inactive slots normalised to the smallest choice."""
    if len(vals) == N_SLOTS:
        out = list(vals)
    else:
        out, it = [], iter(vals)
        for depth in d:
            out += [next(it) for _ in range(depth)] + [0] * (MAX_DEPTH - depth)
    for s, depth in enumerate(d):
        for j in range(depth, MAX_DEPTH):
            out[s * MAX_DEPTH + j] = 3
    return out


def to_compact(config: Mapping[str, Any]) -> Config:
    """The compact CNAS form (``ks``/``e`` list only the active layers) of a canonical config."""
    out = dict(config)
    d = config["d"]
    active = [s * MAX_DEPTH + j for s, depth in enumerate(d) for j in range(depth)]
    out["ks"] = [config["ks"][i] for i in active]
    out["e"] = [config["e"][i] for i in active]
    return out


def config_key(config: Mapping[str, Any]) -> str:
    """A string equal for exactly the canonical configs that are equal (used for exact dedup)."""
    return json.dumps({k: config[k] for k in sorted(config)}, separators=(",", ":"))


def encode_backbone(config: Mapping[str, Any], resolutions: Sequence[int]) -> list[int]:
    """CNAS genome of a canonical config (45 genes, + the resolution gene when the grid has >1 value)."""
    x: list[int] = []
    for s in range(N_STAGES):
        x.append(DEPTHS.index(config["d"][s]))
        sl = slice(s * MAX_DEPTH, (s + 1) * MAX_DEPTH)
        x += [KERNELS.index(k) for k in config["ks"][sl]]
        x += [EXPANDS.index(v) for v in config["e"][sl]]
    if len(resolutions) > 1:
        x.append(list(resolutions).index(config["r"]))
    return x


def decode_backbone(x: Sequence[int], resolutions: Sequence[int]) -> Config:
    """Canonical config of the first ``n_backbone_genes`` genes of a genome (inactive genes ignored)."""
    genes = [int(g) for g in x]
    d, ks, e = [], [], []
    for s in range(N_STAGES):
        g = genes[s * N_STAGE_GENES : (s + 1) * N_STAGE_GENES]
        _check_gene(g[0], DEPTHS, s * N_STAGE_GENES)
        d.append(DEPTHS[g[0]])
        for j in range(MAX_DEPTH):
            _check_gene(g[1 + j], KERNELS, s * N_STAGE_GENES + 1 + j)
            _check_gene(g[5 + j], EXPANDS, s * N_STAGE_GENES + 5 + j)
            ks.append(KERNELS[g[1 + j]])
            e.append(EXPANDS[g[5 + j]])
    if len(resolutions) > 1:
        _check_gene(genes[N_BACKBONE_GENES], resolutions, N_BACKBONE_GENES)
        r = resolutions[genes[N_BACKBONE_GENES]]
    else:
        r = resolutions[0]
    return {"ks": _to_slots(ks, d), "e": _to_slots(e, d), "d": d, "r": int(r)}


def _check_gene(g: int, choices: Sequence[Any], pos: int) -> None:
    if not 0 <= g < len(choices):
        raise InputError(f"genome[{pos}]", f"index {g} outside 0..{len(choices) - 1}")


def to_block_strings(config: Mapping[str, Any], width_mult: float = 1.0) -> list[list[str]]:
    """timm/HardCoRe-style block strings of a canonical config (grammar in the module docstring)."""
    w = stage_widths(width_mult)
    out = [[f"ds_r1_k3_s1_e1_c{w[1]}_nre"]]
    for s in range(N_STAGES):
        stage = []
        for j in range(config["d"][s]):
            i = s * MAX_DEPTH + j
            stride = STAGE_STRIDES[s] if j == 0 else 1
            se = "_se0.25" if STAGE_SE[s] else ""
            act = "_nre" if STAGE_RELU[s] else ""
            stage.append(f"ir_r1_k{config['ks'][i]}_s{stride}_e{config['e'][i]}_c{w[2 + s]}{se}{act}")
        out.append(stage)
    out.append([f"cn_r1_k1_s1_c{w[7]}"])
    return out


_BLOCK_RE = re.compile(
    r"^(?P<t>ds|ir|cn)_r(?P<r>\d+)_k(?P<k>\d+)_s(?P<s>\d+)(?:_e(?P<e>\d+(?:\.\d+)?))?_c(?P<c>\d+)"
    r"(?P<se>_se0\.25)?(?P<nre>_nre)?$"
)


def from_block_strings(blocks: Any, r: int) -> tuple[Config, float]:
    """Parse block strings back to ``(config, width_mult)``; ``r`` is the input resolution (not in strings)."""
    if not isinstance(blocks, (list, tuple)) or len(blocks) != N_STAGES + 2:
        raise InputError("blocks", f"expected {N_STAGES + 2} stages ([ds], 5 searchable stages, [cn])")
    parsed = []
    for si, stage in enumerate(blocks):
        if not isinstance(stage, (list, tuple)) or not stage:
            raise InputError(f"blocks[{si}]", "expected a non-empty list of block strings")
        rows = []
        for bi, b in enumerate(stage):
            m = _BLOCK_RE.match(b) if isinstance(b, str) else None
            if m is None:
                raise InputError(
                    f"blocks[{si}][{bi}]",
                    f"{b!r} does not match ir_r<R>_k<K>_s<S>_e<E>_c<C>[_se0.25][_nre]"
                )
            rows.append(m)
        parsed.append(rows)
    width = None
    for cand in WIDTHS:
        if int(parsed[0][0]["c"]) == stage_widths(cand)[1] and int(parsed[-1][0]["c"]) == stage_widths(cand)[7]:
            width = cand
    if width is None:
        raise InputError("blocks", "channel counts match neither width 1.0 nor 1.2")
    w = stage_widths(width)
    if parsed[0][0]["t"] != "ds" or parsed[-1][0]["t"] != "cn":
        raise InputError("blocks", "the first stage must be the ds block and the last the cn block")
    ks: list[int] = []
    e: list[int] = []
    d: list[int] = []
    for s in range(N_STAGES):
        layers: list[tuple[int, int]] = []
        for bi, m in enumerate(parsed[1 + s]):
            where = f"blocks[{s + 1}][{bi}]"
            if m["t"] != "ir":
                raise InputError(f"{where}", f"expected an ir block, got {m['t']}")
            if int(m["c"]) != w[2 + s]:
                raise InputError(f"{where}", f"expected c{w[2 + s]} for width {width}, got c{m['c']}")
            k, ev = int(m["k"]), float(m["e"] or 0)
            if k not in KERNELS:
                raise InputError(f"{where}", f"kernel {k} is not one of {list(KERNELS)}")
            if ev not in EXPANDS:
                raise InputError(f"{where}", f"expand {m['e']} is not one of {list(EXPANDS)}")
            if bool(m["se"]) != STAGE_SE[s] or bool(m["nre"]) != STAGE_RELU[s]:
                raise InputError(f"{where}", f"SE/activation do not match stage {s + 1} of MobileNetV3")
            for rep in range(int(m["r"])):
                want_stride = STAGE_STRIDES[s] if not layers else 1
                if rep == 0 and int(m["s"]) != want_stride:
                    raise InputError(f"{where}", f"expected stride {want_stride}, got {m['s']}")
                layers.append((k, int(ev)))
        if len(layers) not in DEPTHS:
            raise InputError(f"blocks[{s + 1}]", f"{len(layers)} layers, expected one of {list(DEPTHS)}")
        d.append(len(layers))
        ks += [k for k, _ in layers]
        e += [v for _, v in layers]
    return normalize_backbone({"ks": ks, "e": e, "d": d, "r": r}), width


def backbone_arrays(configs: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """Stack canonical configs into arrays ``ks``/``e`` (N, 20), ``d`` (N, 5), ``r`` (N,) for vectorised use."""
    n = len(configs)
    ks = np.empty((n, N_SLOTS), dtype=np.int64)
    e = np.empty((n, N_SLOTS), dtype=np.int64)
    d = np.empty((n, N_STAGES), dtype=np.int64)
    r = np.empty(n, dtype=np.int64)
    for i, c in enumerate(configs):
        ks[i], e[i], d[i], r[i] = c["ks"], c["e"], c["d"], c["r"]
    return {"ks": ks, "e": e, "d": d, "r": r}
