"""Small raw datasets for the data tests: tiny grids written as real files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from vae_lab.data.synth import voxel_columns, write_dataset


def random_flat(n: int, edge: int = 3, seed: int = 0, max_cells: int = 4) -> np.ndarray:
    """(n, edge**3) uint8 rows with 1..max_cells occupied cells of descriptors 1-4."""
    rng = np.random.default_rng(seed)
    flat = np.zeros((n, edge**3), dtype=np.uint8)
    for i in range(n):
        cells = rng.choice(edge**3, size=rng.integers(1, max_cells + 1), replace=False)
        flat[i, cells] = rng.integers(1, 5, size=len(cells))
    return flat


def frame(flat: np.ndarray, labels=None, ids=None) -> pd.DataFrame:
    """A raw-file frame: voxel columns, then `label` and `id` when given."""
    edge = round(flat.shape[1] ** (1 / 3))
    df = pd.DataFrame(flat, columns=voxel_columns(edge))
    if labels is not None:
        df["label"] = labels
    if ids is not None:
        df["id"] = ids
    return df


def write(tmp_path: Path, name: str, flat: np.ndarray, labels=None, ids=None) -> Path:
    return write_dataset(frame(flat, labels, ids), tmp_path / name)
