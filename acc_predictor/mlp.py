"""A small torch MLP surrogate: a few nets trained together, full-batch, with early stopping.

``n_models`` two-hidden-layer ReLU nets are trained at once as one batched computation (stacked weights), each
on its own random 80/20 split of the data; each keeps the weights of its best validation loss and stops after
``patience`` epochs without improvement. The prediction is their mean. Everything random comes from
``random_state`` (a private ``torch.Generator`` and numpy generator), so a seed gives the same model.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from acc_predictor.base import GenomePredictor
from supernets.errors import InputError


class MLPPredictor(GenomePredictor):
    """Mean of ``n_models`` MLPs (``hidden`` units per layer), AdamW full-batch, per-net early stopping."""

    _default_encoding = "both"
    _min_samples = 3

    def __init__(self, search_space: Any = None, encoding: str = "auto", mask_inactive: bool = True,
                 hidden: int = 64, n_layers: int = 2, n_models: int = 3, lr: float = 1e-2,
                 weight_decay: float = 1e-3, max_epochs: int = 400, patience: int = 40,
                 val_fraction: float = 0.2, random_state: int | None = 0) -> None:
        self.search_space = search_space
        self.encoding = encoding
        self.mask_inactive = mask_inactive
        self.hidden = hidden
        self.n_layers = n_layers
        self.n_models = n_models
        self.lr = lr
        self.weight_decay = weight_decay
        self.max_epochs = max_epochs
        self.patience = patience
        self.val_fraction = val_fraction
        self.random_state = random_state

    def _init_params(self, d: int, gen: torch.Generator) -> list[torch.Tensor]:
        K, h = int(self.n_models), int(self.hidden)
        sizes = [d] + [h] * int(self.n_layers) + [1]
        params = []
        for a, b in zip(sizes[:-1], sizes[1:], strict=True):
            bound = 1.0 / np.sqrt(max(a, 1))
            W = (torch.rand((K, a, b), generator=gen, dtype=torch.float32) * 2 - 1) * bound
            bias = (torch.rand((K, 1, b), generator=gen, dtype=torch.float32) * 2 - 1) * bound
            params += [W.requires_grad_(), bias.requires_grad_()]
        return params

    @staticmethod
    def _forward(params: list[torch.Tensor], X: torch.Tensor) -> torch.Tensor:
        H = X
        n_lin = len(params) // 2
        for i in range(n_lin):
            H = torch.matmul(H, params[2 * i]) + params[2 * i + 1]
            if i < n_lin - 1:
                H = torch.relu(H)
        return H[..., 0]  # (K, n)

    def _fit(self, F: np.ndarray, y: np.ndarray) -> None:
        for name in ("hidden", "n_layers", "n_models", "max_epochs"):
            if int(getattr(self, name)) < 1:
                raise InputError(f"{name}", f"expected >= 1, got {getattr(self, name)!r}")
        if not 0.0 < float(self.val_fraction) < 1.0:
            raise InputError("val_fraction", f"expected a value in (0, 1), got {self.val_fraction!r}")
        seed = 0 if self.random_state is None else int(self.random_state)
        rng = np.random.default_rng(seed)
        gen = torch.Generator().manual_seed(seed)
        n, d = F.shape
        K = int(self.n_models)
        n_val = min(max(1, int(round(n * float(self.val_fraction)))), n - 1)
        val = np.zeros((K, n), dtype=bool)
        for k in range(K):
            val[k, rng.permutation(n)[:n_val]] = True
        trn_w = torch.from_numpy((~val).astype(np.float32))
        val_w = torch.from_numpy(val.astype(np.float32))
        X = torch.from_numpy(np.ascontiguousarray(F, dtype=np.float32))
        Y = torch.from_numpy(y.astype(np.float32))[None, :]
        params = self._init_params(d, gen)
        opt = torch.optim.AdamW(params, lr=float(self.lr), weight_decay=float(self.weight_decay))
        best = [p.detach().clone() for p in params]
        best_loss = torch.full((K,), float("inf"))
        since = torch.zeros(K, dtype=torch.long)
        for _ in range(int(self.max_epochs)):
            opt.zero_grad(set_to_none=True)
            err = (self._forward(params, X) - Y) ** 2
            loss_trn = (err * trn_w).sum(1) / trn_w.sum(1)
            loss_trn.sum().backward()
            opt.step()
            with torch.no_grad():
                err = (self._forward(params, X) - Y) ** 2
                loss_val = (err * val_w).sum(1) / val_w.sum(1)
                better = loss_val < best_loss
                best_loss = torch.where(better, loss_val, best_loss)
                since = torch.where(better, torch.zeros_like(since), since + 1)
                for b, p in zip(best, params, strict=True):
                    b[better] = p.detach()[better]
            if bool((since > int(self.patience)).all()):
                break
        self.params_ = [b.requires_grad_(False) for b in best]
        self.val_loss_ = best_loss.numpy().astype(np.float64)

    def _predict(self, F: np.ndarray) -> np.ndarray:
        X = torch.from_numpy(np.ascontiguousarray(F, dtype=np.float32))
        with torch.no_grad():
            return self._forward(self.params_, X).mean(0).numpy().astype(np.float64)
