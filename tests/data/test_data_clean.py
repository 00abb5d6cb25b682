"""Cleaning: duplicates (first copy kept), all-zero rows, and hash collisions never drop a row."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
from data_helpers import random_flat

from vae_lab.data import all_zero_rows, clean, duplicate_rows
from vae_lab.data.load import VoxelTable

# `vae_lab.data.clean` the attribute is the function; the module is reached through importlib.
clean_module = importlib.import_module("vae_lab.data.clean")


def _table(flat, labels=None, ids=None) -> VoxelTable:
    return VoxelTable(flat.reshape(len(flat), 3, 3, 3), labels, ids, 3, Path("t.parquet"))


def test_duplicates_flag_later_copies_only():
    a, b = random_flat(2, seed=1)
    flat = np.stack([a, b, a, a, b, np.zeros_like(a), np.zeros_like(a)])
    np.testing.assert_array_equal(duplicate_rows(flat), [False, False, True, True, True, False, True])
    np.testing.assert_array_equal(all_zero_rows(flat), [False] * 5 + [True, True])


def test_duplicates_match_exact_unique():
    flat = random_flat(3000, seed=2, max_cells=2)  # small grid, few cells: many repeats
    _, first = np.unique(flat, axis=0, return_index=True)
    expected = np.ones(len(flat), dtype=bool)
    expected[first] = False
    np.testing.assert_array_equal(duplicate_rows(flat), expected)


def test_rows_wider_than_a_word_multiple():
    flat = np.zeros((4, 1331), dtype=np.uint8)
    flat[0, 1330] = flat[1, 1330] = 3  # the last, padded word
    flat[2, 1329] = 3
    np.testing.assert_array_equal(duplicate_rows(flat), [False, True, False, False])


def test_hash_collisions_are_settled_exactly(monkeypatch):
    flat = random_flat(500, seed=3, max_cells=2)
    expected = duplicate_rows(flat)
    # Every row hashes alike: the exact comparison alone must decide.
    monkeypatch.setattr(clean_module, "row_hashes", lambda rows: np.zeros((len(rows), 2), dtype=np.uint64))
    np.testing.assert_array_equal(duplicate_rows(flat), expected)


def test_clean_keeps_first_copy_with_its_label_and_id():
    a, b = random_flat(2, seed=4)
    zero = np.zeros_like(a)
    flat = np.stack([zero, a, b, a, zero, b])
    labels = np.array(["z", "first-a", "first-b", "copy-a", "z", "copy-b"])
    cleaned, report = clean(_table(flat, labels, np.arange(6)))
    np.testing.assert_array_equal(cleaned.flat, [a, b])
    assert list(cleaned.labels) == ["first-a", "first-b"]
    assert list(cleaned.ids) == [1, 2]
    assert report.as_dict() == {"rows": 6, "duplicate_rows": 3, "all_zero_rows": 2, "clean_rows": 2}


def test_clean_empty_table():
    cleaned, report = clean(_table(np.zeros((0, 27), dtype=np.uint8)))
    assert len(cleaned) == 0 and report.clean_rows == 0
