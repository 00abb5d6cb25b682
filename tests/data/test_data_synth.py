"""The synthetic dataset: deterministic, sparse, imbalanced, and with the journal's defects."""

from __future__ import annotations

import numpy as np
import pytest

from vae_lab.data import clean, load_voxels, synthesize, write_dataset
from vae_lab.data.synth import MOTIFS, cube_rotations
from vae_lab.errors import VaeLabError


@pytest.fixture(scope="module")
def raw():
    return synthesize(rows=5000, seed=3)


def test_columns(raw):
    assert list(raw.columns[:2]) == ["v0000", "v0001"] and raw.columns[1330] == "v1330"
    assert list(raw.columns[1331:]) == ["label", "id"]
    assert set(raw["label"]) == set(MOTIFS)


def test_same_seed_same_frame_and_file(tmp_path, raw):
    assert synthesize(rows=5000, seed=3).equals(raw)
    assert not synthesize(rows=5000, seed=4).equals(raw)
    a = write_dataset(raw, tmp_path / "a.parquet").read_bytes()
    b = write_dataset(synthesize(rows=5000, seed=3), tmp_path / "b.parquet").read_bytes()
    assert a == b


def test_character(tmp_path, raw):
    table = load_voxels(write_dataset(raw, tmp_path / "raw.parquet"))
    cleaned, report = clean(table)
    assert report.clean_rows == round(5000 * 27_017 / 280_375)  # ~10% distinct, like the journal
    occupied = np.count_nonzero(cleaned.flat, axis=1)
    assert occupied.min() >= 1 and occupied.max() <= 8
    counts = np.bincount(cleaned.flat.ravel(), minlength=5)
    assert counts[1] > counts[2] > counts[3] > counts[4] > 0


def test_rotations_are_the_24_proper_ones():
    rotations = cube_rotations()
    assert len(rotations) == 24 and len({r.tobytes() for r in rotations}) == 24
    assert all(round(np.linalg.det(r)) == 1 for r in rotations)


def test_unknown_extension(tmp_path, raw):
    with pytest.raises(VaeLabError, match=r"raw\.txt"):
        write_dataset(raw.head(), tmp_path / "raw.txt")
