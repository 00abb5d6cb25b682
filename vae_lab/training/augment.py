"""Training-time augmentation: each sample seen under a random rotation (of the cube, or any).

A voxel structure rotated about the centre of its cell is the same structure, so showing the
model each training sample under one of the 24 proper rotations of the cube (no reflections,
which would change handedness) multiplies the poses it learns from without changing what the
samples are. It is off by default (`augment: none`): turn it on when orientation carries no
meaning in your data. Validation and evaluation always see the data as it is.

Grids are rotated with precomputed index maps (one gather per batch on the device); point sets
by rotating their coordinates about the grid's centre, which maps cells onto cells.

`so3` is for data voxelised from continuous positions (molecules), whose poses are not cube
rotations: each sample's occupied cells turn by a rotation drawn uniformly from SO(3) about
their centroid, move by a sub-cell shift, and are voxelised again on the device (`revoxelise`).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from vae_lab.data.sparse import DESCRIPTORS
from vae_lab.data.synth import cube_rotations
from vae_lab.models.base import Batch


class Rotations:
    """Rotates batches by a random cube rotation per sample, on the batch's device."""

    def __init__(self, edge: int, device: torch.device, seed: int = 0):
        matrices = cube_rotations()
        cells = np.stack(np.meshgrid(*(np.arange(edge),) * 3, indexing="ij"), axis=-1).reshape(-1, 3)
        centred = 2 * cells - (edge - 1)  # doubled, so the centre is an integer for even edges too
        # For rotation r, target cell i takes its value from source cell maps[r, i] (R^T maps back).
        sources = (np.einsum("rji,nj->rni", matrices, centred) + (edge - 1)) // 2
        self.maps = torch.from_numpy(
            ((sources[..., 0] * edge + sources[..., 1]) * edge + sources[..., 2]).astype(np.int64)
        ).to(device)
        self.matrices = torch.from_numpy(matrices).to(device=device, dtype=torch.float32)
        self.edge = edge
        self.generator = torch.Generator(device=device).manual_seed(seed)

    def __call__(self, batch: Batch) -> Batch:
        size = batch.grid.shape[0]
        choice = torch.randint(0, len(self.maps), (size,), device=batch.grid.device, generator=self.generator)
        grid = batch.grid.reshape(size, -1).gather(1, self.maps[choice]).view_as(batch.grid)
        if batch.points is None:
            return Batch(grid=grid)
        return Batch(grid=grid, points=self.rotate_points(batch.points, choice), mask=batch.mask)

    def rotate_points(self, points: Tensor, choice: Tensor) -> Tensor:
        """Rotate x, y, z (scaled to [0, 1]) about the centre; descriptors and padding unchanged."""
        xyz = points[..., :3] - 0.5
        rotated = torch.einsum("bij,bkj->bki", self.matrices[choice], xyz) + 0.5
        return torch.cat([rotated.clamp(0, 1), points[..., 3:]], dim=-1)


class So3:
    """Turns batches by a uniform random rotation and a sub-cell shift per sample, on the batch's device.

    A point-family batch gets its point set rebuilt from the new grid, so the grid and the points
    of a sample always describe the same structure.
    """

    def __init__(self, edge: int, device: torch.device, seed: int = 0):
        self.edge = edge
        self.generator = torch.Generator(device=device).manual_seed(seed)

    def __call__(self, batch: Batch) -> Batch:
        size, device = batch.grid.shape[0], batch.grid.device
        rotations = random_rotations(size, self.generator, device)
        shifts = torch.rand(size, 3, generator=self.generator, device=device) - 0.5
        if batch.points is None:
            return Batch(grid=revoxelise(batch.grid, rotations, shifts))
        grid = revoxelise(batch.grid, rotations, shifts, max_cells=batch.points.shape[1])
        points, mask = points_from_grid(grid, batch.points.shape[1])
        return Batch(grid=grid, points=points, mask=mask)


def random_rotations(n: int, generator: torch.Generator, device: torch.device) -> Tensor:
    """(n, 3, 3) rotations uniform on SO(3): unit quaternions from normalised Gaussian 4-vectors."""
    w, x, y, z = F.normalize(torch.randn(n, 4, generator=generator, device=device), dim=1).unbind(1)
    return torch.stack(
        [
            1 - 2 * (y * y + z * z),
            2 * (x * y - z * w),
            2 * (x * z + y * w),
            2 * (x * y + z * w),
            1 - 2 * (x * x + z * z),
            2 * (y * z - x * w),
            2 * (x * z - y * w),
            2 * (y * z + x * w),
            1 - 2 * (x * x + y * y),
        ],
        dim=1,
    ).view(n, 3, 3)


def revoxelise(grid: Tensor, rotations: Tensor, shifts: Tensor, max_cells: int | None = None) -> Tensor:
    """(B, D, D, D) uint8: each sample's occupied cells turned by `rotations` (B, 3, 3) about their
    centroid, moved by `shifts` (B, 3) cells, rounded to cells; descriptor values kept.

    Two cells landing in one keep the larger value: descriptors run from common (1, carbon) to
    rare (4), so the rarer class survives, and a sample never loses a whole rare class to a common
    neighbour. A structure turned partly out of the grid is moved back in whole, by whole cells:
    clamping cells onto the wall would squash its shape and merge cells, and dropping them would
    lose atoms (and maybe the class a label names). Only a structure wider than the grid in its
    new pose, which no translation can fit, loses the cells that stay outside.

    Only the occupied cells are turned: the first `max_cells` of each sample (at least its count;
    a point family's K), or, when None, as many as the fullest sample has (one host sync).
    """
    size, edge = grid.shape[0], grid.shape[1]
    flat = grid.reshape(size, -1)
    total = flat.shape[1]
    filled = flat != 0
    if max_cells is None:
        max_cells = int(filled.sum(1).max()) if size else 0
    if max_cells == 0:
        return grid.clone()
    order = torch.arange(total, device=grid.device).expand(size, total)
    first = torch.where(filled, order, torch.full_like(order, total)).topk(max_cells, dim=1, largest=False).values
    occupied = first < total
    cell = first.clamp(max=total - 1)
    cells = torch.stack([cell // (edge * edge), cell // edge % edge, cell % edge], dim=-1).float()
    weight = occupied.float().unsqueeze(-1)
    centroid = (cells * weight).sum(1) / weight.sum(1).clamp(min=1)
    offsets = cells - centroid.unsqueeze(1)
    moved = torch.einsum("bij,bcj->bci", rotations.float(), offsets) + (centroid + shifts.float()).unsqueeze(1)
    target = moved.round()
    low = torch.where(occupied.unsqueeze(-1), target, torch.full_like(target, edge)).amin(1)
    high = torch.where(occupied.unsqueeze(-1), target, torch.full_like(target, -1)).amax(1)
    back = (-low).clamp(min=0) - (high - (edge - 1)).clamp(min=0)  # 0 for an empty sample
    target = (target + back.unsqueeze(1)).long()
    keep = occupied & ((target >= 0) & (target < edge)).all(-1)
    index = (target[..., 0] * edge + target[..., 1]) * edge + target[..., 2]
    index = torch.where(keep, index, torch.zeros_like(index))
    values = torch.where(keep, flat.gather(1, cell).long(), torch.zeros_like(index))
    out = torch.zeros(size, total, dtype=torch.long, device=grid.device).scatter_reduce_(
        1, index, values, reduce="amax"
    )
    return out.to(grid.dtype).view_as(grid)


def points_from_grid(grid: Tensor, max_points: int) -> tuple[Tensor, Tensor]:
    """(points (B, K, 7), mask (B, K)) of `vae_lab.data.sparse.to_sparse`, built on the grid's device.

    The grid must hold at most `max_points` occupied cells per sample (a rotation never adds any).
    """
    size, edge = grid.shape[0], grid.shape[1]
    flat = grid.reshape(size, -1)
    cells = flat.shape[1]
    order = torch.arange(cells, device=grid.device).expand(size, cells)
    first = torch.where(flat != 0, order, torch.full_like(order, cells)).sort(dim=1).values[:, :max_points]
    mask = first < cells
    cell = first.clamp(max=cells - 1)
    xyz = torch.stack([cell // (edge * edge), cell // edge % edge, cell % edge], dim=-1).float() / max(edge - 1, 1)
    value = flat.gather(1, cell).long()
    onehot = F.one_hot((value - 1).clamp(min=0), DESCRIPTORS).float()
    return torch.cat([xyz, onehot], dim=-1) * mask.unsqueeze(-1), mask


AUGMENTERS = {"rotations": Rotations, "so3": So3}
