"""The fixed vocabularies of configs and study files, free of heavy imports.

Study validation (and so every `vae-lab` command's start-up) needs these names but not torch;
the modules that implement each choice import them from here.
"""

from typing import Literal

OutputHead = Literal["scalar", "categorical"]
ReconLoss = Literal["mse", "bce"]
ClassWeighting = Literal["none", "log", "balanced"]
OptimizerName = Literal["adam", "adamw", "sgd"]

# What the trainer reports every epoch; objectives and early stopping pick from these.
EpochMetric = Literal[
    "train_loss", "val_loss", "train_recon", "val_recon", "train_kl", "val_kl",
    "val_f1", "val_tradeoff", "train_time_s", "val_time_s",
]
HIGHER_IS_BETTER = frozenset({"val_f1", "val_tradeoff"})
