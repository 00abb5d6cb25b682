"""Plotly figures logged as HTML artifacts: latent projections and reconstructions."""

from vae_lab.viz.figures import latent_projection_figure, project_latents, reconstruction_figure

__all__ = ["latent_projection_figure", "project_latents", "reconstruction_figure"]
