"""The invariant point-set encoder that `pose` and `split` read their content latent through.

It sees a padded point set only through what no rotation, reflection, translation or
reordering of the points changes: each point's descriptor and its distances to the other points
(in cells, expanded on radial basis functions). Three rounds of distance-filtered messages
between the points (SchNet-like), then a masked sum and max over them and one layer: (B, W)
features for the latent heads. A turned or mirrored copy of a set gets the same features to
float precision (`tests/models/test_pose.py`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from vae_lab.models.heads import MAX_VALUE

RBF_SPACING = 0.25  # cells between radial basis centres: sqrt(2) and sqrt(3) cells stay apart
MESSAGE_ROUNDS = 3


@dataclass
class PairIndex:
    """Where each pair's squared distance falls in the distance table: rows `low` and `high`
    (B, K, K) and the fraction between them (B, K, K, 1). Pairs that send no message (padding,
    a point to itself) point at the table's last row, which is zero."""

    low: Tensor
    high: Tensor
    frac: Tensor

    @classmethod
    def of(cls, xyz: Tensor, mask: Tensor, top: int) -> PairIndex:
        square = (xyz.unsqueeze(2) - xyz.unsqueeze(1)).pow(2).sum(-1).clamp(max=top)
        floor = square.floor()
        eye = torch.eye(mask.shape[1], dtype=torch.bool, device=mask.device)
        real = mask.unsqueeze(2) & mask.unsqueeze(1) & ~eye
        low = torch.where(real, floor.long(), top + 1)
        high = torch.where(real, (low + 1).clamp(max=top), top + 1)
        return cls(low=low, high=high, frac=(square - floor).unsqueeze(-1))


class DistanceMessages(nn.Module):
    """One round of messages between points, filtered by their distance (SchNet-like)."""

    def __init__(self, width: int, basis: int):
        super().__init__()
        # A linear map of the radial basis is already a smooth learned function of distance.
        self.filter = nn.Linear(basis, width)
        self.source = nn.Linear(width, width)
        self.update = nn.Sequential(nn.Linear(2 * width, width), nn.SiLU(), nn.Linear(width, width))

    def forward(self, hidden: Tensor, rbf_table: Tensor, pairs: PairIndex) -> Tensor:
        # The filter of every squared distance in the table (and a zero row for absent pairs),
        # then looked up per pair: (B, K, K, W), i receives from j.
        table = self.filter(rbf_table)
        table = torch.cat([table, table.new_zeros(1, table.shape[1])])
        weights = torch.lerp(
            nn.functional.embedding(pairs.low, table),
            nn.functional.embedding(pairs.high, table),
            pairs.frac.to(table.dtype),
        )
        messages = (weights * self.source(hidden).unsqueeze(1)).sum(2)
        return hidden + self.update(torch.cat([hidden, messages], dim=-1))


class DistanceEncoder(nn.Module):
    """(B, K, 3) positions in cells, (B, K, 4) descriptor one-hots, (B, K) mask -> (B, W)."""

    def __init__(self, width: int, edge: int):
        super().__init__()
        centres = torch.arange(0.0, math.sqrt(3) * (edge - 1) + RBF_SPACING, RBF_SPACING)
        # Points sit on cells, so two of them are apart by one of the integer squared distances
        # 0 .. 3 (D-1)^2: the radial basis is tabulated there (and read off linearly between,
        # for points off the cells). Looking a filter up per pair instead of mapping each pair's
        # basis made a training epoch on fragments 1.3x faster (benchmarks/RESULTS.md, pose section).
        self.largest_square = 3 * (edge - 1) ** 2
        distance = torch.arange(self.largest_square + 1, dtype=torch.float32).sqrt()
        table = torch.exp(-0.5 / RBF_SPACING**2 * (distance.unsqueeze(-1) - centres).pow(2))
        self.register_buffer("rbf_table", table, persistent=False)
        self.embed = nn.Linear(MAX_VALUE, width)
        self.rounds = nn.ModuleList(DistanceMessages(width, len(centres)) for _ in range(MESSAGE_ROUNDS))
        self.readout = nn.Sequential(nn.Linear(2 * width, width), nn.SiLU())

    def forward(self, xyz: Tensor, descriptors: Tensor, mask: Tensor) -> Tensor:
        pairs = PairIndex.of(xyz, mask, self.largest_square)
        hidden = self.embed(descriptors)
        for messages in self.rounds:
            hidden = messages(hidden, self.rbf_table, pairs)
        real = mask.unsqueeze(-1)
        summed = (hidden * real).sum(1)
        peak = hidden.masked_fill(~real, float("-inf")).amax(1)
        peak = torch.where(mask.any(1, keepdim=True), peak, torch.zeros_like(peak))
        return self.readout(torch.cat([summed, peak], dim=-1))


def rename_old_keys(state_dict: dict, prefix: str, old_to_new: dict[str, str]) -> None:
    """Load weights saved before a module moved: `prefix + old...` keys become `prefix + new...`."""
    for key in [k for k in state_dict if k.startswith(prefix)]:
        rest = key[len(prefix) :]
        for old, new in old_to_new.items():
            if rest.startswith(old):
                state_dict[prefix + new + rest[len(old) :]] = state_dict.pop(key)
                break
