"""load_voxels: every format round-trips, every bad file names itself in one VaeLabError."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from data_helpers import frame, random_flat, write

from vae_lab.data import load_voxels
from vae_lab.errors import VaeLabError


@pytest.mark.parametrize("name", ["raw.parquet", "raw.csv"])
def test_table_round_trip(tmp_path, name):
    flat = random_flat(20)
    labels = np.array(["a", "b"] * 10)
    table = load_voxels(write(tmp_path, name, flat, labels, np.arange(20)))
    assert table.grid == 3 and table.grids.dtype == np.uint8
    assert table.grids.shape == (20, 3, 3, 3)
    np.testing.assert_array_equal(table.flat, flat)
    assert list(table.labels) == list(labels)
    assert list(table.ids) == list(range(20))


def test_table_without_label_or_id(tmp_path):
    table = load_voxels(write(tmp_path, "raw.parquet", random_flat(5)))
    assert table.labels is None and table.ids is None


def test_float_columns_holding_integers_load(tmp_path):
    flat = random_flat(10)
    path = tmp_path / "raw.csv"
    frame(flat.astype(float)).to_csv(path, index=False, float_format="%.1f")
    np.testing.assert_array_equal(load_voxels(path).flat, flat)


@pytest.mark.parametrize("shape", ["grid", "flat"])
def test_npz_round_trip(tmp_path, shape):
    flat = random_flat(12)
    x = flat.reshape(12, 3, 3, 3) if shape == "grid" else flat
    path = tmp_path / "raw.npz"
    np.savez(path, X=x.astype(np.int64), y=np.arange(12) % 3)
    table = load_voxels(path)
    np.testing.assert_array_equal(table.flat, flat)
    np.testing.assert_array_equal(table.labels, np.arange(12) % 3)


def test_given_grid_is_checked(tmp_path):
    path = write(tmp_path, "raw.parquet", random_flat(4))
    assert load_voxels(path, grid=3).grid == 3
    with pytest.raises(VaeLabError, match=r"raw\.parquet.*4x4x4"):
        load_voxels(path, grid=4)


def _bad_value_file(tmp_path, value):
    df = frame(random_flat(6).astype(float))
    df.iloc[2, 5] = value
    path = tmp_path / "bad.parquet"
    df.to_parquet(path, index=False)
    return path


@pytest.mark.parametrize(
    ("value", "problem"),
    [(np.nan, "missing"), (5.0, "value 5"), (1.5, "non-integer value 1.5"), (-1.0, "value -1")],
)
def test_bad_values(tmp_path, value, problem):
    with pytest.raises(VaeLabError, match=rf"bad\.parquet.*{problem}"):
        load_voxels(_bad_value_file(tmp_path, value))


def test_bad_value_in_integer_csv(tmp_path):
    flat = random_flat(6)
    flat[3, 1] = 5
    with pytest.raises(VaeLabError, match=r"raw\.csv.*value 5"):
        load_voxels(write(tmp_path, "raw.csv", flat))


def test_missing_file(tmp_path):
    with pytest.raises(VaeLabError, match=r"nope\.parquet: file not found"):
        load_voxels(tmp_path / "nope.parquet")


def test_unknown_extension(tmp_path):
    path = tmp_path / "raw.xlsx"
    path.write_text("x")
    with pytest.raises(VaeLabError, match=r"raw\.xlsx.*unknown dataset format"):
        load_voxels(path)


def test_columns_not_a_cube(tmp_path):
    path = tmp_path / "raw.csv"
    pd.DataFrame(random_flat(4)[:, :26]).to_csv(path, index=False)
    with pytest.raises(VaeLabError, match=r"raw\.csv.*26 voxel columns is not a cube"):
        load_voxels(path)


def test_text_column(tmp_path):
    df = frame(random_flat(3))
    df["v0004"] = ["x", "y", "z"]
    path = tmp_path / "raw.parquet"
    df.to_parquet(path, index=False)
    with pytest.raises(VaeLabError, match=r"raw\.parquet.*v0004.*not numeric"):
        load_voxels(path)


@pytest.mark.parametrize("name", ["junk.parquet", "junk.npz"])
def test_unreadable_file(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"\x00not really" * 10)
    with pytest.raises(VaeLabError, match=rf"junk\.{name.split('.')[1]}.*unreadable"):
        load_voxels(path)


def test_npz_without_x(tmp_path):
    path = tmp_path / "raw.npz"
    np.savez(path, grids=random_flat(2))
    with pytest.raises(VaeLabError, match=r"raw\.npz.*'X'"):
        load_voxels(path)
