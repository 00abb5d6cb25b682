"""The journal's convolutional VAE with max pooling and upsampling around the same layers.

The trainable layers (and so the 1,825,285 parameters) match `conv`; the downsampling moves
from the convolution strides to the pools. Encoder Conv3d(1, 128, k3, s1, p1) 11 -> 11,
MaxPool3d(2, ceil) 11 -> 6, Conv3d(128, 256, k3, s1, p1), MaxPool3d(2, ceil) 6 -> 3, flatten
6912. Decoder FC latent -> 6912, Upsample 3 -> 6, ConvTranspose3d(256, 128, k3, s1, p1),
Upsample 6 -> 11, ConvTranspose3d(128, out, k3, s1, p1). Upsample takes explicit sizes, so
odd grids come back exactly and any grid works.
"""

from __future__ import annotations

from torch import nn

from vae_lab.models.base import BaseVAE, ModelConfig, register
from vae_lab.models.layers import halved


@register("conv_pool")
class ConvPoolVAE(BaseVAE):
    description = "conv with stride-1 layers, MaxPool3d to downsample and Upsample to grow back"
    fixed_grid = None

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        grid = config.grid
        mid, low = halved(grid), halved(halved(grid))
        flat = 256 * low**3
        # ceil_mode keeps the odd edge cell (11 -> 6 rather than 5), as the strided conv does.
        self.encoder = nn.Sequential(
            nn.Conv3d(1, 128, kernel_size=3, stride=1, padding=1),
            nn.ReLU(),
            nn.MaxPool3d(kernel_size=2, ceil_mode=True),
            nn.Conv3d(128, 256, kernel_size=3, stride=1, padding=1),
            nn.ReLU(),
            nn.MaxPool3d(kernel_size=2, ceil_mode=True),
            nn.Flatten(),
        )
        self.add_latent_heads(flat)
        self.decoder = nn.Sequential(
            nn.Linear(config.latent_dim, flat),
            nn.ReLU(),
            nn.Unflatten(1, (256, low, low, low)),
            nn.Upsample(size=(mid, mid, mid), mode="nearest"),
            nn.ConvTranspose3d(256, 128, kernel_size=3, stride=1, padding=1),
            nn.ReLU(),
            nn.Upsample(size=(grid, grid, grid), mode="nearest"),
            nn.ConvTranspose3d(128, self.out_channels, kernel_size=3, stride=1, padding=1),
        )
