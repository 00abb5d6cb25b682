"""The split family: a content part of the latent that no rotation, mirror image, translation or
reordering changes, a pose part that sees them, and every latent metric reading only the content."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from model_helpers import make_batch
from scipy.spatial.transform import Rotation

from vae_lab.errors import VaeLabError
from vae_lab.losses import LossSettings
from vae_lab.models import ModelConfig, build_model
from vae_lab.study.design.spec import parse_study
from vae_lab.training import TensorData
from vae_lab.training.pose_invariance import pose_invariances
from vae_lab.training.validation import validate


def split_model(latent_dim: int = 6, width: int = 32, grid: int = 11):
    torch.manual_seed(0)
    return build_model(ModelConfig(architecture="split", grid=grid, width=width, latent_dim=latent_dim)).eval()


def turned(points: torch.Tensor, matrix: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    moved = points.clone()
    moved[..., :3] = (points[..., :3] - 0.5) @ matrix.T + 0.5 + shift
    return moved


@pytest.mark.parametrize("seed", [0, 1])
def test_the_content_part_ignores_rotation_mirror_shift_and_order_and_the_pose_part_does_not(seed):
    model = split_model()
    batch = make_batch(model, batch_size=6, seed=seed)
    matrix = torch.tensor(Rotation.random(random_state=seed).as_matrix(), dtype=torch.float32)
    if seed == 1:
        matrix = -matrix  # a mirror image: handedness is pose
    order = torch.randperm(8, generator=torch.Generator().manual_seed(seed))
    moved = turned(batch.points, matrix, torch.tensor([0.03, -0.1, 0.07]))[:, order]
    with torch.no_grad():
        mu, logvar = model.encode(batch.points, batch.mask)
        mu_moved, logvar_moved = model.encode(moved, batch.mask[:, order])
    content = model.content_dims
    assert (content, model.pose_dims) == (3, 3)
    torch.testing.assert_close(mu_moved[:, :content], mu[:, :content], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(logvar_moved[:, :content], logvar[:, :content], atol=1e-4, rtol=1e-4)
    assert mu[:, :content].abs().mean() > 1e-3  # not invariant by being constant
    assert (mu_moved[:, content:] - mu[:, content:]).abs().max() > 1e-3


def test_metrics_read_the_content_part_and_report_the_pose_part_apart():
    model = split_model(latent_dim=8)
    grids = make_batch(model, batch_size=40, seed=2).grid
    data = TensorData.for_model(model, grids.numpy(), np.arange(40) % 2, model.config.max_points)
    result = validate(model, data, loss=LossSettings("set"), beta=1.0, keep_latents=True)
    assert result.latents.shape == (40, 4)  # the content part only: kNN, silhouette, figures
    scores = result.scores
    assert scores["kl_content"] + scores["kl_pose"] == pytest.approx(scores["kl"], rel=1e-5)
    assert scores["kl_content"] > 0 and scores["kl_pose"] > 0
    ratios = pose_invariances(model, data, copies=1)
    # The content part moves only where re-voxelising changed distances; the pose part moves with the pose.
    assert set(ratios) == {"pose_invariance", "pose_part_invariance"}
    assert ratios["pose_invariance"] < ratios["pose_part_invariance"]


def test_families_without_a_pose_part_report_none():
    model = build_model(ModelConfig(architecture="pointnet", latent_dim=4, width=32)).eval()
    grids = make_batch(model, batch_size=10, seed=1).grid
    data = TensorData.for_model(model, grids.numpy(), None, model.config.max_points)
    scores = validate(model, data, loss=LossSettings("set"), beta=1.0).scores
    assert "kl_pose" not in scores and "kl_content" not in scores
    assert set(pose_invariances(model, data, copies=1)) == {"pose_invariance"}


def test_a_latent_too_small_for_two_parts_is_refused_in_the_model_and_in_the_study():
    with pytest.raises(VaeLabError, match="needs latent_dim >= 2"):
        build_model(ModelConfig(architecture="split", latent_dim=1))
    study = {
        "name": "tiny-split",
        "sampler": "grid",
        "training": {"epochs": 1},
        "space": {"architecture": ["split"], "latent_dim": [1, 8], "loss": ["set"]},
    }
    with pytest.raises(VaeLabError, match=r"space\.latent_dim.*needs latent_dim >= 2, the space has 1"):
        parse_study(study, "tiny-split.yaml")
    study["space"]["latent_dim"] = [2, 8]
    assert parse_study(study, "tiny-split.yaml").space.latent_dim == [2, 8]


def test_decode_alone_draws_content_and_pose_from_the_prior():
    model = split_model(grid=9, latent_dim=6)
    with torch.no_grad():
        slots = model.decode(torch.randn(3, 6))
    assert slots.shape == (3, 8, 1 + 3 * 9 + 4)


def test_the_shipped_molecules_study_trains_one_split_model_with_room_for_both_parts():
    from vae_lab.study.design.spec import load_study_spec

    spec, _ = load_study_spec("molecules")
    assert spec.space.architecture == ["split"] and spec.planned_trials == 1
    assert spec.space.augment == ["so3"] and spec.space.latent_dim == [64]
    assert spec.space.content_consistency and spec.space.content_consistency[0] > 0


def test_a_trained_trial_reports_both_parts_among_its_best_metrics():
    from vae_lab.runtime import Runtime
    from vae_lab.training import TrainConfig, Trainer

    model = split_model(latent_dim=6).train()
    grids = make_batch(model, batch_size=48, seed=4).grid.numpy()
    labels = np.arange(48) % 3
    train = TensorData.for_model(model, grids[:32], labels[:32], model.config.max_points)
    val = TensorData.for_model(model, grids[32:], labels[32:], model.config.max_points)
    config = TrainConfig(loss="set", epochs=1, batch_size=16, augment="so3")
    best = Trainer(model, config, runtime=Runtime(device="cpu")).fit(train, val).best_metrics
    for name in (
        "val_kl_content",
        "val_kl_pose",
        "val_pose_invariance",
        "val_pose_part_invariance",
        "val_knn_accuracy",
    ):
        assert name in best, name
    assert best["val_kl_content"] + best["val_kl_pose"] == pytest.approx(best["val_kl"], rel=1e-5)


def test_the_trial_figures_decode_the_whole_latent_of_a_split_model():
    """The interpolation walked between two samples' `final.latents`, which for split hold the
    content part only: the decoder refused it (mat1 and mat2 shapes), and the `molecules` trial
    failed after 20 minutes of training."""
    from types import SimpleNamespace

    from vae_lab.study.design.spec import ArtifactSpec
    from vae_lab.study.trial.artifacts import INTERPOLATION_STEPS, log_trial_figures

    class Figures:
        def __init__(self):
            self.logged = {}

        def log_figure(self, run_id, figure, name, assets, parts=None):
            self.logged[name] = figure

    model = split_model(latent_dim=6)
    grids = make_batch(model, batch_size=12, seed=6).grid.numpy()
    val = TensorData.for_model(model, grids, np.arange(12) % 2, model.config.max_points)
    final = validate(model, val, loss=LossSettings("set"), beta=1.0, keep_latents=True)
    assert final.latents.shape[1] == model.content_dims
    tracker = Figures()
    data = SimpleNamespace(label_names=["a", "b"])
    log_trial_figures(tracker, "run", model, val, final, data, ArtifactSpec(), None, "trial 0")
    assert {"latents_pca.html", "interpolation.html", "reconstructions.html"} <= set(tracker.logged)
    assert len(tracker.logged["interpolation.html"].data) >= INTERPOLATION_STEPS


def test_samples_draw_the_content_from_the_prior_and_the_pose_from_real_grids():
    from vae_lab.training.generation import GenerationReference
    from vae_lab.training.predict import sample_prior

    model = split_model(latent_dim=6)
    grids = make_batch(model, batch_size=10, seed=7).grid.numpy()
    seen = []
    decode = model.decode
    model.decode = lambda z: seen.append(z.clone()) or decode(z)
    with torch.no_grad():
        poses = model.forward_batch(
            TensorData.for_model(model, grids, None, model.config.max_points).batch(slice(None))
        ).mu[:, 3:]
    first = sample_prior(model, 40, seed=1, pose_grids=grids)
    drawn = seen[-1]  # the last decode: the samples' (the poses' forward pass decodes too)
    again = sample_prior(model, 40, seed=1, pose_grids=grids)
    np.testing.assert_array_equal(first, again)  # seeded
    distance_to_a_pose = torch.cdist(drawn[:, 3:], poses).amin(1)
    assert distance_to_a_pose.max() < 1e-3  # every pose part is one real grid's
    assert drawn[:, :3].std() > 0.5  # the content part is the prior's
    sample_prior(model, 40, seed=1)
    assert torch.cdist(seen[-1][:, 3:], poses).amin(1).min() > 1e-2  # no grids: the prior's poses
    # What a trial scores: the reference keeps real training grids for the poses.
    reference = GenerationReference.from_splits(grids, grids[:4])
    assert reference.pose_grids is not None and len(reference.pose_grids) == 10
