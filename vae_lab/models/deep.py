"""The journal's deeper convolutional VAE with LeakyReLU (and, via `batch_norm`, its BN twin).

Encoder Conv3d 1 -> 64 (k3, s1, p1) at 11, 64 -> 128 (k3, s2, p1) 11 -> 6, 128 -> 256 and
256 -> 256 (k3, s1, p1) at 6, flatten 256 * 6^3 = 55,296, latent heads. Decoder FC latent ->
55,296, Conv3d 256 -> 256 and 256 -> 128 (k3, s1, p1) at 6 to refine before upsampling,
ConvTranspose3d 128 -> 64 (k3, s2, p1, op=0) 6 -> 11, Conv3d 64 -> out (k3, s1, p1).
6,142,469 parameters at latent dim 2; any grid works.
"""

from __future__ import annotations

from torch import nn

from vae_lab.models.base import BaseVAE, ModelConfig, register
from vae_lab.models.layers import halved, output_padding


def conv_block(conv: nn.Module, channels: int, batch_norm: bool) -> list[nn.Module]:
    """conv -> [BatchNorm3d] -> LeakyReLU."""
    norm = [nn.BatchNorm3d(channels)] if batch_norm else []
    return [conv, *norm, nn.LeakyReLU()]


@register("deep")
class DeepConvVAE(BaseVAE):
    description = "Four Conv3d layers (64-128-256-256) each way, conv refinement in the decoder, LeakyReLU"
    fixed_grid = None
    use_batch_norm = False

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        grid, bn = config.grid, self.use_batch_norm
        low = halved(grid)
        flat = 256 * low**3
        self.encoder = nn.Sequential(
            *conv_block(nn.Conv3d(1, 64, kernel_size=3, stride=1, padding=1), 64, bn),
            *conv_block(nn.Conv3d(64, 128, kernel_size=3, stride=2, padding=1), 128, bn),
            *conv_block(nn.Conv3d(128, 256, kernel_size=3, stride=1, padding=1), 256, bn),
            *conv_block(nn.Conv3d(256, 256, kernel_size=3, stride=1, padding=1), 256, bn),
            nn.Flatten(),
        )
        self.add_latent_heads(flat)
        upsample = nn.ConvTranspose3d(
            128, 64, kernel_size=3, stride=2, padding=1, output_padding=output_padding(low, grid, 3, 2, 1)
        )
        self.decoder = nn.Sequential(
            nn.Linear(config.latent_dim, flat),
            *([nn.BatchNorm1d(flat)] if bn else []),
            nn.LeakyReLU(),
            nn.Unflatten(1, (256, low, low, low)),
            *conv_block(nn.Conv3d(256, 256, kernel_size=3, stride=1, padding=1), 256, bn),
            *conv_block(nn.Conv3d(256, 128, kernel_size=3, stride=1, padding=1), 128, bn),
            *conv_block(upsample, 64, bn),
            nn.Conv3d(64, self.out_channels, kernel_size=3, stride=1, padding=1),
        )
