"""prepare_dataset, its cache, default_dataset and summarize, on small real files."""

from __future__ import annotations

import numpy as np
import pytest
from data_helpers import random_flat, write

from vae_lab.data import default_dataset, prepare_dataset, summarize, synthesize, write_dataset
from vae_lab.errors import VaeLabError


@pytest.fixture
def raw_file(tmp_path):
    """400 distinct rows, 100 copies of them and 50 zero rows, labelled a/b/c."""
    distinct = np.unique(random_flat(440, edge=5, seed=5), axis=0)[:400]
    rng = np.random.default_rng(0)
    flat = np.concatenate([distinct, distinct[rng.integers(0, 400, 100)], np.zeros((50, 125), np.uint8)])
    labels = np.array(["a", "b", "c"])[np.arange(400) % 3]
    labels = np.concatenate([labels, rng.choice(labels, 150)])
    return write(tmp_path, "raw.parquet", flat, labels, np.arange(550))


def test_prepare_cleans_and_splits(raw_file, tmp_path):
    data = prepare_dataset(raw_file, cache_dir=tmp_path / "cache")
    assert data.summary() == {"rows": 550, "clean_rows": 400, "train": 280, "val": 40, "test": 80, "toy_fraction": 1.0}
    assert data.label_names == ["a", "b", "c"] and data.grid == 5
    assert data.train.grids.shape == (280, 5, 5, 5) and data.train.grids.dtype == np.uint8
    assert data.train.labels.dtype == np.int64 and set(data.train.labels) == {0, 1, 2}
    assert not data.from_cache


def test_second_call_hits_the_cache(raw_file, tmp_path):
    first = prepare_dataset(raw_file, cache_dir=tmp_path / "cache", toy_fraction=0.5, seed=3)
    second = prepare_dataset(raw_file, cache_dir=tmp_path / "cache", toy_fraction=0.5, seed=3)
    assert second.from_cache and not first.from_cache
    for name in ("train", "val", "test"):
        np.testing.assert_array_equal(getattr(first, name).grids, getattr(second, name).grids)
        np.testing.assert_array_equal(getattr(first, name).labels, getattr(second, name).labels)
    assert second.summary() == first.summary() and second.label_names == first.label_names
    assert not prepare_dataset(raw_file, cache_dir=tmp_path / "cache", seed=4).from_cache  # other options


def test_changed_content_misses_the_cache(tmp_path):
    path = write(tmp_path, "raw.csv", random_flat(60, seed=1))
    assert not prepare_dataset(path, cache_dir=tmp_path / "cache").from_cache
    write(tmp_path, "raw.csv", random_flat(60, seed=2))
    changed = prepare_dataset(path, cache_dir=tmp_path / "cache")
    assert not changed.from_cache and changed.label_names == [] and set(changed.test.labels) == {-1}


def test_corrupt_cache_is_rebuilt(raw_file, tmp_path):
    prepare_dataset(raw_file, cache_dir=tmp_path / "cache")
    (cached,) = (tmp_path / "cache").glob("*.npz")
    cached.write_bytes(b"garbage")
    assert not prepare_dataset(raw_file, cache_dir=tmp_path / "cache").from_cache
    assert prepare_dataset(raw_file, cache_dir=tmp_path / "cache").from_cache
    assert not list((tmp_path / "cache").glob("*.tmp"))


def test_nothing_left_after_cleaning(tmp_path):
    path = write(tmp_path, "zeros.parquet", np.zeros((10, 27), dtype=np.uint8))
    with pytest.raises(VaeLabError, match=r"zeros\.parquet.*nothing left after cleaning"):
        prepare_dataset(path, cache_dir=tmp_path / "cache")


def test_bad_toy_fraction(raw_file, tmp_path):
    with pytest.raises(VaeLabError, match="toy_fraction"):
        prepare_dataset(raw_file, cache_dir=tmp_path / "cache", toy_fraction=1.5)


def test_missing_file(tmp_path):
    with pytest.raises(VaeLabError, match=r"gone\.parquet: file not found"):
        prepare_dataset(tmp_path / "gone.parquet", cache_dir=tmp_path / "cache")


def test_summarize(raw_file):
    summary = summarize(raw_file)
    assert {k: summary[k] for k in ("rows", "duplicate_rows", "all_zero_rows", "clean_rows", "grid")} == {
        "rows": 550,
        "duplicate_rows": 149,
        "all_zero_rows": 50,
        "clean_rows": 400,
        "grid": 5,
    }
    assert set(summary["class_counts"]) == {"1", "2", "3", "4"} and summary["max_occupied"] <= 4
    assert sum(summary["label_counts"].values()) == 550


@pytest.mark.slow  # seconds of real training, processes or waiting: `make test`, not the edit loop
def test_default_dataset_generates_the_synthetic_one(lab, capsys):
    path = default_dataset()
    assert path.is_file() and "synthetic" in capsys.readouterr().err
    assert default_dataset() == path


def test_default_dataset_rejects_a_missing_user_file(lab):
    with pytest.raises(VaeLabError, match=r"mine\.parquet: file not found"):
        default_dataset(lab / "mine.parquet")


def test_synthetic_end_to_end(tmp_path):
    path = write_dataset(synthesize(rows=3000, seed=1), tmp_path / "synthetic.parquet")
    data = prepare_dataset(path, cache_dir=tmp_path / "cache", toy_fraction=0.2)
    assert data.clean_rows == round(3000 * 27_017 / 280_375)
    assert len(data.label_names) == 5 and len(data.test) == int(np.ceil(data.clean_rows * 0.2))
