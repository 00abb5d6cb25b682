"""Every metric against a small case computed by hand."""

import math

import numpy as np
import pytest
import torch

from vae_lab.training.latent_metrics import knn_accuracy, latent_scores, silhouette, trustworthiness
from vae_lab.training.metrics import (
    active_units,
    confusion_matrix,
    exact_matches,
    kl_dimension_summary,
    macro_f1,
    occupancy_scores,
    per_class_f1,
    tradeoff_score,
)
from vae_lab.training.validation import reconstruction_scores

TARGET = torch.tensor([[0, 1, 1, 2, 0, 0]])
PRED = torch.tensor([[0, 1, 0, 2, 2, 0]])


def test_confusion_rows_are_true_classes_and_columns_predictions():
    confusion = confusion_matrix(PRED, TARGET)
    assert confusion[0, 0] == 2 and confusion[0, 2] == 1  # two empties kept, one painted class 2
    assert confusion[1, 1] == 1 and confusion[1, 0] == 1  # one class-1 cell found, one missed
    assert confusion[2, 2] == 1 and int(confusion.sum()) == 6


def test_f1_ignores_empty_class_and_absent_classes():
    scores = per_class_f1(confusion_matrix(PRED, TARGET))
    assert scores[1] == 2 * 1 / (2 * 1 + 0 + 1)
    assert scores[2] == 2 * 1 / (2 * 1 + 1 + 0)
    assert scores[3] is None and scores[4] is None
    assert macro_f1(confusion_matrix(PRED, TARGET)) == (scores[1] + scores[2]) / 2


def test_all_empty_prediction_scores_zero_everywhere_not_perfect():
    target = torch.tensor([[0, 0, 3, 0]])
    confusion = confusion_matrix(torch.zeros_like(target), target)
    assert macro_f1(confusion) == 0.0
    assert occupancy_scores(confusion) == {"precision": 0.0, "recall": 0.0, "iou": 0.0}
    scores = reconstruction_scores(confusion)
    assert scores["f1_c3"] == 0.0 and "f1_c1" not in scores  # class 1 occurs nowhere: undefined, left out


def test_occupancy_counts_any_class_as_occupied():
    # Occupied cells: target {1, 2, 3}, prediction {1, 3, 4}; a wrong class still counts as occupied.
    occupancy = occupancy_scores(confusion_matrix(PRED, TARGET))
    assert occupancy == {"precision": 2 / 3, "recall": 2 / 3, "iou": 2 / 4}


def test_exact_matches_counts_whole_samples():
    target = torch.tensor([[0, 1], [2, 0], [0, 0]])
    pred = torch.tensor([[0, 1], [2, 2], [0, 0]])
    assert int(exact_matches(pred, target)) == 2


def test_active_units_use_the_variance_of_the_means():
    mu = torch.tensor([[0.0, 1.0, 5.0], [0.0, -1.0, 5.01], [0.0, 1.0, 4.99], [0.0, -1.0, 5.0]])
    assert active_units(mu.sum(0), mu.pow(2).sum(0), len(mu)) == 1  # only the middle one moves
    assert active_units(mu.sum(0), mu.pow(2).sum(0), 1) == 0


def test_kl_dimension_summary():
    summary = kl_dimension_summary(torch.tensor([0.01, 2.5, 0.2, 0.0]))
    assert summary == {"max": pytest.approx(2.5), "used": 2}


def test_tradeoff_score_in_unit_interval_and_penalises_kl():
    assert tradeoff_score(0.8, 0.0, latent_dim=4) == 0.8
    assert tradeoff_score(0.8, 40.0, latent_dim=4) == 0.8 * math.exp(-1)
    assert tradeoff_score(0.8, 80.0, latent_dim=4) < tradeoff_score(0.8, 40.0, latent_dim=4)
    assert 0.0 <= tradeoff_score(1.0, 1e6, latent_dim=2) <= 1.0
    assert tradeoff_score(1.0, float("nan"), latent_dim=2) == 0.0


def clusters(n_per=30, separated=True, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(3), n_per)
    centres = np.array([[0, 0, 0], [10, 0, 0], [0, 10, 0]]) if separated else np.zeros((3, 3))
    return centres[labels] + rng.normal(size=(len(labels), 3)), labels


def test_latent_metrics_see_separated_clusters():
    latents, labels = clusters()
    assert knn_accuracy(latents, labels) == 1.0
    assert silhouette(latents, labels) > 0.7
    assert trustworthiness(latents, latents[:, :2]) > 0.9


def test_latent_metrics_see_mixed_labels_as_chance():
    latents, labels = clusters(n_per=100, separated=False)
    assert knn_accuracy(latents, labels) < 0.5
    assert abs(silhouette(latents, labels)) < 0.1


def test_latent_metrics_need_labels_except_trustworthiness():
    latents, _ = clusters()
    scores = latent_scores(latents, np.full(len(latents), -1))
    assert set(scores) == {"val_trustworthiness_pca"}
