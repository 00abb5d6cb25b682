"""`augment: so3` (uniform rotations re-voxelised on the device) and `val_pose_invariance`."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import sparse_grids
from vae_lab.data.sparse import from_sparse, to_sparse
from vae_lab.models.base import BaseVAE, Batch, ModelConfig, VAEOutput
from vae_lab.runtime import Runtime
from vae_lab.training import TensorData, TrainConfig, Trainer
from vae_lab.training.augment import So3, points_from_grid, random_rotations, revoxelise
from vae_lab.training.pose_invariance import pose_invariance

CPU = torch.device("cpu")


def batch_of(grids: np.ndarray, points: bool) -> Batch:
    data = TensorData.from_arrays(grids, None, sparse_points=8 if points else None)
    return data.batch(slice(None))


def class_counts(grid: torch.Tensor) -> torch.Tensor:
    return torch.stack([(grid.flatten(1) == c).sum(1) for c in range(1, 5)], dim=1)


def turn_about_z(degrees: float) -> torch.Tensor:
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    return torch.tensor([[[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]])


def test_the_identity_rotation_changes_nothing():
    grid = torch.from_numpy(sparse_grids(40, edge=7, seed=0))
    same = revoxelise(grid, torch.eye(3).expand(40, 3, 3), torch.zeros(40, 3))
    assert torch.equal(same, grid)


def test_random_rotations_are_proper_and_spread_over_so3():
    rotations = random_rotations(4000, torch.Generator().manual_seed(0), CPU)
    assert torch.allclose(rotations @ rotations.transpose(1, 2), torch.eye(3).expand(4000, 3, 3), atol=1e-5)
    assert torch.allclose(torch.linalg.det(rotations), torch.ones(4000), atol=1e-5)
    assert rotations.mean(0).abs().max() < 0.05  # uniform on SO(3): every entry averages 0


def compact_grids(n: int, seed: int = 0) -> np.ndarray:
    """11-grids whose 2-8 occupied cells crowd the central 3-cube: every turn fits, many collide."""
    rng = np.random.default_rng(seed)
    grids = np.zeros((n, 11, 11, 11), dtype=np.uint8)
    for grid in grids:
        cells = np.unravel_index(rng.choice(27, size=rng.integers(2, 9), replace=False), (3, 3, 3))
        grid[tuple(c + 4 for c in cells)] = rng.choice([1, 2, 3, 4], size=len(cells[0]), p=[0.6, 0.2, 0.12, 0.08])
    return grids


def test_a_rotation_keeps_the_classes_except_where_cells_collide():
    grids = compact_grids(300, seed=2)
    out = So3(11, CPU, seed=3)(batch_of(grids, points=False)).grid
    before, after = class_counts(torch.from_numpy(grids)), class_counts(out)
    assert (after <= before).all()  # a cell only ever merges with another, never appears
    assert (before.sum(1) >= 2).all()
    kept = after.sum(1) == before.sum(1)
    assert 0.3 < kept.float().mean() < 1.0  # most keep every cell; dense ones lose some to collisions
    rarest = lambda counts: (counts > 0).long().cumsum(1).argmax(1)  # noqa: E731 (highest class present)
    assert torch.equal(rarest(after), rarest(before))  # a collision keeps the rarer class
    assert not torch.equal(out, torch.from_numpy(grids))


def test_two_cells_landing_in_one_keep_the_rarer_class():
    grid = torch.zeros(1, 11, 11, 11, dtype=torch.uint8)
    grid[0, 5, 5, 5], grid[0, 6, 5, 5] = 1, 4  # common and rare neighbours, turned 45 degrees onto one cell
    out = revoxelise(grid, turn_about_z(45), torch.tensor([[-0.4, 0.0, 0.0]]))
    assert out.flatten().tolist().count(4) == 1 and (out > 0).sum() == 1


def test_a_structure_turned_past_the_wall_is_moved_back_whole():
    grid = torch.zeros(1, 7, 7, 7, dtype=torch.uint8)
    grid[0, 0, 0, 3], grid[0, 0, 3, 3], grid[0, 0, 6, 3] = 1, 2, 3  # a line along y on the x = 0 wall
    out = revoxelise(grid, turn_about_z(90), torch.zeros(1, 3))  # about its centroid: now along x, off the grid
    assert sorted(out[out > 0].tolist()) == [1, 2, 3]
    assert torch.equal((out > 0).nonzero()[:, 1], torch.tensor([0, 3, 6]))


def test_the_augmented_batch_is_on_the_batches_device_and_seeded():
    grids = sparse_grids(32, edge=7, seed=5)
    first = So3(7, CPU, seed=7)(batch_of(grids, points=True))
    again = So3(7, CPU, seed=7)(batch_of(grids, points=True))
    other = So3(7, CPU, seed=8)(batch_of(grids, points=True))
    assert first.grid.device == first.points.device == first.mask.device == CPU
    assert first.grid.dtype == torch.uint8
    assert torch.equal(first.grid, again.grid) and torch.equal(first.points, again.points)
    assert not torch.equal(first.grid, other.grid)


def test_dense_and_point_batches_agree_on_the_same_sample():
    grids = sparse_grids(32, edge=9, seed=6, max_cells=6)
    dense = So3(9, CPU, seed=1)(batch_of(grids, points=False))
    sparse = So3(9, CPU, seed=1)(batch_of(grids, points=True))
    assert torch.equal(dense.grid, sparse.grid)
    assert np.array_equal(from_sparse(sparse.points.numpy(), sparse.mask.numpy(), 9), dense.grid.numpy())
    points, mask = to_sparse(dense.grid.numpy(), max_points=8)  # the point set the data pipeline would build
    assert np.array_equal(mask, sparse.mask.numpy()) and np.allclose(points, sparse.points.numpy())


def test_points_from_grid_matches_the_pipelines_point_sets():
    grids = sparse_grids(50, edge=11, seed=9, max_cells=8)
    points, mask = points_from_grid(torch.from_numpy(grids), 8)
    expected_points, expected_mask = to_sparse(grids, max_points=8)
    assert np.array_equal(mask.numpy(), expected_mask) and np.allclose(points.numpy(), expected_points)


@pytest.mark.slow  # seconds of real training, processes or waiting: `make test`, not the edit loop
def test_a_fit_with_so3_trains():
    from vae_lab.models import build_model

    data = TensorData.from_arrays(sparse_grids(64, edge=7, seed=0, max_cells=4), None, sparse_points=8)
    torch.manual_seed(0)
    model = build_model(ModelConfig(architecture="pointnet", latent_dim=4, grid=7, width=32))
    config = TrainConfig(epochs=3, batch_size=16, loss="set", augment="so3", learning_rate=3e-3)
    result = Trainer(model, config, runtime=Runtime(device="cpu")).fit(data, data)
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


# --- val_pose_invariance --------------------------------------------------------------------------


class Moments(BaseVAE):
    """A stand-in encoder: the latent is the class counts (pose-free) followed by the occupied
    cells' second moments about their centroid (which turn with the sample)."""

    def encode(self, x, mask=None):
        grid = (x.squeeze(1) * 4).round().flatten(1)
        edge = self.config.grid
        axis = torch.arange(edge, dtype=torch.float32)
        cells = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
        occupied = (grid > 0).float()
        centroid = occupied @ cells / occupied.sum(1, keepdim=True).clamp(min=1)
        offsets = (cells.unsqueeze(0) - centroid.unsqueeze(1)) * occupied.unsqueeze(-1)
        moments = torch.einsum("bci,bcj->bij", offsets, offsets).flatten(1)
        counts = torch.stack([(grid == c).sum(1) for c in range(1, 5)], 1).float()
        mu = torch.cat([counts, moments], dim=1)
        return mu, torch.zeros_like(mu)

    def decode(self, z):
        return torch.zeros(z.shape[0], 1, *(self.config.grid,) * 3)


class Counts(Moments):
    def metric_latent(self, out: VAEOutput) -> torch.Tensor:
        return out.mu[:, :4]


def spread_grids(n: int, edge: int = 11, seed: int = 0) -> np.ndarray:
    """Grids whose 2-4 occupied cells lie at least 3 cells apart, so no rotation merges them."""
    rng = np.random.default_rng(seed)
    grids = np.zeros((n, edge, edge, edge), dtype=np.uint8)
    for grid in grids:
        picked: list[np.ndarray] = []
        while len(picked) < rng.integers(2, 5):
            cell = rng.integers(2, edge - 2, size=3)
            if all(np.abs(cell - other).max() >= 3 for other in picked):
                picked.append(cell)
                grid[tuple(cell)] = rng.integers(1, 5)
    return grids


def test_pose_invariance_is_zero_for_a_pose_free_latent_and_not_for_one_that_turns():
    data = TensorData.from_arrays(spread_grids(120), None)
    config = ModelConfig(architecture="fc", latent_dim=13, grid=11)
    assert pose_invariance(Counts(config), data) == 0.0  # the family's metric latent: counts only
    turning = pose_invariance(Moments(config), data)
    assert turning is not None and turning > 0.05
    assert pose_invariance(Moments(config), data, seed=1) != turning  # other rotations
    assert pose_invariance(Moments(config), data.head(1)) is None


def test_pose_invariance_is_a_trial_metric_an_objective_can_minimise(tmp_path: Path):
    from vae_lab.choices import direction_of
    from vae_lab.models import build_model
    from vae_lab.study.design.spec import load_study_spec

    grids = sparse_grids(40, edge=5, seed=1, max_cells=3)
    data = TensorData.from_arrays(grids, (grids.reshape(40, -1) > 0).sum(1) % 2)
    config = TrainConfig(epochs=2, batch_size=16, select_metric="val_pose_invariance", select_mode="min")
    model = build_model(ModelConfig(architecture="fc", latent_dim=3, grid=5))
    result = Trainer(model, config, runtime=Runtime(device="cpu")).fit(data, data)
    assert all(h["val_pose_invariance"] >= 0 for h in result.history)
    assert result.best_metrics["val_pose_invariance"] == result.history[result.best_epoch]["val_pose_invariance"]
    assert direction_of("val_pose_invariance") == "minimize"
    (tmp_path / "p.yaml").write_text("name: p\nobjective: {metric: val_pose_invariance}\n")
    spec, _ = load_study_spec(str(tmp_path / "p.yaml"))
    assert spec.direction == "minimize"


def test_turning_only_the_occupied_cells_equals_turning_every_cell():
    grids = sparse_grids(64, edge=11, seed=5, max_cells=8)
    grid = torch.from_numpy(grids)
    generator = torch.Generator().manual_seed(0)
    rotations = random_rotations(64, generator, CPU)
    shifts = torch.rand(64, 3, generator=generator) - 0.5
    every = revoxelise(grid, rotations, shifts, max_cells=11**3)
    assert torch.equal(revoxelise(grid, rotations, shifts), every)  # as many as the fullest sample
    assert torch.equal(revoxelise(grid, rotations, shifts, max_cells=8), every)  # a point family's K
    empty = torch.zeros(3, 11, 11, 11, dtype=torch.uint8)
    assert torch.equal(revoxelise(empty, rotations[:3], shifts[:3]), empty)
