"""Shared helpers for the model tests: the family variants, fixed batches and a simple loss."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from vae_lab.choices import DEFAULT_LOSS
from vae_lab.losses import LossSettings, kl_divergence
from vae_lab.models import ARCHITECTURES, BaseVAE, Batch, VAEOutput
from vae_lab.models.base import MAX_VALUE

DENSE = [name for name, cls in ARCHITECTURES.items() if not cls.reads_points]
SPARSE = [name for name, cls in ARCHITECTURES.items() if cls.reads_points]
# Every family with every head it has.
VARIANTS = [(name, head) for name, cls in ARCHITECTURES.items() for head in cls.heads]


def random_grid(batch_size: int, size: int, seed: int = 0, max_cells: int | None = None) -> Tensor:
    """(B, D, D, D) uint8 grid of random descriptors 1..4, at least one per sample.

    With `max_cells`, each sample holds 1..max_cells occupied cells (like the real data, which
    has at most 8); otherwise about a tenth of the cells are occupied.
    """
    gen = torch.Generator().manual_seed(seed)
    if max_cells is None:
        occupied = torch.rand(batch_size, size, size, size, generator=gen) < 0.1
        occupied[:, 0, 0, 0] = True
    else:
        occupied = torch.zeros(batch_size, size**3, dtype=torch.bool)
        for b in range(batch_size):
            count = int(torch.randint(1, max_cells + 1, (1,), generator=gen))
            occupied[b, torch.randperm(size**3, generator=gen)[:count]] = True
        occupied = occupied.view(batch_size, size, size, size)
    values = torch.randint(1, MAX_VALUE + 1, occupied.shape, generator=gen)
    return (values * occupied).to(torch.uint8)


def sparse_view(grid: Tensor, max_points: int) -> tuple[Tensor, Tensor]:
    """The padded point set of a grid, as vae_lab.data.sparse builds it (first K cells kept)."""
    size = grid.shape[-1]
    points = torch.zeros(grid.shape[0], max_points, 3 + MAX_VALUE)
    mask = torch.zeros(grid.shape[0], max_points, dtype=torch.bool)
    for b in range(grid.shape[0]):
        cells = grid[b].nonzero()[:max_points]
        for i, (x, y, z) in enumerate(cells.tolist()):
            points[b, i, :3] = torch.tensor([x, y, z], dtype=torch.float32) / (size - 1)
            points[b, i, 2 + int(grid[b, x, y, z])] = 1.0
            mask[b, i] = True
    return points, mask


def make_batch(model: BaseVAE, batch_size: int = 3, seed: int = 0) -> Batch:
    if model.reads_points:
        # Leave at least two padded slots in every sample so padding is always exercised.
        grid = random_grid(batch_size, model.config.grid, seed, max_cells=model.config.max_points - 2)
        points, mask = sparse_view(grid, model.config.max_points)
        return Batch(grid=grid, points=points, mask=mask)
    return Batch(grid=random_grid(batch_size, model.config.grid, seed))


def simple_loss(model: BaseVAE, out: VAEOutput, batch: Batch) -> Tensor:
    """Mean over the batch of the family's own default reconstruction term plus the KL divergence."""
    recon = model.reconstruction_loss(out, batch, LossSettings(DEFAULT_LOSS[model.config.output]))
    return (recon + kl_divergence(out.mu, out.logvar)).mean()


def perfect_slots(points: Tensor, mask: Tensor, edge: int, confidence: float = 30.0) -> Tensor:
    """pointnet slots that reconstruct `points` exactly: presence, per-axis cell and descriptor logits."""
    batch, slots = mask.shape
    recon = torch.full((batch, slots, 1 + 3 * edge + MAX_VALUE), -confidence)
    recon[..., 0] = torch.where(mask, confidence, -confidence)
    cells = (points[..., :3] * (edge - 1)).round().long()
    for axis in range(3):
        recon.scatter_(-1, 1 + axis * edge + cells[..., axis : axis + 1], confidence)
    recon[..., 1 + 3 * edge :] = torch.where(points[..., 3:] > 0, confidence, -confidence)
    return recon


# The journal's six-million-parameter families: the same checks as the rest, in `make test` only, so
# the edit loop's tier (`make test-fast`) stays under a minute.
HEAVY_FAMILIES = {"deep", "batch_norm"}


# What the edit loop checks every family against when a check is costly (logging, serving):
# one dense and one point-set family; `make test` runs them all.
SAMPLE_FAMILIES = {"fc", "pointnet"}


def variant_params(fast: set[str] | None = None) -> list:
    """Every (family, head) as pytest params; those outside `fast` (default: all but the heavy
    families) are marked slow."""
    fast = set(ARCHITECTURES) - HEAVY_FAMILIES if fast is None else fast
    return [
        pytest.param(name, head, id=f"{name}-{head}", marks=[] if name in fast else [pytest.mark.slow])
        for name, head in VARIANTS
    ]


every_variant = pytest.mark.parametrize(
    "variant", [pytest.param((p.values[0], p.values[1]), id=p.id, marks=p.marks) for p in variant_params()]
)
