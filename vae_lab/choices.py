"""The fixed vocabularies of configs and study files, free of heavy imports.

Study validation (and so every `vae-lab` command's start-up) needs these names but not torch;
the modules that implement each choice import them from here. Every choice a user can make
comes from one of these tables: no user string is ever imported or evaluated.
"""

import enum
from typing import Literal, get_args

NUM_CLASSES = 5  # descriptor values 0 (empty) .. 4

# The decoder's output: one value per cell, five class logits per cell, or (sparse families) a
# set of point slots.
OutputHead = Literal["scalar", "categorical", "set"]
ReconLoss = Literal["mse", "bce", "focal", "brock", "tversky", "ce", "weighted_ce", "focal_ce", "set"]
ClassWeighting = Literal["none", "log", "balanced"]
OptimizerName = Literal["adam", "adamw", "sgd"]
Precision = Literal["fp32", "bf16", "fp16"]
PrunerKind = Literal["none", "median", "hyperband", "successive_halving"]

# Which head each reconstruction loss trains. "set" is the matched set loss of sparse families,
# which have no head to choose. The head of a trial follows its loss when a study lists no output.
LOSS_HEAD: dict[str, str] = {
    "mse": "scalar",
    "bce": "scalar",
    "focal": "scalar",
    "brock": "scalar",
    "tversky": "scalar",
    "ce": "categorical",
    "weighted_ce": "categorical",
    "focal_ce": "categorical",
    "set": "set",
}
DEFAULT_LOSS = {"scalar": "mse", "categorical": "weighted_ce", "set": "set"}
# Losses that multiply each cell by its class weight; the others ignore `class_weighting`.
# (brock weighs occupied against empty cells with its own gamma; the set loss weighs each
# point's descriptor by its class among the occupied cells.)
WEIGHTED_LOSSES = frozenset({"mse", "bce", "focal", "weighted_ce", "focal_ce", "set"})
LrSchedule = Literal["constant", "cosine"]
Augment = Literal["none", "rotations", "so3"]
# The options each loss reads (searchable like any hyperparameter).
LOSS_OPTIONS: dict[str, tuple[str, ...]] = {
    "focal": ("focal_alpha", "focal_gamma"),
    "focal_ce": ("focal_gamma",),
    "brock": ("brock_gamma",),
    "tversky": ("tversky_alpha", "tversky_beta"),
}

# What the trainer reports every epoch; objectives, early stopping and pruning pick from these.
EpochMetric = Literal[
    "train_loss",
    "val_loss",
    "train_recon",
    "val_recon",
    "train_kl",
    "val_kl",
    "beta",
    "val_f1",
    "val_f1_c1",
    "val_f1_c2",
    "val_f1_c3",
    "val_f1_c4",
    "val_occupancy_precision",
    "val_occupancy_recall",
    "val_occupancy_iou",
    "val_exact_match",
    "val_active_units",
    "val_kl_dim_max",
    "val_kl_dims_used",
    "val_tradeoff",
    "train_time_s",
    "val_time_s",
]
# Measured on the validation latents; per epoch only when the objective or early stopping asks.
# val_pose_invariance: latent movement under rotation over the distance between samples (0: none).
LatentMetric = Literal["val_silhouette", "val_knn_accuracy", "val_trustworthiness_pca", "val_pose_invariance"]
LATENT_METRICS: tuple[str, ...] = (
    "val_silhouette",
    "val_knn_accuracy",
    "val_trustworthiness_pca",
    "val_pose_invariance",
)
# Measured on grids decoded from the prior (`training.generation`); per epoch only when the
# objective or early stopping asks, else once on the restored model.
GenerationMetric = Literal["gen_validity", "gen_uniqueness", "gen_novelty", "gen_count_distance", "gen_class_distance"]
GENERATION_METRICS: tuple[str, ...] = get_args(GenerationMetric)
ObjectiveMetric = Literal[EpochMetric, LatentMetric, GenerationMetric]

HIGHER_IS_BETTER = frozenset(
    {
        "val_f1",
        "val_f1_c1",
        "val_f1_c2",
        "val_f1_c3",
        "val_f1_c4",
        "val_occupancy_precision",
        "val_occupancy_recall",
        "val_occupancy_iou",
        "val_exact_match",
        "val_active_units",
        "val_kl_dims_used",
        "val_tradeoff",
        "val_silhouette",
        "val_knn_accuracy",
        "val_trustworthiness_pca",
        "gen_validity",
        "gen_uniqueness",
        "gen_novelty",
    }
)


def direction_of(metric: str) -> Literal["maximize", "minimize"]:
    """The way a metric improves: F1, scores and accuracies up; losses and times down."""
    return "maximize" if metric in HIGHER_IS_BETTER else "minimize"


class Engine(enum.StrEnum):
    """What starts and places a study's workers (`study run --engine`, and the parent run's tag)."""

    LOCAL = "local"  # this process, or --workers N processes on this machine
    RAY = "ray"  # Ray tasks on a Ray cluster (`execution.ray_workers`)
