"""Every reconstruction loss on toy cases: finite, zero-ish when perfect, gradients the right way."""

import pytest
import torch

from vae_lab.choices import LOSS_HEAD, LOSS_OPTIONS, WEIGHTED_LOSSES
from vae_lab.losses import (
    CATEGORICAL_LOSSES,
    SCALAR_LOSSES,
    LossSettings,
    brock_loss,
    class_weights,
    kl_divergence,
    kl_penalty,
    tversky_loss,
)

# One sample of four cells: two occupied (values 4 and 2 -> 1.0 and 0.5), two empty.
GRID = torch.tensor([[4, 0, 2, 0]], dtype=torch.uint8)
TARGET = GRID.float() / 4


@pytest.mark.parametrize("name", list(SCALAR_LOSSES))
def test_scalar_losses_push_occupied_cells_up_and_empty_ones_down(name):
    logits = torch.zeros(1, 4, requires_grad=True)
    loss = SCALAR_LOSSES[name](logits, TARGET, None, LossSettings(name)).sum()
    assert torch.isfinite(loss) and loss > 0
    loss.backward()
    assert logits.grad[0, 0] < 0  # value 4: raise the logit
    assert logits.grad[0, 1] > 0 and logits.grad[0, 3] > 0  # empty: lower it


@pytest.mark.parametrize("name", ["mse", "bce", "focal", "brock", "tversky"])
def test_scalar_losses_are_smaller_for_a_better_reconstruction(name):
    good = torch.logit(TARGET.clamp(0.02, 0.98))
    bad = -good
    loss = lambda x: SCALAR_LOSSES[name](x, TARGET, None, LossSettings(name)).item()  # noqa: E731
    assert loss(good) < loss(bad)


@pytest.mark.parametrize("name", list(CATEGORICAL_LOSSES))
def test_categorical_losses_push_the_true_class_up(name):
    logits = torch.zeros(1, 5, 4, requires_grad=True)
    loss = CATEGORICAL_LOSSES[name](logits, GRID.long(), torch.ones(5), LossSettings(name)).sum()
    assert torch.isfinite(loss)
    loss.backward()
    for cell, cls in enumerate(GRID[0].tolist()):
        assert logits.grad[0, cls, cell] < 0
        assert (logits.grad[0, [c for c in range(5) if c != cls], cell] > 0).all()


def test_perfect_categorical_prediction_costs_nothing():
    logits = torch.full((1, 5, 4), -30.0).scatter(1, GRID.long().unsqueeze(1), 30.0)
    for name, loss in CATEGORICAL_LOSSES.items():
        assert loss(logits, GRID.long(), None, LossSettings(name)).item() < 1e-6, name


def test_weighted_ce_counts_rare_classes_more_and_ce_ignores_weights():
    logits = torch.zeros(1, 5, 4)
    weights = torch.tensor([1.0, 1, 3, 1, 5])
    plain = CATEGORICAL_LOSSES["ce"](logits, GRID.long(), weights, LossSettings("ce"))
    weighted = CATEGORICAL_LOSSES["weighted_ce"](logits, GRID.long(), weights, LossSettings("weighted_ce"))
    assert weighted.item() == pytest.approx(plain.item() * (5 + 1 + 3 + 1) / 4)


def test_focal_ce_down_weights_easy_cells():
    confident = torch.full((1, 5, 4), -3.0).scatter(1, GRID.long().unsqueeze(1), 3.0)
    ce = CATEGORICAL_LOSSES["ce"](confident, GRID.long(), None, LossSettings("ce"))
    focal = CATEGORICAL_LOSSES["focal_ce"](confident, GRID.long(), None, LossSettings("focal_ce", focal_gamma=2.0))
    assert focal.item() < 0.01 * ce.item()


def test_tversky_alpha_charges_false_positives_and_beta_misses():
    target = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    too_many = torch.logit(torch.tensor([[0.99, 0.99, 0.99, 0.01]]))
    too_few = torch.logit(torch.tensor([[0.2, 0.01, 0.01, 0.01]]))
    fp_heavy, fn_heavy = dict(alpha=0.9, beta=0.1), dict(alpha=0.1, beta=0.9)
    assert tversky_loss(too_many, target, **fp_heavy) > tversky_loss(too_many, target, **fn_heavy)
    assert tversky_loss(too_few, target, **fn_heavy) > tversky_loss(too_few, target, **fp_heavy)


def test_brock_gamma_makes_a_miss_dearer_than_a_false_cell():
    target = torch.tensor([[1.0, 0.0]])
    missed = brock_loss(torch.tensor([[-3.0, -3.0]]), target)
    painted = brock_loss(torch.tensor([[3.0, 3.0]]), target)
    assert missed > 10 * painted


def test_log_class_weights_boost_rare_classes():
    grid = torch.zeros(1000, dtype=torch.uint8)
    grid[:10], grid[10:12] = 1, 4
    weights = class_weights(grid, "log")
    assert weights[0] == 1.0 and weights[4] > weights[1] > 1.0
    assert class_weights(grid, "none") is None
    assert class_weights(grid, "balanced")[4] > weights[4]


def test_kl_is_zero_for_standard_normal_posterior_and_free_bits_floor_each_dimension():
    mu, logvar = torch.zeros(3, 4), torch.zeros(3, 4)
    assert torch.allclose(kl_divergence(mu, logvar), torch.zeros(3))
    assert (kl_divergence(torch.ones(3, 4), logvar) > 0).all()
    assert kl_penalty(mu, logvar, free_bits=0.5).item() == pytest.approx(4 * 0.5)
    big = torch.full((3, 4), 3.0)
    assert kl_penalty(big, logvar, free_bits=0.5).item() == pytest.approx(kl_divergence(big, logvar).mean().item())


def test_the_vocabulary_and_the_loss_tables_agree():
    assert set(SCALAR_LOSSES) == {name for name, head in LOSS_HEAD.items() if head == "scalar"}
    assert set(CATEGORICAL_LOSSES) == {name for name, head in LOSS_HEAD.items() if head == "categorical"}
    assert WEIGHTED_LOSSES <= set(LOSS_HEAD) and set(LOSS_OPTIONS) <= set(LOSS_HEAD)


def test_descriptor_weights_count_only_occupied_cells_and_favour_rare_descriptors():
    from vae_lab.losses import descriptor_weights

    grid = torch.zeros(10_000, dtype=torch.uint8)
    grid[:60], grid[60:90], grid[90:100] = 1, 2, 4
    weights = descriptor_weights(grid, "log")
    assert weights[0] == 1.0 and weights[1] == 1.0  # the commonest descriptor weighs 1
    assert weights[4] > weights[2] > weights[1]
    assert descriptor_weights(grid, "none") is None
