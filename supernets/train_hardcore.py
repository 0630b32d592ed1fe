"""HardCoRe-NAS's one-shot supernet training (``msunas supernet train --method hardcore``).

HardCoRe-NAS (Alibaba-MIIL+HardCoReNAS README, "Train the heaviest model first", ``train.py
--heaviest_network``; then the multipath supernet with in-place distillation) trains the heaviest path alone
first, so that every sub-path inherits trained weights, then samples several paths per step and distils them in
place from the heaviest one's predictions. Here, on :func:`supernets.train.train_supernet`'s loop (same
optimizer, schedule, checkpoints and exact resume):

* warm-up, the first ``ceil(epochs / 4)`` epochs: each step trains only the heaviest subnet (kernel 7, expand 6,
  depth 4, the largest resolution) on the labels;
* then each step trains the heaviest subnet on the labels and ``n_random`` uniformly sampled paths (random
  kernel/expand/depth/resolution) on its soft predictions (``kd_ratio``), without the sandwich rule's smallest
  subnet.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from supernets import codec

__all__ = ["hardcore_configs", "warmup_epochs"]


def warmup_epochs(epochs: int) -> int:
    """Heaviest-only epochs of a ``epochs``-epoch run: the first quarter (at least one)."""
    return max(1, math.ceil(epochs / 4))


def hardcore_configs(space: Any, rng: np.random.Generator, n_random: int, epoch: int, epochs: int) -> list[dict]:
    """The subnets of one step: the heaviest first (the teacher), then ``n_random`` sampled paths after warm-up."""
    big = codec.largest_backbone(space.resolutions[-1])
    if epoch < warmup_epochs(epochs):
        return [big]
    return [big, *space.sample(n_random, rng)]
