"""Thread counts, set deliberately: torch and the BLAS/OpenMP pools oversubscribe small machines.

A search alternates small numerical work (surrogate fits, NSGA-II on the surrogate, oracle/proxy evaluations)
with, for the supernet evaluator, CNN fine-tuning. Left to their defaults, torch's intra-op pool and the BLAS
pools each start one thread per core and fight over the cores: on 2 cores an oracle search ran 11 min with the
defaults and 21 s with one thread (bench/search.py records both). So:

- BLAS/OpenMP pools (numpy, scipy, scikit-learn; via threadpoolctl): 1 thread.
- torch: ``threads`` when given (``--threads``, ``MSUNAS_WORKER_THREADS``); else the cores this process may
  use, capped at 4, for the supernet evaluator (fine-tuning gains from them), and 1 for the others.
"""

from __future__ import annotations

import os

import torch
from threadpoolctl import threadpool_limits

from search.spec import JobSpec
from supernets.errors import InputError

MAX_AUTO_THREADS = 4


def usable_cores() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def auto_threads(spec: JobSpec | None) -> int:
    """The torch thread count a job gets when none is given."""
    if spec is not None and spec.evaluator.kind == "supernet":
        return max(1, min(usable_cores(), MAX_AUTO_THREADS))
    return 1


def configure_threads(threads: int | None, spec: JobSpec | None = None) -> int:
    """Set torch's intra-op threads and limit the BLAS/OpenMP pools to one thread; returns torch's count.

    A spec's evaluator may set its own ``num_threads``; ``threads`` (the CLI's ``--threads``) overrides both."""
    if threads is not None and not 1 <= threads <= 256:
        raise InputError("--threads", f"expected 1..256, got {threads}")
    own = getattr(spec.evaluator, "num_threads", None) if spec is not None else None
    n = threads or own or auto_threads(spec)
    torch.set_num_threads(n)
    threadpool_limits(limits=1)
    return n
