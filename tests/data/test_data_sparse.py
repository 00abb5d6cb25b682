"""The padded point-set view: layout, round trip, and the max_points limit."""

from __future__ import annotations

import numpy as np
import pytest
from data_helpers import random_flat

from vae_lab.data import from_sparse, max_occupied, to_sparse
from vae_lab.errors import VaeLabError


def test_round_trip():
    grids = random_flat(300, edge=11, max_cells=8).reshape(300, 11, 11, 11)
    points, mask = to_sparse(grids)
    assert points.shape == (300, 8, 7) and points.dtype == np.float32 and mask.shape == (300, 8)
    np.testing.assert_array_equal(from_sparse(points, mask, 11), grids)


def test_layout_of_one_sample():
    grid = np.zeros((1, 3, 3, 3), dtype=np.uint8)
    grid[0, 2, 1, 0] = 4
    grid[0, 0, 0, 2] = 1
    points, mask = to_sparse(grid, max_points=3)
    np.testing.assert_array_equal(mask, [[True, True, False]])
    # C-order flat index: (0, 0, 2) is cell 2, (2, 1, 0) is cell 21.
    np.testing.assert_allclose(points[0, 0], [0, 0, 1, 1, 0, 0, 0])
    np.testing.assert_allclose(points[0, 1], [1, 0.5, 0, 0, 0, 0, 1])
    np.testing.assert_array_equal(points[0, 2], np.zeros(7))


def test_too_many_points():
    grids = np.ones((2, 3, 3, 3), dtype=np.uint8)
    with pytest.raises(VaeLabError, match="raise max_points"):
        to_sparse(grids, max_points=8)


def test_max_occupied():
    grids = random_flat(50, max_cells=5).reshape(50, 3, 3, 3)
    assert max_occupied(grids) == np.count_nonzero(grids.reshape(50, -1), axis=1).max()
    assert max_occupied(grids[:0]) == 0
