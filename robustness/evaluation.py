"""Robustness metrics of an evaluated candidate, for the evaluators (``search/evaluators/``).

:class:`RobustnessProbe` is built once per evaluator from the job spec and its dataset; after a candidate is
fine-tuned and validated, :meth:`RobustnessProbe.metrics` adds:

- ``robustness`` (R, percentage points), ``robustness_loss_increase``, ``robustness_time`` -- when the job's
  objectives include ``top1_robust`` or ``robustness.measure`` is true;
- ``corruption_acc`` (mean over types and severities, %), ``corruption_acc_<type>`` (mean over severities),
  ``corruption_acc_<type>_<severity>``, ``corruption_time``, and ``mce`` / ``relative_mce`` when the spec
  gives a baseline's accuracies -- when a ``robustness.corruptions`` section is given.

``top1_robust`` itself is not an evaluator metric: it needs ``alpha_norm`` from the whole archive, so the
engine computes it (:mod:`robustness.objective`) and records it beside the raw ``top1`` and ``robustness``.

Corrupted images: in-memory datasets (CIFAR, SVHN, digits) are corrupted at their native resolution, as
CIFAR-10-C was made (images below 32 px, e.g. digits' 8x8, are first upsampled to 32x32), then resized to the
candidate's resolution by the dataset's own pipeline. Image-folder datasets (ImageNet) are corrupted at the
candidate's input resolution (the validation batch, de-normalised to uint8). With ``corruptions.cifar_c_root``
the published CIFAR-10-C/CIFAR-100-C files are read instead of generating. Corrupted images are cached per
evaluator (they do not depend on the candidate).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from robustness.corruptions import corrupt_batch, load_cifar_c, mean_corruption_error
from robustness.flatness import flatness
from robustness.spec import RobustJob
from supernets.datasets import MEAN, STD, resize_batch
from supernets.errors import InputError

Batches = list[tuple[torch.Tensor, torch.Tensor]]
MIN_CORRUPT_SIDE = 32


def wants_flatness(job: RobustJob) -> bool:
    """True when the job needs R: ``top1_robust`` is an objective or ``robustness.measure`` is set."""
    return "top1_robust" in job.objectives or bool(job.robustness.measure)


def wants_corruptions(job: RobustJob) -> bool:
    """True when the job asks for corruption metrics (a ``robustness.corruptions`` section)."""
    return job.robustness.corruptions is not None


class RobustnessProbe:
    """Computes R and corruption metrics of fine-tuned candidates for one job (see the module docstring).

    ``data`` is the evaluator's :class:`supernets.datasets.DatasetSplits` (its ``valid`` split is used);
    ``to_input(uint8 NCHW, r)`` is the dataset pipeline's conversion to the normalised network input.
    """

    def __init__(self, job: RobustJob, data: Any, *, device: torch.device | str = "cpu") -> None:
        self.job = job
        self.opts = job.robustness
        self.data = data
        self.device = torch.device(device)
        self.seed = int(self.opts.seed if self.opts.seed is not None else job.seed)
        self.do_flatness = wants_flatness(job)
        self.do_corruptions = wants_corruptions(job)
        self._corrupted: dict[tuple[str, int, int], np.ndarray] = {}  # (type, severity, r or 0) -> uint8 NHWC
        self._labels: np.ndarray | None = None

    @classmethod
    def from_job(cls, job: RobustJob, data: Any, *, device: torch.device | str = "cpu") -> RobustnessProbe | None:
        """A probe when the job asks for robustness metrics, else None (evaluators then skip it at no cost)."""
        if not (wants_flatness(job) or wants_corruptions(job)):
            return None
        return cls(job, data, device=device)

    # ------------------------------------------------------------------------------------------ metrics
    def metrics(self, net: nn.Module, valid_batches: Batches, r: int) -> dict[str, float]:
        """Robustness metrics of the fine-tuned ``net`` on the validation batches at resolution ``r``."""
        out: dict[str, float] = {}
        if self.do_flatness:
            batches = self._limit(valid_batches, self.opts.vld_images)
            res = flatness(
                net, batches, sigma=self.opts.sigma, n_draws=self.opts.n_draws, seed=self.seed, device=self.device
            )
            out["robustness"] = res.robustness
            out["robustness_loss_increase"] = res.loss_increase
            out["robustness_time"] = res.seconds
            out["robustness_cpu_time"] = res.cpu_seconds
        if self.do_corruptions:
            out.update(self.corruption_metrics(net, valid_batches, r))
        return out

    @staticmethod
    def _limit(batches: Batches, n: int | None) -> Batches:
        if n is None:
            return batches
        out: Batches = []
        left = n
        for x, y in batches:
            if left <= 0:
                break
            out.append((x[:left], y[:left]))
            left -= int(y.shape[0])
        return out

    def corruption_metrics(self, net: nn.Module, valid_batches: Batches, r: int) -> dict[str, float]:
        """Accuracy (%) per corruption type and severity, their means and (with a baseline) mCE."""
        c = self._copts()
        t0, c0 = time.perf_counter(), time.process_time()
        acc: dict[str, dict[int, float]] = {}
        was = [(m, m.training) for m in net.modules()]
        net.eval()
        try:
            x, labels = self._corrupted_inputs("clean", 0, valid_batches, r)
            clean_acc = self._accuracy(net, x, labels)
            for name in c.types:
                acc[name] = {}
                for s in c.severities:
                    x, labels = self._corrupted_inputs(name, s, valid_batches, r)
                    acc[name][int(s)] = self._accuracy(net, x, labels)
        finally:
            for m, mode in was:
                m.training = mode
        out: dict[str, float] = {}
        for name, per in acc.items():
            for s, a in per.items():
                out[f"corruption_acc_{name}_{s}"] = a
            out[f"corruption_acc_{name}"] = float(np.mean(list(per.values())))
        out["corruption_acc"] = float(np.mean([out[f"corruption_acc_{n}"] for n in acc]))
        out["corruption_clean_acc"] = clean_acc
        if c.baseline and all(t in c.baseline and all(s in c.baseline[t] for s in acc[t]) for t in acc):
            mce = mean_corruption_error(acc, c.baseline, clean_acc=clean_acc, baseline_clean_acc=c.baseline_clean_acc)
            out["mce"] = mce["mCE"]
            if "relative_mCE" in mce:
                out["relative_mce"] = mce["relative_mCE"]
        out["corruption_time"] = time.perf_counter() - t0
        out["corruption_cpu_time"] = time.process_time() - c0
        return out

    @torch.no_grad()
    def _accuracy(self, net: nn.Module, x: torch.Tensor, labels: torch.Tensor, batch_size: int = 256) -> float:
        correct = 0
        for i in range(0, x.shape[0], batch_size):
            xb = x[i : i + batch_size].to(self.device)
            correct += int((net(xb).argmax(dim=1).cpu() == labels[i : i + batch_size]).sum())
        return 100.0 * correct / max(1, int(x.shape[0]))

    def _copts(self) -> Any:
        if self.opts.corruptions is None:
            raise InputError("robustness.corruptions", "the job spec has no corruptions section")
        return self.opts.corruptions

    # ------------------------------------------------------------------------------------------ images
    def _corrupted_inputs(self, name: str, severity: int, valid_batches: Batches, r: int) -> tuple[torch.Tensor, Any]:
        """Normalised network inputs (N, 3, r, r) of the corrupted validation images, and their labels."""
        c = self._copts()
        if c.cifar_c_root:
            if name == "clean":  # CIFAR-10-C/-100-C corrupt the test set, in order: its clean images are the reference
                test = getattr(self.data, "test", None)
                if test is None or not hasattr(test, "images"):
                    raise InputError("robustness.corruptions.cifar_c_root", "the dataset has no in-memory test split")
                return self._to_input(self._native_clean(test, c.n_images), r), test.labels[: c.n_images].long()
            imgs, labels = load_cifar_c(c.cifar_c_root, name, severity)
            imgs, labels = np.asarray(imgs[: c.n_images]), labels[: c.n_images]
            return self._to_input(imgs, r), torch.from_numpy(np.asarray(labels, dtype=np.int64))
        valid = self.data.valid
        if hasattr(valid, "images"):  # in-memory split: corrupt at native resolution
            key = (name, severity, 0)
            if key not in self._corrupted:
                clean = self._native_clean(valid, c.n_images)
                self._corrupted[key] = (
                    clean if name == "clean" else corrupt_batch(clean, name, severity, seed=c.seed, preset=c.preset)
                )
            labels_t = valid.labels[: c.n_images].to(torch.int64)
            return self._to_input(self._corrupted[key], r), labels_t
        # image folders: corrupt the validation batches at the input resolution
        key = (name, severity, r)
        if key not in self._corrupted:
            for k in [k for k in self._corrupted if k[2] not in (0, r)]:
                del self._corrupted[k]  # keep one resolution
            clean = self._denormalised(valid_batches, c.n_images)
            self._corrupted[key] = (
                clean if name == "clean" else corrupt_batch(clean, name, severity, seed=c.seed, preset=c.preset)
            )
        labels_t = torch.cat([y.cpu() for _, y in valid_batches])[: c.n_images].to(torch.int64)
        return self._to_input(self._corrupted[key], r), labels_t

    @staticmethod
    def _native_clean(valid: Any, n: int) -> np.ndarray:
        imgs = valid.images[:n]  # uint8 (N, C, H, W)
        if imgs.shape[1] == 1:
            imgs = imgs.expand(-1, 3, -1, -1)
        h, w = int(imgs.shape[2]), int(imgs.shape[3])
        if min(h, w) < MIN_CORRUPT_SIDE:
            scale = MIN_CORRUPT_SIDE / min(h, w)
            size = (round(h * scale), round(w * scale))
            x = torch.nn.functional.interpolate(imgs.float(), size=size, mode="bilinear", align_corners=False)
            imgs = x.round().clamp(0, 255).to(torch.uint8)
        return np.ascontiguousarray(imgs.permute(0, 2, 3, 1).numpy())

    @staticmethod
    def _denormalised(valid_batches: Batches, n: int) -> np.ndarray:
        x = torch.cat([b.cpu() for b, _ in valid_batches])[:n].float()
        mean = torch.tensor(MEAN).view(1, 3, 1, 1)
        std = torch.tensor(STD).view(1, 3, 1, 1)
        u8 = ((x * std + mean) * 255.0).round().clamp(0, 255).to(torch.uint8)
        return np.ascontiguousarray(u8.permute(0, 2, 3, 1).numpy())

    @staticmethod
    def _to_input(images_nhwc: np.ndarray, r: int) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(images_nhwc)).permute(0, 3, 1, 2)
        return resize_batch(x, r)


def corruption_table(metrics: dict[str, float], types: Sequence[str], severities: Sequence[int]) -> dict[str, Any]:
    """``{type: {severity: acc}}`` back from a candidate's flat ``corruption_acc_<type>_<s>`` metrics."""
    out: dict[str, dict[int, float]] = {}
    for t in types:
        out[t] = {}
        for s in severities:
            v = metrics.get(f"corruption_acc_{t}_{s}")
            if v is None or not math.isfinite(v):
                raise InputError("metrics", f"no corruption_acc_{t}_{s}")
            out[t][int(s)] = float(v)
    return out
