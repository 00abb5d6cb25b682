"""The journal's base model: a fully connected VAE on the flattened grid.

Encoder 1331 -> 512 -> 256 -> (mu, logvar); decoder latent -> 256 -> 512 -> 1331, ReLU between.
With latent dim 2 and a scalar head it has the journal's 1,629,495 parameters. The first and
last layers follow `config.grid` (D^3 cells), so any grid works.
"""

from __future__ import annotations

from torch import nn

from vae_lab.models.base import BaseVAE, ModelConfig, register


@register("fc")
class FullyConnectedVAE(BaseVAE):
    description = "Fully connected base model: D^3-512-256-latent, mirrored, ReLU"
    fixed_grid = None

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        cells = config.grid**3
        self.encoder = nn.Sequential(
            nn.Flatten(),
            nn.Linear(cells, 512),
            nn.ReLU(),
            nn.Linear(512, 256),
            nn.ReLU(),
        )
        self.add_latent_heads(256)
        self.decoder = nn.Sequential(
            nn.Linear(config.latent_dim, 256),
            nn.ReLU(),
            nn.Linear(256, 512),
            nn.ReLU(),
            nn.Linear(512, self.out_channels * cells),
            nn.Unflatten(1, (self.out_channels, config.grid, config.grid, config.grid)),
        )
