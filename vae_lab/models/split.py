"""Content and pose in two parts of one latent (`split`): a model that reconstructs each atom's
cell like `pointnet` while the part of its latent that groups fragments ignores their pose.

Why two parts: on fragments voxelised in any orientation, `pointnet` with `augment: so3`
reconstructs well (its latent holds where each atom sits) but its neighbours in latent space
share a pose rather than a chemistry; `pose`'s content latent cannot see the pose and groups
fragments by chemistry, but its canonical points, turned by a searched rotation, land a cell
off (benchmarks/RESULTS.md). Here the decoder gets both, each from an encoder that can only
give it one:

- content, `mu[:, :content_dims]`: the invariant `DistanceEncoder` (descriptors and distances
  between points, `distance.py`): no rotation, mirror image, translation or reordering of the
  points changes it. Latent metrics, figures and `val_pose_invariance` read only this part
  (`metric_latent`).
- pose, the last `latent_dim // POSE_SHARE` dimensions: pointnet's per-point MLP over each
  point's cell on each axis and its descriptor, max-pooled. It sees the placement (orientation,
  handedness, sub-cell shift, how the rounding to cells fell), which the decoder needs to put
  each atom in its cell and the content part cannot give it.

Decoder: pointnet's, over the whole latent: K slots of presence, per-axis cell logits and
descriptor logits, trained with the matched set loss. Sampling the prior draws a content and a
pose together, so `decode(z)` needs nothing else.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn

from vae_lab.models.base import BaseVAE, ModelConfig, register
from vae_lab.models.distance import DistanceEncoder
from vae_lab.models.pointnet import MaskedMaxPool, PointNetVAE, point_mlp, slot_decoder

# The pose part's share of the latent: half. On fragments-wehi after 10 epochs at AdamW 2e-3,
# val F1 was 0.571 with 16 of 48 dimensions for the pose and 0.691 with 32 of 64 (and 0.402 with
# 8 of 40 at 1e-3; benchmarks/RESULTS.md, "The split family"): a narrow pose part makes the
# decoder turn an invariant shape by a few numbers, a wide one lets it read placements as
# pointnet does, while the content part stays invariant by construction whatever its share.
POSE_SHARE = 2


@register("split")
class SplitVAE(BaseVAE):
    description = "Content and pose latents: invariant distance encoder + pointnet pose encoder, pointnet decoder"
    heads = ("set",)
    reads_points = True
    fixed_grid = None
    default_width = 256
    min_latent_dim: ClassVar[int] = 2

    # The same input, slot format, loss and grid decoding as pointnet.
    inputs = PointNetVAE.inputs
    reconstruction_loss = PointNetVAE.reconstruction_loss
    predict_grid = PointNetVAE.predict_grid
    example_input = PointNetVAE.example_input
    example_array = PointNetVAE.example_array
    point_features = PointNetVAE.point_features

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        width, edge = self.width, config.grid
        # Half the width: the message rounds cost (B, K, K, W) per round, 2.4x pointnet's epoch at
        # W 256, and the pose family grouped fragments by chemistry (kNN 0.976) at 256.
        content_width = max(width // 2, 8)
        self.content = DistanceEncoder(content_width, edge)
        self.content_mu = nn.Linear(content_width, self.content_dims)
        self.content_logvar = nn.Linear(content_width, self.content_dims)
        self.point_mlp = point_mlp(edge, width)
        self.pool = MaskedMaxPool()
        self.pose = nn.Sequential(nn.Linear(width, width), nn.ReLU())
        self.pose_mu = nn.Linear(width, self.pose_dims)
        self.pose_logvar = nn.Linear(width, self.pose_dims)
        self.decoder = slot_decoder(config.latent_dim, width, config.max_points, edge)

    @property
    def pose_dims(self) -> int:
        return max(self.config.latent_dim // POSE_SHARE, 1)

    def encode(self, x: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if mask is None:
            raise ValueError("split needs the point mask (B, K) alongside the points")
        content = self.content(x[..., :3].float() * max(self.config.grid - 1, 1), x[..., 3:], mask)
        pose = self.pose(self.pool(self.point_mlp(self.point_features(x)), mask))
        mu = torch.cat([self.content_mu(content), self.pose_mu(pose)], dim=-1)
        logvar = torch.cat([self.content_logvar(content), self.pose_logvar(pose)], dim=-1)
        return mu, logvar
