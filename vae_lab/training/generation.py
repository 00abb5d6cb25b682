"""How good are the grids a model generates from its prior? Validity, uniqueness, novelty and
distribution distances, measured against the training data.

A grid's occupied cells are its atoms, at the cells' centres (one unit = one cell). The data
itself says what a fragment looks like, so no chemistry is assumed:
- **valid**: at least one atom; the atoms form one connected fragment when every pair within
  the data's *bond reach* is joined (the largest gap any real fragment needs to stay connected:
  the longest edge of its minimum spanning tree, the largest over the reference sample); and no
  two atoms closer than the data ever has them.
- **uniqueness**: distinct valid grids over valid grids; **novelty**: distinct valid grids not
  in the training split over distinct valid grids.
- **count distance**: Wasserstein-1 between the generated and the training distributions of
  occupied cells per grid (in atoms); **class distance**: total variation between their
  distributions of cell classes 1-4 (0 to 1).
The baselines are the same figures for the validation split against the training split (what
the data scores against itself), reported beside them as `*_baseline`.

Metric names start with `gen_`: the trainer adds them to the restored model's scores and an
objective may name them (`choices.GenerationMetric`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import binary_dilation
from scipy.stats import wasserstein_distance

from vae_lab.models.base import BaseVAE
from vae_lab.training.predict import sample_prior

GENERATION_PREFIX = "gen_"
CLASSES = 4  # cell classes 1-4 (0 is empty)
REFERENCE_SAMPLE = 1000  # training grids measured for the bond reach and closest approach (~1 s)
TOLERANCE = 1e-6
SMALL = 64  # atoms: up to here validity uses a dense distance matrix, past it the grid itself


def _atoms(grid: np.ndarray) -> np.ndarray:
    return np.argwhere(grid > 0).astype(np.float64)


def occupied(grids: np.ndarray) -> np.ndarray:
    """(N,) occupied cells of each grid."""
    return np.count_nonzero(grids.reshape(len(grids), -1), axis=1)


def _digest(grid: np.ndarray) -> bytes:
    return hashlib.blake2b(np.ascontiguousarray(grid, dtype=np.uint8).tobytes(), digest_size=16).digest()


def class_shares(grids: np.ndarray) -> np.ndarray:
    """The share of each class 1-4 among the occupied cells of `grids` (zeros when none is)."""
    # count_nonzero per class: np.bincount would widen every uint8 cell to int64 first (seconds on 14k grids)
    counts = np.array([np.count_nonzero(grids == c) for c in range(1, CLASSES + 1)], dtype=np.float64)
    return counts / counts.sum() if counts.sum() else counts


@dataclass(frozen=True)
class GenerationReference:
    """What generated grids are measured against, from the training split (built once per worker)."""

    bond_reach: float  # cells: atoms this close are bonded
    closest: float  # cells: no two atoms of the data are closer
    counts: np.ndarray  # occupied cells per training grid
    classes: np.ndarray  # (4,) class shares of the training split's occupied cells
    seen: frozenset[bytes]  # digests of the training grids
    baseline: dict[str, float]  # the validation split scored as if generated
    # Training grids whose poses a split model's samples take (`sample_prior`): the rules' sample.
    pose_grids: np.ndarray | None = None

    @classmethod
    def from_splits(cls, train: np.ndarray, val: np.ndarray, seed: int = 0) -> GenerationReference:
        rng = np.random.default_rng(seed)
        reach, closest = 0.0, np.inf
        sample = train[rng.permutation(len(train))[:REFERENCE_SAMPLE]]
        for grid in sample:
            atoms = _atoms(grid)
            if len(atoms) >= 2:
                distances = _distances(atoms)
                reach, closest = max(reach, _connecting_reach(distances)), min(closest, float(distances.min()))
        reference = cls(
            bond_reach=reach or 1.0,
            closest=closest if np.isfinite(closest) else 1.0,
            counts=occupied(train),
            classes=class_shares(train),
            seen=frozenset(map(_digest, train)),
            baseline={},
            pose_grids=sample,
        )
        baseline = generation_scores(val[:REFERENCE_SAMPLE], reference) if len(val) else {}
        object.__setattr__(reference, "baseline", {f"{k}_baseline": v for k, v in baseline.items()})
        return reference

    def is_valid(self, grid: np.ndarray) -> bool:
        atoms = _atoms(grid)
        if len(atoms) < 2:
            return len(atoms) == 1
        if len(atoms) <= SMALL:
            distances = _distances(atoms)
            return (
                distances.min() >= self.closest - TOLERANCE
                and _connecting_reach(distances) <= self.bond_reach + TOLERANCE
            )
        return self._is_valid_on_lattice(grid > 0)

    def _is_valid_on_lattice(self, occupied: np.ndarray) -> bool:
        """`is_valid` for a grid full of atoms, on the grid itself (no k x k matrix): no occupied
        cell has another at an offset shorter than `closest`, and the fragment grown from one atom
        by dilation with a ball of radius `bond_reach`, within the occupied cells, reaches them all."""
        if any(_shifted_overlap(occupied, offset) for offset in _offsets_within(self.closest - TOLERANCE, strict=True)):
            return False
        ball = np.zeros((2 * int(self.bond_reach + TOLERANCE) + 1,) * 3, dtype=bool)
        centre = int(self.bond_reach + TOLERANCE)
        for offset in [(0, 0, 0), *_offsets_within(self.bond_reach + TOLERANCE, strict=False)]:
            ball[tuple(np.asarray(offset) + centre)] = True
        reached = np.zeros_like(occupied)
        reached[tuple(np.argwhere(occupied)[0])] = True
        while True:
            grown = binary_dilation(reached, structure=ball) & occupied
            if (grown == reached).all():
                return bool((reached == occupied).all())
            reached = grown


def _offsets_within(radius: float, *, strict: bool) -> list[tuple[int, int, int]]:
    """Integer offsets other than (0, 0, 0) shorter than `radius` (strict) or no longer than it."""
    r = int(np.ceil(radius))
    steps = np.array(np.meshgrid(*[np.arange(-r, r + 1)] * 3, indexing="ij")).reshape(3, -1).T
    lengths = np.sqrt((steps**2).sum(1))
    keep = (lengths < radius if strict else lengths <= radius) & (lengths > 0)
    return [tuple(int(v) for v in step) for step in steps[keep]]


def _shifted_overlap(occupied: np.ndarray, offset: tuple[int, int, int]) -> bool:
    """Whether some occupied cell has another occupied cell at `offset` from it."""
    here = tuple(slice(max(0, -d), n - max(0, d)) for d, n in zip(offset, occupied.shape, strict=True))
    there = tuple(slice(max(0, d), n - max(0, -d)) for d, n in zip(offset, occupied.shape, strict=True))
    return bool((occupied[here] & occupied[there]).any())


def _distances(atoms: np.ndarray) -> np.ndarray:
    """(k, k) distances between atoms, infinite on the diagonal."""
    distances = np.sqrt(((atoms[:, None, :] - atoms[None, :, :]) ** 2).sum(-1))
    np.fill_diagonal(distances, np.inf)
    return distances


def _connecting_reach(distances: np.ndarray) -> float:
    """The smallest reach that joins every atom into one fragment: the longest edge of the
    minimum spanning tree (Prim's, on the dense matrix: fragments have a handful of atoms)."""
    inside = np.zeros(len(distances), dtype=bool)
    inside[0] = True
    nearest, reach = distances[0].copy(), 0.0
    for _ in range(len(distances) - 1):
        candidates = np.where(inside, np.inf, nearest)
        atom = int(candidates.argmin())
        reach = max(reach, float(candidates[atom]))
        inside[atom] = True
        nearest = np.minimum(nearest, distances[atom])
    return reach


def generation_scores(grids: np.ndarray, reference: GenerationReference) -> dict[str, float]:
    """`gen_validity`, `gen_uniqueness`, `gen_novelty`, `gen_count_distance` and
    `gen_class_distance` of `grids` (n, D, D, D) against `reference`."""
    if not len(grids):
        return {}
    valid = [grid for grid in grids if reference.is_valid(grid)]
    distinct = set(map(_digest, valid))
    novel = distinct - reference.seen
    return {
        "gen_validity": len(valid) / len(grids),
        "gen_uniqueness": len(distinct) / len(valid) if valid else 0.0,
        "gen_novelty": len(novel) / len(distinct) if distinct else 0.0,
        "gen_count_distance": float(wasserstein_distance(occupied(grids), reference.counts)),
        "gen_class_distance": _class_distance(grids, reference.classes),
    }


def _class_distance(grids: np.ndarray, classes: np.ndarray) -> float:
    shares = class_shares(grids)
    return float(0.5 * np.abs(shares - classes).sum()) if shares.sum() else 1.0  # no atoms: as far as can be


@dataclass(frozen=True)
class GenerationCheck:
    """What the trainer measures on its restored model: `samples` grids decoded from the prior
    (seeded: the same model gives the same figures), scored against `reference`, with the
    reference's baselines beside them."""

    reference: GenerationReference
    samples: int = 256
    seed: int = 0

    def scores(self, model: BaseVAE) -> dict[str, float]:
        grids = sample_prior(model, self.samples, seed=self.seed, pose_grids=self.reference.pose_grids)
        return generation_scores(grids, self.reference) | self.reference.baseline
