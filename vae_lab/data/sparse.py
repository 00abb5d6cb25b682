"""The padded point-set view of voxel grids that the sparse (PointNet-like) families read.

A sample has only a handful of occupied cells, so instead of 1331 mostly-zero voxels it can be
K points, each (x, y, z) scaled to [0, 1] and a one-hot of its descriptor 1-4, padded with
zeros and a mask (the journal used K = 8, the most occupied cells in any sample). Points are
listed in C-order flat index order so the same grid always gives the same point set.
"""

from __future__ import annotations

import numpy as np

from vae_lab.errors import VaeLabError

POINT_FEATURES = 7  # x, y, z and a one-hot of descriptor 1..4
DESCRIPTORS = 4
BLOCK_ROWS = 16_384


def nonzero_cells(flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row, column) of every non-zero byte of a (N, C) uint8 array, in row-major order.

    np.nonzero tests one byte at a time; testing 8-byte words first and looking inside only
    the few non-zero ones is several times faster on sparse rows.
    """
    n, width = flat.shape
    n_words = -(-width // 8)
    buffer = np.zeros((min(n, BLOCK_ROWS), n_words * 8), dtype=np.uint8)
    rows, cols = [], []
    for start in range(0, n, BLOCK_ROWS):
        block = flat[start : start + BLOCK_ROWS]
        buffer[: len(block), :width] = block
        words = buffer[: len(block)].view(np.uint64)
        word_row, word = np.nonzero(words)
        # Gathered words viewed as bytes keep their memory order: byte k is column 8 * word + k.
        byte_row, byte = np.nonzero(words[word_row, word].view(np.uint8).reshape(-1, 8))
        rows.append(word_row[byte_row] + start)
        cols.append(word[byte_row] * 8 + byte)
    if not rows:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(rows), np.concatenate(cols)


def occupied_counts(grids: np.ndarray) -> np.ndarray:
    """(N,) number of non-zero cells of each grid."""
    rows, _ = nonzero_cells(grids.reshape(len(grids), int(np.prod(grids.shape[1:]))))
    return np.bincount(rows, minlength=len(grids))


def max_occupied(grids: np.ndarray) -> int:
    """The most occupied cells in any grid (0 for no grids): the smallest K that fits all."""
    return int(occupied_counts(grids).max()) if len(grids) else 0


def to_sparse(grids: np.ndarray, max_points: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """(points float32 (N, K, 7), mask bool (N, K)) for grids (N, D, D, D) of values 0-4."""
    n, edge = len(grids), grids.shape[1]
    flat = grids.reshape(n, edge**3)
    sample, cell = nonzero_cells(flat)  # row-major, so each sample's cells come in flat order
    counts = np.bincount(sample, minlength=n)
    if len(counts) and counts.max() > max_points:
        raise VaeLabError(
            "max_points",
            f"a sample has {counts.max()} occupied cells, more than max_points={max_points}",
            f"raise max_points (K) to at least {counts.max()}",
        )
    slot = np.arange(len(sample)) - np.repeat(np.cumsum(counts) - counts, counts)
    xyz = np.stack(np.unravel_index(cell, (edge, edge, edge)), axis=1)
    points = np.zeros((n, max_points, POINT_FEATURES), dtype=np.float32)
    points[sample, slot, :3] = xyz / max(edge - 1, 1)
    points[sample, slot, 3 + flat[sample, cell].astype(np.int64) - 1] = 1.0
    mask = np.zeros((n, max_points), dtype=bool)
    mask[sample, slot] = True
    return points, mask


def from_sparse(points: np.ndarray, mask: np.ndarray, grid: int) -> np.ndarray:
    """Grids (N, D, D, D) uint8 from a point set: positions rounded, descriptor by argmax."""
    points, mask = np.asarray(points), np.asarray(mask, dtype=bool)
    grids = np.zeros((len(points), grid, grid, grid), dtype=np.uint8)
    sample, slot = np.nonzero(mask)
    real = points[sample, slot]
    xyz = np.clip(np.rint(real[:, :3] * max(grid - 1, 1)), 0, grid - 1).astype(np.int64)
    value = real[:, 3 : 3 + DESCRIPTORS].argmax(axis=1) + 1
    grids[sample, xyz[:, 0], xyz[:, 1], xyz[:, 2]] = value
    return grids
