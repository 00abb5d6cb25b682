"""Reconstruction metrics and the tradeoff score, as pure functions of tensors.

F1 is computed voxel-wise on the decoded class grid, for descriptor classes 1-4 only: class 0
(empty) is >99% of cells, so including it would make every model look perfect.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from vae_lab.models.base import NUM_CLASSES

DESCRIPTOR_CLASSES = tuple(range(1, NUM_CLASSES))


def class_counts(pred: Tensor, target: Tensor) -> Tensor:
    """(3, 4) int64 tensor of true positives, false positives, false negatives per class 1-4."""
    pred, target = pred.reshape(-1), target.reshape(-1).to(pred.dtype)
    rows = []
    for c in DESCRIPTOR_CLASSES:
        is_pred, is_true = pred == c, target == c
        rows.append(
            torch.stack(
                [(is_pred & is_true).sum(), (is_pred & ~is_true).sum(), (~is_pred & is_true).sum()]
            )
        )
    return torch.stack(rows, dim=1).to(torch.int64)


def per_class_f1(counts: Tensor) -> dict[int, float | None]:
    """F1 of each class 1-4 from accumulated counts; None for a class absent from both sides."""
    scores: dict[int, float | None] = {}
    for i, c in enumerate(DESCRIPTOR_CLASSES):
        tp, fp, fn = (int(v) for v in counts[:, i])
        scores[c] = None if tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn)
    return scores


def macro_f1(counts: Tensor) -> float:
    """Mean F1 over the descriptor classes that occur in the target or the prediction."""
    present = [s for s in per_class_f1(counts).values() if s is not None]
    return sum(present) / len(present) if present else 0.0


def tradeoff_score(f1: float, kl: float, latent_dim: int, kl_scale: float = 10.0) -> float:
    """Reconstruction quality discounted by latent cost: f1 * exp(-kl / (latent_dim * kl_scale)).

    It uses no raw loss value, so runs with different loss functions compare; it lies in [0, 1]
    (higher is better); a KL of `kl_scale` nats per latent dimension costs a factor e.
    """
    return f1 * math.exp(-max(kl, 0.0) / (latent_dim * kl_scale))
