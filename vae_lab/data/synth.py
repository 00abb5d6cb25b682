"""A synthetic dataset with the character of the journal's voxel data, for demos and tests.

Each sample is one motif family (a small template of occupied cells with descriptor values)
placed in an 11x11x11 grid under a random cube rotation, a random translation and a little
noise (a cell dropped, added or relabelled), so the `label` means something and a good latent
space should cluster by it. Descriptor 1 is common and 4 is rare, as in the real data.

The raw file also carries the defects the journal found: only about 10% of rows are distinct
samples; the rest are copies of them and all-zero rows, shuffled together. Cleaning the
journal's 280,375 raw rows left 27,017; so does `synthesize(280_375)`.
"""

from __future__ import annotations

import itertools
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from vae_lab.data.clean import duplicate_rows
from vae_lab.errors import VaeLabError

# (x, y, z, descriptor) per cell. No template spans more than 3 cells a side, so every
# rotation fits an 11-cube with room to translate; the largest has 7 cells, and noise adds at
# most one, which keeps every sample within the journal's 8 occupied cells.
MOTIFS: dict[str, list[tuple[int, int, int, int]]] = {
    "dimer": [(0, 0, 0, 1), (1, 0, 0, 2)],
    "chain": [(0, 0, 0, 1), (1, 0, 0, 1), (2, 0, 0, 1), (3, 0, 0, 2)],
    "corner": [(0, 0, 0, 1), (1, 0, 0, 1), (0, 1, 0, 1), (0, 0, 1, 3)],
    "plaquette": [(0, 0, 0, 1), (1, 0, 0, 2), (0, 1, 0, 2), (1, 1, 0, 1), (1, 1, 1, 3)],
    "cage": [(0, 0, 0, 1), (2, 0, 0, 1), (0, 2, 0, 1), (0, 0, 2, 1), (1, 1, 1, 3), (2, 2, 0, 2), (1, 1, 2, 4)],
}
FAMILY_SHARE = np.array([0.30, 0.25, 0.20, 0.15, 0.10])  # imbalanced families
NOISE_VALUE_SHARE = np.array([0.55, 0.25, 0.13, 0.07])  # descriptor 1..4 of a noisy cell
DISTINCT_SHARE = 27_017 / 280_375  # the journal's clean / raw ratio
ZERO_SHARE = 0.04  # all-zero rows among the raw rows
DROP_P, ADD_P, RELABEL_P = 0.15, 0.20, 0.15
DEFAULT_ROWS = 280_375  # the journal's raw size: cleans to its 27,017 rows
JITTER = 2  # cells a motif may sit off-centre, per axis
MAX_TOP_UPS = 20  # rounds of extra draws to replace samples that came out identical
SLOTS = max(len(cells) for cells in MOTIFS.values()) + 1  # template cells + one added by noise

NEIGHBOURS = np.array([(1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1)])


def cube_rotations() -> np.ndarray:
    """The 24 proper rotations of a cube as (24, 3, 3) integer matrices."""
    found = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1, -1), repeat=3):
            matrix = np.zeros((3, 3), dtype=np.int64)
            matrix[range(3), perm] = signs
            if round(np.linalg.det(matrix)) == 1:  # reflections would change a motif's chirality
                found.append(matrix)
    return np.stack(found)


def voxel_columns(grid: int) -> list[str]:
    """Column names of the flattened grid, in C order: v0000 .. v1330 for an 11-cube."""
    width = max(4, len(str(grid**3 - 1)))
    return [f"v{i:0{width}d}" for i in range(grid**3)]


def _templates() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Families padded to SLOTS cells: offsets (F, S, 3), values (F, S), valid (F, S)."""
    offsets = np.zeros((len(MOTIFS), SLOTS, 3), dtype=np.int64)
    values = np.zeros((len(MOTIFS), SLOTS), dtype=np.uint8)
    valid = np.zeros((len(MOTIFS), SLOTS), dtype=bool)
    for f, cells in enumerate(MOTIFS.values()):
        cells_array = np.array(cells)
        offsets[f, : len(cells)] = cells_array[:, :3]
        values[f, : len(cells)] = cells_array[:, 3]
        valid[f, : len(cells)] = True
    return offsets, values, valid


def _add_noise(rng: np.random.Generator, pos: np.ndarray, values: np.ndarray, valid: np.ndarray) -> None:
    """Drop, relabel and add cells in place, at most one of each per sample."""
    n = len(pos)
    rows = np.arange(n)
    n_cells = valid.sum(axis=1)
    # Template cells fill the first slots, so a random slot below n_cells is a real cell.
    drop = (rng.random(n) < DROP_P) & (n_cells >= 2)
    valid[rows[drop], (rng.random(n) * n_cells).astype(np.int64)[drop]] = False

    relabel = rng.random(n) < RELABEL_P
    new_value = rng.choice(4, size=n, p=NOISE_VALUE_SHARE).astype(np.uint8) + 1
    values[rows[relabel], (rng.random(n) * n_cells).astype(np.int64)[relabel]] = new_value[relabel]

    add = rng.random(n) < ADD_P
    anchor = (rng.random(n) * n_cells).astype(np.int64)
    pos[:, -1] = pos[rows, anchor] + NEIGHBOURS[rng.integers(0, len(NEIGHBOURS), n)]
    values[:, -1] = rng.choice(4, size=n, p=NOISE_VALUE_SHARE).astype(np.uint8) + 1
    valid[:, -1] = add


def motif_samples(n: int, rng: np.random.Generator, grid: int = 11) -> tuple[np.ndarray, np.ndarray]:
    """n motif instances: flat grids (n, grid**3) uint8 and family codes (n,)."""
    offsets, template_values, template_valid = _templates()
    family = rng.choice(len(MOTIFS), size=n, p=FAMILY_SHARE)
    rotation = cube_rotations()[rng.integers(0, 24, n)]
    pos = np.einsum("nij,nsj->nsi", rotation, offsets[family])
    values, valid = template_values[family], template_valid[family]
    _add_noise(rng, pos, values, valid)

    # Centre the motif, then shift it by up to JITTER cells per axis (staying inside the grid).
    # Structures in the real data sit near the centre of their cell; uniform placement over
    # the whole grid would make the position, not the motif, most of what a latent must encode.
    low = np.where(valid[..., None], pos, np.iinfo(np.int64).max).min(axis=1)
    high = np.where(valid[..., None], pos, np.iinfo(np.int64).min).max(axis=1)
    room = grid - (high - low)
    if (room < 1).any():
        raise VaeLabError("synthesize", f"a motif does not fit a {grid}-cell grid", "use grid >= 6")
    centred = (room - 1) // 2
    jitter = rng.integers(-JITTER, JITTER + 1, size=(n, 3))
    start = np.clip(centred + jitter, 0, room - 1)
    pos = pos - low[:, None, :] + start[:, None, :]

    flat = np.zeros((n, grid**3), dtype=np.uint8)
    cell = (pos[..., 0] * grid + pos[..., 1]) * grid + pos[..., 2]
    sample = np.broadcast_to(np.arange(n)[:, None], cell.shape)
    flat[sample[valid], cell[valid]] = values[valid]
    return flat, family


def distinct_samples(n: int, rng: np.random.Generator, grid: int = 11) -> tuple[np.ndarray, np.ndarray]:
    """Up to n pairwise-distinct motif samples (fewer only if the grid is too small to hold n).

    Small motifs in few placements repeat by chance; drawing more until n distinct rows exist
    makes a raw file of the journal's size clean to exactly the journal's 27,017 rows.
    """
    flat, family = motif_samples(n, rng, grid)
    keep = ~duplicate_rows(flat)
    for _ in range(MAX_TOP_UPS):
        shortfall = n - int(keep.sum())
        if shortfall <= 0:
            break
        more, more_family = motif_samples(2 * shortfall + 16, rng, grid)
        flat, family = np.concatenate([flat, more]), np.concatenate([family, more_family])
        keep = ~duplicate_rows(flat)
    return flat[keep][:n], family[keep][:n]


def synthesize(rows: int = DEFAULT_ROWS, seed: int = 0, grid: int = 11) -> pd.DataFrame:
    """A raw dataset of `rows` rows: voxel columns v0000.., `label` (motif family) and `id`.

    About 10% of rows are distinct motif samples; the rest are copies of them and all-zero rows
    in shuffled order, as in the journal's raw data. The same seed gives the same frame.
    """
    if rows < 1:
        raise VaeLabError("synthesize", f"rows must be at least 1, got {rows}", "ask for more rows")
    rng = np.random.default_rng(seed)
    n_distinct = max(1, round(rows * DISTINCT_SHARE))
    n_zero = min(round(rows * ZERO_SHARE), rows - n_distinct)
    distinct, family = distinct_samples(n_distinct, rng, grid)
    n_distinct = len(distinct)

    # Each raw row names its source sample; -1 (the appended zero column) is an all-zero row.
    copies = rng.integers(0, n_distinct, rows - n_distinct - n_zero)
    source = rng.permutation(np.concatenate([np.arange(n_distinct), copies, np.full(n_zero, -1)]))
    zero_family = rng.choice(len(MOTIFS), size=rows, p=FAMILY_SHARE)
    row_family = np.where(source >= 0, family[source], zero_family)

    # Gather column-major: pandas keeps a frame's columns as rows of one 2-D block, so a
    # (columns, rows) array becomes the frame without a transposing copy.
    by_column = np.concatenate([distinct.T, np.zeros((grid**3, 1), dtype=np.uint8)], axis=1)
    voxels = np.take(by_column, source, axis=1)
    frame = pd.DataFrame(voxels.T, columns=voxel_columns(grid), copy=False)
    names = np.array(list(MOTIFS))
    extra = pd.DataFrame({"label": names[row_family], "id": np.arange(rows, dtype=np.int64)})
    return pd.concat([frame, extra], axis=1)


def write_dataset(df: pd.DataFrame, path: str | Path) -> Path:
    """Write a frame as Parquet or CSV (by extension), atomically so readers never see half a file."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".parquet", ".pq", ".csv"):
        raise VaeLabError(str(path), f"unknown dataset extension {suffix!r}", "use .parquet or .csv")
    import pyarrow as pa  # here, so generating grids in memory needs no pyarrow
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(df, preserve_index=False)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        if suffix == ".csv":
            pacsv.write_csv(table, temp)
        else:
            pq.write_table(table, temp)
        os.chmod(temp, 0o644)  # mkstemp makes it private; a dataset is ordinary shared data
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return path
