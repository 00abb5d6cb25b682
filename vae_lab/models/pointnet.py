"""A simple PointNet VAE on the sparse view of a grid (the journal's last family).

Input: the padded point set of `vae_lab.data.sparse`, points (B, K, 7) = x, y, z scaled to
[0, 1] by / (D - 1) (x indexes the grid's first spatial axis) and a one-hot of the descriptor
1..4, zero-padded; mask (B, K) True for real points. Each point is read as a one-hot of its
cell on each axis plus its descriptor (3D + 4 features), through a shared per-point MLP
(-> 128 -> W -> W), a masked max over the points, FC W -> W, and the latent heads. The decoder
maps the latent through W -> 2W to K slots, each (presence logit, D logits per axis for x, y
and z, 4 descriptor logits), so `recon` is (B, K, 1 + 3D + 4); `vae_lab.losses.set_reconstruction_loss`
matches slots to points. W is `config.width` (256 by default).

Positions are categories, in and out. Regressed positions in [0, 1] missed their cell with a
squared error the loss hardly noticed (val F1 0.01 in the first version); per-axis cross-entropy
charges a wrong cell in full, and one-hot inputs give the encoder cells rather than distances.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vae_lab.losses import LossSettings, set_reconstruction_loss, slot_parts
from vae_lab.models.base import MAX_VALUE, BaseVAE, Batch, ModelConfig, VAEOutput, register

POINT_FEATURES = 3 + MAX_VALUE  # x, y, z and a one-hot of descriptors 1..4


def slot_features(edge: int) -> int:
    """Presence logit, D position logits per axis, descriptor logits."""
    return 1 + 3 * edge + MAX_VALUE


def point_mlp(edge: int, width: int) -> nn.Sequential:
    """The shared per-point MLP: (B, K, 3D + 4) cell one-hots and descriptor -> (B, K, W)."""
    return nn.Sequential(
        nn.Linear(3 * edge + MAX_VALUE, 128),
        nn.ReLU(),
        nn.Linear(128, width),
        nn.ReLU(),
        nn.Linear(width, width),
    )


def slot_decoder(latent_dim: int, width: int, slots: int, edge: int) -> nn.Sequential:
    """The latent -> W -> 2W -> K slots of `slot_features(edge)` each."""
    return nn.Sequential(
        nn.Linear(latent_dim, width),
        nn.ReLU(),
        nn.Linear(width, 2 * width),
        nn.ReLU(),
        nn.Linear(2 * width, slots * slot_features(edge)),
        nn.Unflatten(1, (slots, slot_features(edge))),
    )


class MaskedMaxPool(nn.Module):
    """Max over the real points of each sample; padding never reaches the result.

    Padded slots are filled with -inf before the max, and a sample with no points at all pools
    to zeros instead of -inf (which would turn into NaN downstream).
    """

    layer_label = "Masked max pooling"

    def forward(self, features: Tensor, mask: Tensor) -> Tensor:
        hidden = features.masked_fill(~mask.unsqueeze(-1), float("-inf"))
        pooled = hidden.amax(dim=1)
        return torch.where(mask.any(dim=1, keepdim=True), pooled, torch.zeros_like(pooled))


@register("pointnet")
class PointNetVAE(BaseVAE):
    description = "Simple PointNet on the sparse point set: shared MLP, masked max pool, K output slots"
    heads = ("set",)
    reads_points = True
    fixed_grid = None
    default_width = 256

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        slots, width, edge = config.max_points, self.width, config.grid
        self.point_mlp = point_mlp(edge, width)
        self.pool = MaskedMaxPool()
        self.encoder = nn.Sequential(nn.Linear(width, width), nn.ReLU())
        self.add_latent_heads(width)
        self.decoder = slot_decoder(config.latent_dim, width, slots, edge)

    def point_features(self, points: Tensor) -> Tensor:
        """(B, K, 7) scaled positions and descriptor one-hot -> (B, K, 3D + 4): cells one-hot per axis."""
        edge = self.config.grid
        cells = (points[..., :3] * (edge - 1)).round().long().clamp(0, edge - 1)
        return torch.cat([F.one_hot(cells, edge).flatten(-2).to(points.dtype), points[..., 3:]], dim=-1)

    def encode(self, x: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if mask is None:
            raise ValueError("pointnet needs the point mask (B, K) alongside the points")
        h = self.encoder(self.pool(self.point_mlp(self.point_features(x)), mask))
        return self.to_mu(h), self.to_logvar(h)

    def inputs(self, batch: Batch) -> tuple[Tensor, Tensor | None]:
        if batch.points is None:
            # A bare grid (e.g. from a user reloading the champion): build the point set here.
            from vae_lab.data.sparse import to_sparse

            points, mask = to_sparse(batch.grid.cpu().numpy(), max_points=self.config.max_points)
            device = batch.grid.device
            return torch.from_numpy(points).to(device), torch.from_numpy(mask).to(device)
        return batch.points, batch.mask

    def reconstruction_loss(
        self, out: VAEOutput, batch: Batch, settings: LossSettings, weights: Tensor | None = None
    ) -> Tensor:
        """The matched set loss; `weights` (5,) weigh each point's descriptor by its class."""
        return set_reconstruction_loss(out.recon, batch.points, batch.mask, weights)

    def predict_grid(self, out: VAEOutput) -> Tensor:
        """(B, D, D, D) int64 classes: each slot with presence > 0.5 paints its argmax cell."""
        size = self.config.grid
        presence, position, descriptor = slot_parts(out.recon.float())
        batch_size = presence.shape[0]
        present = presence > 0  # sigmoid(logit) > 0.5
        cells = position.argmax(dim=-1)
        classes = descriptor.argmax(dim=-1) + 1
        sample = torch.arange(batch_size, device=presence.device).unsqueeze(1).expand_as(present)
        flat = ((sample * size + cells[..., 0]) * size + cells[..., 1]) * size + cells[..., 2]
        grid = torch.zeros(batch_size * size**3, dtype=torch.int64, device=presence.device)
        # Two slots on one cell: the higher class wins, deterministically.
        grid.scatter_reduce_(0, flat[present], classes[present], reduce="amax")
        return grid.view(batch_size, size, size, size)

    def example_array(self) -> None:
        return None  # forward takes points and a mask: no single tensor to show MLflow

    def example_input(self, batch_size: int = 2) -> Batch:
        """Sample b holds (b mod K) + 1 points on the grid's diagonal, descriptors cycling 1..4."""
        size, slots = self.config.grid, self.config.max_points
        grid = torch.zeros(batch_size, size, size, size, dtype=torch.uint8)
        points = torch.zeros(batch_size, slots, POINT_FEATURES)
        mask = torch.zeros(batch_size, slots, dtype=torch.bool)
        for b in range(batch_size):
            for i in range(b % slots + 1):
                cell, value = i % size, i % MAX_VALUE + 1
                grid[b, cell, cell, cell] = value
                points[b, i, :3] = cell / (size - 1)
                points[b, i, 2 + value] = 1.0
                mask[b, i] = True
        return Batch(grid=grid, points=points, mask=mask)
