"""The two decoder heads of the dense families: what they output, how they learn, how they read.

`scalar` (the journal's single-channel decoder): one logit per cell whose sigmoid is the value
scaled to [0, 1]; a class is the rounded value. `categorical`: five logits per cell; a class is
the argmax. Each head owns its losses (from `vae_lab.losses`) and its prediction, so a dense
family only says which head it was built with.
"""

from __future__ import annotations

import torch
from torch import Tensor

from vae_lab.choices import NUM_CLASSES
from vae_lab.losses import CATEGORICAL_LOSSES, SCALAR_LOSSES, LossSettings

MAX_VALUE = NUM_CLASSES - 1


class ScalarHead:
    channels = 1
    losses = tuple(SCALAR_LOSSES)

    def loss(self, logits: Tensor, grid: Tensor, settings: LossSettings, weights: Tensor | None) -> Tensor:
        logits = logits.float()  # losses in fp32, whatever the autocast precision
        target = grid.unsqueeze(1).to(logits.dtype) / MAX_VALUE
        cell_weights = None if weights is None else weights[grid.long()].unsqueeze(1)
        return SCALAR_LOSSES[settings.name](logits, target, cell_weights, settings)

    def predict(self, logits: Tensor) -> Tensor:
        value = torch.sigmoid(logits[:, 0].float()) * MAX_VALUE
        return value.round().clamp(0, MAX_VALUE).to(torch.int64)


class CategoricalHead:
    channels = NUM_CLASSES
    losses = tuple(CATEGORICAL_LOSSES)

    def loss(self, logits: Tensor, grid: Tensor, settings: LossSettings, weights: Tensor | None) -> Tensor:
        return CATEGORICAL_LOSSES[settings.name](logits.float(), grid.long(), weights, settings)

    def predict(self, logits: Tensor) -> Tensor:
        # max(...).indices is argmax (the first of equal maxima) at a quarter of its CPU time over
        # this small strided class dim: it kept the fc diagnostics under 10% of an epoch.
        return logits.max(dim=1).indices


HEADS = {"scalar": ScalarHead(), "categorical": CategoricalHead()}
