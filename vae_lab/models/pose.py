"""A sparse VAE that keeps pose apart from content (`pose`): an invariant content latent, a
canonical decoder, and the pose found by aligning the decoded canonical points to the input.

Anchors: spatial-VAE (Bepler et al. 2019) and TARGET-VAE (Nasiri & Bepler 2022), which
generate in a canonical frame and infer rotation and translation separately from content;
TARGET-VAE scores a discrete set of rotations. Here the set is a few hundred rotations
covering SO(3) (a super-Fibonacci spiral plus the cube's 24) and their mirror images.

Encoder (content, `encode`): the input points (B, K, 7) as pointnet reads them, but only
through what no rotation, reflection or translation changes: `DistanceEncoder` (`distance.py`,
shared with `split`): each point's descriptor and its distances to the other points, three
rounds of distance-filtered messages, a masked sum and max over them, and the latent heads.
mu and logvar are the content latent: the KL, every latent metric and every figure see only it,
and a rotated copy of a point set gets the same latent to float precision.

Decoder (`decode_canonical`): the latent through W -> 2W to K slots, each a presence logit,
continuous canonical x, y, z (in cells, about the set's centre) and 4 descriptor logits.

Pose (`find_pose`, no gradient): for each sample, the orthogonal matrix Q among the candidates
and a translation t that best lay the decoded canonical points on the input (a chamfer cost
on squared cell distances plus the descriptors' cross-entropy), refined by a few rounds of
Procrustes on nearest-slot correspondences. Mirror images are candidates because the content
latent cannot tell a chiral set from its mirror image; handedness is part of the pose.

The posed points Q c + t are turned into pointnet's slot format: per axis, logits
-(x - cell)^2 / (2 sigma^2) over the D cells, so the matched set loss of `vae_lab.losses`,
the grid prediction (nearest cell) and every consumer of `recon` serve this family unchanged.
`decode(z)` alone (sampling, interpolation) poses the canonical points at the grid's centre.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from vae_lab.data.synth import cube_rotations
from vae_lab.models.base import MAX_VALUE, BaseVAE, ModelConfig, VAEOutput, register
from vae_lab.models.distance import DistanceEncoder, rename_old_keys
from vae_lab.models.pointnet import PointNetVAE

# 40 proper rotations from the spiral, with the cube's 24 and all their mirror images: 128
# candidates. Recovering known poses of random 3-8 point chains, 128 candidates and 4 refined
# starts laid 96% exactly, 256 candidates 97.7% (the rest: 3-point sets with an equally good
# pose); 1072 candidates from one start, 94.5%, at 8x the time of 128.
SPIRAL_ROTATIONS = 40
REFINE_STARTS = 4
REFINE_ROUNDS = 3
# Out of training (validation, evaluate, encode) the search refines more starts for longer: on
# the `molecules` champion (pose w512, fragments-wehi) 16 starts and 8 rounds raised val F1 from
# 0.8667 to 0.8741 (exact 40.8% -> 42.4%) at 1.7x the time of a validation pass
# (benchmarks/bench_pose_search.py).
EVAL_REFINE_STARTS = 16
EVAL_REFINE_ROUNDS = 8
POSITION_SIGMA = 0.5  # cells: the width of a posed point's per-axis cell logits
DESCRIPTOR_COST = 1.0  # squared cells one nat of descriptor mismatch weighs in the pose search
SEARCH_CHUNK = 128  # samples scored against all candidates at once (memory ~ chunk x candidates x K^2)


def spiral_rotations(count: int) -> np.ndarray:
    """(count, 3, 3) rotations spread evenly over SO(3): a super-Fibonacci spiral of unit
    quaternions (Alexa 2022), deterministic so that checkpoints need not store them."""
    phi, psi = math.sqrt(2.0), 1.533751168755204288118041
    s = np.arange(count) + 0.5
    r, big_r = np.sqrt(s / count), np.sqrt(1 - s / count)
    alpha, beta = 2 * np.pi * s / phi, 2 * np.pi * s / psi
    w, x, y, z = r * np.sin(alpha), r * np.cos(alpha), big_r * np.sin(beta), big_r * np.cos(beta)
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
            np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
            np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
        ],
        axis=-2,
    )


def candidate_poses() -> Tensor:
    """(J, 3, 3) float32: the cube's rotations (exact for grid-aligned data), the spiral, and
    the mirror image (-Q) of each."""
    proper = np.concatenate([cube_rotations().astype(np.float64), spiral_rotations(SPIRAL_ROTATIONS)])
    return torch.from_numpy(np.concatenate([proper, -proper])).float()


@dataclass
class PoseOutput(VAEOutput):
    """A `VAEOutput` that also carries the pose: x_grid = rotation @ x_canonical + translation.

    rotation: (B, 3, 3) orthogonal (det -1 for a mirror image); translation: (B, 3) in cells.
    """

    rotation: Tensor | None = None
    translation: Tensor | None = None


@register("pose")
class PoseVAE(BaseVAE):
    description = "Pose apart from content: invariant distance encoder, canonical slots posed by rotation search"
    heads = ("set",)
    reads_points = True
    fixed_grid = None
    default_width = 256

    # The same input, slot format, loss and grid decoding as pointnet.
    inputs = PointNetVAE.inputs
    reconstruction_loss = PointNetVAE.reconstruction_loss
    predict_grid = PointNetVAE.predict_grid
    example_input = PointNetVAE.example_input
    example_array = PointNetVAE.example_array

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        width, edge = self.width, config.grid
        self.content = DistanceEncoder(width, edge)
        # Weights saved before the encoder moved to `distance.py` load under its new names.
        self._register_load_state_dict_pre_hook(self._old_encoder_keys)
        self.register_buffer("candidates", candidate_poses(), persistent=False)
        self.register_buffer("cells", torch.arange(edge, dtype=torch.float32), persistent=False)
        self.add_latent_heads(width)
        self.decoder = nn.Sequential(
            nn.Linear(config.latent_dim, width),
            nn.SiLU(),
            nn.Linear(width, 2 * width),
            nn.SiLU(),
            nn.Linear(2 * width, config.max_points * (1 + 3 + MAX_VALUE)),
            nn.Unflatten(1, (config.max_points, 1 + 3 + MAX_VALUE)),
        )

    @staticmethod
    def _old_encoder_keys(state_dict: dict, prefix: str, *args) -> None:
        rename_old_keys(
            state_dict,
            prefix,
            {"embed.": "content.embed.", "rounds.": "content.rounds.", "encoder.": "content.readout."},
        )

    # --- content ---------------------------------------------------------------------------------

    def cell_coordinates(self, points: Tensor) -> Tensor:
        """(B, K, 3) positions in cells from the stored [0, 1] scale."""
        return points[..., :3].float() * max(self.config.grid - 1, 1)

    def encode(self, x: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if mask is None:
            raise ValueError("pose needs the point mask (B, K) alongside the points")
        h = self.content(self.cell_coordinates(x), x[..., 3:], mask)
        return self.to_mu(h), self.to_logvar(h)

    # --- canonical decoder and pose -----------------------------------------------------------------

    def decode_canonical(self, z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Presence logits (B, K), canonical positions in cells (B, K, 3), descriptor logits (B, K, 4)."""
        slots = self.decoder(z).float()
        # Bounded: a point far off the grid has a per-axis cross-entropy gradient that grows with
        # its distance, and unbounded positions sent a fragments run to NaN in its third epoch.
        reach = self.config.grid - 1
        return slots[..., 0], reach * torch.tanh(slots[..., 1:4] / reach), slots[..., 4:]

    def posed_slots(
        self, presence: Tensor, canonical: Tensor, descriptor: Tensor, rotation: Tensor, translation: Tensor
    ) -> Tensor:
        """pointnet's slot tensor (B, K, 1 + 3D + 4) for the canonical points under the pose."""
        posed = torch.einsum("bxy,bky->bkx", rotation, canonical) + translation.unsqueeze(1)
        position = -(posed.unsqueeze(-1) - self.cells).pow(2) / (2 * POSITION_SIGMA**2)
        return torch.cat([presence.unsqueeze(-1), position.flatten(-2), descriptor], dim=-1)

    def decode(self, z: Tensor) -> Tensor:
        """Slots of the canonical points at the grid's centre, unrotated (no input to align to)."""
        presence, canonical, descriptor = self.decode_canonical(z)
        rotation = torch.eye(3, device=z.device).expand(len(z), 3, 3)
        centre = torch.full((len(z), 3), (self.config.grid - 1) / 2, device=z.device)
        return self.posed_slots(presence, canonical, descriptor, rotation, centre)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> PoseOutput:
        mu, logvar = self.posterior(x, mask)
        z = self.reparameterize(mu, logvar)
        presence, canonical, descriptor = self.decode_canonical(z)
        rotation, translation = self.find_pose(presence, canonical, descriptor, x, mask)
        recon = self.posed_slots(presence, canonical, descriptor, rotation, translation)
        return PoseOutput(recon=recon, mu=mu, logvar=logvar, z=z, rotation=rotation, translation=translation)

    @torch.no_grad()
    def find_pose(
        self, presence: Tensor, canonical: Tensor, descriptor: Tensor, points: Tensor, mask: Tensor
    ) -> tuple[Tensor, Tensor]:
        """(B, 3, 3) orthogonal matrices and (B, 3) translations laying the canonical slots on the points."""
        with torch.autocast(device_type=points.device.type, enabled=False):
            onehot = points[..., 3:].float()
            # (B, K slots, K points): the descriptor cross-entropy of matching slot k to point i.
            mismatch = DESCRIPTOR_COST * (-descriptor.float().log_softmax(-1) @ onehot.transpose(1, 2))
            inputs = (presence.float().sigmoid(), canonical.float(), self.cell_coordinates(points), mask, mismatch)
            chunks = [tuple(t[s : s + SEARCH_CHUNK] for t in inputs) for s in range(0, len(points), SEARCH_CHUNK)]
            search = (REFINE_STARTS, REFINE_ROUNDS) if self.training else (EVAL_REFINE_STARTS, EVAL_REFINE_ROUNDS)
            poses = [best_pose(chunk, self.candidates, *search) for chunk in chunks]
        return torch.cat([p[0] for p in poses]), torch.cat([p[1] for p in poses])


# --- the pose search: pure functions of tensors ----------------------------------------------------------


def chamfer_cost(pair: Tensor, weight: Tensor, mask: Tensor) -> Tensor:
    """Cost of alignments from pair costs (..., K slots, K points): each real point to its best
    slot, and each slot (weighted by its presence, (..., K)) to its nearest real point."""
    far = torch.finfo(pair.dtype).max / 4
    point_term = (pair.amin(-2) * mask).sum(-1)
    slot_term = (pair.masked_fill(~mask.unsqueeze(-2), far).amin(-1) * weight).sum(-1)
    return point_term + slot_term


def search_candidates(
    weight: Tensor, canonical: Tensor, target: Tensor, mask: Tensor, mismatch: Tensor, candidates: Tensor, keep: int = 1
) -> tuple[Tensor, Tensor]:
    """The `keep` best candidate matrices per sample (B, T, 3, 3), each with the translation
    that matches the centroids (B, T, 3)."""
    real = mask.float()
    count = real.sum(1, keepdim=True).clamp(min=1)
    point_centre = (target * real.unsqueeze(-1)).sum(1) / count
    slot_centre = (canonical * weight.unsqueeze(-1)).sum(1) / weight.sum(1, keepdim=True).clamp(min=1e-6)
    a = canonical - slot_centre.unsqueeze(1)  # (B, K, 3)
    b = target - point_centre.unsqueeze(1)
    # Laid out (B, K slots, J, K points) so that Q a for every candidate is one matmul and the
    # dot products one batched matmul per sample, not B x J tiny ones.
    slots, count_j = a.shape[1], len(candidates)
    turned = (-2 * a @ candidates.transpose(1, 2).permute(1, 0, 2).reshape(3, -1)).view(-1, slots * count_j, 3)
    dots = (turned @ b.transpose(1, 2)).view(-1, slots, count_j, slots)
    # |Qa|^2 = |a|^2: everything but the dot product is the same for every candidate, so it is
    # added in one pass over the (B, K, J, K) tensor (which is what the search's time goes to).
    fixed = a.pow(2).sum(-1)[:, :, None] + b.pow(2).sum(-1)[:, None, :] + mismatch
    pair = (dots + fixed.unsqueeze(2)).transpose(1, 2)  # (B, J, K slots, K points)
    cost = chamfer_cost(pair, weight.unsqueeze(1), mask.unsqueeze(1))
    rotation = candidates[cost.topk(min(keep, count_j), dim=1, largest=False).indices]  # (B, T, 3, 3)
    translation = point_centre.unsqueeze(1) - torch.einsum("btxy,by->btx", rotation, slot_centre)
    return rotation, translation


def best_pose(
    inputs: tuple[Tensor, ...], candidates: Tensor, starts: int = REFINE_STARTS, rounds: int = REFINE_ROUNDS
) -> tuple[Tensor, Tensor]:
    """The lowest-cost pose per sample after refining each of its best few candidates.

    `inputs`: presence weights (B, K), canonical slots (B, K, 3), points in cells (B, K, 3),
    mask (B, K), descriptor mismatch (B, K, K). Starting Procrustes from several candidates
    matters: from the single best one it settled in a wrong pose for ~5% of random chains.
    """
    rotation, translation = search_candidates(*inputs, candidates, keep=starts)
    batch, kept = rotation.shape[:2]  # `starts`, or every candidate when there are fewer
    repeated = tuple(t.repeat_interleave(kept, dim=0) for t in inputs)
    rotation, translation = rotation.flatten(0, 1), translation.flatten(0, 1)
    for _ in range(rounds):
        rotation, translation = refine_pose(rotation, translation, *repeated)
    cost, _ = pose_cost(rotation, translation, *repeated)
    best = cost.view(batch, kept).argmin(1) + torch.arange(batch, device=cost.device) * kept
    return rotation[best], translation[best]


def pose_cost(
    rotation: Tensor,
    translation: Tensor,
    weight: Tensor,
    canonical: Tensor,
    target: Tensor,
    mask: Tensor,
    mismatch: Tensor,
) -> tuple[Tensor, Tensor]:
    """(B,) chamfer cost of a pose and the (B, K slots, K points) total pair costs."""
    posed = torch.einsum("bxy,bky->bkx", rotation, canonical) + translation.unsqueeze(1)
    pair = (posed.unsqueeze(2) - target.unsqueeze(1)).pow(2).sum(-1) + mismatch
    return chamfer_cost(pair, weight, mask), pair


def refine_pose(
    rotation: Tensor,
    translation: Tensor,
    weight: Tensor,
    canonical: Tensor,
    target: Tensor,
    mask: Tensor,
    mismatch: Tensor,
) -> tuple[Tensor, Tensor]:
    """One round of orthogonal Procrustes on each point's best slot; kept where it lowers the cost."""
    cost, pair = pose_cost(rotation, translation, weight, canonical, target, mask, mismatch)
    slot = pair.argmin(1)  # (B, K points): each point's best slot
    matched = canonical.gather(1, slot.unsqueeze(-1).expand(-1, -1, 3))
    real = mask.float().unsqueeze(-1)
    count = real.sum(1).clamp(min=1)
    matched_centre, point_centre = (matched * real).sum(1) / count, (target * real).sum(1) / count
    spread = (target - point_centre.unsqueeze(1)) * real
    covariance = torch.einsum("bkx,bky->bxy", spread, matched - matched_centre.unsqueeze(1))
    # A diverging model's NaN must reach the loss (and the trainer's finite check), not stop the
    # SVD, which raises on a non-finite matrix: such samples keep their pose.
    finite = torch.isfinite(covariance).flatten(1).all(1)
    identity = torch.eye(3, device=covariance.device, dtype=covariance.dtype)
    u, _, vh = torch.linalg.svd(torch.where(finite.view(-1, 1, 1), covariance, identity))
    new_rotation = u @ vh  # maps the matched canonical slots onto the points (reflections allowed)
    new_translation = point_centre - torch.einsum("bxy,by->bx", new_rotation, matched_centre)
    new_cost, _ = pose_cost(new_rotation, new_translation, weight, canonical, target, mask, mismatch)
    better = (new_cost < cost) & finite & torch.isfinite(new_rotation).flatten(1).all(1)
    return (
        torch.where(better.view(-1, 1, 1), new_rotation, rotation),
        torch.where(better.view(-1, 1), new_translation, translation),
    )
