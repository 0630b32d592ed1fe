"""``{kind: supernet}``: true evaluation of a candidate with weights inherited from a once-for-all supernet.

Per candidate, as MSuNAS/CNAS do: extract the static subnet with inherited weights, recalibrate its BN
statistics on ``bn_calib_images`` training images (the fixed stem's outputs and statistics are cached per
resolution, :class:`supernets.finetune.StemCache`), fine-tune ``n_epochs`` (SGD + momentum, cosine schedule
stepped per batch), validate on the validation split carved from the training set. Metrics: ``top1``, ``top5``
(%), ``loss`` (validation cross-entropy), the exact costs of :mod:`supernets.cost` (``params``, ``macs``,
``activations``, ``peak_activation``), and the time of each phase (``time_extract``, ``time_bn``,
``time_train``, ``time_valid``, seconds). When the job asks (objective ``top1_robust``, a ``robustness``
section), also FlatNAS's R and corruption metrics (:mod:`robustness.evaluation`).

Deterministic per seed on CPU: the data order and augmentation of a candidate come from a generator seeded by
the job seed and the config key, and ``torch.manual_seed`` is set before fine-tuning (dropout). Datasets and the
supernet are loaded once per evaluator instance. Failures (exceptions, a non-finite loss, out of memory) become
a failed :class:`search.evaluator.EvalResult` with the reason (the base class catches them).
"""

from __future__ import annotations

import time
import zlib
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn as nn

from robustness.evaluation import RobustnessProbe
from search.evaluator import Evaluator, register_evaluator
from search.provenance import load_job_supernet
from search.spec import JobSpec, SupernetEvaluatorSpec
from supernets import codec, get_search_space
from supernets.datasets import DatasetSplits, TensorImages, load_dataset
from supernets.errors import InputError
from supernets.finetune import StemCache, finetune, recalibrate_bn, recalibrate_bn_cached, validate
from supernets.ofa_supernet import extract_subnet, head_classes, net_width

STEM_CACHE_BYTES = 512 * 2**20  # above this (large r x many calibration images) recalibrate with full passes
DEVICE_DATA_BYTES = 4 * 2**30  # in-memory splits up to this size are held on a CUDA device (uint8) once
GPU_EVAL_BATCH = 512  # BN-calibration and validation batch on a GPU (fine-tuning keeps the spec's batch_size)

class SupernetEvaluator(Evaluator):
    """Fine-tune-and-validate evaluator; ``supernet``/``data`` may be passed in (tests, benchmarks, workers)."""

    def __init__(
        self,
        job: JobSpec,
        *,
        supernet: nn.Module | None = None,
        data: DatasetSplits | None = None,
        resident: bool | None = None,
    ) -> None:
        """``resident``: hold the in-memory dataset on the evaluator's device once (default: on a CUDA device);
        batches are then cut, augmented and resized there, with the same draws as on the CPU."""
        self.job = job
        self.opts: SupernetEvaluatorSpec = job.evaluator  # type: ignore[assignment]
        if self.opts.kind != "supernet":
            raise InputError("evaluator.kind", f"expected 'supernet', got {self.opts.kind!r}")
        if self.opts.device != "cpu" and not self.opts.device.startswith("cuda"):
            raise InputError("evaluator.device", f"expected 'cpu' or 'cuda[:N]', got {self.opts.device!r}")
        self.device = torch.device(self.opts.device)
        ds = job.dataset
        self.data = data if data is not None else load_dataset(ds.name, ds.root, ds.vld_size)
        self.n_classes = ds.n_classes or self.data.n_classes
        self.space = get_search_space(job.search_space, **job.search_space_kwargs())
        self.supernet = supernet if supernet is not None else load_job_supernet(job)
        head = head_classes(self.supernet)
        if head != self.n_classes:
            raise InputError("supernet", f"its head has {head} classes, dataset {ds.name} needs {self.n_classes}")
        if net_width(self.supernet) != float(job.width_mult):
            raise InputError("width_mult", f"job asks {job.width_mult}, supernet is {self.supernet.width_mult}")
        self.supernet.to(self.device)
        on_gpu = self.device.type == "cuda"
        self.train_set, self.valid_set = _resident(self.data, self.device, on_gpu if resident is None else resident)
        # on a GPU, calibration/validation run in large batches (validation is batch-size invariant; calibration
        # averages fewer, larger batches' statistics); fine-tuning keeps the spec's batch_size (its results)
        self.eval_batch = max(self.opts.batch_size, GPU_EVAL_BATCH) if on_gpu else self.opts.batch_size
        self._cache: OrderedDict[tuple[str, int], Any] = OrderedDict()
        g = torch.Generator().manual_seed(job.seed)
        n_cal = min(self.opts.bn_calib_images, len(self.data.train))
        self._calib_idx = torch.randperm(len(self.data.train), generator=g)[:n_cal].tolist()

        # FlatNAS R / corruption metrics per candidate when the job asks (top1_robust, robustness.*); else None
        self.robust = RobustnessProbe.from_job(job, self.data, device=self.device)

    # -------------------------------------------------------------------------------- cached fixed batches
    def _fixed_batches(self, which: str, r: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """BN-calibration and validation batches at resolution ``r`` (kept for the last 2 resolutions)."""
        key = (which, r)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        split = self.train_set.subset(self._calib_idx) if which == "calib" else self.valid_set
        bs = self.eval_batch
        out = [
            (x.to(self.device), y.to(self.device)) for x, y in split.batches(r, bs, num_workers=self.opts.num_workers)
        ]
        self._cache[key] = out
        while len(self._cache) > 4:
            self._cache.popitem(last=False)
        return out

    def calibration_batches(self, r: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The fixed BN-calibration batches at resolution ``r`` (the first ``bn_calib_images`` of a seeded draw)."""
        return self._fixed_batches("calib", r) if self._calib_idx else []

    def _stem_cache_bytes(self, r: int) -> int:
        c = codec.stage_widths(self.job.width_mult)[1]
        return len(self._calib_idx) * c * (-(-r // 2)) ** 2 * 4

    def stem_cache(self, r: int, net: nn.Module) -> StemCache:
        """The stem's calibration outputs/statistics at ``r`` (built on first use from ``net``'s stem)."""
        key = ("stem", r)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]  # type: ignore[no-any-return]
        batches = [_cl(x, self.opts.channels_last) for x, _ in self.calibration_batches(r)]
        self._cache.pop(("calib", r), None)
        cache = StemCache.build(net, batches)
        self._cache[key] = cache
        while len(self._cache) > 4:
            self._cache.popitem(last=False)
        return cache

    def _epochs(self, r: int, g: torch.Generator) -> Iterator[list[tuple[torch.Tensor, torch.Tensor]]]:
        while True:
            yield [
                (x.to(self.device), y.to(self.device))
                for x, y in self.train_set.batches(
                    r,
                    self.opts.batch_size,
                    shuffle=True,
                    augment=True,
                    generator=g,
                    limit=self.opts.train_images,
                    num_workers=self.opts.num_workers,
                )
            ]

    def steps_per_epoch(self) -> int:
        n = (
            len(self.data.train)
            if self.opts.train_images is None
            else min(self.opts.train_images, len(self.data.train))
        )
        return -(-n // self.opts.batch_size)

    # -------------------------------------------------------------------------------- one candidate
    def begin(self, config: dict[str, Any]) -> tuple[dict[str, Any], int, int]:
        """Start one candidate: apply ``num_threads``, validate ``config``; (config, resolution, seed), the seed
        (of its data order and fine-tuning) from the job seed and the config's key."""
        if self.opts.num_threads:
            torch.set_num_threads(self.opts.num_threads)
        cfg = self.space.validate(config)
        seed = (self.job.seed * 1_000_003 + zlib.crc32(codec.config_key(cfg).encode())) % (2**63 - 1)
        return cfg, int(cfg["r"]), seed

    def prepare(self, config: dict[str, Any]) -> tuple[nn.Module, dict[str, float]]:
        """Extract, recalibrate BN and fine-tune ``config``'s subnet; returns (network, training metrics + times).

        The network is what :meth:`evaluate` validates and what ``msunas export`` writes.
        """
        o = self.opts
        cfg, r, seed = self.begin(config)
        t0 = time.perf_counter()
        net = extract_subnet(self.supernet, cfg).to(self.device)
        if o.channels_last:
            net = net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        t1 = time.perf_counter()
        if self._calib_idx and ("stem", r) not in self._cache and ("calib", r) not in self._cache:
            self.calibration_batches(r)
        t_data = time.perf_counter() - t1
        t1b = time.perf_counter()
        if self._calib_idx and self._stem_cache_bytes(r) <= STEM_CACHE_BYTES:
            recalibrate_bn_cached(net, self.stem_cache(r, net))  # the fixed stem's part cached per resolution
        elif self._calib_idx:
            recalibrate_bn(net, (_cl(x, o.channels_last) for x, _ in self.calibration_batches(r)))
        t2 = time.perf_counter()
        torch.manual_seed(seed)
        g = torch.Generator().manual_seed(seed)
        metrics: dict[str, float] = {}
        if o.n_epochs > 0:
            metrics = finetune(
                net,
                self._epochs(r, g),
                n_epochs=o.n_epochs,
                steps_per_epoch=self.steps_per_epoch(),
                lr=o.lr,
                momentum=o.momentum,
                weight_decay=o.weight_decay,
                channels_last=o.channels_last,
                sam_rho=o.sam_rho if o.optimizer == "sam" else 0.0,
                sam_adaptive=o.sam_adaptive,
            )
        t3 = time.perf_counter()
        metrics.update(time_extract=t1 - t0, time_bn=t2 - t1b, time_train=t3 - t2, time_data=t_data)
        return net, metrics

    def validate_net(self, net: nn.Module, r: int) -> dict[str, float]:
        """top1/top5/loss of a prepared network on the validation split at resolution ``r``."""
        return validate(net, self._fixed_batches("valid", r), channels_last=self.opts.channels_last)

    def _evaluate(self, config: dict[str, Any]) -> dict[str, float]:
        cfg = self.space.validate(config)
        net, metrics = self.prepare(cfg)
        t3 = time.perf_counter()
        vb = self._fixed_batches("valid", int(cfg["r"]))
        t3b = time.perf_counter()
        metrics.update(validate(net, vb, channels_last=self.opts.channels_last))
        metrics["time_valid"] = time.perf_counter() - t3b
        metrics["time_data"] += t3b - t3
        metrics.update(self._costs(cfg, net))
        if self.robust is not None:
            metrics.update(self.robust.metrics(net, vb, int(cfg["r"])))
        return metrics

    def _costs(self, cfg: dict[str, Any], net: nn.Module) -> dict[str, float]:
        try:
            from supernets.cost import cost_metrics
        except ImportError:  # the cost model is not on this branch yet: count parameters exactly from the net
            return {"params": float(sum(p.numel() for p in net.parameters()))}
        c = cost_metrics([cfg], width_mult=self.job.width_mult, n_classes=self.n_classes)
        return {k: float(v[0]) for k, v in c.items()}


def _resident(data: DatasetSplits, device: torch.device, on: bool) -> tuple[Any, Any]:
    """(train, valid) splits as the evaluator reads them: on ``device`` when ``on`` and both are in-memory
    (:class:`~supernets.datasets.TensorImages`) within ``DEVICE_DATA_BYTES``; else the splits themselves."""
    tr, va = data.train, data.valid
    if not (on and isinstance(tr, TensorImages) and isinstance(va, TensorImages)):
        return tr, va
    if tr.images.nbytes + va.images.nbytes > DEVICE_DATA_BYTES:
        return tr, va
    return tr.to(device), va.to(device)


def _cl(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


@register_evaluator("supernet")
def _factory(job: JobSpec) -> Evaluator:
    if job.search_space == "eemobilenetv3":  # backbone + exit heads, trained jointly
        from search.evaluators.early_exit import EarlyExitEvaluator

        return EarlyExitEvaluator(job)
    return SupernetEvaluator(job)
