"""Latency lookup tables (LUTs) for once-for-all MobileNetV3 subnets: enumerate, measure, import, predict.

A subnet is a chain of blocks (stem conv, the fixed first MBConv, the active MBConv layers of the 5 stages,
final 1x1 expansion, global average pool, feature-mix 1x1 conv, classifier). A block is fixed by its kind,
input/output sizes and channels, kernel, stride, expand ratio (and mid channels), SE, activation and identity
skip; :func:`config_blocks` lists a config's blocks, :func:`enumerate_blocks` every distinct block the space
can produce for a width and a resolution range (blocks at equal input sizes are shared across
resolutions). :func:`build_table` measures every block as a standalone module on a runtime
(``onnxruntime-cpu``, ``torch-cpu``, ``torch-cuda``) with warm-up and the median of R runs, resumably, and
fits a bias correction ``measured = scale * lut_sum + offset`` from a few end-to-end measurements (the block
sum misses inter-layer overheads and counts per-call overheads once per block).

Table files
-----------
- msunas JSON (``format: msunas-lut/1``): settings, machine/runtime, ``entries`` {block key: {ms, ...}},
  ``correction``. Block keys (``Block.key()``)::

      stem-input:RxRx3-output:HxHxC
      mbconv-input:HxHxC-output:HxHxC-expand:E-mid:M-kernel:K-stride:S-idskip:I-se:S-hs:A   (first block: E=1)
      final_expand-input:HxHxC-output:HxHxC     pool-input:HxHxC-output:1x1xC
      feature_mix-input:1x1xC-output:1x1xC      classifier-input:C-output:N

- NSGANetV2 YAML (``first_conv``, ``MBConv-...-expand:E-kernel:K-stride:S-idskip:I-se:S`` with E the
  expand ratio, ``final_expand_layer``, ``feature_mix_layer``, ``classifier``; no pooling entry),
  per-layer ``mean`` ms; one file for all resolutions.
- once-for-all YAML (``Conv``, ``expanded_conv-...-expand:MID-...-hs:H`` with MID = round(C_in * e),
  ``Conv_1``, ``AvgPool2D``, ``Conv_2``, ``Logits``), per-layer ``mean`` ms; one file per resolution
  (``{r}_lookup_table.yaml``), a file or a folder of them.

``LatencyTable.predict(configs)`` is vectorised like :mod:`supernets.cost` (one gather per population).
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import platform
import re
import statistics
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch
import yaml
from ofa.imagenet_classification.elastic_nn.networks import OFAMobileNetV3
from ofa.utils.layers import ConvLayer, IdentityLayer, LinearLayer, MBConvLayer, ResidualBlock
from ofa.utils.pytorch_modules import MyGlobalAvgPool2d
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from supernets.codec import (
    EXPANDS,
    KERNELS,
    MAX_DEPTH,
    N_SLOTS,
    N_STAGES,
    STAGE_RELU,
    STAGE_SE,
    STAGE_STRIDES,
    backbone_arrays,
    check_width,
    normalize_backbone,
    stage_widths,
)
from supernets.cost import conv_out, mid_channels
from supernets.errors import InputError
from supernets.spaces import get_search_space

DEVICES: tuple[str, ...] = ("onnxruntime-cpu", "torch-cpu", "torch-cuda")
CLOCKS: tuple[str, ...] = ("wall", "cpu")
STATISTICS: tuple[str, ...] = ("median", "min")  # of the timed runs: what a table entry / a measurement is
FORMAT = "msunas-lut/1"
STYLES: tuple[str, ...] = ("msunas", "nsganetv2", "ofa")
N_CHOICES = len(KERNELS) * len(EXPANDS)


@dataclass(frozen=True)
class Block:
    """One distinct block of a subnet (what a LUT entry measures)."""

    kind: str  # stem | mbconv | final_expand | pool | feature_mix | classifier
    h_in: int
    c_in: int
    h_out: int
    c_out: int
    k: int = 1
    stride: int = 1
    expand: int = 1
    mid: int = 0
    se: bool = False
    hs: bool = False
    idskip: bool = False

    def key(self, style: str = "msunas") -> str:
        """The block's key in a table of ``style`` (msunas, nsganetv2 or ofa; see the module docstring)."""
        i = f"input:{self.h_in}x{self.h_in}x{self.c_in}"
        o = f"output:{self.h_out}x{self.h_out}x{self.c_out}"
        if self.kind == "mbconv":
            tail = f"kernel:{self.k}-stride:{self.stride}-idskip:{int(self.idskip)}-se:{int(self.se)}"
            if style == "msunas":
                return f"mbconv-{i}-{o}-expand:{self.expand}-mid:{self.mid}-{tail}-hs:{int(self.hs)}"
            if style == "nsganetv2":
                return f"MBConv-{i}-{o}-expand:{self.expand}-{tail}"
            return f"expanded_conv-{i}-{o}-expand:{round(self.c_in * self.expand)}-{tail}-hs:{int(self.hs)}"
        if self.kind == "classifier":
            name = {"msunas": "classifier", "nsganetv2": "classifier", "ofa": "Logits"}[style]
            i = f"input:1x1x{self.c_in}" if style == "ofa" else f"input:{self.c_in}"
            return f"{name}-{i}-output:{self.c_out}"
        names: tuple[str | None, ...] = {
            "stem": ("stem", "first_conv", "Conv"),
            "final_expand": ("final_expand", "final_expand_layer", "Conv_1"),
            "pool": ("pool", None, "AvgPool2D"),
            "feature_mix": ("feature_mix", "feature_mix_layer", "Conv_2"),
        }[self.kind]
        found = names[STYLES.index(style)]
        if found is None:
            return ""  # the style has no entry for this block (NSGANetV2 tables do not time the pool)
        return f"{found}-{i}-{o}"

    def input_shape(self, batch_size: int) -> tuple[int, ...]:
        """Shape of the block's input tensor."""
        if self.kind == "classifier":
            return (batch_size, self.c_in)
        return (batch_size, self.c_in, self.h_in, self.h_in)

    def build(self) -> Any:
        """The block as a standalone torch module (once-for-all's layers, random weights, eval mode)."""
        if self.kind == "stem":
            m = ConvLayer(3, self.c_out, kernel_size=3, stride=2, act_func="h_swish")
        elif self.kind == "mbconv":
            conv = MBConvLayer(
                self.c_in,
                self.c_out,
                kernel_size=self.k,
                stride=self.stride,
                expand_ratio=self.expand,
                mid_channels=None if self.expand == 1 else self.mid,
                act_func="h_swish" if self.hs else "relu",
                use_se=self.se,
            )
            m = ResidualBlock(conv, IdentityLayer(self.c_in, self.c_in) if self.idskip else None)
        elif self.kind == "final_expand":
            m = ConvLayer(self.c_in, self.c_out, kernel_size=1, act_func="h_swish")
        elif self.kind == "pool":
            m = MyGlobalAvgPool2d(keep_dim=True)
        elif self.kind == "feature_mix":
            m = ConvLayer(self.c_in, self.c_out, kernel_size=1, bias=False, use_bn=False, act_func="h_swish")
        elif self.kind == "classifier":
            m = LinearLayer(self.c_in, self.c_out, dropout_rate=0.1)
        else:
            raise ValueError(f"block kind: unknown {self.kind!r}")
        return m.eval()


# --------------------------------------------------------------------------------------------- enumeration


def _check_n_classes(n_classes: Any) -> int:
    if isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)) or n_classes < 1:
        raise InputError("n_classes", f"expected a positive integer, got {n_classes!r}")
    return int(n_classes)


def _slot_block(w: list[int], h: list[int], slot: int, k: int, e: int) -> Block:
    s, j = divmod(slot, MAX_DEPTH)
    cout = w[2 + s]
    cin = w[1 + s] if j == 0 else cout
    stride = STAGE_STRIDES[s] if j == 0 else 1
    hin = h[s] if j == 0 else h[s + 1]
    return Block(
        "mbconv",
        hin,
        cin,
        h[s + 1],
        cout,
        k=k,
        stride=stride,
        expand=e,
        mid=mid_channels(cin, e),
        se=STAGE_SE[s],
        hs=not STAGE_RELU[s],
        idskip=stride == 1 and cin == cout,
    )


def _sides(r: int) -> list[int]:
    h = [conv_out(r, 2)]
    for s in range(N_STAGES):
        h.append(conv_out(h[-1], STAGE_STRIDES[s]))
    return h


def fixed_blocks(r: int, width_mult: float, n_classes: int) -> tuple[list[Block], list[Block]]:
    """The blocks every subnet at resolution ``r`` has: (stem, first block) and (final expand .. classifier)."""
    w, h = stage_widths(width_mult), _sides(r)
    head = [
        Block("stem", r, 3, h[0], w[0], k=3, stride=2, hs=True),
        Block("mbconv", h[0], w[0], h[0], w[1], k=3, expand=1, mid=w[0], idskip=w[0] == w[1]),
    ]
    tail = [
        Block("final_expand", h[5], w[6], h[5], w[7], hs=True),
        Block("pool", h[5], w[7], 1, w[7]),
        Block("feature_mix", 1, w[7], 1, w[8], hs=True),
        Block("classifier", 1, w[8], 1, n_classes),
    ]
    return head, tail


def config_blocks(config: Mapping[str, Any], width_mult: float = 1.0, n_classes: int = 1000) -> list[Block]:
    """The blocks of one config's subnet, in execution order."""
    c = normalize_backbone(config)
    w = check_width(width_mult)
    n_classes = _check_n_classes(n_classes)
    head, tail = fixed_blocks(c["r"], w, n_classes)
    widths, h = stage_widths(w), _sides(c["r"])
    body = [
        _slot_block(widths, h, s * MAX_DEPTH + j, c["ks"][s * MAX_DEPTH + j], c["e"][s * MAX_DEPTH + j])
        for s in range(N_STAGES)
        for j in range(c["d"][s])
    ]
    return head + body + tail


def enumerate_blocks(width_mult: float, resolutions: Iterable[int], n_classes: int = 1000) -> list[Block]:
    """Every distinct block the space can produce at these resolutions (deterministic order, no duplicates)."""
    w = check_width(width_mult)
    n_classes = _check_n_classes(n_classes)
    widths = stage_widths(w)
    seen: dict[Block, None] = {}
    for r in sorted(set(int(x) for x in resolutions)):
        head, tail = fixed_blocks(r, w, n_classes)
        h = _sides(r)
        for b in head:
            seen.setdefault(b)
        for slot in range(N_SLOTS):
            for k in KERNELS:
                for e in EXPANDS:
                    seen.setdefault(_slot_block(widths, h, slot, k, e))
        for b in tail:
            seen.setdefault(b)
    return list(seen)


# ------------------------------------------------------------------------------------------------ runtimes


def machine_info() -> dict[str, Any]:
    """Platform, CPU model and core count of this machine."""
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"platform": platform.platform(), "cpu": cpu, "cpu_count": os.cpu_count(), "node": platform.node()}


class Runtime:
    """Times a torch module on one runtime: warm-up runs, then the median of ``repeat`` timed runs (ms).

    ``clock="wall"`` (default) times wall-clock latency. ``clock="cpu"`` times the calling thread's CPU time
    instead: with one thread (ORT ``intra_op_num_threads=1`` and torch with one thread both compute on the
    calling thread) that is the latency the network would have on an idle core, immune to the preemption
    that inflates wall time on a shared, oversubscribed machine (it still includes cache interference).
    """

    def __init__(self, device: str, threads: int = 1, batch_size: int = 1, clock: str = "wall",
                 statistic: str = "median") -> None:
        if device not in DEVICES:
            raise InputError("device", f"expected one of {list(DEVICES)}, got {device!r}")
        if clock not in CLOCKS:
            raise InputError("clock", f"expected one of {list(CLOCKS)}, got {clock!r}")
        if statistic not in STATISTICS:
            raise InputError("statistic", f"expected one of {list(STATISTICS)}, got {statistic!r}")
        if clock == "cpu" and (threads != 1 or device == "torch-cuda"):
            raise InputError("clock", "'cpu' (thread CPU time) needs threads=1 and a CPU device")
        for name, v in (("threads", threads), ("batch_size", batch_size)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InputError(f"{name}", f"expected a positive integer, got {v!r}")

        if device == "torch-cuda" and not torch.cuda.is_available():
            raise InputError("device", "torch-cuda: CUDA is not available on this machine (no GPU or no CUDA torch)")
        self.device, self.threads, self.batch_size, self.clock = device, threads, batch_size, clock
        self.statistic = statistic
        if device.startswith("torch"):  # ORT sessions get their own thread count
            torch.set_num_threads(threads)

    def info(self) -> dict[str, Any]:
        """Runtime name and versions (recorded in the table)."""
        out: dict[str, Any] = {"device": self.device, "clock": self.clock, "statistic": self.statistic,
                               "torch": torch.__version__}
        if self.device == "onnxruntime-cpu":
            import onnxruntime as ort

            out["onnxruntime"] = ort.__version__
        if self.device == "torch-cuda":
            out["cuda"] = torch.version.cuda
            out["gpu"] = torch.cuda.get_device_name()
        return out

    def measure(self, module: Any, input_shape: Sequence[int], warmup: int, repeat: int) -> dict[str, float]:
        """``{"ms", "min_ms", "mean_ms", "std_ms"}`` of ``repeat`` runs after ``warmup`` runs (``ms``: the
        runtime's ``statistic``, median by default; ``min`` is the repeatable one on a noisy shared machine)."""
        return self.time(self.runner(module, input_shape), warmup, repeat)

    def runner(self, module: Any, input_shape: Sequence[int]) -> Callable[[], None]:
        """A callable running ``module`` once on a fixed random input on this runtime (ONNX export done here)."""
        x = torch.rand(*input_shape)
        module = module.eval()
        if self.device == "onnxruntime-cpu":
            return self._ort_runner(module, x)
        if self.device == "torch-cpu":

            def run() -> None:
                with torch.inference_mode():
                    module(x)

            return run
        mod, xc = module.cuda(), x.cuda()

        def run_cuda() -> None:
            with torch.inference_mode():
                mod(xc)
            torch.cuda.synchronize()

        return run_cuda

    def time(self, run: Callable[[], None], warmup: int, repeat: int) -> dict[str, float]:
        """Statistics (ms) of ``repeat`` timed calls of ``run`` after ``warmup`` untimed ones."""
        for _ in range(warmup):
            run()
        timer = time.perf_counter if self.clock == "wall" else time.thread_time
        times = []
        for _ in range(repeat):
            t = timer()
            run()
            times.append((timer() - t) * 1e3)
        return {
            "ms": statistics.median(times) if self.statistic == "median" else min(times),
            "min_ms": min(times),
            "mean_ms": statistics.fmean(times),
            "std_ms": statistics.pstdev(times),
        }

    def _ort_runner(self, module: Any, x: Any) -> Callable[[], None]:
        buf = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                (x,),
                buf,  # type: ignore[arg-type]
                dynamo=False,
                opset_version=17,
                input_names=["x"],
            )
        so = ort.SessionOptions()
        so.intra_op_num_threads = self.threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        sess = ort.InferenceSession(buf.getvalue(), so, providers=["CPUExecutionProvider"])
        feed = {"x": x.numpy()}

        def run() -> None:
            sess.run(None, feed)

        return run


def measure_configs(
    configs: Sequence[Mapping[str, Any]],
    *,
    device: str = "onnxruntime-cpu",
    width_mult: float = 1.0,
    n_classes: int = 1000,
    batch_size: int = 1,
    threads: int = 1,
    warmup: int = 10,
    repeat: int = 30,
    clock: str = "wall",
    statistic: str = "median",
    rounds: int = 1,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """End-to-end latency (ms) of each config's subnet extracted with ``ofa``: the ``statistic`` (median or min)
    of ``repeat`` runs.

    With ``rounds > 1`` the configs are timed in ``rounds`` interleaved passes of ``repeat // rounds`` runs each
    and each gets the median (or min) over its passes: a burst of load on a shared machine then spoils one pass of
    many configs, not all the runs of one (rankings stay fair); all subnets stay loaded meanwhile."""
    if isinstance(rounds, bool) or not isinstance(rounds, int) or not 1 <= rounds <= repeat:
        raise InputError("rounds", f"expected an integer in 1..repeat ({repeat}), got {rounds!r}")
    rt = Runtime(device, threads, batch_size, clock, statistic)
    width_mult = check_width(width_mult)
    net = OFAMobileNetV3(
        n_classes=_check_n_classes(n_classes),
        width_mult=width_mult,
        ks_list=list(KERNELS),
        expand_ratio_list=list(EXPANDS),
        depth_list=[2, 3, 4],
    )
    out = np.empty(len(configs))
    per_pass = repeat // rounds
    runners: list[Callable[[], None]] = []
    for i, config in enumerate(configs):
        c = normalize_backbone(config)
        net.set_active_subnet(ks=c["ks"], e=c["e"], d=c["d"])
        sub = net.get_active_subnet(preserve_weight=False)
        run = rt.runner(sub, (batch_size, 3, c["r"], c["r"]))
        if rounds == 1:
            out[i] = rt.time(run, warmup, repeat)["ms"]
            if progress is not None:
                progress(i + 1)
        else:
            runners.append(run)
    if rounds > 1:
        passes = np.empty((rounds, len(configs)))
        for k in range(rounds):
            for i, run in enumerate(runners):
                passes[k, i] = rt.time(run, warmup if k == 0 else 2, per_pass)["ms"]
                if progress is not None:
                    progress(k * len(configs) + i + 1)
        out = np.median(passes, axis=0) if statistic == "median" else passes.min(axis=0)
    return out


def runtime_of(table: LatencyTable) -> dict[str, Any]:
    """The runtime a table was measured on (device, threads, batch size, clock, repeat, warmup).

    Only tables built by :func:`build_table` record it; a foreign import (NSGANetV2 or once-for-all YAML, timed
    on another device) cannot be re-measured here, which is a ``ValueError`` saying so.
    """
    meta = table.meta
    if table.style != "msunas" or meta.get("device") not in DEVICES:
        what = meta.get("format") or table.style
        raise InputError(
            "latency_table",
            f"{table.source} is a foreign table ({what}: timed on another device, no recorded runtime);"
            " it cannot be re-measured here: build a table on this machine with `msunas lut build`"
        )
    return {
        "device": meta["device"],
        "threads": int(meta.get("threads", 1)),
        "batch_size": int(meta.get("batch_size", 1)),
        "clock": meta.get("clock", "wall"),
        "statistic": meta.get("statistic", "median"),
        "repeat": int(meta.get("repeat", 30)),
        "warmup": int(meta.get("warmup", 5)),
    }


def verify_latency(
    table: LatencyTable,
    configs: Sequence[Mapping[str, Any]],
    *,
    bound_ms: float | None = None,
    repeat: int | None = None,
    warmup: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[dict[str, Any]]:
    """Measure configs end to end on the table's own runtime and compare with its prediction.

    Why: a LUT bound (hard mode) is only a promise about the prediction; this checks the real networks.
    Returns one row per config: ``predicted_ms``, ``measured_ms``, ``error_pct`` (measured vs predicted) and
    ``exceeds`` (measured > ``bound_ms``; ``None`` without a bound). ``repeat``/``warmup`` default to the table's.
    """
    rt = runtime_of(table)
    for name, v, lo in (("repeat", repeat, 1), ("warmup", warmup, 0)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < lo):
            raise InputError(f"{name}", f"expected an integer >= {lo}, got {v!r}")
    configs = [normalize_backbone(c) for c in configs]
    predicted = table.predict(configs) if configs else np.zeros(0)
    measured = measure_configs(
        configs,
        device=rt["device"],
        width_mult=table.width_mult,
        n_classes=table.n_classes,
        batch_size=rt["batch_size"],
        threads=rt["threads"],
        clock=rt["clock"],
        statistic=rt["statistic"],
        warmup=rt["warmup"] if warmup is None else warmup,
        repeat=rt["repeat"] if repeat is None else repeat,
        progress=progress,
    )
    return [
        {
            "predicted_ms": float(p),
            "measured_ms": float(m),
            "error_pct": float((m - p) / p * 100) if p > 0 else None,
            "exceeds": None if bound_ms is None else bool(m > bound_ms),
        }
        for p, m in zip(predicted, measured, strict=True)
    ]


# ---------------------------------------------------------------------------------------------- the table


def _mape(pred: np.ndarray, true: np.ndarray) -> float:
    return float(np.mean(np.abs(pred - true) / true) * 100)


class LatencyTable:
    """A latency lookup table: per-block ms (optionally per resolution), the table's settings and correction.

    ``entries`` maps block keys (of ``style``) to ms; ``per_resolution`` (once-for-all tables) maps a
    resolution to its own entries. ``correction`` (optional) holds ``scale`` and ``offset_ms``:
    ``predict`` returns ``scale * block_sum + offset_ms``.
    """

    def __init__(
        self,
        entries: Mapping[str, float] | None = None,
        *,
        style: str = "msunas",
        width_mult: float = 1.0,
        n_classes: int = 1000,
        per_resolution: Mapping[int, Mapping[str, float]] | None = None,
        meta: Mapping[str, Any] | None = None,
        correction: Mapping[str, Any] | None = None,
        source: str | None = None,
    ) -> None:
        if style not in STYLES:
            raise InputError("style", f"expected one of {list(STYLES)}, got {style!r}")
        self.style = style
        self.width_mult = check_width(width_mult)
        self.n_classes = _check_n_classes(n_classes)
        self.entries: dict[str, float] = dict(entries or {})
        self.per_resolution = {int(r): dict(v) for r, v in (per_resolution or {}).items()}
        self.meta: dict[str, Any] = dict(meta or {})
        self.correction: dict[str, Any] | None = dict(correction) if correction else None
        self.source = source
        self.raw_entries: dict[str, dict[str, float]] = {}  # msunas tables: per-block statistics
        self._cache: dict[int, tuple[np.ndarray, float, list[str]]] = {}

    # ---- loading and saving

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, width_mult: float | None = None) -> LatencyTable:
        """Load an msunas JSON table, a NSGANetV2 YAML, or a once-for-all YAML file or folder.

        ``width_mult`` picks the channels for a foreign table that holds both widths (NSGANetV2; default 1.0);
        once-for-all tables are inferred from their stem width.
        """
        p = Path(path)
        if p.is_dir():
            files = sorted(p.glob("*_lookup_table.yaml"))
            if not files:
                raise InputError("latency_table", f"folder {p} holds no once-for-all *_lookup_table.yaml files")
            return cls._load_ofa(files, width_mult, str(p))
        if not p.is_file():
            raise FileNotFoundError(f"latency table: no such file or folder: {p}")
        if p.suffix == ".json":
            return cls._load_json(p)
        if p.suffix not in (".yaml", ".yml"):
            raise InputError("latency_table", f"{p} is neither .json (msunas) nor .yaml (NSGANetV2/once-for-all)")
        data = _read_yaml(p)
        keys = list(data)
        if any(k.startswith(("expanded_conv-", "Conv-")) for k in keys):
            return cls._load_ofa([p], width_mult, str(p), data={p: data})
        if any(k.startswith(("MBConv-", "first_conv-")) for k in keys):
            entries = {k: float(_entry_mean(v, k, p)) for k, v in data.items()}
            n_classes = _classes_from(keys, "classifier-input:")
            return cls(
                entries,
                style="nsganetv2",
                width_mult=1.0 if width_mult is None else width_mult,
                n_classes=n_classes,
                meta={"format": "nsganetv2-yaml"},
                source=str(p),
            )
        raise InputError("latency_table", f"{p} has neither NSGANetV2 (MBConv-...) nor once-for-all keys")

    @classmethod
    def _load_ofa(
        cls, files: list[Path], width_mult: float | None, source: str, data: dict[Path, dict] | None = None
    ) -> LatencyTable:
        per_r: dict[int, dict[str, float]] = {}
        stem_c: set[int] = set()
        n_classes: set[int] = set()
        for f in files:
            d = data[f] if data and f in data else _read_yaml(f)
            m = re.match(r"^(\d+)_lookup_table", f.name)
            stems = [k for k in d if k.startswith("Conv-input:")]
            if m:
                r = int(m.group(1))
            elif stems:
                r = int(stems[0].split(":")[1].split("x")[0])
            else:
                raise InputError("latency_table",
                                 f"cannot tell the resolution of {f} (no {{r}}_ prefix, no Conv entry)")
            per_r[r] = {k: float(_entry_mean(v, k, f)) for k, v in d.items()}
            stem_c.update(int(k.rsplit("x", 1)[1]) for k in stems)
            n_classes.add(_classes_from(list(d), "Logits-input:"))
        if width_mult is None:
            widths = [w for w in (1.0, 1.2) if stage_widths(w)[0] in stem_c]
            width_mult = widths[0] if len(widths) == 1 else 1.0
        return cls(
            style="ofa",
            width_mult=width_mult,
            n_classes=min(n_classes),
            per_resolution=per_r,
            meta={"format": "ofa-yaml", "resolutions": sorted(per_r)},
            source=source,
        )

    @classmethod
    def _load_json(cls, p: Path) -> LatencyTable:
        try:
            d = json.loads(p.read_text())
        except json.JSONDecodeError as e:
            raise InputError("latency_table", f"{p} is not valid JSON: {e.msg} (line {e.lineno})") from None
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise InputError("latency_table", f"{p} is not an msunas table (format {FORMAT})")
        meta = {k: v for k, v in d.items() if k not in ("entries", "correction")}
        entries = {k: float(v["ms"]) for k, v in d.get("entries", {}).items()}
        t = cls(
            entries,
            style="msunas",
            width_mult=d["width_mult"],
            n_classes=d["n_classes"],
            meta=meta,
            correction=d.get("correction"),
            source=str(p),
        )
        t.raw_entries = d.get("entries", {})
        return t

    def to_dict(self) -> dict[str, Any]:
        """The msunas JSON form (only for msunas-style tables)."""
        if self.style != "msunas":
            raise InputError("latency_table", f"a {self.style} table is read-only (import it, do not save it)")
        entries = {k: self.raw_entries.get(k, {"ms": v}) for k, v in self.entries.items()}
        return {
            **self.meta,
            "format": FORMAT,
            "width_mult": self.width_mult,
            "n_classes": self.n_classes,
            "n_entries": len(entries),
            "entries": entries,
            "correction": self.correction,
        }

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the table atomically (a crash mid-write never leaves a truncated file)."""
        p = Path(path)
        tmp = p.with_name(p.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        os.replace(tmp, p)

    # ---- lookup

    def _lookup(self, r: int) -> Callable[[Block], float | None]:
        if self.style == "ofa":
            table = self.per_resolution.get(r)
            if table is None:
                have = sorted(self.per_resolution)
                raise InputError("r", f"{r} has no once-for-all table (resolutions {have})")
        else:
            table = self.entries
        style = self.style

        def get(b: Block) -> float | None:
            key = b.key(style)
            if key == "":
                return 0.0
            return table.get(key)

        return get

    def _per_r(self, r: int) -> tuple[np.ndarray, float, list[str]]:
        """(slot table (181,) ms with NaN where missing and 0 in the zero row, fixed ms, missing fixed keys)."""
        got = self._cache.get(r)
        if got is not None:
            return got
        get = self._lookup(r)
        widths, h = stage_widths(self.width_mult), _sides(r)
        rows = np.zeros(N_SLOTS * N_CHOICES + 1)
        for slot in range(N_SLOTS):
            for ki, k in enumerate(KERNELS):
                for ei, e in enumerate(EXPANDS):
                    v = get(_slot_block(widths, h, slot, k, e))
                    rows[slot * N_CHOICES + ki * len(EXPANDS) + ei] = np.nan if v is None else v
        head, tail = fixed_blocks(r, self.width_mult, self.n_classes)
        fixed, missing = 0.0, []
        for b in head + tail:
            v = get(b)
            if v is None:
                missing.append(b.key(self.style))
            else:
                fixed += v
        out = (rows, fixed, missing)
        self._cache[r] = out
        return out

    def block_sum(self, configs: Any) -> np.ndarray:
        """Sum of the block latencies (ms) of each config, no correction; ``ValueError`` naming a missing block."""
        return self._sum(_arrays(configs))

    def _sum(self, a: Mapping[str, np.ndarray]) -> np.ndarray:
        ks, e, d, r = a["ks"], a["e"], a["d"], a["r"]
        n = len(r)
        if n == 0:
            return np.zeros(0)
        kidx = np.searchsorted(KERNELS, ks)
        eidx = np.searchsorted(EXPANDS, e)
        active = (np.arange(MAX_DEPTH)[None, None, :] < d[:, :, None]).reshape(n, N_SLOTS)
        choice = np.where(active, np.arange(N_SLOTS)[None, :] * N_CHOICES + kidx * len(EXPANDS) + eidx, -1)
        r_u, r_inv = np.unique(r, return_inverse=True)
        r_inv = r_inv.reshape(-1)
        per = [self._per_r(int(x)) for x in r_u]
        for x, p in zip(r_u, per, strict=True):
            if p[2]:
                raise InputError("latency_table", f"no entry for block {p[2][0]} (needed at r={x})")
        n_rows = N_SLOTS * N_CHOICES + 1
        rows = np.concatenate([p[0] for p in per])
        idx = np.where(choice < 0, n_rows - 1, choice) + (r_inv * n_rows)[:, None]
        vals = rows[idx]
        if np.isnan(vals).any():
            i, j = np.argwhere(np.isnan(vals))[0]
            widths, h = stage_widths(self.width_mult), _sides(int(r[i]))
            b = _slot_block(widths, h, int(j), int(ks[i, j]), int(e[i, j]))
            raise InputError("latency_table", f"no entry for block {b.key(self.style)} (needed at r={int(r[i])})")
        return vals.sum(axis=1) + np.array([p[1] for p in per])[r_inv]

    def predict(self, configs: Any, *, raw: bool = False) -> np.ndarray:
        """Predicted latency (ms) of each config: ``scale * block_sum + per_layer_ms * layers + offset_ms``
        (``raw``: the plain sum; ``layers``: the config's MBConv layers, sum of ``d``).

        ``configs``: a list of config dicts, one config, or stacked arrays (``codec.backbone_arrays``).
        """
        a = _arrays(configs)
        s = self._sum(a)
        if raw or not self.correction:
            return s
        c = self.correction
        out = c["scale"] * s + c["offset_ms"]
        if c.get("per_layer_ms"):
            out = out + c["per_layer_ms"] * a["d"].sum(axis=1)
        return out

    def breakdown(self, config: Mapping[str, Any]) -> list[tuple[str, float | None]]:
        """(key, ms) of each block of one config, in execution order (``None`` where the table lacks it)."""
        c = normalize_backbone(config)
        get = self._lookup(c["r"])
        return [(b.key(self.style), get(b)) for b in config_blocks(c, self.width_mult, self.n_classes)]

    def set_correction(
        self, lut_ms: Any, measured_ms: Any, *, layers: Any = None, **info: Any
    ) -> dict[str, Any]:
        """Fit and store the bias correction with its fit statistics.

        ``measured = scale * lut + offset_ms`` (least squares); with ``layers`` (each subnet's MBConv layer count)
        and at least 6 measurements, also a cost per executed layer, ``+ per_layer_ms * layers``: the overhead
        between layers that standalone blocks miss grows with depth, which a global scale cannot rank. The
        per-layer term is kept only when it is positive and the scale stays positive."""
        x, y = np.asarray(lut_ms, dtype=float), np.asarray(measured_ms, dtype=float)
        if len(x) < 2:
            raise InputError("correction", "needs at least 2 end-to-end measurements")
        per_layer = 0.0
        n_l = None if layers is None else np.asarray(layers, dtype=float)
        if n_l is not None and len(n_l) != len(x):
            raise InputError("layers", f"expected {len(x)} layer counts, got {len(n_l)}")
        if n_l is not None and len(x) >= 6 and np.ptp(n_l) > 0 and np.ptp(x) > 0:
            (scale, per_layer, offset), *_ = np.linalg.lstsq(np.c_[x, n_l, np.ones_like(x)], y, rcond=None)
            if scale <= 0 or per_layer <= 0:
                per_layer = 0.0
        if per_layer == 0.0:
            if np.ptp(x) > 0:
                scale, offset = np.polyfit(x, y, 1)
            else:
                scale, offset = 1.0, float(np.mean(y - x))
            if scale <= 0:  # degenerate fit (noise): keep a pure offset
                scale, offset = 1.0, float(np.mean(y - x))
        pred = scale * x + offset + (per_layer * n_l if n_l is not None and per_layer else 0.0)
        self.correction = {
            "kind": "linear",
            "scale": float(scale),
            "offset_ms": float(offset),
            "per_layer_ms": float(per_layer),
            "n": len(x),
            "lut_ms": [float(v) for v in x],
            "measured_ms": [float(v) for v in y],
            **({"layers": [int(v) for v in n_l]} if n_l is not None else {}),
            "mape_raw_pct": _mape(x, y),
            "mape_corrected_in_sample_pct": _mape(pred, y),
            **info,
        }
        self._cache.clear()
        return self.correction


def _arrays(configs: Any) -> dict[str, np.ndarray]:
    """Stacked ``ks/e/d/r`` arrays of one config, a list of configs, or already stacked arrays."""
    if isinstance(configs, Mapping) and np.ndim(configs.get("d", [[0]])) == 1:
        configs = [configs]
    if isinstance(configs, Mapping):
        return {k: np.asarray(configs[k], dtype=np.int64) for k in ("ks", "e", "d", "r")}
    if isinstance(configs, (str, bytes)) or not isinstance(configs, Sequence):
        raise InputError("configs", f"expected a list of config dicts, got {type(configs).__name__}")
    return backbone_arrays([normalize_backbone(c) for c in configs])


def _read_yaml(p: Path) -> dict[str, Any]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with p.open() as fh:
        data = yaml.load(fh, Loader=loader)
    if not isinstance(data, dict):
        raise InputError("latency_table", f"{p} is not a YAML mapping of layer keys")
    return data


def _entry_mean(v: Any, key: str, p: Path) -> float:
    if not isinstance(v, Mapping) or "mean" not in v:
        raise InputError("latency_table", f"entry {key!r} of {p} has no 'mean'")
    return float(v["mean"])


def _classes_from(keys: list[str], prefix: str) -> int:
    for k in keys:
        if k.startswith(prefix):
            return int(k.rsplit("output:", 1)[1])
    return 1000


# ---------------------------------------------------------------------------------------------- building


def build_table(
    out: str | os.PathLike[str],
    *,
    device: str = "onnxruntime-cpu",
    width_mult: float = 1.0,
    resolutions: Sequence[int] = tuple(range(160, 225, 4)),
    n_classes: int = 1000,
    batch_size: int = 1,
    threads: int = 1,
    clock: str = "wall",
    statistic: str = "median",
    repeat: int = 30,
    warmup: int = 5,
    calibrate: int = 10,
    calibrate_repeat: int | None = None,
    seed: int = 0,
    progress: bool = True,
    save_every_s: float = 10.0,
    max_blocks: int | None = None,
) -> LatencyTable:
    """Measure every block of the space into ``out`` (resumable) and fit the bias correction.

    An existing ``out`` with the same settings continues: blocks already measured are kept, the rest are
    measured (``max_blocks`` stops after that many new ones, leaving a partial table, as an interruption
    would). ``calibrate`` random subnets are then measured end to end for the correction (0: none).
    """
    width_mult = check_width(width_mult)
    n_classes = _check_n_classes(n_classes)
    for name, v in (("repeat", repeat), ("warmup", warmup), ("calibrate", calibrate)):
        if isinstance(v, bool) or not isinstance(v, int) or v < (1 if name == "repeat" else 0):
            raise InputError(f"{name}", f"expected an integer >= {1 if name == 'repeat' else 0}, got {v!r}")
    if not resolutions:
        raise InputError("resolutions", "expected at least one resolution")
    res_list = sorted(set(int(r) for r in resolutions))
    if res_list[0] < 32:
        raise InputError("resolutions", f"expected >= 32, got {res_list[0]}")
    rt = Runtime(device, threads, batch_size, clock, statistic)
    settings: dict[str, Any] = {
        "clock": clock,
        "statistic": statistic,
        "device": device,
        "width_mult": width_mult,
        "n_classes": n_classes,
        "batch_size": batch_size,
        "threads": threads,
    }
    path = Path(out)
    if path.exists():
        table = LatencyTable.load(path)
        defaults = {"clock": "wall", "statistic": "median"}
        old = {k: table.meta.get(k, getattr(table, k, defaults.get(k))) for k in settings}
        for k, v in settings.items():
            if old[k] != v:
                raise InputError(f"{k}", f"{path} was built with {k}={old[k]!r}, not {v!r} (use another --out)")
        res_list = sorted(set(res_list) | set(table.meta.get("resolutions", [])))
    else:
        table = LatencyTable(style="msunas", width_mult=width_mult, n_classes=n_classes)
        table.raw_entries = {}
    table.meta.update(
        settings,
        resolutions=res_list,
        repeat=repeat,
        warmup=warmup,
        machine=machine_info(),
        runtime=rt.info(),
    )
    table.meta.setdefault("created", dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
    blocks = enumerate_blocks(width_mult, res_list, n_classes)
    todo = [b for b in blocks if b.key() not in table.entries]
    if max_blocks is not None:
        todo = todo[:max_blocks]
    table.meta["complete"] = False
    t0, last_save = time.perf_counter(), time.perf_counter()
    with _progress(progress) as bar:
        task = bar.add_task(f"LUT {device} w{width_mult}", total=len(todo))
        for b in todo:
            stats = rt.measure(b.build(), b.input_shape(batch_size), warmup, repeat)
            table.raw_entries[b.key()] = {k: round(v, 6) for k, v in stats.items()}
            table.entries[b.key()] = table.raw_entries[b.key()]["ms"]
            bar.advance(task)
            if time.perf_counter() - last_save > save_every_s:
                table.save(path)
                last_save = time.perf_counter()
    table.meta["build_seconds"] = round(table.meta.get("build_seconds", 0) + time.perf_counter() - t0, 1)
    table.meta["complete"] = all(b.key() in table.entries for b in blocks)
    table.save(path)
    if table.meta["complete"] and calibrate:
        fit_correction(
            table, n=calibrate, seed=seed, repeat=calibrate_repeat or repeat, warmup=warmup, progress=progress
        )
        table.save(path)
    return table


def fit_correction(
    table: LatencyTable,
    *,
    n: int = 10,
    seed: int = 0,
    repeat: int = 30,
    warmup: int = 5,
    progress: bool = False,
) -> dict[str, Any]:
    """Measure ``n`` random subnets end to end on the table's runtime and store the fitted correction."""
    res = sorted(table.meta.get("resolutions") or [])
    if not res:
        raise InputError("correction", "the table records no resolutions")
    rng = np.random.default_rng(seed)
    configs = get_search_space("mobilenetv3", lr=32, ur=32, width_mult=table.width_mult).sample(n, rng)
    for c in configs:
        c["r"] = int(rng.choice(res))
    with _progress(progress) as bar:
        task = bar.add_task("end-to-end", total=n)
        measured = measure_configs(
            configs,
            device=table.meta["device"],
            width_mult=table.width_mult,
            n_classes=table.n_classes,
            batch_size=table.meta["batch_size"],
            threads=table.meta["threads"],
            clock=table.meta.get("clock", "wall"),
            statistic=table.meta.get("statistic", "median"),
            warmup=warmup,
            repeat=repeat,
            progress=lambda i: bar.update(task, completed=i),
        )
    lut = table.block_sum(configs)
    layers = [sum(normalize_backbone(c)["d"]) for c in configs]
    return table.set_correction(lut, measured, layers=layers, configs=configs, repeat=repeat, seed=seed)


class _NullProgress:
    def __enter__(self) -> _NullProgress:
        return self

    def __exit__(self, *a: Any) -> None:
        return None

    def add_task(self, *a: Any, **k: Any) -> int:
        return 0

    def advance(self, *a: Any, **k: Any) -> None:
        return None

    def update(self, *a: Any, **k: Any) -> None:
        return None


def _progress(enabled: bool) -> Any:
    if not enabled:
        return _NullProgress()
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )


def table_summary(table: LatencyTable) -> dict[str, Any]:
    """A short JSON-able description of a table (for the CLI and reports)."""
    out: dict[str, Any] = {
        "source": table.source,
        "style": table.style,
        "width_mult": table.width_mult,
        "n_classes": table.n_classes,
        "entries": len(table.entries) or sum(len(v) for v in table.per_resolution.values()),
    }
    keys = ("device", "clock", "statistic", "batch_size", "threads", "repeat", "resolutions", "complete",
            "build_seconds")
    for k in keys:
        if k in table.meta:
            out[k] = table.meta[k]
    if table.correction:
        out["correction"] = {
            k: table.correction[k] for k in ("scale", "offset_ms", "n", "mape_raw_pct", "mape_corrected_in_sample_pct")
        }
    return out


__all__ = [
    "Block",
    "DEVICES",
    "LatencyTable",
    "Runtime",
    "build_table",
    "config_blocks",
    "enumerate_blocks",
    "fit_correction",
    "fixed_blocks",
    "measure_configs",
    "runtime_of",
    "table_summary",
    "verify_latency",
]
