"""The journal's convolutional VAE: two stride-2 3D convolutions each way.

Encoder Conv3d(1, 128, k3, s2, p1) 11 -> 6, Conv3d(128, 256, k3, s2, p1) 6 -> 3, flatten 6912,
latent heads. Decoder FC latent -> 6912, ConvTranspose3d(256, 128, k3, s2, p1, op=1) 3 -> 6,
ConvTranspose3d(128, out, k3, s2, p1, op=0) 6 -> 11. 1,825,285 parameters at latent dim 2.
Other grids work too: the output paddings are derived so the decoder lands on the input size.
"""

from __future__ import annotations

from torch import nn

from vae_lab.models.base import BaseVAE, ModelConfig, register
from vae_lab.models.layers import halved, output_padding


@register("conv")
class ConvVAE(BaseVAE):
    description = "Two stride-2 Conv3d layers (128, 256 channels) mirrored by ConvTranspose3d, ReLU"
    fixed_grid = None

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        grid = config.grid
        mid, low = halved(grid), halved(halved(grid))
        flat = 256 * low**3
        self.encoder = nn.Sequential(
            nn.Conv3d(1, 128, kernel_size=3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv3d(128, 256, kernel_size=3, stride=2, padding=1),
            nn.ReLU(),
            nn.Flatten(),
        )
        self.add_latent_heads(flat)
        self.decoder = nn.Sequential(
            nn.Linear(config.latent_dim, flat),
            nn.ReLU(),
            nn.Unflatten(1, (256, low, low, low)),
            nn.ConvTranspose3d(
                256, 128, kernel_size=3, stride=2, padding=1, output_padding=output_padding(low, mid, 3, 2, 1)
            ),
            nn.ReLU(),
            nn.ConvTranspose3d(
                128,
                self.out_channels,
                kernel_size=3,
                stride=2,
                padding=1,
                output_padding=output_padding(mid, grid, 3, 2, 1),
            ),
        )
