"""`content_consistency`: a training term that pulls a sample's content latent towards that of
its augmented copy. It must read zero where the content cannot move, be positive where it can,
be refused without an augmentation, and show up in the epoch's training metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from tests.models.model_helpers import make_batch
from vae_lab.models import ModelConfig, build_model
from vae_lab.runtime import Runtime
from vae_lab.training import TensorData, TrainConfig, Trainer
from vae_lab.training.augment import Rotations
from vae_lab.training.pose_invariance import content_shift


def model_of(architecture: str, latent_dim: int = 6):
    torch.manual_seed(0)
    return build_model(ModelConfig(architecture=architecture, grid=11, width=32, latent_dim=latent_dim)).eval()


@torch.no_grad()
def shift_under_cube_rotations(model) -> float:
    batch = make_batch(model, batch_size=12, seed=3)
    turned = Rotations(11, torch.device("cpu"), seed=1)(batch)
    return float(content_shift(model, model.forward_batch(turned), batch))


def test_the_shift_is_zero_for_an_invariant_content_part_and_positive_for_a_latent_that_sees_pose():
    # split's content part sees only distances: a cube rotation moves cells onto cells, so
    # nothing about the content changes; pointnet's latent reads each atom's cell.
    assert shift_under_cube_rotations(model_of("split")) < 1e-8
    assert shift_under_cube_rotations(model_of("pointnet")) > 1e-3


def test_the_shift_is_relative_to_the_batch_spread_so_scaling_the_latent_does_not_lower_it():
    model = model_of("pointnet")
    before = shift_under_cube_rotations(model)
    with torch.no_grad():
        model.to_mu.weight.mul_(0.01)
        model.to_mu.bias.mul_(0.01)
    assert shift_under_cube_rotations(model) == pytest.approx(before, rel=1e-3)


def test_content_consistency_needs_an_augmentation():
    with pytest.raises(ValidationError, match="content_consistency compares a sample with its augmented copy"):
        TrainConfig(loss="set", content_consistency=1.0)
    assert TrainConfig(loss="set", content_consistency=1.0, augment="so3").content_consistency == 1.0


def test_a_fit_with_content_consistency_reports_the_shift_it_trained_against():
    model = model_of("split").train()
    grids = make_batch(model, batch_size=32, seed=4).grid.numpy()
    train = TensorData.for_model(model, grids, np.arange(32) % 3, model.config.max_points)
    config = TrainConfig(loss="set", epochs=1, batch_size=16, augment="so3", content_consistency=1.0)
    trainer = Trainer(model, config, runtime=Runtime(device="cpu"))
    epoch = trainer.train_epoch(train.to(trainer.device), beta=1.0)
    # so3 re-voxelises: distances between atoms change by a rounding, so the content moves a little.
    assert 0 < epoch["train_content_shift"] < 10
    plain = Trainer(model_of("split").train(), TrainConfig(loss="set", epochs=1, batch_size=16, augment="so3"))
    assert "train_content_shift" not in plain.train_epoch(train, beta=1.0)


@pytest.mark.parametrize(
    ("augment", "weights", "refused"),
    [(None, [1.0], True), (["none", "so3"], [2.0], True), (["so3"], [0.5, 2.0], False), (None, [0.0], False)],
)
def test_a_study_that_weighs_consistency_without_augmentation_is_refused_at_load(augment, weights, refused):
    from vae_lab.errors import VaeLabError
    from vae_lab.study.design.spec import parse_study

    space = {"architecture": ["split"], "latent_dim": [8], "loss": ["set"], "content_consistency": weights}
    if augment is not None:
        space["augment"] = augment
    study = {"name": "consistent", "sampler": "grid", "training": {"epochs": 1}, "space": space}
    if refused:
        with pytest.raises(VaeLabError, match=r"space\.content_consistency.*without augmentation"):
            parse_study(study, "consistent.yaml")
    else:
        assert parse_study(study, "consistent.yaml").space.content_consistency == weights
