"""pointnet and its set loss: order of points, padding, empty samples, decoding to a grid."""

from __future__ import annotations

import torch
from model_helpers import make_batch, perfect_slots

from vae_lab.losses import set_reconstruction_loss
from vae_lab.models import ModelConfig, VAEOutput, build_model


def pointnet(grid: int = 7, max_points: int = 8):
    torch.manual_seed(0)
    return build_model(ModelConfig(architecture="pointnet", grid=grid, max_points=max_points, latent_dim=3)).eval()


def test_set_loss_ignores_the_order_of_points():
    model = pointnet()
    batch = make_batch(model, batch_size=4)
    recon = model.forward_batch(batch).recon
    loss = set_reconstruction_loss(recon, batch.points, batch.mask)
    for seed in range(3):
        order = torch.randperm(8, generator=torch.Generator().manual_seed(seed))
        permuted = set_reconstruction_loss(recon, batch.points[:, order], batch.mask[:, order])
        torch.testing.assert_close(permuted, loss)


def test_set_loss_ignores_the_order_of_slots():
    model = pointnet()
    batch = make_batch(model, batch_size=4)
    recon = model.forward_batch(batch).recon
    order = torch.randperm(8, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(
        set_reconstruction_loss(recon[:, order], batch.points, batch.mask),
        set_reconstruction_loss(recon, batch.points, batch.mask),
    )


def test_set_loss_is_near_zero_for_a_perfect_reconstruction():
    model = pointnet()
    batch = make_batch(model, batch_size=3)
    points, mask = batch.points, batch.mask
    recon = perfect_slots(points, mask, edge=7)
    reversed_slots = recon.flip(1)  # the loss must find the match whatever the slot order
    assert set_reconstruction_loss(reversed_slots, points, mask).max() < 1e-6


def test_a_point_one_cell_off_costs_a_full_cross_entropy():
    """The old regressed positions charged a one-cell miss 1/(D-1)^2 = 0.03; now it costs what a
    wrong class does, so the model cannot settle for near misses."""
    model = pointnet()
    batch = make_batch(model, batch_size=1)
    points, mask = batch.points, batch.mask
    right = perfect_slots(points, mask, edge=7, confidence=5.0)
    moved = points.clone()
    first = int(mask[0].nonzero()[0])
    moved[0, first, 0] = (moved[0, first, 0] * 6 + (1 if moved[0, first, 0] < 1 else -1)) / 6
    wrong = perfect_slots(moved, mask, edge=7, confidence=5.0)
    gap = set_reconstruction_loss(wrong, points, mask) - set_reconstruction_loss(right, points, mask)
    assert gap.item() > 5.0


def test_masked_pooling_ignores_padding():
    model = pointnet()
    batch = make_batch(model, batch_size=3)
    assert (~batch.mask).any()
    noisy = batch.points.clone()
    noisy[~batch.mask] = torch.randn(int((~batch.mask).sum()), 7) * 100
    with torch.no_grad():
        clean_out, noisy_out = model(batch.points, batch.mask), model(noisy, batch.mask)
    torch.testing.assert_close(noisy_out.mu, clean_out.mu)
    torch.testing.assert_close(noisy_out.recon, clean_out.recon)


def test_empty_sample_gives_finite_outputs_and_gradients():
    model = pointnet().train()
    points, mask = torch.zeros(2, 8, 7), torch.zeros(2, 8, dtype=torch.bool)
    mask[1, :2] = True
    points[1, :2] = torch.tensor([[0.5, 0.5, 0.5, 1, 0, 0, 0], [0.0, 1.0, 0.5, 0, 0, 0, 1]])
    out = model(points, mask)
    loss = set_reconstruction_loss(out.recon, points, mask)
    assert torch.isfinite(out.mu).all() and torch.isfinite(loss).all()
    loss.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_predict_grid_paints_present_slots():
    model = pointnet(grid=5, max_points=3)
    points = torch.zeros(1, 3, 7)
    points[0, 0] = torch.tensor([0.0, 0.25, 1.0, 0, 0, 1, 0])  # cell (0, 1, 4), class 3
    points[0, 1] = torch.tensor([0.5, 0.5, 0.5, 1, 0, 0, 0])  # absent below
    points[0, 2] = torch.tensor([0.5, 0.5, 0.5, 0, 0, 0, 1])  # cell (2, 2, 2), class 4
    recon = perfect_slots(points, torch.tensor([[True, False, True]]), edge=5)
    latent = torch.zeros(1, 3)
    grid = model.predict_grid(VAEOutput(recon=recon, mu=latent, logvar=latent, z=latent))
    expected = torch.zeros(1, 5, 5, 5, dtype=torch.int64)
    expected[0, 0, 1, 4], expected[0, 2, 2, 2] = 3, 4
    assert torch.equal(grid, expected)


def test_example_input_is_consistent_with_its_grid():
    model = pointnet(grid=6)
    batch = model.example_input(batch_size=3)
    assert batch.points.shape == (3, 8, 7) and batch.mask.shape == (3, 8)
    assert torch.equal(batch.mask.sum(1), (batch.grid > 0).flatten(1).sum(1))


def test_reads_the_data_pipelines_point_sets():
    # The axis and one-hot conventions must match vae_lab.data.sparse: a perfect reconstruction of
    # its points decodes back to the very grid they came from.
    from model_helpers import random_grid

    from vae_lab.data.sparse import to_sparse

    model = pointnet(grid=7)
    grid = random_grid(4, 7, seed=3, max_cells=8)
    points, mask = (torch.from_numpy(a) for a in to_sparse(grid.numpy(), max_points=8))
    out = model(points, mask)
    assert out.recon.shape == (4, 8, 1 + 3 * 7 + 4) and torch.isfinite(out.recon).all()
    perfect = perfect_slots(points, mask, edge=7)
    latent = torch.zeros(4, 3)
    decoded = model.predict_grid(VAEOutput(recon=perfect, mu=latent, logvar=latent, z=latent))
    assert torch.equal(decoded, grid.long())


def test_width_scales_pointnet_and_is_refused_by_fixed_families():
    import pytest

    from vae_lab.errors import VaeLabError
    from vae_lab.models import count_parameters

    narrow = build_model(ModelConfig(architecture="pointnet", width=64))
    wide = build_model(ModelConfig(architecture="pointnet", width=128))
    assert count_parameters(wide) > 2 * count_parameters(narrow)
    with pytest.raises(VaeLabError, match="fixed layer sizes"):
        build_model(ModelConfig(architecture="fc", width=64))


def test_weighted_descriptors_cost_more_when_wrong():
    model = pointnet()
    batch = make_batch(model, batch_size=4)
    recon = model.forward_batch(batch).recon
    weights = torch.tensor([1.0, 1.0, 2.0, 3.0, 4.0])
    plain = set_reconstruction_loss(recon, batch.points, batch.mask)
    weighted = set_reconstruction_loss(recon, batch.points, batch.mask, weights)
    assert (weighted >= plain - 1e-5).all() and (weighted > plain).any()
