"""``{kind: proxy, name: zen}``: training-free evaluation with a zero-shot proxy (see :mod:`search.proxies`).

How the engine's first objective is fed: the engine minimises ``top1_err = 100 - metrics["top1"]``. This
evaluator reports the raw proxy as ``proxy_score`` and sets ``top1`` to a fixed, strictly monotone map of it into
(0, 100)::

    z = (score - center) / scale;   top1 = 50 + 50 * z / (1 + |z|)

so every ranking the engine makes (non-dominated sorting, hypervolume, selection) is the proxy's ranking, and
the engine, its hypervolume reference point (100 % error) and the archive format need no change. The rational
squashing never saturates in float64 over any realistic score range (unlike a sigmoid), so distinct scores stay
distinct. ``top1`` in a proxy search is therefore a pseudo-accuracy, not an accuracy: the metrics also carry
``proxy_score`` and ``proxy_top1_is_pseudo = 1.0`` so archives say so. ``center``/``scale`` only change how the
surrogate sees the target (near-linear around ``center``); the defaults are about the median and interquartile
range of scores of random w1.2 OFA subnets at r 160..224 (bench/results/proxies.json).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from search import proxies
from search.evaluator import Evaluator, register_evaluator
from search.objectives import n_classes_of
from supernets import ofa_supernet
from supernets.cost import cost_metrics
from supernets.errors import InputError

if TYPE_CHECKING:
    from search.spec import JobSpec

# (center, scale) per proxy: about the median and interquartile range of the scores of random w1.2 OFA subnets at
# r 160..224 (bench/results/proxies.json). They never change the ranking, only how the surrogate sees the target.
# NASWOT's log-determinant grows with the batch (N x N kernel): its centre and scale are per image.
DEFAULT_CALIBRATION: dict[str, tuple[float, float]] = {
    "zen": (96.0, 7.0),
    "naswot": (15.0, 0.4),  # times batch_size
    "synflow": (79.0, 5.0),
    "gradnorm": (4.2, 0.3),
    "params": (7.0e6, 1.5e6),
    "macs": (4.0e8, 1.5e8),
}
# variant "zennas" (Zen-NAS's implementations, search.proxies): SynFlow and GradNorm are raw, not logged
ZENNAS_CALIBRATION: dict[str, tuple[float, float]] = {
    "zen": (62.0, 5.0),
    "naswot": (14.5, 0.4),  # times batch_size
    "synflow": (3.0e5, 3.0e5),
    "gradnorm": (5.0e4, 5.0e4),
}


def pseudo_top1(score: float, center: float, scale: float) -> float:
    """The strictly increasing map of a proxy score into (0, 100) reported as ``top1`` (see the module doc)."""
    z = (score - center) / scale
    return 50.0 + 50.0 * z / (1.0 + abs(z))


class ProxyEvaluator(Evaluator):
    """Scores configs with one proxy at fixed seed; reports ``proxy_score``, pseudo ``top1`` and exact costs."""

    def __init__(
        self,
        name: str,
        *,
        width_mult: float = 1.0,
        n_classes: int = 1000,
        batch_size: int = 16,
        seed: int = 0,
        resolution: int | None = None,
        center: float | None = None,
        scale: float | None = None,
        supernet: Any = None,
        num_threads: int | None = None,
        variant: str = "ours",
        repeat: int = 1,
    ) -> None:
        if name not in proxies.proxy_names():
            raise InputError("evaluator.name", f"unknown proxy {name!r} (one of {proxies.proxy_names()})")
        if variant not in proxies.VARIANTS:
            raise InputError("evaluator.variant", f"expected one of {list(proxies.VARIANTS)}, got {variant!r}")
        if variant == "zennas" and supernet is not None:
            raise InputError("evaluator.inherit", "the zennas variant re-initialises every network (Gaussian weights)")
        self.name = name
        self.kw: dict[str, Any] = {
            "width_mult": width_mult,
            "n_classes": n_classes,
            "batch_size": batch_size,
            "seed": seed,
            "resolution": resolution,
            "supernet": supernet,
            "variant": variant,
            "repeat": repeat,
        }
        c0, s0 = (ZENNAS_CALIBRATION if variant == "zennas" else DEFAULT_CALIBRATION).get(
            name, DEFAULT_CALIBRATION[name]
        )
        if name == "naswot":
            c0, s0 = c0 * batch_size, s0 * batch_size
        self.center = c0 if center is None else float(center)
        self.scale = s0 if scale is None else float(scale)
        if not self.scale > 0:
            raise InputError("evaluator.scale", f"must be > 0, got {self.scale}")
        self.num_threads = num_threads

    def _evaluate(self, config: dict[str, Any]) -> dict[str, float]:
        if self.num_threads:
            torch.set_num_threads(self.num_threads)
        score = proxies.compute_proxy(self.name, config, **self.kw)
        if score != score or score in (float("inf"), float("-inf")):
            raise ValueError(f"proxy {self.name} is not finite ({score}) for this config")

        cost = cost_metrics(
            [proxies.backbone_config(config)], width_mult=self.kw["width_mult"], n_classes=self.kw["n_classes"]
        )
        out = {k: float(v[0]) for k, v in cost.items()}
        out.update(
            {
                "top1": pseudo_top1(score, self.center, self.scale),
                "proxy_score": float(score),
                "proxy_top1_is_pseudo": 1.0,
            }
        )
        return out


def _load_supernet(job: JobSpec, n_classes: int) -> Any:
    """The job's supernet with its weights (for ``inherit: true``), via the supernet area's loader."""
    if not job.supernet.path:
        raise InputError("evaluator.inherit", "needs supernet.path (a trained once-for-all checkpoint)")

    return ofa_supernet.load_supernet(job.supernet.path, width_mult=job.width_mult, n_classes=n_classes)


@register_evaluator("proxy")
def _factory(job: JobSpec) -> Evaluator:
    spec: Any = job.evaluator
    n_classes = n_classes_of(job)
    return ProxyEvaluator(
        spec.name,
        width_mult=job.width_mult,
        n_classes=int(n_classes),
        batch_size=spec.batch_size,
        seed=spec.seed,
        resolution=spec.resolution,
        center=spec.center,
        scale=spec.scale,
        supernet=_load_supernet(job, int(n_classes)) if spec.inherit else None,
        num_threads=spec.num_threads,
        variant=spec.variant,
        repeat=spec.repeat,
    )
