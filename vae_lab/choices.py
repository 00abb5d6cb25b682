"""The fixed vocabularies of configs and study files, free of heavy imports.

Study validation (and so every `vae-lab` command's start-up) needs these names but not torch;
the modules that implement each choice import them from here.
"""

from typing import Literal

OutputHead = Literal["scalar", "categorical"]
ReconLoss = Literal["mse", "bce"]
ClassWeighting = Literal["none", "log", "balanced"]
OptimizerName = Literal["adam", "adamw", "sgd"]
