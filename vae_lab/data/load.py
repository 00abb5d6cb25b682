"""Read a voxel dataset (Parquet, CSV or NPZ) into one checked uint8 array of grids.

A file holds one row per sample: D**3 numeric voxel columns, the grid flattened in C order,
plus optional `label` and `id` columns (NPZ: `X` shaped (N, D, D, D) or (N, D**3), optional
`y` and `id`). Every way a file can be wrong raises `VaeLabError` naming the file and the fix,
so a bad dataset fails here, in one line, instead of deep inside training.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vae_lab.errors import VaeLabError

if TYPE_CHECKING:
    import pyarrow as pa

MAX_VALUE = 4  # descriptor values are 0 (empty) .. 4; kept here so data never imports torch
LABEL_COLUMN, ID_COLUMN = "label", "id"
PARQUET_SUFFIXES = (".parquet", ".pq")
SUFFIXES = (*PARQUET_SUFFIXES, ".csv", ".npz")


@dataclass
class VoxelTable:
    """A loaded dataset.

    grids: (N, D, D, D) uint8 descriptor values 0-4.
    labels: (N,) the file's label values as read (any dtype), or None.
    ids: (N,) the file's ids, or None.
    """

    grids: np.ndarray
    labels: np.ndarray | None
    ids: np.ndarray | None
    grid: int
    source: Path

    def __len__(self) -> int:
        return len(self.grids)

    @property
    def flat(self) -> np.ndarray:
        """(N, D**3) view of the grids, one row per sample."""
        return self.grids.reshape(len(self.grids), self.grid**3)


def load_voxels(path: str | Path, grid: int | None = None) -> VoxelTable:
    """Load and check a voxel dataset; `grid` is the edge length, inferred when None."""
    path = Path(path)
    if not path.is_file():
        raise VaeLabError(str(path), "file not found", "check the path, or set VAE_LAB_DATA")
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise VaeLabError(
            str(path), f"unknown dataset format {suffix or '(no extension)'!r}", "use .parquet, .csv or .npz"
        )
    if suffix == ".npz":
        return _load_npz(path, grid)
    return voxels_from_table(path, _read_arrow(path, suffix), grid)


def _read_arrow(path: Path, suffix: str) -> pa.Table:
    # Imported here: .npz data needs no pyarrow (a GPU machine may hold only numpy and torch).
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    try:
        if suffix in PARQUET_SUFFIXES:
            return pq.read_table(path)
        return pacsv.read_csv(path)
    except (pa.ArrowException, OSError, ValueError) as error:
        kind = "Parquet" if suffix in PARQUET_SUFFIXES else "CSV"
        raise VaeLabError(str(path), f"unreadable {kind} file ({error})", f"re-export it as {kind}") from None


def voxel_column_names(names: list) -> list:
    """The voxel columns of a table, in order: every column but `label`, `id` and a pandas index."""
    # pandas writes its index as `__index_level_0__`; it is not data.
    return [
        name for name in names if name not in (LABEL_COLUMN, ID_COLUMN) and not str(name).startswith("__index_level_")
    ]


def grid_edge(n_voxels: int, grid: int | None, where: str) -> int:
    """The cube edge D with D**3 == n_voxels, checked against a given `grid`."""
    if grid is not None:
        if grid < 1 or grid**3 != n_voxels:
            raise VaeLabError(
                where,
                f"{n_voxels} voxel columns do not make a {grid}x{grid}x{grid} grid ({grid**3} columns)",
                "pass the right grid size, or keep only voxel columns plus `label` and `id`",
            )
        return grid
    edge = round(n_voxels ** (1 / 3)) if n_voxels > 0 else 0
    if edge < 1 or edge**3 != n_voxels:
        raise VaeLabError(
            where,
            f"{n_voxels} voxel columns is not a cube number, so they cannot be a D x D x D grid",
            "keep only the voxel columns (flattened in C order) plus optional `label` and `id`",
        )
    return edge


def checked_descriptors(values: np.ndarray, where: str, what: str) -> np.ndarray:
    """`values` as uint8 after checking they are integers 0-4 with nothing missing.

    `what` names the offending column or array in the error message.
    """
    if values.dtype == np.uint8:
        if values.size and values.max() > MAX_VALUE:
            _bad_value(values, where, what)
        return values
    if values.dtype == np.bool_:
        return values.astype(np.uint8)
    if not np.issubdtype(values.dtype, np.number) or np.issubdtype(values.dtype, np.complexfloating):
        raise VaeLabError(where, f"{what} is not numeric (dtype {values.dtype})", "voxel values must be integers 0-4")
    if values.size == 0:
        return values.astype(np.uint8)
    if np.issubdtype(values.dtype, np.floating):
        if np.isnan(values).any():
            raise VaeLabError(where, f"{what} has missing (NaN) values", "fill or drop the rows with missing voxels")
        fractional = values != np.floor(values)
        if fractional.any():
            example = values[fractional][0]
            raise VaeLabError(where, f"{what} has non-integer value {example:g}", "voxel values must be integers 0-4")
    if values.min() < 0 or values.max() > MAX_VALUE:
        _bad_value(values, where, what)
    return values.astype(np.uint8)


def _bad_value(values: np.ndarray, where: str, what: str) -> None:
    example = values[(values < 0) | (values > MAX_VALUE)][0]
    raise VaeLabError(
        where, f"{what} has value {example:g}, outside 0-{MAX_VALUE}", "voxel values must be integers 0-4"
    )


def voxels_from_table(path: Path, table: pa.Table, grid: int | None) -> VoxelTable:
    """The checked grids, labels and ids of an Arrow table read from `path` (whole or one batch)."""
    where = str(path)
    voxel_names = voxel_column_names(table.column_names)
    edge = grid_edge(len(voxel_names), grid, where)
    n = table.num_rows
    flat = np.zeros((n, len(voxel_names)), dtype=np.uint8)
    for j, name in enumerate(voxel_names):
        start = 0
        # Chunk by chunk the arrays are zero-copy views; writing only the non-zero cells into
        # the row-major array skips almost all of the strided writes, since samples are sparse.
        for chunk in table.column(name).chunks:
            values = checked_descriptors(chunk.to_numpy(zero_copy_only=False), where, f"column {name!r}")
            rows = np.flatnonzero(values)
            if len(rows) > len(values) // 8:
                flat[start : start + len(values), j] = values
            else:
                flat[start + rows, j] = values[rows]
            start += len(values)
    labels = _column(table, LABEL_COLUMN)
    ids = _column(table, ID_COLUMN)
    return VoxelTable(flat.reshape(n, edge, edge, edge), labels, ids, edge, path)


def _column(table: pa.Table, name: str) -> np.ndarray | None:
    if name not in table.column_names:
        return None
    return table.column(name).to_numpy(zero_copy_only=False)


def _load_npz(path: Path, grid: int | None) -> VoxelTable:
    where = str(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError) as error:
        raise VaeLabError(where, f"unreadable NPZ file ({error})", "save it with numpy.savez") from None
    if "X" not in arrays:
        raise VaeLabError(where, f"no array named 'X' (found {sorted(arrays)})", "save the grids as X=...")
    x = arrays["X"]
    if x.ndim == 4:
        if not x.shape[1] == x.shape[2] == x.shape[3]:
            raise VaeLabError(where, f"X has shape {x.shape}, not (N, D, D, D)", "save cubic grids")
        edge = grid_edge(x.shape[1] ** 3, grid, where)
    elif x.ndim == 2:
        edge = grid_edge(x.shape[1], grid, where)
    else:
        raise VaeLabError(where, f"X has shape {x.shape}", "save X as (N, D, D, D) or (N, D**3)")
    grids = checked_descriptors(x, where, "array 'X'").reshape(len(x), edge, edge, edge)
    labels, ids = arrays.get("y"), arrays.get("id")
    for name, values in (("y", labels), ("id", ids)):
        if values is not None and values.shape != (len(x),):
            problem = f"{name} has shape {values.shape}, X has {len(x)} rows"
            raise VaeLabError(where, problem, f"save one {name} per row")
    return VoxelTable(np.ascontiguousarray(grids), labels, ids, edge, path)
