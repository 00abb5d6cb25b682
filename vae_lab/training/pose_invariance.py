"""`val_pose_invariance`: how far a model's latent moves when its input turns.

For up to `MAX_SAMPLES` validation samples: the mean latent distance between a sample and
`COPIES` copies of it under random rotations (uniform on SO(3), re-voxelised as `augment: so3`
does), over the median latent distance between different samples. 0: the latent ignores
orientation; 1: turning a sample moves its latent as far as swapping it for another sample.
It needs no labels. The latent is the family's content part (`metric_latent`: the whole
posterior mean, or all but a family's pose part); a family with a pose part (`split`) also gets
the same ratio of that part, `pose_part_invariance`, reported apart.

`content_shift` is its training-time counterpart, the term `content_consistency` weighs.
"""

from __future__ import annotations

import torch
from torch import Tensor

from vae_lab.device import autocast
from vae_lab.models.base import BaseVAE, Batch, VAEOutput
from vae_lab.training.augment import points_from_grid, random_rotations, revoxelise
from vae_lab.training.batches import TensorData

MAX_SAMPLES = 500
# The samples of a training batch that `content_shift` encodes a second time, as they came: the
# whole batch of 128 nearly doubled a split epoch (benchmarks/RESULTS.md); 32 give the spread and the pull.
SHIFT_SAMPLES = 32
COPIES = 2  # with 500 samples, 2 copies pin the mean down; each copy is a forward pass over all of them


@torch.no_grad()
def pose_invariance(
    model: BaseVAE,
    data: TensorData,
    *,
    precision: str = "fp32",
    copies: int = COPIES,
    seed: int = 0,
    max_samples: int = MAX_SAMPLES,
) -> float | None:
    """The ratio above for the first `max_samples` of `data`; None below two samples or when
    every sample has the same latent (no scale to measure against)."""
    return pose_invariances(model, data, precision=precision, copies=copies, seed=seed, max_samples=max_samples).get(
        "pose_invariance"
    )


@torch.no_grad()
def pose_invariances(
    model: BaseVAE,
    data: TensorData,
    *,
    precision: str = "fp32",
    copies: int = COPIES,
    seed: int = 0,
    max_samples: int = MAX_SAMPLES,
) -> dict[str, float]:
    """`pose_invariance` of the metric (content) latent, and for a family whose latent has a pose
    part, `pose_part_invariance` of that part (which should move: it is where the pose goes).
    Both from the same forward passes; a ratio that cannot be measured is left out."""
    n = min(len(data), max_samples)
    if n < 2:
        return {}
    model.eval()
    grid = data.grid[:n]
    slots = data.points.shape[1] if data.points is not None else None
    base, content = _latents(model, grid, slots, precision)
    parts = {"pose_invariance": slice(0, content)}
    if base.shape[1] > content:
        parts["pose_part_invariance"] = slice(content, None)
    generator = torch.Generator(device=grid.device).manual_seed(seed)
    moved = {name: torch.zeros((), device=grid.device, dtype=torch.float64) for name in parts}
    for _ in range(copies):
        turned = revoxelise(grid, random_rotations(n, generator, grid.device), torch.zeros(n, 3, device=grid.device))
        latent, _ = _latents(model, turned, slots, precision)
        for name, part in parts.items():
            moved[name] += (latent[:, part] - base[:, part]).norm(dim=1).double().mean()
    ratios = {}
    for name, part in parts.items():
        scale = torch.pdist(base[:, part].double()).median()
        if bool(scale > 0):
            ratios[name] = float(moved[name] / copies / scale)
    return ratios


def content_shift(model: BaseVAE, out: VAEOutput, original: Batch, samples: int = SHIFT_SAMPLES) -> Tensor:
    """The training-time counterpart of the ratio above (`content_consistency`): over the first
    `samples` of a batch, the mean squared distance between the content latent mean of each
    augmented sample (`out`) and that of the sample as it came (`original`, encoded only), over
    their spread (the summed variance, held fixed, so shrinking the latent does not pay). 0 for
    a one-sample batch."""
    n, content = min(samples, out.mu.shape[0]), model.content_dims
    if n < 2:
        return out.mu.new_zeros((), dtype=torch.float32)
    turned = out.mu[:n, :content].float()
    as_given = model.encode(*model.inputs(original.head(n)))[0][:, :content].float()
    spread = as_given.detach().var(dim=0).sum().clamp_min(1e-8)
    return (turned - as_given).pow(2).sum(dim=1).mean() / spread


def _latents(model: BaseVAE, grid: Tensor, slots: int | None, precision: str) -> tuple[Tensor, int]:
    """(N, L') the metric latent followed by any pose part, and the metric latent's width."""
    if slots is None:
        batch = Batch(grid=grid)
    else:
        batch = Batch(grid, *points_from_grid(grid, slots))
    with autocast(grid.device, precision):
        out = model.forward_batch(batch)
    metric = model.metric_latent(out).float()
    if not model.pose_dims:
        return metric, metric.shape[1]
    return torch.cat([metric, out.mu[:, model.content_dims :].float()], dim=1), metric.shape[1]
