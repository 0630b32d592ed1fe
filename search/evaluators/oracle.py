"""``{kind: oracle}``: score configs with once-for-all's ImageNet accuracy predictor (a surrogate benchmark).

The file is the ``.npz`` of an MLP 128 -> 400 -> 400 -> 400 -> 1 with ReLU between layers (arrays ``0.weight``
(400, 128), ``0.bias``, ``2.weight``, ``2.bias``, ``4.weight``, ``4.bias``, ``6.weight`` (1, 400), ``6.bias``),
trained by once-for-all on real ImageNet measurements of ``ofa_mbv3_d234_e346_k357_w1.2`` subnets. Input
features (128 floats): per slot the kernel one-hot (k = 3, 5, 7; x[0:60]) and the expand one-hot (e = 3, 4, 6;
x[60:120]), all-zero for slots past a stage's depth, then the resolution one-hot at ``(r - 112) // 16``
(x[120:128], clipped to the 8 bins). Output: top-1 as a fraction; the evaluator reports ``top1`` in % and the
exact costs (counts) of the config, so a search on it runs in seconds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from search.evaluator import Evaluator, register_evaluator
from search.objectives import exact_costs, n_classes_of
from search.spec import OracleEvaluatorSpec
from supernets import codec
from supernets.errors import InputError

if TYPE_CHECKING:
    from search.spec import JobSpec

LAYERS = (
    ("0.weight", (400, 128)),
    ("0.bias", (400,)),
    ("2.weight", (400, 400)),
    ("2.bias", (400,)),
    ("4.weight", (400, 400)),
    ("4.bias", (400,)),
    ("6.weight", (1, 400)),
    ("6.bias", (1,)),
)
N_RES_BINS = 8


def load_weights(path: str | Path) -> dict[str, np.ndarray]:
    """The predictor arrays of ``path``; ``ValueError`` naming the path when missing or malformed."""
    p = Path(path)
    if not p.is_file():
        raise InputError("evaluator.path", f"oracle predictor file {p} does not exist")
    try:
        with np.load(p, allow_pickle=False) as z:
            arrays = {k: np.asarray(z[k], dtype=np.float64) for k in z.files}
    except Exception as e:  # noqa: BLE001 - any unreadable file is reported the same way
        raise InputError("evaluator.path", f"{p} is not a readable .npz file ({type(e).__name__}: {e})") from None
    for name, shape in LAYERS:
        if name not in arrays:
            raise InputError("evaluator.path", f"{p} has no array {name!r} (expected {[n for n, _ in LAYERS]})")
        if arrays[name].shape != shape:
            raise InputError("evaluator.path", f"{p} array {name!r} has shape {arrays[name].shape}, expected {shape}")
        if not np.all(np.isfinite(arrays[name])):
            raise InputError("evaluator.path", f"{p} array {name!r} holds non-finite values")
    return arrays


def features(configs: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """Once-for-all's 128-float predictor input of canonical configs (see the module docstring)."""
    a = codec.backbone_arrays(configs)
    n = len(a["r"])
    x = np.zeros((n, 128))
    active = np.arange(codec.MAX_DEPTH)[None, None, :] < a["d"][:, :, None]  # (n, 5, 4)
    active = active.reshape(n, codec.N_SLOTS)
    rows = np.repeat(np.arange(n), codec.N_SLOTS)[active.ravel()]
    slots = np.tile(np.arange(codec.N_SLOTS), n)[active.ravel()]
    k_idx = np.searchsorted(np.asarray(codec.KERNELS), a["ks"][active])
    e_idx = np.searchsorted(np.asarray(codec.EXPANDS), a["e"][active])
    x[rows, slots * 3 + k_idx] = 1.0
    x[rows, 60 + slots * 3 + e_idx] = 1.0
    r_bin = np.clip((a["r"] - 112) // 16, 0, N_RES_BINS - 1)
    x[np.arange(n), 120 + r_bin] = 1.0
    return x


class OracleEvaluator(Evaluator):
    """Top-1 (%) from the once-for-all ImageNet accuracy predictor plus exact costs of the config."""

    def __init__(self, path: str | Path, width_mult: float = 1.2, n_classes: int = 1000) -> None:
        self.path = Path(path)
        self.w = load_weights(self.path)
        self.width_mult = width_mult
        self.n_classes = n_classes

    def predict_top1(self, configs: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Predicted top-1 (%) of canonical configs, vectorised."""
        h = features(configs)
        for i in (0, 2, 4):
            h = np.maximum(h @ self.w[f"{i}.weight"].T + self.w[f"{i}.bias"], 0.0)
        y = h @ self.w["6.weight"].T + self.w["6.bias"]
        return 100.0 * y[:, 0]

    def _evaluate(self, config: dict[str, Any]) -> dict[str, float]:
        cfg = codec.normalize_backbone(config)
        out = {"top1": float(self.predict_top1([cfg])[0])}
        costs = exact_costs([cfg], self.width_mult, self.n_classes)
        out.update({k: float(v[0]) for k, v in costs.items()})
        return out


@register_evaluator("oracle")
def _oracle(job: JobSpec) -> Evaluator:
    ev = job.evaluator
    if not isinstance(ev, OracleEvaluatorSpec):
        raise InputError("evaluator.kind", f"expected oracle, got {ev.kind}")
    return OracleEvaluator(ev.path, width_mult=float(job.width_mult), n_classes=n_classes_of(job))
