"""Feature encodings of integer genomes (the predictor owns its encoding).

Two layouts:

* ``mobilenetv3`` -- the CNAS genome of :mod:`supernets.codec` (per stage: depth index, 4 kernel indices, 4
  expand indices; then the resolution gene and any genes a derived space appends). Slot ``j`` of stage ``s`` is
  inactive when ``j >= depth``: its kernel/expand genes do not change the network, so with ``mask=True`` they
  are zeroed (the integer encoding codes an active slot's choice as 1..3 and an absent layer as 0; the one-hot
  encoding leaves the slot's block all zero, as once-for-all's own accuracy predictor does).
* ``generic`` -- any other numeric matrix: columns min-max scaled from the training data; the one-hot part
  covers integral columns with at most 32 distinct values seen in training (unseen values encode as all-zero).

Encodings: ``"int"`` (one scaled column per gene), ``"onehot"`` (one column per gene value) or ``"both"``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from supernets import codec
from supernets.errors import InputError

N_BACKBONE = codec.N_BACKBONE_GENES
ENCODINGS = ("int", "onehot", "both")
MAX_ONEHOT = 32


def backbone_in_bounds(X: np.ndarray) -> bool:
    """Whether the first 45 columns of ``X`` are integral and inside the MobileNetV3 gene bounds (all < 3)."""
    if X.ndim != 2 or X.shape[1] < N_BACKBONE or X.shape[0] == 0:
        return False
    B = X[:, :N_BACKBONE]
    return bool(np.all(B == np.round(B)) and np.all(B >= 0) and np.all(B <= 2))


def active_mask(G: np.ndarray) -> np.ndarray:
    """(N, 20) bool: slot ``4*s + j`` is active when ``j`` is below stage ``s``'s depth (genome layout)."""
    depth = np.asarray(G[:, 0:N_BACKBONE:codec.N_STAGE_GENES], dtype=np.int64) + codec.DEPTHS[0]  # (N, 5)
    j = np.arange(codec.MAX_DEPTH)
    return (j[None, None, :] < depth[:, :, None]).reshape(len(G), codec.N_SLOTS)


def split_backbone(G: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Depth indices (N, 5), kernel indices (N, 20) and expand indices (N, 20) of MobileNetV3 genomes."""
    S = np.asarray(G[:, :N_BACKBONE], dtype=np.int64).reshape(len(G), codec.N_STAGES, codec.N_STAGE_GENES)
    return S[:, :, 0], S[:, :, 1:5].reshape(len(G), -1), S[:, :, 5:9].reshape(len(G), -1)


class GenomeEncoder:
    """Turns genomes into model features; ``fit`` learns ranges/categories of the non-backbone columns."""

    def __init__(self, encoding: str = "both", mask: bool = True, layout: str = "generic",
                 bounds: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        if encoding not in ENCODINGS:
            raise InputError("encoding", f"expected one of {list(ENCODINGS)}, got {encoding!r}")
        if layout not in ("mobilenetv3", "generic"):
            raise InputError("layout", f"expected 'mobilenetv3' or 'generic', got {layout!r}")
        self.encoding, self.mask, self.layout, self.bounds = encoding, mask, layout, bounds

    def fit(self, G: np.ndarray) -> GenomeEncoder:
        """Learn per-column ranges and categories of the columns the layout does not describe."""
        start = N_BACKBONE if self.layout == "mobilenetv3" else 0
        rest = np.asarray(G[:, start:], dtype=np.float64)
        if self.bounds is not None:
            lo = np.asarray(self.bounds[0], dtype=np.float64)[start:]
            hi = np.asarray(self.bounds[1], dtype=np.float64)[start:]
        else:
            lo, hi = rest.min(axis=0), rest.max(axis=0)
        self.start_ = start
        self.lo_, self.span_ = lo, np.where(hi > lo, hi - lo, 1.0)
        self.cats_: list[np.ndarray | None] = []
        for i in range(rest.shape[1]):
            col = rest[:, i]
            if self.bounds is not None:
                self.cats_.append(np.arange(lo[i], hi[i] + 1))
            elif np.all(col == np.round(col)) and len(np.unique(col)) <= MAX_ONEHOT:
                self.cats_.append(np.unique(col))
            else:
                self.cats_.append(None)
        return self

    def transform(self, G: np.ndarray, backbone: bool = True) -> np.ndarray:
        """Float feature matrix of genomes ``G`` (N, n_var); ``backbone=False`` leaves the backbone genes out."""
        G = np.asarray(G, dtype=np.float64)
        parts: list[np.ndarray] = []
        if self.layout == "mobilenetv3" and backbone:
            parts += self._backbone(G)
        rest = G[:, self.start_:]
        if rest.shape[1]:
            if self.encoding in ("int", "both"):
                parts.append((rest - self.lo_) / self.span_)
            if self.encoding in ("onehot", "both"):
                for i, cats in enumerate(self.cats_):
                    col = rest[:, i]
                    if cats is None:
                        if self.encoding == "onehot":  # keep non-categorical columns numerically
                            parts.append(((col - self.lo_[i]) / self.span_[i])[:, None])
                    else:
                        parts.append((col[:, None] == cats[None, :]).astype(np.float64))
        if not parts:
            return np.zeros((len(G), 0))
        return np.hstack(parts)

    def groups(self) -> np.ndarray:
        """Group label of every output column (``depth``/``kernel``/``expand``/``gene<i>``), for tied ARD."""
        labels: list[str] = []
        if self.layout == "mobilenetv3":
            n_st, n_sl = codec.N_STAGES, codec.N_SLOTS
            if self.encoding in ("int", "both"):
                labels += ["depth"] * n_st + ["kernel"] * n_sl + ["expand"] * n_sl
            if self.encoding in ("onehot", "both"):
                labels += ["depth"] * 3 * n_st + ["kernel"] * 3 * n_sl + ["expand"] * 3 * n_sl
        names = [f"gene{self.start_ + i}" for i in range(len(self.cats_))]
        if self.encoding in ("int", "both"):
            labels += names
        if self.encoding in ("onehot", "both"):
            for name, cats in zip(names, self.cats_, strict=True):
                if cats is None:
                    labels += [name] if self.encoding == "onehot" else []
                else:
                    labels += [name] * len(cats)
        return np.array(labels, dtype=object)

    def _backbone(self, G: np.ndarray) -> list[np.ndarray]:
        d, k, e = split_backbone(G)
        act = active_mask(G) if self.mask else np.ones(k.shape, dtype=bool)
        parts: list[np.ndarray] = []
        if self.encoding in ("int", "both"):
            parts.append(d / 2.0)
            if self.mask:
                parts += [np.where(act, (k + 1) / 3.0, 0.0), np.where(act, (e + 1) / 3.0, 0.0)]
            else:
                parts += [k / 2.0, e / 2.0]
        if self.encoding in ("onehot", "both"):
            parts.append(_onehot(d, 3).reshape(len(G), -1))
            parts.append((_onehot(k, 3) * act[:, :, None]).reshape(len(G), -1))
            parts.append((_onehot(e, 3) * act[:, :, None]).reshape(len(G), -1))
        return parts


def _onehot(idx: np.ndarray, n: int) -> np.ndarray:
    return (idx[..., None] == np.arange(n)).astype(np.float64)


def describe_encoder(enc: GenomeEncoder) -> dict[str, Any]:
    """JSON-able summary of an encoder (for logs and the benchmark)."""
    return {"encoding": enc.encoding, "mask": enc.mask, "layout": enc.layout}
