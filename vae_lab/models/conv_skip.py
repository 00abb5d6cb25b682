"""The journal's convolutional VAE with a large-kernel skip path in the encoder and decoder.

Main path as in `conv`. The encoder skip is Conv3d(1, 256, k7, s4, p3), 88,064 parameters,
which maps any edge D to ceil(D / 4), the main path's 3 for D = 11, with its windows centred
on the same cells; the two are summed before the ReLU and the latent heads. The decoder skip
is ConvTranspose3d(256, out, k7, s4, p3, op=2), 87,809 parameters, 3 -> 11, summed with the
main path's logits. 2,001,158 parameters at latent dim 2; any grid works.
"""

from __future__ import annotations

from torch import Tensor, nn

from vae_lab.models.base import BaseVAE, ModelConfig, register
from vae_lab.models.layers import halved, output_padding


class AddSkip(nn.Module):
    """Sums the main and skip paths (a module so the layer table shows the join)."""

    layer_label = "Skip path combined with main path"

    def forward(self, main: Tensor, skip: Tensor) -> Tensor:
        return main + skip


@register("conv_skip")
class ConvSkipVAE(BaseVAE):
    description = "conv plus a kernel-7 Conv3d / ConvTranspose3d skip path summed into each side"
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
        )
        self.encoder_skip = nn.Conv3d(1, 256, kernel_size=7, stride=4, padding=3)
        self.encoder_join = AddSkip()
        self.encoder_out = nn.Sequential(nn.ReLU(), nn.Flatten())
        self.add_latent_heads(flat)
        self.decoder_in = nn.Sequential(
            nn.Linear(config.latent_dim, flat),
            nn.ReLU(),
            nn.Unflatten(1, (256, low, low, low)),
        )
        self.decoder_skip = nn.ConvTranspose3d(
            256,
            self.out_channels,
            kernel_size=7,
            stride=4,
            padding=3,
            output_padding=output_padding(low, grid, 7, 4, 3),
        )
        self.decoder = nn.Sequential(
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
        self.decoder_join = AddSkip()

    def encode(self, x: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        h = self.encoder_out(self.encoder_join(self.encoder(x), self.encoder_skip(x)))
        return self.to_mu(h), self.to_logvar(h)

    def decode(self, z: Tensor) -> Tensor:
        h = self.decoder_in(z)
        return self.decoder_join(self.decoder(h), self.decoder_skip(h))
