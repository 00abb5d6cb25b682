"""Reconstruction loss for set-valued (sparse) families such as `pointnet`.

The decoder emits K slots in a fixed order while the target is an unordered set of at most K
points, so the loss must not depend on either order. Each sample's slots are matched to its
real points with the Hungarian algorithm on exactly the costs the loss then charges; the loss
is therefore the minimum over all assignments, which no permutation of the points can change
(a canonical order, e.g. sorted by position, would instead make the loss jump whenever two
predicted points swap rank).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import Tensor


def set_reconstruction_loss(recon: Tensor, points: Tensor, mask: Tensor) -> Tensor:
    """Per-sample loss (B,), summed over slots and points like the dense losses sum over cells.

    BCE on presence (matched slots -> 1, the rest -> 0), plus for each real point the squared
    position error (summed over x, y, z) and the cross-entropy of its descriptor.

    Args:
        recon: (B, K, 8) slots: presence logit, x, y, z, 4 descriptor logits.
        points: (B, K, 7) x, y, z and the descriptor one-hot, zero-padded.
        mask: (B, K) True where `points` holds a real point.
    """
    presence, position, log_probs = recon[..., 0], recon[..., 1:4], recon[..., 4:].log_softmax(dim=-1)
    target_position, target_onehot = points[..., :3], points[..., 3:]
    with torch.no_grad():
        cost = _pair_costs(presence, position, log_probs, target_position, target_onehot)
    slot_of_point = _match_slots(cost, mask).to(recon.device)

    index = slot_of_point.unsqueeze(-1)
    matched_position = position.gather(1, index.expand(-1, -1, 3))
    matched_log_probs = log_probs.gather(1, index.expand(-1, -1, log_probs.shape[-1]))
    point_loss = ((matched_position - target_position) ** 2).sum(-1) - (matched_log_probs * target_onehot).sum(-1)
    point_loss = torch.where(mask, point_loss, torch.zeros_like(point_loss)).sum(dim=1)

    # Padded points all point at slot 0 but add 0, so only matched slots become 1.
    presence_target = torch.zeros_like(presence).scatter_add(1, slot_of_point, mask.to(presence.dtype))
    presence_loss = F.binary_cross_entropy_with_logits(presence, presence_target, reduction="none").sum(dim=1)
    return presence_loss + point_loss


def _pair_costs(
    presence: Tensor, position: Tensor, log_probs: Tensor, target_position: Tensor, target_onehot: Tensor
) -> Tensor:
    """(B, K slots, K points): what matching slot i to point j adds to the loss.

    Switching a slot's presence target from 0 to 1 changes its BCE by softplus(-p) - softplus(p)
    = -p; the position and descriptor terms are those of `set_reconstruction_loss`.
    """
    squared_error = ((position.unsqueeze(2) - target_position.unsqueeze(1)) ** 2).sum(-1)
    cross_entropy = -log_probs @ target_onehot.transpose(1, 2)
    return squared_error + cross_entropy - presence.unsqueeze(2)


def _match_slots(cost: Tensor, mask: Tensor) -> Tensor:
    """(B, K) long: the slot assigned to each real point (0 for padding), on the CPU."""
    cost_np = cost.detach().to("cpu", torch.float64).numpy()
    mask_np = mask.detach().cpu().numpy()
    slot_of_point = np.zeros(mask_np.shape, dtype=np.int64)
    for b in range(cost_np.shape[0]):
        real = np.flatnonzero(mask_np[b])
        if real.size == 0:
            continue
        slots, columns = linear_sum_assignment(cost_np[b][:, real])
        slot_of_point[b, real[columns]] = slots
    return torch.from_numpy(slot_of_point)
