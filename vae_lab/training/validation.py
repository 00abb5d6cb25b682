"""One pass over a split in eval mode (z = mu): losses, F1, occupancy, latent diagnostics.

Everything accumulates as tensors on the split's device and is read back once at the end, so
the pass costs one host sync however many batches it has. The trainer runs it every epoch on
the validation split; `vae-lab evaluate` runs the same function on a reloaded champion, which
is why the two agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from vae_lab.device import autocast
from vae_lab.losses import LossSettings, kl_per_dim
from vae_lab.models.base import BaseVAE
from vae_lab.training.batches import TensorData
from vae_lab.training.metrics import (
    active_units,
    confusion_matrix,
    exact_matches,
    kl_dimension_summary,
    macro_f1,
    occupancy_scores,
    per_class_f1,
    tradeoff_score,
)

EVAL_BATCH = 1024


@dataclass
class ValidationResult:
    """Scalar scores (names without the split prefix) and the arrays the figures need."""

    scores: dict[str, float]
    confusion: Tensor  # (5, 5) cells, rows true class, columns predicted
    kl_per_dim: np.ndarray  # (L,) mean KL of each latent dimension, nats
    latents: np.ndarray | None = None  # (N, L) the model's metric_latent (mu), when asked for
    sample_errors: np.ndarray | None = field(default=None)  # (N,) wrongly classed cells per sample

    def prefixed(self, split: str) -> dict[str, float]:
        return {f"{split}_{name}": value for name, value in self.scores.items()}


@torch.no_grad()
def validate(
    model: BaseVAE,
    data: TensorData,
    *,
    loss: LossSettings,
    beta: float,
    weights: Tensor | None = None,
    kl_scale: float = 10.0,
    precision: str = "fp32",
    keep_latents: bool = False,
    batch_size: int = EVAL_BATCH,
) -> ValidationResult:
    """Score `model` on `data` (on the data's device). Pass the training class `weights` so the
    validation loss is on the training loss's scale; `beta` is the epoch's beta."""
    model.eval()
    device = data.device
    sums = torch.zeros(3, device=device, dtype=torch.float64)  # recon, kl, exact matches
    confusion = torch.zeros(5, 5, device=device, dtype=torch.int64)
    latent_dim = model.config.latent_dim
    mu_sum, mu_square_sum, kl_dims = (torch.zeros(latent_dim, device=device, dtype=torch.float64) for _ in range(3))
    latents, errors = [], []
    for batch in data.batches(batch_size):
        with autocast(device, precision):
            out = model.forward_batch(batch)
            recon = model.reconstruction_loss(out, batch, loss, weights)
        mu, logvar = out.mu.float(), out.logvar.float()
        kl = kl_per_dim(mu, logvar)
        pred = model.predict_grid(out)
        sums += torch.stack([recon.sum(), kl.sum(), exact_matches(pred, batch.grid)]).double()
        confusion += confusion_matrix(pred, batch.grid)
        mu_sum += mu.sum(0)
        mu_square_sum += mu.pow(2).sum(0)
        kl_dims += kl.sum(0)
        if keep_latents:
            latents.append(model.metric_latent(out).float())
            errors.append((pred.flatten(1) != batch.grid.flatten(1).long()).sum(1))
    n = max(len(data), 1)
    recon_sum, kl_sum, exact = sums.tolist()  # the one host sync of the pass
    kl_dims_mean = (kl_dims / n).cpu()
    scores = {"loss": (recon_sum + beta * kl_sum) / n, "recon": recon_sum / n, "kl": kl_sum / n}
    scores.update(reconstruction_scores(confusion))
    scores["exact_match"] = exact / n
    scores["active_units"] = float(active_units(mu_sum.cpu(), mu_square_sum.cpu(), len(data)))
    summary = kl_dimension_summary(kl_dims_mean)
    scores["kl_dim_max"], scores["kl_dims_used"] = summary["max"], float(summary["used"])
    if model.pose_dims:  # the latent's two parts, apart: what the content and the pose each cost
        content = model.content_dims
        scores["kl_content"], scores["kl_pose"] = (
            float(kl_dims_mean[:content].sum()),
            float(kl_dims_mean[content:].sum()),
        )
    scores["tradeoff"] = tradeoff_score(scores["f1"], scores["kl"], latent_dim, kl_scale)
    return ValidationResult(
        scores=scores,
        confusion=confusion.cpu(),
        kl_per_dim=kl_dims_mean.numpy(),
        latents=torch.cat(latents).cpu().numpy() if latents else None,
        sample_errors=torch.cat(errors).cpu().numpy() if errors else None,
    )


def reconstruction_scores(confusion: Tensor) -> dict[str, float]:
    """Macro F1, F1 per class (`f1_c1`..`f1_c4`; left out for a class in neither the target nor
    the prediction, where F1 is undefined) and occupancy precision, recall and IoU."""
    scores = {"f1": macro_f1(confusion)}
    for cls, f1 in per_class_f1(confusion).items():
        if f1 is not None:
            scores[f"f1_c{cls}"] = f1
    occupancy = occupancy_scores(confusion)
    scores.update({f"occupancy_{name}": value for name, value in occupancy.items()})
    return scores
