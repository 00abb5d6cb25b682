"""Reconstruction and latent diagnostics, as pure functions of tensors.

Everything here reads accumulated counts, so a validation pass sums them batch by batch on the
training device and converts once at the end. F1 is voxel-wise on the decoded class grid, for
descriptor classes 1-4 only: class 0 (empty) is >99% of cells, so counting it would make every
model look perfect. Occupancy scores ask the coarser question, "is there something in this
cell", whatever its class.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from vae_lab.choices import NUM_CLASSES

DESCRIPTOR_CLASSES = tuple(range(1, NUM_CLASSES))
ACTIVE_UNIT_VARIANCE = 0.01  # Burda et al. 2016: a unit whose mean moves less than this is unused
KL_USED_NATS = 0.1  # a latent dimension carrying less KL than this says nothing about the input


def confusion_matrix(pred: Tensor, target: Tensor) -> Tensor:
    """(5, 5) int64 cell counts, rows the true class and columns the predicted one (on pred's device)."""
    index = target.reshape(-1).long() * NUM_CLASSES + pred.reshape(-1).long()
    return torch.bincount(index, minlength=NUM_CLASSES * NUM_CLASSES).view(NUM_CLASSES, NUM_CLASSES)


def class_f1(confusion: Tensor) -> Tensor:
    """(..., 4) float64 F1 of classes 1-4 from (..., 5, 5) counts; NaN for a class in neither the
    target nor the prediction. Batched, so one call scores every row of a batch."""
    confusion = confusion.double()
    tp = confusion.diagonal(dim1=-2, dim2=-1)[..., 1:]
    # 2 tp + fp + fn is the predicted count plus the true count of the class.
    both = confusion.sum(-2)[..., 1:] + confusion.sum(-1)[..., 1:]
    return torch.where(both > 0, 2 * tp / both.clamp(min=1), torch.full_like(tp, math.nan))


def per_class_f1(confusion: Tensor) -> dict[int, float | None]:
    """F1 of each class 1-4; None for a class absent from both the target and the prediction."""
    scores = class_f1(confusion.cpu()).tolist()
    return {c: None if math.isnan(s) else s for c, s in zip(DESCRIPTOR_CLASSES, scores)}


def row_confusion(pred: Tensor, target: Tensor) -> Tensor:
    """(B, 5, 5) int64 cell counts of each sample of a batch (rows true class, columns predicted)."""
    batch = pred.shape[0]
    sample = torch.arange(batch, device=pred.device).unsqueeze(1) * NUM_CLASSES * NUM_CLASSES
    index = sample + target.reshape(batch, -1).long() * NUM_CLASSES + pred.reshape(batch, -1).long()
    return torch.bincount(index.reshape(-1), minlength=batch * NUM_CLASSES**2).view(batch, NUM_CLASSES, NUM_CLASSES)


def row_macro_f1(pred: Tensor, target: Tensor) -> Tensor:
    """(B,) macro F1 of each sample, as `macro_f1` scores a split; NaN for a sample whose target
    and prediction are both empty (F1 is undefined there; `row_exact_match` says it is right)."""
    return torch.nanmean(class_f1(row_confusion(pred, target)), dim=-1)


def macro_f1(confusion: Tensor) -> float:
    """Mean F1 over the descriptor classes that occur in the target or the prediction."""
    present = [s for s in per_class_f1(confusion).values() if s is not None]
    return sum(present) / len(present) if present else 0.0


def occupancy_scores(confusion: Tensor) -> dict[str, float]:
    """Precision, recall and IoU of "occupied" (any class 1-4) against empty; 0 when undefined."""
    confusion = confusion.cpu()
    tp = int(confusion[1:, 1:].sum())
    fp = int(confusion[0, 1:].sum())
    fn = int(confusion[1:, 0].sum())
    ratio = lambda a, b: a / b if b else 0.0  # noqa: E731
    return {"precision": ratio(tp, tp + fp), "recall": ratio(tp, tp + fn), "iou": ratio(tp, tp + fp + fn)}


def row_exact_match(pred: Tensor, target: Tensor) -> Tensor:
    """(B,) bool: whether every cell of each sample was reconstructed with the right class."""
    return (pred.flatten(1) == target.flatten(1).long()).all(dim=1)


def exact_matches(pred: Tensor, target: Tensor) -> Tensor:
    """Number of samples (a 0-d tensor) whose every cell was reconstructed with the right class."""
    return row_exact_match(pred, target).sum()


def active_units(mu_sum: Tensor, mu_square_sum: Tensor, n: int, threshold: float = ACTIVE_UNIT_VARIANCE) -> int:
    """Latent dimensions whose posterior mean varies over the data by at least `threshold`."""
    if n < 2:
        return 0
    mean = mu_sum / n
    variance = (mu_square_sum / n - mean.pow(2)) * n / (n - 1)
    return int((variance >= threshold).sum())


def kl_dimension_summary(kl_per_dim: Tensor, threshold: float = KL_USED_NATS) -> dict[str, float]:
    """The largest per-dimension KL and how many dimensions carry more than `threshold` nats."""
    return {"max": float(kl_per_dim.max()) if kl_per_dim.numel() else 0.0, "used": int((kl_per_dim > threshold).sum())}


def tradeoff_score(f1: float, kl: float, latent_dim: int, kl_scale: float = 10.0) -> float:
    """Reconstruction quality discounted by latent cost: f1 * exp(-kl / (latent_dim * kl_scale)).

    It uses no raw loss value, so runs with different loss functions compare; it lies in [0, 1]
    (higher is better); a KL of `kl_scale` nats per latent dimension costs a factor e.
    """
    if not math.isfinite(kl):
        return 0.0
    return f1 * math.exp(-max(kl, 0.0) / (latent_dim * kl_scale))
