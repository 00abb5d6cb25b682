"""In-memory tensors for a split, batched by index, on the training device.

The whole split sits on the device as compact tensors (uint8 grids, plus the padded point set
for families that read points, built once). A batch is a slice of a permutation: no per-sample
Python, no DataLoader workers, no host-to-device copy per batch; that is what keeps a small
model near the speed of a bare PyTorch loop, on a few CPU cores or on a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
from torch import Tensor

from vae_lab.models.base import BaseVAE, Batch


@dataclass
class TensorData:
    grid: Tensor  # (N, D, D, D) uint8
    labels: Tensor  # (N,) int64, -1 where unlabelled
    points: Tensor | None = None  # (N, K, F) float32, for families that read points
    mask: Tensor | None = None  # (N, K) bool

    @classmethod
    def from_arrays(
        cls, grids: np.ndarray, labels: np.ndarray | None = None, *, sparse_points: int | None = None
    ) -> "TensorData":
        """Wrap numpy arrays; `sparse_points=K` also builds the padded point set."""
        grid = torch.from_numpy(np.ascontiguousarray(grids, dtype=np.uint8))
        if labels is None:
            labels = np.full(len(grids), -1, dtype=np.int64)
        data = cls(grid=grid, labels=torch.from_numpy(np.asarray(labels, dtype=np.int64)))
        if sparse_points is not None:
            from vae_lab.data.sparse import to_sparse

            points, mask = to_sparse(grids, max_points=sparse_points)
            data.points, data.mask = torch.from_numpy(points), torch.from_numpy(mask)
        return data

    @classmethod
    def for_model(
        cls, model: BaseVAE | type[BaseVAE], grids: np.ndarray, labels: np.ndarray | None, max_points: int
    ) -> "TensorData":
        """What a family reads: the grid always, the point set (K = `max_points`) when it reads points."""
        return cls.from_arrays(grids, labels, sparse_points=max_points if model.reads_points else None)

    def to(self, device: torch.device | str) -> "TensorData":
        """This split on `device` (a no-op when it is there already): copy once per worker, not per batch."""
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        return TensorData(move(self.grid), move(self.labels), move(self.points), move(self.mask))

    @property
    def device(self) -> torch.device:
        return self.grid.device

    def __len__(self) -> int:
        return self.grid.shape[0]

    def batch(self, index: Tensor | slice) -> Batch:
        pick = lambda t: None if t is None else t[index]  # noqa: E731
        return Batch(grid=self.grid[index], points=pick(self.points), mask=pick(self.mask))

    def batches(
        self, batch_size: int, *, shuffle: bool = False, generator: torch.Generator | None = None
    ) -> Iterator[Batch]:
        n = len(self)
        if shuffle:
            # Drawn on the CPU (a seeded CPU generator gives the same order on every device),
            # then one copy of n indices per epoch.
            order = torch.randperm(n, generator=generator).to(self.device, non_blocking=True)
            for start in range(0, n, batch_size):
                yield self.batch(order[start : start + batch_size])
        else:
            for start in range(0, n, batch_size):
                yield self.batch(slice(start, start + batch_size))

    def head(self, n: int) -> "TensorData":
        """The first n samples (for reconstructions and quick looks)."""
        return self.select(slice(0, n))

    def select(self, index: Tensor | slice | np.ndarray) -> "TensorData":
        """The samples at `index`, as a new TensorData on the same device."""
        if isinstance(index, np.ndarray):
            index = torch.from_numpy(index).to(self.device)
        pick = lambda t: None if t is None else t[index]  # noqa: E731
        return TensorData(self.grid[index], self.labels[index], pick(self.points), pick(self.mask))
