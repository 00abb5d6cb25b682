"""The figures of one trial, logged to its run: what a researcher opens to judge a model.

Latent projections (PCA, UMAP when asked) coloured by label, as explorers (click a point to see
its sample and reconstruction), the confusion of cell classes, the KL of each latent dimension,
a gallery of reconstructions (a few per label and the worst ones) and a walk through the latent
space between two samples of different labels.
"""

from __future__ import annotations

import numpy as np
import torch

from vae_lab import viz
from vae_lab.data import PreparedDataset
from vae_lab.models import BaseVAE, VAEOutput
from vae_lab.study.design.spec import ArtifactSpec
from vae_lab.tracking import PlotlyAssets, Tracker
from vae_lab.training import TensorData, ValidationResult
from vae_lab.training.latent_metrics import trustworthiness

INTERPOLATION_STEPS = 7


def log_trial_figures(
    tracker: Tracker,
    run_id: str,
    model: BaseVAE,
    val: TensorData,
    final: ValidationResult,
    data: PreparedDataset,
    wanted: ArtifactSpec,
    assets: PlotlyAssets,
    title: str,
) -> dict[str, float]:
    """Log every figure the study asks for; returns metrics found on the way (UMAP trustworthiness)."""
    extra: dict[str, float] = {}
    latents = final.latents[: wanted.max_points]
    labels = val.labels[: wanted.max_points].cpu().numpy()
    mapped = None  # the mapped samples' grids and reconstructions, for the explorer's side panel
    for method, asked in (("pca", wanted.pca), ("umap", wanted.umap)):
        if asked and len(latents) >= 3:
            projection = viz.project_latents(latents, method)
            if mapped is None:
                shown = val.select(np.arange(len(latents)))
                mapped = shown.grid.cpu().numpy(), _predict(model, shown).astype(np.uint8)
            figure, parts = viz.latent_explorer(
                projection[0],
                labels,
                data.label_names,
                *mapped,
                axis=method.upper(),
                title=f"{title}: validation latents, {method.upper()} {projection[1]} (click a point)",
            )
            tracker.log_figure(run_id, figure, f"latents_{method}.html", assets, parts)
            if method == "umap" and (score := trustworthiness(latents, projection[0])) is not None:
                extra["val_trustworthiness_umap"] = score
    tracker.log_figure(
        run_id,
        viz.confusion_figure(final.confusion.numpy(), title=f"{title}: cell classes, true vs reconstructed"),
        "confusion_matrix.html",
        assets,
    )
    tracker.log_figure(
        run_id,
        viz.kl_per_dimension_figure(final.kl_per_dim, title=f"{title}: KL per latent dimension"),
        "kl_per_dimension.html",
        assets,
    )
    if wanted.reconstructions:
        indices, names = gallery_samples(
            val.labels.cpu().numpy(), final.sample_errors, data.label_names, wanted.reconstructions
        )
        shown = val.select(np.asarray(indices))
        predicted = _predict(model, shown)
        figure = viz.gallery_figure(
            shown.grid.cpu().numpy(), predicted, names, title=f"{title}: validation reconstructions"
        )
        tracker.log_figure(run_id, figure, "reconstructions.html", assets)
    if wanted.interpolation and (pair := interpolation_pair(val.labels.cpu().numpy())) is not None:
        path = _interpolate(model, val.select(np.asarray(pair)))
        a, b = (data.label_names[int(val.labels[i])] if data.label_names else f"sample {i}" for i in pair)
        figure = viz.interpolation_figure(
            path, start_name=f"{a} (#{pair[0]})", end_name=f"{b} (#{pair[1]})", title=f"{title}: latent interpolation"
        )
        tracker.log_figure(run_id, figure, "interpolation.html", assets)
    return extra


def gallery_samples(
    labels: np.ndarray, errors: np.ndarray | None, label_names: list[str], per_label: int
) -> tuple[list[int], list[str]]:
    """Indices and column names: the first `per_label` samples of each label, then the
    `per_label` worst-reconstructed samples not already shown."""
    chosen: list[int] = []
    names: list[str] = []
    for code in np.unique(labels):
        for index in np.flatnonzero(labels == code)[:per_label]:
            chosen.append(int(index))
            names.append(label_names[code] if 0 <= code < len(label_names) else f"sample {index}")
    if errors is not None:
        worst = [int(i) for i in np.argsort(-errors, kind="stable") if int(i) not in chosen and errors[i] > 0][
            :per_label
        ]
        chosen += worst
        names += [f"worst #{i}" for i in worst]  # the panel's caption adds how many cells are wrong
    return chosen, names


def interpolation_pair(labels: np.ndarray) -> tuple[int, int] | None:
    """The first sample of the most common label and the first of the next most common one."""
    codes, counts = np.unique(labels[labels >= 0], return_counts=True)
    if len(codes) < 2:
        return (0, 1) if len(labels) >= 2 else None
    first, second = codes[np.argsort(-counts, kind="stable")[:2]]
    return int(np.flatnonzero(labels == first)[0]), int(np.flatnonzero(labels == second)[0])


@torch.no_grad()
def _predict(model: BaseVAE, data: TensorData) -> np.ndarray:
    model.eval()
    return model.predict_grid(model.forward_batch(data.batch(slice(None)))).cpu().numpy()


@torch.no_grad()
def _interpolate(model: BaseVAE, ends: TensorData) -> np.ndarray:
    """Decoded grids at evenly spaced points from the first sample's posterior mean to the
    second's. The whole mean: `final.latents` hold only the content part of a split latent,
    which the decoder cannot read alone."""
    model.eval()
    mu = model.forward_batch(ends.batch(slice(None))).mu.float()
    t = torch.linspace(0, 1, INTERPOLATION_STEPS, device=mu.device).unsqueeze(1)
    z = (1 - t) * mu[0] + t * mu[1]
    out = VAEOutput(recon=model.decode(z), mu=z, logvar=torch.zeros_like(z), z=z)
    return model.predict_grid(out).cpu().numpy()
