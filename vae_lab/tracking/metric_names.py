"""The names metrics carry in MLflow, grouped into the sections of a run's "Model metrics" tab.

MLflow's UI groups charts by the part of a metric's name before "/". vae-lab's own names stay
plain everywhere else (objectives, leaderboards, `--json`, trial records); only the keys sent to
MLflow gain a section, here and nowhere else, so a trial page shows its per-epoch curves grouped
by what they measure, with the best-epoch summaries (logged once, single dots) apart, and the
restored model's generation figures in a section of their own (issue 23 names it `generation/`;
it sorts first):

    generation/gen_validity   losses/val_loss   reconstruction/val_f1   latent/val_active_units
    speed/train_time_s   summary/best_val_f1   summary/epochs_run   summary/peak_rss_megabytes

MLflow 3.17 lists the sections in alphabetical order, and shows a chart's title as the part after
the "/": so the summaries' section sorts last and their names keep `best_` (a chart titled
`val_f1` holding one dot would pass for the curve). Anything already holding a "/" or matching
no rule (the parent run's `best_value`, `trials_complete`) is sent as is.
"""

from __future__ import annotations

from typing import Mapping

from vae_lab.training.memory import PEAK_CUDA, PEAK_RSS

SUMMARY_SECTION = "summary"
# Checked in order; the first prefix a name starts with gives its section.
SECTION_RULES: tuple[tuple[str, str], ...] = (
    ("train_time_s", "speed"),
    ("val_time_s", "speed"),
    ("train_loss", "losses"),
    ("val_loss", "losses"),
    ("train_recon", "losses"),
    ("val_recon", "losses"),
    ("train_kl", "losses"),
    ("train_content_shift", "losses"),
    ("beta", "losses"),
    ("val_kl_dim", "latent"),
    ("val_active_units", "latent"),
    ("val_silhouette", "latent"),
    ("val_knn_accuracy", "latent"),
    ("val_trustworthiness", "latent"),
    ("val_pose_invariance", "latent"),
    ("val_pose_part_invariance", "latent"),
    ("val_kl", "losses"),
    ("val_f1", "reconstruction"),
    ("val_occupancy", "reconstruction"),
    ("val_exact_match", "reconstruction"),
    ("val_tradeoff", "reconstruction"),
    ("gen_", "generation"),
)
SUMMARY_NAMES = frozenset({"best_epoch", "epochs_run", PEAK_RSS, PEAK_CUDA})


def section_of(name: str) -> str | None:
    """The section of a plain per-epoch (or evaluation) metric name, or None."""
    bare = name.removeprefix("test_").removeprefix("val_")
    for prefix, section in SECTION_RULES:
        # evaluate --split test logs test_f1 etc.: file them like their val_ twins
        if name.startswith(prefix) or (name.startswith("test_") and ("val_" + bare).startswith(prefix)):
            return section
    return None


def mlflow_key(name: str) -> str:
    """The key `name` is logged under in MLflow."""
    if "/" in name:
        return name
    if name in SUMMARY_NAMES or (name.startswith("best_") and section_of(name.removeprefix("best_"))):
        return f"{SUMMARY_SECTION}/{name}"
    section = section_of(name)
    return f"{section}/{name}" if section else name


def plain_name(key: str) -> str:
    """The vae-lab name of an MLflow metric key (the inverse of `mlflow_key`)."""
    section, _, leaf = key.partition("/")
    if not leaf:
        return key
    return leaf if mlflow_key(leaf) == key else key


def plain_metrics(metrics: Mapping[str, float]) -> dict[str, float]:
    """A run's `data.metrics` (or any key -> value mapping from MLflow) under vae-lab's names."""
    return {plain_name(k): v for k, v in metrics.items()}
