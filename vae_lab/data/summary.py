"""What is in a raw dataset file: the numbers the journal looked at before cleaning."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vae_lab.data.clean import all_zero_rows, duplicate_rows
from vae_lab.data.load import MAX_VALUE, load_voxels
from vae_lab.data.sparse import max_occupied, nonzero_cells


def descriptor_counts(flat: np.ndarray) -> np.ndarray:
    """(MAX_VALUE + 1,) int64: how many voxels hold each descriptor value 1..4 (index 0 unused)."""
    rows, cols = nonzero_cells(flat)
    return np.bincount(flat[rows, cols], minlength=MAX_VALUE + 1)


def summarize(path: str | Path, grid: int | None = None) -> dict:
    """Row, defect, class and label counts of a raw dataset (plain ints, JSON-ready).

    A duplicate all-zero row counts in both `duplicate_rows` and `all_zero_rows`; `clean_rows`
    are the rows that are neither, i.e. what `clean` keeps. `class_counts` counts voxels of
    descriptor 1-4 over all raw rows.
    """
    table = load_voxels(path, grid)
    flat = table.flat
    duplicate, zero = duplicate_rows(flat), all_zero_rows(flat)
    counts = descriptor_counts(flat)
    label_counts: dict[str, int] = {}
    if table.labels is not None:
        names, label_rows = np.unique(table.labels.astype(str), return_counts=True)
        label_counts = {str(name): int(rows) for name, rows in zip(names, label_rows)}
    return {
        "rows": len(flat),
        "duplicate_rows": int(duplicate.sum()),
        "all_zero_rows": int(zero.sum()),
        "clean_rows": int((~(duplicate | zero)).sum()),
        "grid": table.grid,
        "class_counts": {str(value): int(counts[value]) for value in range(1, MAX_VALUE + 1)},
        "max_occupied": max_occupied(table.grids),
        "label_counts": label_counts,
    }
