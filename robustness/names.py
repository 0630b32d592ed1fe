"""Names shared by the corruption generator and the job spec (kept import-light: no numpy/scipy)."""

from __future__ import annotations

CORRUPTIONS: tuple[str, ...] = (
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "defocus_blur",
    "glass_blur",
    "motion_blur",
    "zoom_blur",
    "snow",
    "frost",
    "fog",
    "brightness",
    "contrast",
    "elastic_transform",
    "pixelate",
    "jpeg_compression",
)
"""The 15 benchmark corruptions, in the order of the CIFAR-10-C / ImageNet-C papers."""

SEVERITIES: tuple[int, ...] = (1, 2, 3, 4, 5)
