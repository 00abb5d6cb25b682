"""Reconstruction losses, the KL term and class weights: pure functions of tensors.

One reduction for every loss: each returns one value per sample (shape (B,)), the sum of its
per-cell (or per-slot) terms, and callers average over the batch. A sample's loss is therefore
"how much error in this whole grid", whatever the loss, and beta weighs the KL against it on
the same scale. Set-level losses (Tversky) are scaled to that unit too (see `tversky_loss`).

Which head each loss trains is in `vae_lab.choices.LOSS_HEAD`; the tables at the bottom map
names to functions. Adding a loss: a function here, its row in a table and in `choices`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from itertools import combinations
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from vae_lab.choices import NUM_CLASSES, ClassWeighting

EPSILON = 1e-6


@dataclass(frozen=True)
class LossSettings:
    """The reconstruction loss of a trial and its options (defaults: the papers' values)."""

    name: str = "mse"
    focal_alpha: float = 0.25  # Lin et al. 2017
    focal_gamma: float = 2.0
    brock_gamma: float = 0.97  # Brock et al. 2016
    tversky_alpha: float = 0.5  # 0.5 / 0.5 is the Dice loss
    tversky_beta: float = 0.5


def class_weights(grid: Tensor, scheme: ClassWeighting) -> Tensor | None:
    """Per-class weights (5,) from the class frequencies of a training grid, or None.

    Empty cells are >99% of a sparse grid, so an unweighted loss is minimised by predicting
    nothing at all. "log" is the journal's fix: w_c = 1 + ln(total / count_c), a boost that
    grows slowly with rarity. "balanced" is inverse frequency (total / (5 * count_c)),
    normalised so empty cells weigh 1: much stronger, it trades false positives for recall.
    """
    if scheme == "none":
        return None
    counts = torch.bincount(grid.reshape(-1).long(), minlength=NUM_CLASSES).double().clamp(min=1)
    total = counts.sum()
    weights = 1 + torch.log(total / counts) if scheme == "log" else total / (NUM_CLASSES * counts)
    return (weights / weights[0]).float().to(grid.device)


def descriptor_weights(grid: Tensor, scheme: ClassWeighting) -> Tensor | None:
    """Class weights for losses that only see occupied cells (the set loss), as a (5,) tensor.

    Counted over the occupied cells only and normalised so the commonest descriptor weighs 1
    (entry 0, for empty cells, is 1 and unused): among occupied cells the imbalance is mild, so
    these weights are gentle where the dense ones must fight >99% empty cells.
    """
    if scheme == "none":
        return None
    counts = torch.bincount(grid.reshape(-1).long(), minlength=NUM_CLASSES)[1:].double().clamp(min=1)
    total = counts.sum()
    weights = 1 + torch.log(total / counts) if scheme == "log" else total / ((NUM_CLASSES - 1) * counts)
    weights = weights / weights.min()
    return torch.cat([torch.ones(1, dtype=weights.dtype), weights]).float().to(grid.device)


# --- the KL term -------------------------------------------------------------------------------


def kl_per_dim(mu: Tensor, logvar: Tensor) -> Tensor:
    """(B, L) KL(q(z|x) || N(0, I)) of each latent dimension, in nats."""
    return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp())


def kl_divergence(mu: Tensor, logvar: Tensor) -> Tensor:
    """(B,) KL(q(z|x) || N(0, I)) in nats, summed over latent dimensions."""
    return kl_per_dim(mu, logvar).sum(dim=1)


def kl_penalty(mu: Tensor, logvar: Tensor, free_bits: float = 0.0) -> Tensor:
    """The KL the objective charges, a batch mean: with free bits (Kingma et al. 2016) each
    dimension's batch-mean KL below `free_bits` nats costs nothing, so no dimension is pushed
    to collapse before it carries information."""
    per_dim = kl_per_dim(mu, logvar).mean(dim=0)
    if free_bits > 0:
        per_dim = per_dim.clamp(min=free_bits)
    return per_dim.sum()


# --- scalar head: one logit per cell, sigmoid(logit) is the value scaled to [0, 1] -----------------


def _weighted_sum(per_cell: Tensor, cell_weights: Tensor | None) -> Tensor:
    if cell_weights is not None:
        per_cell = per_cell * cell_weights
    return per_cell.flatten(1).sum(dim=1)


def mse_loss(logits: Tensor, target: Tensor, cell_weights: Tensor | None = None) -> Tensor:
    return _weighted_sum((torch.sigmoid(logits) - target).pow(2), cell_weights)


def bce_loss(logits: Tensor, target: Tensor, cell_weights: Tensor | None = None) -> Tensor:
    return _weighted_sum(F.binary_cross_entropy_with_logits(logits, target, reduction="none"), cell_weights)


def focal_loss(
    logits: Tensor, target: Tensor, cell_weights: Tensor | None = None, *, alpha: float = 0.25, gamma: float = 2.0
) -> Tensor:
    """Binary focal loss (Lin et al. 2017) on soft targets: easy cells (mostly the empty ones)
    are down-weighted by (1 - p_t)^gamma so the rare occupied cells drive the gradient."""
    p = torch.sigmoid(logits)
    log_p, log_not_p = F.logsigmoid(logits), F.logsigmoid(-logits)
    per_cell = -(alpha * target * (1 - p).pow(gamma) * log_p + (1 - alpha) * (1 - target) * p.pow(gamma) * log_not_p)
    return _weighted_sum(per_cell, cell_weights)


def brock_loss(logits: Tensor, target: Tensor, *, gamma: float = 0.97) -> Tensor:
    """Brock et al. 2016's weighted binary cross-entropy: gamma weighs missed occupied cells
    against false ones (0.97: a miss costs ~32x a false positive)."""
    per_cell = -(gamma * target * F.logsigmoid(logits) + (1 - gamma) * (1 - target) * F.logsigmoid(-logits))
    return per_cell.flatten(1).sum(dim=1)


def tversky_loss(logits: Tensor, target: Tensor, *, alpha: float = 0.5, beta: float = 0.5) -> Tensor:
    """Soft Tversky loss on the occupied cells (alpha weighs false positives, beta misses).

    1 - TI is a share of the sample's cells; it is multiplied by the number of occupied target
    cells so that, like the summed losses, it counts cells' worth of error per sample.
    """
    p = torch.sigmoid(logits).flatten(1)
    t = target.flatten(1)
    tp, fp, fn = (p * t).sum(1), (p * (1 - t)).sum(1), ((1 - p) * t).sum(1)
    index = (tp + EPSILON) / (tp + alpha * fp + beta * fn + EPSILON)
    occupied = (t > 0).sum(1).clamp(min=1).to(p.dtype)
    return (1 - index) * occupied


# --- categorical head: five logits per cell ------------------------------------------------------


def cross_entropy_loss(logits: Tensor, classes: Tensor, weights: Tensor | None = None) -> Tensor:
    """Cross-entropy against the class of each cell (class-weighted when `weights` is given)."""
    return F.cross_entropy(logits, classes, weight=weights, reduction="none").flatten(1).sum(dim=1)


def focal_cross_entropy_loss(
    logits: Tensor, classes: Tensor, weights: Tensor | None = None, *, gamma: float = 2.0
) -> Tensor:
    """Multi-class focal loss: cross-entropy scaled by (1 - p_true)^gamma, then class-weighted."""
    log_p = F.log_softmax(logits, dim=1).gather(1, classes.unsqueeze(1)).squeeze(1)
    per_cell = -(1 - log_p.exp()).pow(gamma) * log_p
    if weights is not None:
        per_cell = per_cell * weights[classes]
    return per_cell.flatten(1).sum(dim=1)


# --- the tables heads read --------------------------------------------------------------------------

# (logits (B, 1, ...), value target (B, 1, ...), per-cell class weights or None, settings) -> (B,)
ScalarLoss = Callable[[Tensor, Tensor, "Tensor | None", LossSettings], Tensor]
SCALAR_LOSSES: dict[str, ScalarLoss] = {
    "mse": lambda x, t, w, s: mse_loss(x, t, w),
    "bce": lambda x, t, w, s: bce_loss(x, t, w),
    "focal": lambda x, t, w, s: focal_loss(x, t, w, alpha=s.focal_alpha, gamma=s.focal_gamma),
    "brock": lambda x, t, w, s: brock_loss(x, t, gamma=s.brock_gamma),
    "tversky": lambda x, t, w, s: tversky_loss(x, t, alpha=s.tversky_alpha, beta=s.tversky_beta),
}
# (logits (B, 5, ...), classes (B, ...) int64, class weights (5,) or None, settings) -> (B,)
CategoricalLoss = Callable[[Tensor, Tensor, "Tensor | None", LossSettings], Tensor]
CATEGORICAL_LOSSES: dict[str, CategoricalLoss] = {
    "ce": lambda x, c, w, s: cross_entropy_loss(x, c),
    "weighted_ce": lambda x, c, w, s: cross_entropy_loss(x, c, w),
    "focal_ce": lambda x, c, w, s: focal_cross_entropy_loss(x, c, w, gamma=s.focal_gamma),
}


# --- sparse families: a set of K slots matched to a set of at most K points ----------------------
#
# The decoder emits K slots in a fixed order while the target is an unordered set, so the loss
# must not depend on either order. Each sample's slots are matched to its real points with the
# Hungarian algorithm on exactly the costs the loss then charges; the loss is therefore the
# minimum over all assignments, which no permutation of the points can change (a canonical
# order, e.g. sorted by position, would make the loss jump whenever two predicted points swap).
#
# A slot is (presence logit, D logits for x, D for y, D for z, 4 descriptor logits): positions
# are classified per axis rather than regressed. A regressed position in [0, 1] lands on the
# wrong cell with an error of 1 / (2 (D - 1)) = 0.05, whose squared error (0.0025) the loss
# barely notices; a per-axis cross-entropy charges a wrong cell in full.


def slot_parts(recon: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Split (B, K, 1 + 3D + 4) slots into presence (B, K), position logits (B, K, 3, D) and
    descriptor logits (B, K, 4)."""
    edge = (recon.shape[-1] - 1 - (NUM_CLASSES - 1)) // 3
    presence = recon[..., 0]
    position = recon[..., 1 : 1 + 3 * edge].unflatten(-1, (3, edge))
    return presence, position, recon[..., 1 + 3 * edge :]


def point_cells(points: Tensor, edge: int) -> Tensor:
    """(B, K, 3) int64 cell indices of the points' x, y, z (stored scaled to [0, 1])."""
    return (points[..., :3] * max(edge - 1, 1)).round().long().clamp(0, edge - 1)


def set_reconstruction_loss(recon: Tensor, points: Tensor, mask: Tensor, weights: Tensor | None = None) -> Tensor:
    """(B,) per-sample loss, summed over slots and points like the dense losses sum over cells.

    BCE on presence (matched slots -> 1, the rest -> 0), plus for each real point the
    cross-entropy of its cell on each axis and of its descriptor (times the descriptor's class
    weight, when `weights` (5,) are given; see `descriptor_weights`).

    Args:
        recon: (B, K, 1 + 3D + 4) slots (see above).
        points: (B, K, 7) x, y, z scaled to [0, 1] and the descriptor one-hot, zero-padded.
        mask: (B, K) True where `points` holds a real point.
    """
    recon = recon.float()
    presence, position, descriptor = slot_parts(recon)
    position_log_p, descriptor_log_p = position.log_softmax(-1), descriptor.log_softmax(-1)
    cells, onehot = point_cells(points, position.shape[-1]), points[..., 3:]
    if weights is not None:
        onehot = onehot * weights[1:].to(onehot.dtype)  # a weighted one-hot weighs that point's descriptor term
    with torch.no_grad():
        cost = _pair_costs(presence, position_log_p, descriptor_log_p, cells, onehot)
    slot_of_point = _match_slots(cost, mask).to(recon.device)

    index = slot_of_point.unsqueeze(-1)
    matched_position = position_log_p.gather(1, index.unsqueeze(-1).expand(-1, -1, *position_log_p.shape[2:]))
    matched_descriptor = descriptor_log_p.gather(1, index.expand(-1, -1, descriptor_log_p.shape[-1]))
    position_loss = -matched_position.gather(-1, cells.unsqueeze(-1)).squeeze(-1).sum(-1)
    point_loss = position_loss - (matched_descriptor * onehot).sum(-1)
    point_loss = torch.where(mask, point_loss, torch.zeros_like(point_loss)).sum(dim=1)

    # Padded points all point at slot 0 but add 0, so only matched slots become 1.
    presence_target = torch.zeros_like(presence).scatter_add(1, slot_of_point, mask.to(presence.dtype))
    presence_loss = F.binary_cross_entropy_with_logits(presence, presence_target, reduction="none").sum(dim=1)
    return presence_loss + point_loss


def _pair_costs(
    presence: Tensor, position_log_p: Tensor, descriptor_log_p: Tensor, cells: Tensor, onehot: Tensor
) -> Tensor:
    """(B, K slots, K points): what matching slot i to point j adds to the loss.

    Switching a slot's presence target from 0 to 1 changes its BCE by softplus(-p) - softplus(p)
    = -p; the position and descriptor terms are those of `set_reconstruction_loss`.
    """
    # position_log_p (B, K, 3, D); cells (B, K, 3) -> log p of point j's cell under slot i, per axis.
    batch, slots, axes, edge = position_log_p.shape
    picked = position_log_p.unsqueeze(2).expand(batch, slots, cells.shape[1], axes, edge)
    index = cells.unsqueeze(1).expand(batch, slots, cells.shape[1], axes).unsqueeze(-1)
    position_cost = -picked.gather(-1, index).squeeze(-1).sum(-1)
    descriptor_cost = -descriptor_log_p @ onehot.transpose(1, 2)
    return position_cost + descriptor_cost - presence.unsqueeze(2)


# Exact matching on the device: dynamic programming over subsets of slots. Points are placed one
# at a time; after placing j points the state is the set of j slots they took, and its value the
# cheapest way to take exactly those slots. Padding points cost 0 in every slot, so the cheapest
# full assignment of K points to K slots is the cheapest assignment of the real points (the same
# optimum as the Hungarian algorithm; ties may pick a different assignment of equal cost).
# Work per sample: sum_j C(K, j) * j = K 2^(K-1) (K = 8: 1,024; 12: 24,576), vectorised over the
# batch, no host round-trip. It runs on accelerators up to DEVICE_MATCH_SLOTS slots. On the CPU,
# where scipy needs no round-trip either, scipy's compiled loop is as fast or faster (batch 256,
# one thread: K = 8: 1.8 ms against 2.3; K = 12: 2.1 against 463; benchmarks/bench_matching.py).
DEVICE_MATCH_SLOTS = 12


@lru_cache(maxsize=None)
def _subset_levels(slots: int) -> tuple[tuple[Tensor, Tensor], ...]:
    """Per level j = 1..K, over the subsets of j slots (in a fixed order): (slot, previous) (C(K, j), j)
    int64: the j slots the subset holds, and the index, in level j - 1, of the subset without each."""
    levels = [list(combinations(range(slots), j)) for j in range(slots + 1)]
    position = [{subset: i for i, subset in enumerate(level)} for level in levels]
    tables = []
    for j in range(1, slots + 1):
        slot = torch.tensor(levels[j], dtype=torch.int64).view(len(levels[j]), j)
        without = [[position[j - 1][subset[:k] + subset[k + 1 :]] for k in range(j)] for subset in levels[j]]
        previous = torch.tensor(without, dtype=torch.int64).view(len(levels[j]), j)
        tables.append((slot, previous))
    return tuple(tables)


def _match_slots_on_device(cost: Tensor, mask: Tensor) -> Tensor:
    """(B, K) long: the slot of each point in a cheapest assignment, on `cost`'s device."""
    batch, slots, points = cost.shape
    cost = torch.where(mask.unsqueeze(1), cost, torch.zeros_like(cost)).float()
    cost = torch.cat([cost, cost.new_zeros(batch, slots, slots - points)], dim=2)  # fewer points than slots
    levels = [(slot.to(cost.device), previous.to(cost.device)) for slot, previous in _subset_levels(slots)]
    # Batch last: every gather below then picks whole rows of B contiguous values.
    cost_by_point = cost.permute(2, 1, 0).contiguous()  # (point, slot, B)
    best = cost.new_zeros(1, batch)  # level 0: the empty subset costs nothing
    choices = []
    for j, (slot, previous) in enumerate(levels):
        # Point j takes slot slot[s, k] of subset s; the other j slots came from subset previous[s, k].
        candidates = best[previous] + cost_by_point[j][slot]  # (C(K, j + 1), j + 1, B)
        best, choice = candidates.min(dim=1)
        choices.append(choice)
    slot_of_point = torch.zeros(batch, slots, dtype=torch.int64, device=cost.device)
    subset = torch.zeros(batch, dtype=torch.int64, device=cost.device)  # level K: the one full subset
    samples = torch.arange(batch, device=cost.device)
    for j in range(slots - 1, -1, -1):
        slot, previous = levels[j]
        k = choices[j][subset, samples]
        slot_of_point[:, j] = slot[subset, k]
        subset = previous[subset, k]
    return torch.where(mask, slot_of_point[:, :points], torch.zeros_like(slot_of_point[:, :points]))


def _match_slots(cost: Tensor, mask: Tensor) -> Tensor:
    """(B, K) long: the slot assigned to each real point (0 for padding), on `cost`'s device.

    `cost` is (B, K slots, P points) with P <= K. Exact either way: on an accelerator up to
    DEVICE_MATCH_SLOTS slots, else by scipy's Hungarian algorithm on the CPU.
    """
    if cost.device.type != "cpu" and cost.shape[1] <= DEVICE_MATCH_SLOTS and cost.shape[2] <= cost.shape[1]:
        return _match_slots_on_device(cost, mask)
    return _match_slots_on_cpu(cost, mask).to(cost.device)


def _match_slots_on_cpu(cost: Tensor, mask: Tensor) -> Tensor:
    """The same assignment by scipy's Hungarian algorithm, one sample at a time on the CPU."""
    import numpy as np
    from scipy.optimize import linear_sum_assignment

    # A diverging model's NaN must reach the loss (and the trainer's finite check), not stop
    # scipy, which refuses a non-finite matrix: such a sample is matched on finite stand-ins.
    cost_np = np.nan_to_num(cost.detach().to("cpu", torch.float64).numpy(), nan=1e30, posinf=1e30, neginf=-1e30)
    mask_np = mask.detach().cpu().numpy()
    slot_of_point = np.zeros(mask_np.shape, dtype=np.int64)
    for b in range(cost_np.shape[0]):
        real = np.flatnonzero(mask_np[b])
        if real.size == 0:
            continue
        slots, columns = linear_sum_assignment(cost_np[b][:, real])
        slot_of_point[b, real[columns]] = slots
    return torch.from_numpy(slot_of_point)
