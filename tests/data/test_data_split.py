"""split_indices: the journal's sizes, stratification, determinism and toy fractions."""

from __future__ import annotations

import numpy as np
import pytest

from vae_lab.data import split_indices, split_sizes


def _labels(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).choice(5, size=n, p=[0.4, 0.25, 0.2, 0.1, 0.05])


@pytest.mark.parametrize(
    ("n", "sizes"), [(27_017, (18_911, 2_702, 5_404)), (280_375, (196_262, 28_038, 56_075)), (3, (1, 1, 1))]
)
def test_journal_sizes(n, sizes):
    assert split_sizes(n) == sizes


def test_split_is_a_partition_of_the_journal_size():
    train, val, test = split_indices(27_017, _labels(27_017), seed=0)
    assert (len(train), len(val), len(test)) == (18_911, 2_702, 5_404)
    everything = np.concatenate([train, val, test])
    np.testing.assert_array_equal(np.sort(everything), np.arange(27_017))


def test_stratification_keeps_label_shares():
    labels = _labels(27_017)
    overall = np.bincount(labels) / len(labels)
    for idx in split_indices(27_017, labels, seed=0):
        np.testing.assert_allclose(np.bincount(labels[idx], minlength=5) / len(idx), overall, atol=0.002)


def test_same_seed_same_split_other_seed_other_split():
    labels = _labels(1000)
    first, again, other = (split_indices(1000, labels, seed=s) for s in (7, 7, 8))
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], other[0])


def test_without_labels():
    train, val, test = split_indices(1000, None, seed=0)
    assert (len(train), len(val), len(test)) == split_sizes(1000)


def test_class_too_small_falls_back_to_unstratified():
    labels = _labels(1000)
    labels[0] = 9  # a class of one row cannot be stratified
    train, val, test = split_indices(1000, labels, seed=0)
    assert (len(train), len(val), len(test)) == split_sizes(1000)


def test_toy_fraction_shrinks_train_and_val_only():
    labels = _labels(27_017)
    full = split_indices(27_017, labels, seed=0)
    toy = split_indices(27_017, labels, seed=0, toy_fraction=0.2)
    assert (len(toy[0]), len(toy[1])) == (3_782, 540)
    np.testing.assert_array_equal(toy[2], full[2])
    assert set(toy[0]) <= set(full[0]) and set(toy[1]) <= set(full[1])
    overall = np.bincount(labels) / len(labels)
    np.testing.assert_allclose(np.bincount(labels[toy[0]], minlength=5) / len(toy[0]), overall, atol=0.005)


def test_tiny_toy_fraction_keeps_a_row():
    train, val, _ = split_indices(100, None, seed=0, toy_fraction=1e-6)
    assert len(train) == 1 and len(val) == 1


def test_bad_toy_fraction():
    with pytest.raises(ValueError):
        split_indices(100, None, seed=0, toy_fraction=0)
