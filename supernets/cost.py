"""Exact analytic cost model of once-for-all MobileNetV3 subnets: params, MACs, activations, peak activation.

Everything is computed from the config alone (no network is built) and vectorised over a population: per
(stage, slot, kernel, expand) coefficient tables are precomputed once per ``(width_mult, n_classes)`` and
combined with the spatial sizes, which depend only on the resolution ``r`` (a stride-2 convolution with
padding ``k // 2`` maps ``h`` to ``ceil(h / 2)``). The figures equal, to the unit, those of the subnet that
``ofa`` extracts::

    net = OFAMobileNetV3(n_classes=n_classes, width_mult=w, ks_list=[3, 5, 7],
                         expand_ratio_list=[3, 4, 6], depth_list=[2, 3, 4])
    net.set_active_subnet(ks=config["ks"], e=config["e"], d=config["d"])
    subnet = net.get_active_subnet()

Definitions (one image at resolution ``r``; counts, not millions)
------------------------------------------------------------------
``params``
    ``sum(p.numel() for p in subnet.parameters())`` (BatchNorm weight and bias count, running statistics are
    buffers and do not; SE convolutions carry biases; the classifier is ``Linear(C_last, n_classes)`` with
    bias).
``macs``
    The exact integer number of multiply-accumulates as once-for-all's counter defines them
    (``ofa/utils/flops_counter.py``): for every ``Conv2d``, ``in_channels * output_elements * kh * kw //
    groups`` (biases not counted; the squeeze-excitation convolutions run on a 1x1 map), and ``in * out`` for
    the ``Linear`` classifier. BatchNorm, activations, the SE multiply and the global average pool are 0.
``macs_counter``
    What ``ofa.utils.count_net_flops(subnet, (1, 3, r, r))`` returns. That counter stores each module's ops in
    a float32 tensor and adds the float32 tensors in module order, so its result is ``macs`` after float32
    rounding of each term and of every partial sum: above 2**24 MACs (every subnet at ImageNet resolutions)
    it differs from the exact integer by a multiple of the float32 spacing (8, 16, 32 MACs at 2**26..2**29)
    on some configs. We reproduce that accumulation exactly (same terms, same order, float32 arithmetic), so
    ``macs_counter`` equals the counter on every config we checked, and keep ``macs`` the exact integer,
    the figure to optimise and report. Evidence that the exact integer is the right reference: the DyNAS-T
    ImageNet records' MACs column equals ``macs`` on all 1265 rows (1215 configs), while the counter
    differs from it by exactly 16 on 50 of those configs (the data README's "16-MAC artefact" is the
    counter's float32 rounding, not the recording tool's). ``macs`` is the metric of the
    :func:`cost_metrics` contract; ``macs_counter`` is returned by :func:`cost_metrics_full` and
    :func:`config_cost`.
``activations``
    CNAS's definition: the sum of the output elements of every ``Conv2d``, ``BatchNorm2d`` and ``Linear``
    module of the extracted subnet (what forward hooks on those module types see), SE convolutions
    included. The subnet has no torch pooling module: its global average pool is once-for-all's
    ``MyGlobalAvgPool2d`` (a mean), which CNAS's hooks do not count, so it is not counted here either (its
    output would add ``C_final_expand`` elements, 960 at width 1.0); this definition reproduces the CNAS
    CIFAR-10 archives' ``activations`` column to its 0.01 M rounding.
``peak_activation``
    The largest ``input elements + output elements`` of any single module of that same set (``Conv2d``,
    ``BatchNorm2d``, ``Linear``), i.e. the smallest working memory (in elements, batch 1) a
    layer-at-a-time executor needs for the largest layer, ignoring the residual that a skip connection keeps
    alive. The network input counts as the stem convolution's input.

Speed: a population of 10,000 configs takes milliseconds on one core (see ``bench/cost_model.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from supernets.codec import (
    DEPTHS,
    EXPANDS,
    KERNELS,
    MAX_DEPTH,
    MIN_RESOLUTION,
    N_SLOTS,
    N_STAGES,
    STAGE_SE,
    STAGE_STRIDES,
    backbone_arrays,
    check_width,
    make_divisible,
    normalize_backbone,
    stage_widths,
)
from supernets.errors import InputError

METRICS: tuple[str, ...] = ("params", "macs", "activations", "peak_activation")
SE_REDUCTION = 4
CHANNEL_DIVISIBLE = 8


def mid_channels(in_channels: int, expand: int) -> int:
    """Channels of an MBConv's expanded (depthwise) part, as once-for-all's dynamic layer extracts it."""
    return make_divisible(round(in_channels * expand), CHANNEL_DIVISIBLE)


def se_channels(channels: int) -> int:
    """Channels of the squeeze-excitation bottleneck (once-for-all's ``SEModule``, reduction 4)."""
    return make_divisible(channels // SE_REDUCTION, CHANNEL_DIVISIBLE)


def conv_out(h: Any, stride: int) -> Any:
    """Output side of a convolution with odd kernel ``k``, padding ``k // 2`` and ``stride`` (1 or 2)."""
    return -(-h // stride)


class _Tables:
    """Coefficient tables for one ``(width_mult, n_classes)``, and from them per-resolution cost tables.

    Base tables ``t[name]`` are indexed ``[slot, k_idx, e_idx]``. For slot ``i`` with input map side ``hi``
    and output side ``ho`` (``hi == ho`` except on a stage's first, possibly strided, layer):

    - params = ``p``
    - MAC terms in module order: ``ib * hi**2`` (1x1 expand conv), ``dw * ho**2`` (depthwise conv),
      ``se_r``, ``se_e`` (SE convs on a 1x1 map), ``pl * ho**2`` (1x1 projection conv)
    - activations = ``a_in * hi**2 + a_out * ho**2 + a_c``
    - peak = max(``pk_in * hi**2``, ``mid * (hi**2 + ho**2)``, ``pk_out * ho**2``, ``pk_c``)

    :meth:`per_r` turns them into one row per ``(slot, k, e)`` (plus a zero row for inactive slots) with
    columns ``COLS`` for a given resolution, so a population costs one gather and one reduction.
    """

    COLS = ("params", "macs", "activations", "peak_activation", "ib", "dw", "se_r", "se_e", "pl")
    N_CHOICES = len(KERNELS) * len(EXPANDS)
    ZERO_ROW = N_SLOTS * N_CHOICES

    def __init__(self, width_mult: float, n_classes: int) -> None:
        w = stage_widths(width_mult)
        self.width_mult, self.n_classes = width_mult, n_classes
        self.c_stem, self.c_first = w[0], w[1]
        self.c_last_stage, self.c_fe, self.c_fm = w[6], w[7], w[8]
        shape = (N_SLOTS, len(KERNELS), len(EXPANDS))
        names = ["p", "ib", "dw", "se_r", "se_e", "pl", "a_in", "a_out", "a_c", "pk_in", "mid", "pk_out", "pk_c"]
        t = {n: np.zeros(shape, dtype=np.int64) for n in names}
        for s in range(N_STAGES):
            out = w[2 + s]
            for j in range(MAX_DEPTH):
                slot = s * MAX_DEPTH + j
                cin = w[1 + s] if j == 0 else out
                for ki, k in enumerate(KERNELS):
                    for ei, e in enumerate(EXPANDS):
                        mid = mid_channels(cin, e)
                        nm = se_channels(mid) if STAGE_SE[s] else 0
                        ix = (slot, ki, ei)
                        se_p = (mid * nm + nm + nm * mid + mid) if STAGE_SE[s] else 0
                        t["p"][ix] = cin * mid + 2 * mid + mid * k * k + 2 * mid + se_p + mid * out + 2 * out
                        t["ib"][ix] = cin * mid
                        t["dw"][ix] = mid * k * k
                        t["se_r"][ix] = mid * nm
                        t["se_e"][ix] = nm * mid
                        t["pl"][ix] = mid * out
                        t["a_in"][ix] = 2 * mid  # expand conv + BN outputs
                        t["a_out"][ix] = 2 * mid + 2 * out  # depthwise conv + BN, projection conv + BN
                        t["a_c"][ix] = (nm + mid) if STAGE_SE[s] else 0  # SE convs
                        t["pk_in"][ix] = max(cin + mid, 2 * mid)  # expand conv in+out, its BN in+out
                        t["mid"][ix] = mid  # depthwise conv: mid*hi^2 in + mid*ho^2 out
                        t["pk_out"][ix] = max(2 * mid, mid + out, 2 * out)  # dw BN, projection conv, its BN
                        t["pk_c"][ix] = (mid + nm) if STAGE_SE[s] else 0  # SE convs (1x1 maps)
        self.t = t
        # fixed parts: stem conv + BN, first block (depthwise 3x3 + BN, projection 1x1 + BN), final expand
        # 1x1 conv + BN, feature mix 1x1 conv (no BN, no bias), classifier Linear with bias
        c0, c1 = w[0], w[1]
        self.p_fixed = 27 * c0 + 2 * c0 + 9 * c0 + 2 * c0 + c0 * c1 + 2 * c1
        self.p_fixed += w[6] * w[7] + 2 * w[7] + w[7] * w[8] + w[8] * n_classes + n_classes
        self._per_r: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}

    @staticmethod
    def sides(r: int) -> list[int]:
        """Map sides: ``[0]`` after the stem (stride 2), ``[s + 1]`` after stage ``s``."""
        h = [conv_out(r, 2)]
        for s in range(N_STAGES):
            h.append(conv_out(h[-1], STAGE_STRIDES[s]))
        return h

    def per_r(self, r: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(slot_rows (181, 9), fixed (4,), head_terms (3,), tail_terms (3,))`` at resolution ``r``."""
        got = self._per_r.get(r)
        if got is not None:
            return got
        t, h = self.t, self.sides(r)
        hi2 = np.array([h[s + 1] ** 2 if j else h[s] ** 2 for s in range(N_STAGES) for j in range(MAX_DEPTH)])
        ho2 = np.array([h[s + 1] ** 2 for s in range(N_STAGES) for _ in range(MAX_DEPTH)])
        hi2, ho2 = hi2[:, None, None], ho2[:, None, None]
        terms = [t["ib"] * hi2, t["dw"] * ho2, t["se_r"], t["se_e"], t["pl"] * ho2]
        cols = [
            t["p"],
            sum(terms),
            t["a_in"] * hi2 + t["a_out"] * ho2 + t["a_c"],
            np.maximum.reduce([t["pk_in"] * hi2, t["mid"] * (hi2 + ho2), t["pk_out"] * ho2, t["pk_c"]]),
            *terms,
        ]
        rows = np.zeros((self.ZERO_ROW + 1, len(self.COLS)), dtype=np.int64)
        rows[: self.ZERO_ROW] = np.stack([c.reshape(-1) for c in cols], axis=1)
        c0, c1, c5, cfe, cfm, nc = self.c_stem, self.c_first, self.c_last_stage, self.c_fe, self.c_fm, self.n_classes
        h0sq, h5sq = h[0] ** 2, h[N_STAGES] ** 2
        head = np.array([27 * c0 * h0sq, 9 * c0 * h0sq, c0 * c1 * h0sq], dtype=np.int64)  # counter order
        tail = np.array([c5 * cfe * h5sq, cfe * cfm, cfm * nc], dtype=np.int64)
        # activations: stem conv+BN, first block dw conv+BN and projection conv+BN, final expand conv+BN,
        # feature mix conv, classifier
        acts = 4 * c0 * h0sq + 2 * c1 * h0sq + 2 * cfe * h5sq + cfm + nc
        peak = max(
            3 * r * r + c0 * h0sq,  # stem conv
            2 * c0 * h0sq,  # stem BN, first block dw conv and its BN
            (c0 + c1) * h0sq,  # first block projection conv
            2 * c1 * h0sq,  # its BN
            (c5 + cfe) * h5sq,  # final expand conv
            2 * cfe * h5sq,  # its BN
            cfe + cfm,  # feature mix conv (1x1 map)
            cfm + nc,  # classifier
        )
        fixed = np.array([self.p_fixed, head.sum() + tail.sum(), acts, peak], dtype=np.int64)
        out = (rows, fixed, head, tail)
        if len(self._per_r) < 4096:
            self._per_r[r] = out
        return out


@lru_cache(maxsize=16)
def _tables(width_mult: float, n_classes: int) -> _Tables:
    return _Tables(width_mult, n_classes)


def _check_n_classes(n_classes: Any) -> int:
    if isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)) or n_classes < 1:
        raise InputError("n_classes", f"expected a positive integer, got {n_classes!r}")
    return int(n_classes)


def _lookup(a: np.ndarray, allowed: Sequence[int], field: str) -> np.ndarray:
    """Index of every value of ``a`` in ``allowed``; ``ValueError`` naming the first bad entry."""
    table = np.full(max(allowed) + 1, -1, dtype=np.int64)
    table[list(allowed)] = np.arange(len(allowed))
    if a.size and (a.min() < 0 or a.max() > max(allowed)):
        bad = (a < 0) | (a > max(allowed))
    else:
        idx = table[a]
        if not a.size or idx.min() >= 0:
            return idx
        bad = idx < 0
    i = tuple(np.argwhere(bad)[0])
    raise InputError(f"{field}[{']['.join(map(str, i))}]", f"{a[i]} is not one of {list(allowed)}")


def _as_arrays(configs: Any) -> dict[str, np.ndarray]:
    """Int64 arrays ``ks``/``e`` (N, 20), ``d`` (N, 5), ``r`` (N,) from configs or stacked arrays."""
    if isinstance(configs, Mapping) and not {"ks", "e", "d", "r"} - set(configs):
        if np.ndim(configs["d"]) == 1 and np.ndim(configs["ks"]) == 1:  # one config dict, not stacked arrays
            return backbone_arrays([normalize_backbone(configs)])
        arrs = {}
        for f, shape in (("ks", (N_SLOTS,)), ("e", (N_SLOTS,)), ("d", (N_STAGES,)), ("r", ())):
            a = np.asarray(configs[f])
            if a.dtype.kind not in "iu":
                raise InputError(f"{f}", f"expected an integer array, got dtype {a.dtype}")
            if a.shape[1:] != shape:
                want = f"(N, {shape[0]})" if shape else "(N,)"
                raise InputError(f"{f}", f"expected shape {want}, got {a.shape}")
            arrs[f] = a.astype(np.int64, copy=False)
        n = len(arrs["r"])
        for f in ("ks", "e", "d"):
            if len(arrs[f]) != n:
                raise InputError(f"{f}", f"expected {n} rows (as many as r), got {len(arrs[f])}")
        if n and arrs["r"].min() < MIN_RESOLUTION:
            i = int(np.argmin(arrs["r"]))
            raise InputError(f"r[{i}]", f"expected >= {MIN_RESOLUTION}, got {arrs['r'][i]}")
        return arrs
    if isinstance(configs, (str, bytes)) or not isinstance(configs, Sequence):
        raise InputError(
            "configs",
            f"expected a list of config dicts or a dict of arrays (ks, e, d, r), got {type(configs).__name__}"
        )
    return backbone_arrays([normalize_backbone(c) for c in configs])


def cost_metrics_full(configs: Any, *, width_mult: float = 1.0, n_classes: int = 1000) -> dict[str, np.ndarray]:
    """All cost figures of a population: the :func:`cost_metrics` keys plus ``macs_counter``.

    ``macs_counter`` is the float32-accumulated figure that ``ofa.utils.count_net_flops`` reports (see the
    module docstring). Integer-valued float64 arrays, one entry per config.
    """
    return _compute(configs, width_mult, n_classes, counter=True)


def _compute(configs: Any, width_mult: float, n_classes: int, counter: bool) -> dict[str, np.ndarray]:
    width_mult = check_width(width_mult)
    n_classes = _check_n_classes(n_classes)
    a = _as_arrays(configs)
    tb = _tables(width_mult, n_classes)
    ki = _lookup(a["ks"], KERNELS, "ks")
    ei = _lookup(a["e"], EXPANDS, "e")
    di = _lookup(a["d"], DEPTHS, "d")
    r = a["r"]
    n = len(r)
    # row of each slot's choice in the per-resolution tables (the zero row for inactive slots)
    active = (np.arange(MAX_DEPTH)[None, None, :] < np.asarray(DEPTHS)[di][:, :, None]).reshape(n, N_SLOTS)
    choice = np.arange(N_SLOTS)[None, :] * tb.N_CHOICES + ki * len(EXPANDS) + ei
    choice = np.where(active, choice, tb.ZERO_ROW)
    r_u, r_inv = np.unique(r, return_inverse=True)
    per = [tb.per_r(int(x)) for x in r_u]
    n_rows = tb.ZERO_ROW + 1
    rows = np.concatenate([p[0] for p in per]) if per else np.zeros((0, len(tb.COLS)), dtype=np.int64)
    fixed = np.stack([p[1] for p in per])[r_inv] if per else np.zeros((0, 4), dtype=np.int64)
    idx = choice + (r_inv.reshape(-1) * n_rows)[:, None]
    cols = rows.T.copy()  # one contiguous row per column: 1-D takes and last-axis reductions are fast
    sums = [np.take(cols[c], idx).sum(axis=1) + fixed[:, c] for c in range(3)]
    peak = np.maximum(np.take(cols[3], idx).max(axis=1, initial=0), fixed[:, 3])
    out = {
        "params": sums[0].astype(np.float64),
        "macs": sums[1].astype(np.float64),
        "activations": sums[2].astype(np.float64),
        "peak_activation": peak.astype(np.float64),
    }
    if counter:  # the counter's float32 accumulation, term by term in module order (never pairwise)
        terms = np.stack([np.take(cols[c], idx) for c in range(4, 9)], axis=2)  # (N, 20, 5) in module order
        head = np.stack([p[2] for p in per])[r_inv] if per else np.zeros((0, 3), dtype=np.int64)
        tail = np.stack([p[3] for p in per])[r_inv] if per else np.zeros((0, 3), dtype=np.int64)
        acc = np.zeros(n, dtype=np.float32)
        for j in range(3):
            acc = acc + head[:, j].astype(np.float32)
        for i in range(N_SLOTS):  # inactive slots add exact zeros, which leave a float32 sum unchanged
            for j in range(5):
                acc = acc + terms[:, i, j].astype(np.float32)
        for j in range(3):
            acc = acc + tail[:, j].astype(np.float32)
        out["macs_counter"] = acc.astype(np.float64)
    return out


def cost_metrics(configs: Any, *, width_mult: float = 1.0, n_classes: int = 1000) -> dict[str, np.ndarray]:
    """Exact ``params``, ``macs``, ``activations`` and ``peak_activation`` of a population (float64 counts).

    ``configs``: a list of config dicts (canonical or compact form; validated, ``ValueError`` naming the field
    on bad input), one config dict, or the dict of stacked arrays from :func:`supernets.codec.backbone_arrays`
    (the fast path for large populations). Definitions in the module docstring.
    """
    return _compute(configs, width_mult, n_classes, counter=False)


def config_cost(config: Mapping[str, Any], *, width_mult: float = 1.0, n_classes: int = 1000) -> dict[str, int]:
    """The cost figures of one config as Python ints (``macs_counter`` included)."""
    full = cost_metrics_full([config], width_mult=width_mult, n_classes=n_classes)
    return {k: int(v[0]) for k, v in full.items()}
