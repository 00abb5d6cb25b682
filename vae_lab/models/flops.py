"""FLOPs of a model, counted from its layers on a real forward pass (not a constant per family).

Forward hooks see every Linear, Conv3d and ConvTranspose3d as it runs on the family's example
input, so skip paths, strides and the grid size are all accounted for. A multiply-add is two
FLOPs. Training costs about three forward passes per sample (the backward pass computes
gradients for both the inputs and the weights of each layer, each about as costly as the
forward), the usual rule (Kaplan et al. 2020); element-wise work (activations, losses, the
optimizer) is left out, which is why achieved MFU on tiny layers looks low.
"""

from __future__ import annotations

from math import prod

import torch
from torch import nn

from vae_lab.models.base import BaseVAE

TRAINING_MULTIPLIER = 3


def _layer_flops(module: nn.Module, inputs: tuple, output: torch.Tensor) -> int:
    """Forward FLOPs of one call of `module` for the whole batch."""
    if isinstance(module, nn.Linear):
        rows = output.numel() // output.shape[-1]
        return 2 * rows * module.in_features * module.out_features
    if isinstance(module, nn.Conv3d):
        per_output = module.in_channels // module.groups * prod(module.kernel_size)
        return 2 * output.numel() * per_output
    if isinstance(module, nn.ConvTranspose3d):
        # Each input element is scattered through a kernel into every output channel.
        source = inputs[0]
        return 2 * source.numel() * module.out_channels // module.groups * prod(module.kernel_size)
    return 0


@torch.no_grad()
def forward_flops_per_sample(model: BaseVAE, batch_size: int = 2) -> int:
    """FLOPs of one forward pass per sample, from the layers that actually run."""
    total = 0

    def count(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        nonlocal total
        total += _layer_flops(module, inputs, output)

    handles = [
        m.register_forward_hook(count)
        for m in model.modules()
        if isinstance(m, (nn.Linear, nn.Conv3d, nn.ConvTranspose3d))
    ]
    was_training = model.training
    try:
        model.eval()
        batch = model.example_input(batch_size)
        device = next(model.parameters()).device
        model.forward_batch(batch.to(device))
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return total // batch_size


def training_flops_per_sample(model: BaseVAE) -> int:
    """FLOPs of one training step per sample: forward plus backward, about 3x the forward."""
    return TRAINING_MULTIPLIER * forward_flops_per_sample(model)
