"""Robustness (FlatNAS): flatness of the loss landscape under weight perturbation (R), the 15 image corruptions
for out-of-distribution accuracy (and the CIFAR-10-C/100-C reader, mCE), and the ``top1_robust`` objective."""

from robustness.corruptions import corrupt, corrupt_batch, corruption_accuracy, load_cifar_c, mean_corruption_error
from robustness.evaluation import RobustnessProbe
from robustness.flatness import FlatnessResult, flatness
from robustness.objective import estimate_alpha_norm, rescore, top1_robust
from robustness.spec import CorruptionSpec, RobustJob, RobustnessSpec

__all__ = [
    "CorruptionSpec", "FlatnessResult", "RobustJob", "RobustnessProbe", "RobustnessSpec", "corrupt", "corrupt_batch",
    "corruption_accuracy", "estimate_alpha_norm", "flatness", "load_cifar_c", "mean_corruption_error", "rescore",
    "top1_robust",
]
