"""Figures that say why a model fails: which classes it confuses, which latent dimensions it
uses, what lies between two samples in its latent space, and its best and worst reconstructions."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import plotly.graph_objects as go

from vae_lab.viz.figures import reconstruction_figure, voxel_panels

CLASS_NAMES = ["empty", "class 1", "class 2", "class 3", "class 4"]


def confusion_figure(
    confusion: np.ndarray, *, title: str = "Cell classes: true (rows) vs reconstructed (columns)"
) -> go.Figure:
    """Row-normalised confusion of cell classes; hover shows counts. Empty cells dominate the
    counts, so colour is the share of each true class, which makes rare classes readable."""
    counts = np.asarray(confusion, dtype=np.int64)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    text = [[f"{shares[i, j]:.1%}" for j in range(len(CLASS_NAMES))] for i in range(len(CLASS_NAMES))]
    figure = go.Figure(
        go.Heatmap(
            z=shares,
            x=CLASS_NAMES,
            y=CLASS_NAMES,
            text=text,
            texttemplate="%{text}",
            customdata=counts,
            hovertemplate="true %{y}, reconstructed %{x}: %{customdata:,} cells (%{text} of %{y})<extra></extra>",
            colorscale="Blues",
            zmin=0,
            zmax=1,
            colorbar={"title": "share of row"},
        )
    )
    figure.update_layout(
        title=title,
        xaxis_title="reconstructed class",
        yaxis_title="true class",
        yaxis_autorange="reversed",
        template="plotly_white",
        width=640,
        height=560,
    )
    return figure


def kl_per_dimension_figure(
    kl_per_dim: np.ndarray, *, threshold: float = 0.1, title: str = "KL per latent dimension (validation mean)"
) -> go.Figure:
    """One bar per latent dimension; dimensions below the line carry (almost) nothing."""
    kl = np.asarray(kl_per_dim, dtype=float)
    colours = ["#0072B2" if value > threshold else "#BBBBBB" for value in kl]
    figure = go.Figure(
        go.Bar(
            x=[f"z{i}" for i in range(len(kl))],
            y=kl,
            marker_color=colours,
            hovertemplate="%{x}: %{y:.3f} nats<extra></extra>",
        )
    )
    figure.add_hline(
        y=threshold, line_dash="dot", annotation_text=f"{threshold} nats: unused below", annotation_position="top left"
    )
    used = int((kl > threshold).sum())
    figure.update_layout(
        title=f"{title}: {used} of {len(kl)} dimensions used",
        xaxis_title="latent dimension",
        yaxis_title="KL (nats)",
        template="plotly_white",
        width=max(500, 40 * len(kl) + 200),
        height=450,
    )
    return figure


def interpolation_figure(
    path: np.ndarray, *, start_name: str, end_name: str, title: str = "Latent interpolation"
) -> go.Figure:
    """Grids decoded along a straight line in latent space between two validation samples'
    means; the first and last panels are the two samples' reconstructions."""
    steps = len(path)
    names = [
        start_name if i == 0 else end_name if i == steps - 1 else f"t = {i / (steps - 1):.2f}" for i in range(steps)
    ]
    titles = [f"{name}: {int((grid > 0).sum())} cells" for name, grid in zip(names, path)]
    return voxel_panels(list(path), titles, title=title)


def gallery_figure(
    originals: np.ndarray, reconstructions: np.ndarray, names: Sequence[str], *, title: str = "Reconstruction gallery"
) -> go.Figure:
    """A few samples of each label and the worst reconstructions, input above output."""
    return reconstruction_figure(originals, reconstructions, title=title, names=names)
