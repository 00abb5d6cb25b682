"""Schedules: how much beta the KL term gets at each epoch, and the learning rate at each step.

Pure functions, all off by default.

- Linear warm-up (Bowman et al. 2016): beta grows from 0 to its value over N epochs, so the
  decoder learns to use the latent before the KL term pushes it towards the prior.
- Cyclical annealing (Fu et al. 2019): M cycles over the run; in each, beta grows from 0 over
  the first R share of the cycle and then holds, which lets the latent re-open repeatedly.
Free bits (Kingma et al. 2016) is the third lever and lives in the KL term itself
(`vae_lab.losses.kl_penalty`).
"""

from __future__ import annotations

import math


def beta_at(
    epoch: int, *, beta: float, epochs: int, warmup_epochs: int = 0, cycles: int = 0, cycle_ratio: float = 0.5
) -> float:
    """beta for `epoch` (0-based) of a run of `epochs` epochs.

    Warm-up: beta * min(1, epoch / warmup_epochs), so epoch 0 trains a plain autoencoder and
    epoch `warmup_epochs` reaches `beta`. Cyclical: period = epochs / cycles; within a cycle at
    position tau in [0, 1), beta * min(1, tau / cycle_ratio).
    """
    if cycles > 0:
        period = epochs / cycles
        tau = (epoch % period) / period
        return beta * min(1.0, tau / cycle_ratio)
    if warmup_epochs > 0:
        return beta * min(1.0, epoch / warmup_epochs)
    return beta


def settled_epoch(*, warmup_epochs: int = 0, cycles: int = 0) -> int:
    """The first epoch whose beta no longer grows run-wide: early stopping counts from here.

    During a warm-up the loss rises with beta by design, so epochs before it ends never spend
    early-stopping patience. Cyclical schedules never settle, so patience counts throughout.
    """
    return warmup_epochs if cycles == 0 else 0


WARMUP_SHARE = 0.02  # of all steps, for the cosine learning-rate schedule


def learning_rate_at(step: int, total_steps: int, peak: float) -> float:
    """Cosine schedule: linear warm-up to `peak` over the first 2% of steps, then cosine decay to 0.

    A short warm-up keeps Adam's first, poorly estimated steps small; the decay lets a high
    peak rate (3e-3 trains the families fastest) settle into a minimum by the end of the run.
    """
    warmup = max(1, int(WARMUP_SHARE * total_steps))
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
    return peak * 0.5 * (1 + math.cos(math.pi * progress))
