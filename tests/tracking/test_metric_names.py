"""Metric keys in MLflow: per-epoch curves in sections by what they measure, summaries apart."""

import pytest

from vae_lab.choices import LATENT_METRICS, EpochMetric
from vae_lab.tracking import mlflow_key, plain_metrics, plain_name

EPOCH_NAMES = EpochMetric.__args__


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("train_loss", "losses/train_loss"),
        ("val_kl", "losses/val_kl"),
        ("beta", "losses/beta"),
        ("train_content_shift", "losses/train_content_shift"),
        ("val_f1", "reconstruction/val_f1"),
        ("val_f1_c2", "reconstruction/val_f1_c2"),
        ("val_kl_dims_used", "latent/val_kl_dims_used"),
        ("val_knn_accuracy", "latent/val_knn_accuracy"),
        ("train_time_s", "speed/train_time_s"),
        ("best_val_f1", "summary/best_val_f1"),
        ("epochs_run", "summary/epochs_run"),
        ("best_value", "best_value"),
        ("best_epoch", "summary/best_epoch"),
        ("peak_rss_megabytes", "summary/peak_rss_megabytes"),
        ("peak_cuda_allocated_megabytes", "summary/peak_cuda_allocated_megabytes"),
        ("system/cpu_utilization_percentage", "system/cpu_utilization_percentage"),
        ("test_f1", "reconstruction/test_f1"),
        ("trials_complete", "trials_complete"),
        ("losses/x", "losses/x"),
    ],
)
def test_keys_by_section(name, key):
    assert mlflow_key(name) == key
    assert plain_name(key) == name


def test_every_metric_the_trainer_reports_has_a_section_and_round_trips():
    for name in (*EPOCH_NAMES, *LATENT_METRICS):
        key = mlflow_key(name)
        assert key.split("/")[0] in {"losses", "reconstruction", "latent", "speed"}, name
        assert plain_name(key) == name and plain_name(mlflow_key(f"best_{name}")) == f"best_{name}"
    assert plain_metrics({"summary/best_val_f1": 0.5, "reconstruction/val_f1": 0.4}) == {
        "best_val_f1": 0.5,
        "val_f1": 0.4,
    }


def test_the_summaries_section_sorts_after_every_curve_section():
    """MLflow 3.17's run page lists sections alphabetically (seen in Chromium, tests/test_browser.py)."""
    curves = {mlflow_key(n).split("/")[0] for n in (*EPOCH_NAMES, *LATENT_METRICS)}
    assert sorted(curves | {"summary"})[-1] == "summary"
