"""Loss functions: pure functions of tensors, shared by the trainer, evaluation and benchmarks.

Every function returns one value per sample (shape (B,)) so callers choose the reduction; the
trainer averages over the batch. Reconstruction terms are summed over cells (dense) or slots
(sparse), the usual VAE convention, so beta weighs the KL against a whole sample's error.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from vae_lab.choices import ClassWeighting, ReconLoss
from vae_lab.models.base import MAX_VALUE, NUM_CLASSES, BaseVAE, Batch, VAEOutput


def class_weights(grid: Tensor, scheme: ClassWeighting) -> Tensor | None:
    """Per-class weights (5,) from the class frequencies of a training grid, or None.

    Empty cells are >99% of a sparse grid, so an unweighted loss is minimised by predicting
    nothing at all. "log" is the journal's fix: w_c = 1 + ln(total / count_c), a boost that
    grows slowly with rarity. "balanced" is inverse frequency (total / (5 * count_c)),
    normalised so empty cells weigh 1: much stronger, it trades false positives for recall.
    """
    if scheme == "none":
        return None
    counts = torch.bincount(grid.reshape(-1).long(), minlength=NUM_CLASSES).double().clamp(min=1)
    total = counts.sum()
    if scheme == "log":
        weights = 1 + torch.log(total / counts)
    else:
        weights = total / (NUM_CLASSES * counts)
    return (weights / weights[0]).float()


def kl_divergence(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(q(z|x) || N(0, I)) in nats, summed over latent dimensions."""
    return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=1)


def scalar_reconstruction_loss(logits: Tensor, grid: Tensor, loss: ReconLoss, weights: Tensor | None = None) -> Tensor:
    """Single-channel head: the value scaled to [0, 1] is sigmoid(logits).

    MSE and BCE both see values on [0, 1], so their magnitudes are comparable across a grid
    search (the journal normalised every loss for that reason).
    """
    target = grid.unsqueeze(1).to(logits.dtype) / MAX_VALUE
    if loss == "bce":
        per_cell = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    else:
        per_cell = (torch.sigmoid(logits) - target).pow(2)
    if weights is not None:
        per_cell = per_cell * weights[grid.long()].unsqueeze(1)
    return per_cell.flatten(1).sum(dim=1)


def categorical_reconstruction_loss(logits: Tensor, grid: Tensor, weights: Tensor | None = None) -> Tensor:
    """Five logits per cell: cross-entropy against the class (weighted by it), summed over cells."""
    per_cell = F.cross_entropy(logits, grid.long(), weight=weights, reduction="none")
    return per_cell.flatten(1).sum(dim=1)


def reconstruction_loss(model: BaseVAE, out: VAEOutput, batch: Batch, loss: ReconLoss, weights: Tensor | None = None) -> Tensor:
    """The reconstruction term that fits the model's input kind and output head.

    Class weights apply to dense families; a set loss only sees occupied cells, so it needs none.
    """
    if model.input_kind == "sparse":
        from vae_lab.training.set_losses import set_reconstruction_loss

        return set_reconstruction_loss(out.recon, batch.points, batch.mask)
    if model.config.output == "categorical":
        return categorical_reconstruction_loss(out.recon, batch.grid, weights)
    return scalar_reconstruction_loss(out.recon, batch.grid, loss, weights)


@dataclass
class LossParts:
    """Batch means of the objective and its two terms."""

    total: Tensor
    recon: Tensor
    kl: Tensor


def vae_loss(model: BaseVAE, out: VAEOutput, batch: Batch, *, loss: ReconLoss, beta: float, weights: Tensor | None = None) -> LossParts:
    """beta-VAE objective: reconstruction + beta * KL, averaged over the batch."""
    recon = reconstruction_loss(model, out, batch, loss, weights).mean()
    kl = kl_divergence(out.mu, out.logvar).mean()
    return LossParts(total=recon + beta * kl, recon=recon, kl=kl)
