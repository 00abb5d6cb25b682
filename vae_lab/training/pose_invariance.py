"""`val_pose_invariance`: how far a model's latent moves when its input turns.

For up to `MAX_SAMPLES` validation samples: the mean latent distance between a sample and
`COPIES` copies of it under random rotations (uniform on SO(3), re-voxelised as `augment: so3`
does), over the median latent distance between different samples. 0: the latent ignores
orientation; 1: turning a sample moves its latent as far as swapping it for another sample.
It needs no labels. The latent is the family's `metric_latent` (the posterior mean, or the part
of it a family declares pose-free).
"""

from __future__ import annotations

import torch
from torch import Tensor

from vae_lab.device import autocast
from vae_lab.models.base import BaseVAE, Batch
from vae_lab.training.augment import points_from_grid, random_rotations, revoxelise
from vae_lab.training.batches import TensorData

MAX_SAMPLES = 500
COPIES = 2  # with 500 samples, 2 copies pin the mean down; each copy is a forward pass over all of them


@torch.no_grad()
def pose_invariance(
    model: BaseVAE,
    data: TensorData,
    *,
    precision: str = "fp32",
    copies: int = COPIES,
    seed: int = 0,
    max_samples: int = MAX_SAMPLES,
) -> float | None:
    """The ratio above for the first `max_samples` of `data`; None below two samples or when
    every sample has the same latent (no scale to measure against)."""
    n = min(len(data), max_samples)
    if n < 2:
        return None
    model.eval()
    grid = data.grid[:n]
    slots = data.points.shape[1] if data.points is not None else None
    base = _latents(model, grid, slots, precision)
    generator = torch.Generator(device=grid.device).manual_seed(seed)
    moved = torch.zeros((), device=grid.device, dtype=torch.float64)
    for _ in range(copies):
        turned = revoxelise(grid, random_rotations(n, generator, grid.device), torch.zeros(n, 3, device=grid.device))
        moved += (_latents(model, turned, slots, precision) - base).norm(dim=1).double().mean()
    between = torch.pdist(base.double())
    scale = between.median()
    if not bool(scale > 0):
        return None
    return float(moved / copies / scale)


def _latents(model: BaseVAE, grid: Tensor, slots: int | None, precision: str) -> Tensor:
    if slots is None:
        batch = Batch(grid=grid)
    else:
        batch = Batch(grid, *points_from_grid(grid, slots))
    with autocast(grid.device, precision):
        out = model.forward_batch(batch)
    return model.metric_latent(out).float()
