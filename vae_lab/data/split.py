"""Train / validation / test indices, stratified by label, reproducible from a seed.

The sizes follow the journal (scikit-learn's rounding): test takes ceil(20%) of the rows, then
validation takes ceil(12.5%) of the rest, so 27,017 clean rows give 18,911 / 2,702 / 5,404.
A toy fraction shrinks train and validation (not test) for quick architecture comparisons, as
the journal did with 20%; test stays whole so toy and full runs score on the same rows.
"""

from __future__ import annotations

import logging
import math

import numpy as np
from sklearn.model_selection import train_test_split

logger = logging.getLogger(__name__)


def split_sizes(n: int, test_fraction: float = 0.2, val_fraction: float = 0.125) -> tuple[int, int, int]:
    """(train, val, test) row counts for n rows, before any toy fraction."""
    # The same arithmetic as scikit-learn's train_test_split, so sizes match the journal's.
    n_test = math.ceil(test_fraction * n)
    n_val = math.ceil(val_fraction * (n - n_test))
    return n - n_test - n_val, n_val, n_test


def _take(indices: np.ndarray, size: int, labels: np.ndarray | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split `indices` into (rest, chosen) with `size` chosen rows, stratified when possible."""
    if size == 0:
        return indices, indices[:0]
    if size == len(indices):
        return indices[:0], indices
    stratify = None if labels is None else labels[indices]
    try:
        rest, chosen = train_test_split(indices, test_size=size, random_state=seed, stratify=stratify)
    except ValueError as error:
        # A class with a single row (or more classes than chosen rows) cannot be stratified;
        # an unstratified split is still a fair split.
        logger.warning("splitting without stratification: %s", error)
        rest, chosen = train_test_split(indices, test_size=size, random_state=seed)
    return rest, chosen


def split_indices(
    n: int,
    labels: np.ndarray | None,
    seed: int,
    test_fraction: float = 0.2,
    val_fraction: float = 0.125,
    toy_fraction: float = 1.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train_idx, val_idx, test_idx): sorted int64 row indices into the n clean rows.

    Args:
        labels: (n,) class of each row to stratify by, or None.
        toy_fraction: share of train and of validation to keep, in (0, 1]; at least one row each.
    """
    if not 0 < toy_fraction <= 1:
        raise ValueError(f"toy_fraction must be in (0, 1], got {toy_fraction}")
    n_train, n_val, n_test = split_sizes(n, test_fraction, val_fraction)
    if n_train < 1:
        raise ValueError(f"{n} rows are too few to split into train, validation and test")
    if labels is not None:
        labels = np.asarray(labels)
    everything = np.arange(n, dtype=np.int64)
    rest, test = _take(everything, n_test, labels, seed)
    train, val = _take(rest, n_val, labels, seed)
    if toy_fraction < 1:
        _, train = _take(train, max(1, math.floor(toy_fraction * len(train))), labels, seed)
        if len(val):
            _, val = _take(val, max(1, math.floor(toy_fraction * len(val))), labels, seed)
    return np.sort(train), np.sort(val), np.sort(test)
