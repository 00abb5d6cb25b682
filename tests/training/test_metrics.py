import math

import torch

from vae_lab.training.losses import kl_divergence, scalar_reconstruction_loss
from vae_lab.training.metrics import class_counts, macro_f1, per_class_f1, tradeoff_score


def test_f1_ignores_empty_class_and_absent_classes():
    target = torch.tensor([[0, 1, 1, 2, 0, 0]])
    pred = torch.tensor([[0, 1, 0, 2, 2, 0]])
    scores = per_class_f1(class_counts(pred, target))
    assert scores[1] == 2 * 1 / (2 * 1 + 0 + 1)
    assert scores[2] == 2 * 1 / (2 * 1 + 1 + 0)
    assert scores[3] is None and scores[4] is None
    assert macro_f1(class_counts(pred, target)) == (scores[1] + scores[2]) / 2


def test_all_empty_prediction_scores_zero_not_perfect():
    target = torch.tensor([[0, 0, 3, 0]])
    assert macro_f1(class_counts(torch.zeros_like(target), target)) == 0.0


def test_tradeoff_score_in_unit_interval_and_penalises_kl():
    assert tradeoff_score(0.8, 0.0, latent_dim=4) == 0.8
    assert tradeoff_score(0.8, 40.0, latent_dim=4) == 0.8 * math.exp(-1)
    assert tradeoff_score(0.8, 80.0, latent_dim=4) < tradeoff_score(0.8, 40.0, latent_dim=4)
    assert 0.0 <= tradeoff_score(1.0, 1e6, latent_dim=2) <= 1.0


def test_kl_is_zero_for_standard_normal_posterior():
    mu, logvar = torch.zeros(3, 4), torch.zeros(3, 4)
    assert torch.allclose(kl_divergence(mu, logvar), torch.zeros(3))
    assert (kl_divergence(torch.ones(3, 4), logvar) > 0).all()


def test_mse_and_bce_see_values_on_the_unit_interval():
    grid = torch.tensor([[[[4]]]], dtype=torch.uint8)
    perfect = torch.full((1, 1, 1, 1, 1), 20.0)  # sigmoid ~ 1 == 4/4
    assert scalar_reconstruction_loss(perfect, grid, "mse").item() < 1e-6
    assert scalar_reconstruction_loss(-perfect, grid, "mse").item() > 0.99
