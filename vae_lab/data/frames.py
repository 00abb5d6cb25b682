"""Voxel grids from data held in memory (a DataFrame, an array), and grids back to a DataFrame.

A trained model is used on data as its user holds it: the dataset's own table (the voxel
columns `vae-lab data` reads, by the same rule as `load_voxels`: every column but `label`, `id`
and a pandas index, in order), a (N, D**3) array or a (N, D, D, D) array. Every check is the
file loader's, so a bad value reads the same whether it came from a file, a notebook or an
HTTP request.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from vae_lab.data.load import ID_COLUMN, LABEL_COLUMN, checked_descriptors, grid_edge, voxel_column_names
from vae_lab.data.synth import voxel_columns
from vae_lab.errors import VaeLabError


@dataclass
class GridInput:
    """Grids (N, D, D, D) uint8 read from the user's data, with the ids, labels and voxel
    column names it carried (None when it had none, e.g. an array)."""

    grids: np.ndarray
    ids: np.ndarray | None = None
    labels: np.ndarray | None = None
    columns: list[str] | None = None


def grids_from_data(data, grid: int, where: str = "input") -> GridInput:
    """Read a DataFrame, a dict of columns, a list of rows or an array as checked grids of edge `grid`."""
    if isinstance(data, dict):
        data = pd.DataFrame(data)
    if isinstance(data, pd.DataFrame):
        return grids_from_frame(data, grid, where)
    array = np.asarray(data)
    if array.dtype == object:
        raise VaeLabError(where, "the rows are not all numbers of one length", f"send {grid**3} voxel values per row")
    return GridInput(grids_from_array(array, grid, where))


def grids_from_frame(frame: pd.DataFrame, grid: int, where: str = "input") -> GridInput:
    """A DataFrame with the dataset's voxel columns (plus optional `label` and `id`)."""
    names = voxel_column_names(list(frame.columns))
    grid_edge(len(names), grid, where)
    grids = grids_from_array(frame[names].to_numpy(), grid, where)
    ids = frame[ID_COLUMN].to_numpy() if ID_COLUMN in frame.columns else None
    labels = frame[LABEL_COLUMN].to_numpy() if LABEL_COLUMN in frame.columns else None
    return GridInput(grids, ids, labels, [str(n) for n in names])


def grids_from_array(array: np.ndarray, grid: int, where: str = "input") -> np.ndarray:
    """(N, D**3) or (N, D, D, D) values 0-4 -> (N, D, D, D) uint8, checked like a file's."""
    array = np.asarray(array)
    shapes = f"(N, {grid**3}) or (N, {grid}, {grid}, {grid})"
    if array.ndim == 4 and array.shape[1:] == (grid,) * 3:
        pass
    elif array.ndim == 2 and array.shape[1] == grid**3:
        array = array.reshape(len(array), grid, grid, grid)
    else:
        raise VaeLabError(
            where, f"an array of shape {array.shape}, the model reads {shapes}", f"reshape it to {shapes}"
        )
    grids = np.ascontiguousarray(checked_descriptors(array, where, "the voxel values"))
    # pandas hands out read-only views (copy-on-write), which torch will not wrap without a warning.
    return grids if grids.flags.writeable else grids.copy()


def frame_of_grids(grids: np.ndarray, columns: list[str] | None = None, ids: np.ndarray | None = None) -> pd.DataFrame:
    """Grids (N, D, D, D) as a dataset table: `id` first when given, then one column per voxel."""
    n, edge = len(grids), grids.shape[1]
    names = columns or voxel_columns(edge)
    frame = pd.DataFrame(grids.reshape(n, edge**3), columns=names, copy=False)
    if ids is not None:
        frame.insert(0, ID_COLUMN, ids)
    return frame
