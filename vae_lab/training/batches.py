"""In-memory tensors for a split, batched by index.

The whole split sits in memory as compact tensors (uint8 grids, plus the padded point set for
sparse families, built once). A batch is a slice of a permutation: no per-sample Python, no
DataLoader workers, no pandas in the loop; that is what keeps a small model near the speed of a
bare PyTorch loop on a few CPU cores.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
from torch import Tensor

from vae_lab.models.base import Batch


@dataclass
class TensorData:
    grid: Tensor  # (N, D, D, D) uint8
    labels: Tensor  # (N,) int64, -1 where unlabelled
    points: Tensor | None = None  # (N, K, F) float32, sparse families only
    mask: Tensor | None = None  # (N, K) bool

    @classmethod
    def from_arrays(cls, grids: np.ndarray, labels: np.ndarray | None = None, *, sparse_points: int | None = None) -> "TensorData":
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

    def __len__(self) -> int:
        return self.grid.shape[0]

    def batch(self, index: Tensor | slice) -> Batch:
        pick = lambda t: None if t is None else t[index]  # noqa: E731
        return Batch(grid=self.grid[index], points=pick(self.points), mask=pick(self.mask))

    def batches(self, batch_size: int, *, shuffle: bool = False, generator: torch.Generator | None = None) -> Iterator[Batch]:
        n = len(self)
        if shuffle:
            order = torch.randperm(n, generator=generator)
            for start in range(0, n, batch_size):
                yield self.batch(order[start : start + batch_size])
        else:
            for start in range(0, n, batch_size):
                yield self.batch(slice(start, start + batch_size))

    def head(self, n: int) -> "TensorData":
        """The first n samples (for reconstructions and quick looks)."""
        pick = lambda t: None if t is None else t[:n]  # noqa: E731
        return TensorData(self.grid[:n], self.labels[:n], pick(self.points), pick(self.mask))
