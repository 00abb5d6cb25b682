"""Training-time augmentation: each sample seen under a random rotation of the cube.

A voxel structure rotated about the centre of its cell is the same structure, so showing the
model each training sample under one of the 24 proper rotations of the cube (no reflections,
which would change handedness) multiplies the poses it learns from without changing what the
samples are. It is off by default (`augment: none`): turn it on when orientation carries no
meaning in your data. Validation and evaluation always see the data as it is.

Grids are rotated with precomputed index maps (one gather per batch on the device); point sets
by rotating their coordinates about the grid's centre, which maps cells onto cells.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

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
        self.maps = torch.from_numpy(((sources[..., 0] * edge + sources[..., 1]) * edge + sources[..., 2]).astype(np.int64)).to(device)
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
