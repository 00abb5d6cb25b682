"""Generation scores: validity, uniqueness, novelty and the distribution distances, on grids whose
answers are known, and the trainer reporting them for the restored model."""

import numpy as np
import pytest

from tests.training.test_trainer import CPU, fc, tiny_data
from vae_lab.data.synth import motif_samples
from vae_lab.training import TrainConfig, Trainer
from vae_lab.training.generation import GenerationCheck, GenerationReference, generation_scores

EDGE = 7


def grid_with(*cells: tuple[int, int, int], value: int = 1) -> np.ndarray:
    grid = np.zeros((EDGE, EDGE, EDGE), dtype=np.uint8)
    for cell in cells:
        grid[cell] = value
    return grid


def chain(n: int, step: int = 1, start: int = 0) -> np.ndarray:
    """n atoms in a row, `step` cells apart."""
    return grid_with(*[(start + i * step, 3, 3) for i in range(n)])


@pytest.fixture
def reference() -> GenerationReference:
    """Training fragments are chains of atoms 2 cells apart: bond reach 2, closest approach 2."""
    train = np.stack([chain(n, step=2, start=s) for n in (2, 3) for s in (0, 1)])
    return GenerationReference.from_splits(train, train[:1])


def test_the_reference_reads_bond_reach_and_closest_approach_from_the_data(reference):
    assert reference.bond_reach == pytest.approx(2.0) and reference.closest == pytest.approx(2.0)
    assert reference.is_valid(chain(3, step=2, start=2))  # a new fragment shaped like the data's
    assert reference.is_valid(grid_with((3, 3, 3)))  # one atom is one fragment
    assert not reference.is_valid(grid_with())  # an empty grid is not
    assert not reference.is_valid(grid_with((0, 0, 0), (0, 0, 3)))  # two fragments: 3 cells apart
    assert not reference.is_valid(grid_with((0, 0, 0), (0, 0, 1), (0, 0, 3)))  # atoms closer than the data's


def test_a_grid_full_of_atoms_is_judged_by_the_same_rules(reference):
    crowded = np.zeros((11, 11, 11), dtype=np.uint8)
    crowded[::2, ::2, ::2] = 2  # 216 atoms, each 2 cells from its neighbours: connected, none too close
    crowded[10, 10, 9] = 1  # one atom too close to (10, 10, 10)
    assert not reference.is_valid(crowded)
    crowded[10, 10, 9] = 0
    assert reference.is_valid(crowded)
    crowded[10, 10, 8] = crowded[10, 8, 10] = crowded[8, 10, 10] = 0
    assert not reference.is_valid(crowded)  # (10, 10, 10) cut off: no atom within 2 cells


def test_uniqueness_novelty_and_distances_count_what_they_say(reference):
    seen, new = chain(2, step=2), chain(3, step=2, start=2)
    scores = generation_scores(np.stack([seen, new, new, grid_with((0, 0, 0), (0, 0, 6))]), reference)
    assert scores["gen_validity"] == 0.75  # the last grid is two atoms 6 cells apart
    assert scores["gen_uniqueness"] == pytest.approx(2 / 3)  # the two copies of `new` count once
    assert scores["gen_novelty"] == 0.5  # `seen` is a training grid
    assert scores["gen_class_distance"] == 0.0  # every atom is class 1, as in the data


def test_the_data_against_itself_is_the_baseline():
    grids, _ = motif_samples(600, np.random.default_rng(3))  # the bundled synthetic set's fragments
    train, val = grids[:400], grids[400:]
    baseline = GenerationReference.from_splits(train, val).baseline
    assert baseline["gen_validity_baseline"] >= 0.9  # fragments pass the rules learned from fragments
    assert baseline["gen_count_distance_baseline"] < 0.5 and baseline["gen_class_distance_baseline"] < 0.1
    copies = generation_scores(train[:50], GenerationReference.from_splits(train, val))
    assert copies["gen_novelty"] == 0.0 and copies["gen_validity"] >= 0.9


def test_the_trainer_scores_generation_on_the_restored_model_and_can_select_on_it():
    data = tiny_data()
    reference = GenerationReference.from_splits(data.grid.numpy(), data.grid.numpy()[:8])
    check = GenerationCheck(reference, samples=32, seed=1)
    config = TrainConfig(epochs=2, batch_size=16, select_metric="gen_validity", early_stopping_metric="gen_validity")
    result = Trainer(fc(), config, runtime=CPU, generation=check).fit(data, data)
    best = result.best_metrics
    assert set(best) >= {"gen_validity", "gen_uniqueness", "gen_novelty", "gen_validity_baseline"}
    assert all("gen_validity" in epoch for epoch in result.history)  # selection reads it every epoch
    again = Trainer(fc(), config, runtime=CPU, generation=check).fit(data, data).best_metrics
    assert again["gen_validity"] == best["gen_validity"]  # seeded: the same model gives the same figures
    plain = Trainer(fc(), TrainConfig(epochs=1, batch_size=16), runtime=CPU, generation=check).fit(data, data)
    assert "gen_validity" not in plain.history[0] and "gen_validity" in plain.best_metrics


def test_the_two_ways_of_judging_a_grid_agree(reference):
    """Small grids are judged on their distance matrix, crowded ones on the lattice: same rules."""
    from tests.conftest import sparse_grids

    grids = np.concatenate([sparse_grids(300, edge=7, seed=5, max_cells=8), np.stack([chain(3, 2, s) for s in (0, 1)])])
    verdicts = [(reference.is_valid(grid), reference._is_valid_on_lattice(grid > 0)) for grid in grids if grid.any()]
    assert all(dense == lattice for dense, lattice in verdicts)
    assert {dense for dense, _ in verdicts} == {True, False}  # both answers were exercised
