"""Plotly figures logged as HTML artifacts: latent projections, reconstructions and diagnostics."""

from vae_lab.viz.diagnostics import confusion_figure, gallery_figure, interpolation_figure, kl_per_dimension_figure
from vae_lab.viz.explorer import latent_explorer
from vae_lab.viz.figures import latent_projection_figure, project_latents, reconstruction_figure

__all__ = [
    "confusion_figure",
    "gallery_figure",
    "interpolation_figure",
    "kl_per_dimension_figure",
    "latent_explorer",
    "latent_projection_figure",
    "project_latents",
    "reconstruction_figure",
]
