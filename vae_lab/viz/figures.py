"""Figures a researcher reads to judge a latent space and a reconstruction.

Projections are computed here (PCA always; UMAP when asked, since its first call in a process
spends ~20 s compiling) and drawn with plotly so they open interactively from the MLflow UI.
"""

from __future__ import annotations

from typing import Literal, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

# One colour per class 1-4, readable on white and for common colour-vision deficiencies.
CLASS_COLOURS = {1: "#0072B2", 2: "#E69F00", 3: "#009E73", 4: "#CC79A7"}


def project_latents(latents: np.ndarray, method: Literal["pca", "umap"] = "pca", seed: int = 0) -> tuple[np.ndarray, str]:
    """2-D projection of (N, latent_dim) latents and axis-title suffix (variance explained for PCA)."""
    if latents.shape[1] <= 2 and method == "pca":
        padded = np.zeros((len(latents), 2), dtype=np.float32)
        padded[:, : latents.shape[1]] = latents
        return padded, "(latent dims as is)"
    if method == "umap":
        import umap

        n_neighbors = max(2, min(15, len(latents) - 1))
        reducer = umap.UMAP(n_components=2, n_neighbors=n_neighbors, random_state=seed, n_jobs=1)
        return reducer.fit_transform(latents), ""
    from sklearn.decomposition import PCA

    pca = PCA(n_components=2, random_state=seed).fit(latents)
    share = pca.explained_variance_ratio_.sum()
    return pca.transform(latents), f"({share:.0%} of variance)"


def latent_projection_figure(
    latents: np.ndarray,
    labels: np.ndarray,
    label_names: Sequence[str],
    *,
    method: Literal["pca", "umap"] = "pca",
    title: str = "",
    seed: int = 0,
    projection: tuple[np.ndarray, str] | None = None,
) -> go.Figure:
    """Scatter of projected validation latents, one trace per label so the legend filters them.

    `projection` is `project_latents`' result when the caller already has it.
    """
    xy, note = projection if projection is not None else project_latents(latents, method, seed)
    figure = go.Figure()
    codes = np.unique(labels)
    for code in codes:
        keep = labels == code
        name = label_names[code] if 0 <= code < len(label_names) else "unlabelled"
        figure.add_trace(
            go.Scattergl(x=xy[keep, 0], y=xy[keep, 1], mode="markers", name=f"{name} ({keep.sum()})", marker={"size": 5, "opacity": 0.7})
        )
    axis = method.upper()
    figure.update_layout(
        title=title or f"Validation latents, {axis} {note}",
        xaxis_title=f"{axis} 1",
        yaxis_title=f"{axis} 2",
        legend_title="label",
        template="plotly_white",
        height=650,
    )
    return figure


def _voxel_trace(grid: np.ndarray, in_legend: set[int]) -> list[go.Scatter3d]:
    """Traces for one grid; each class enters the legend once, the first time it appears."""
    # Invisible corners keep the scene's box drawn even when a reconstruction is empty.
    edge = grid.shape[-1] - 1
    corners = np.array([[x, y, z] for x in (0, edge) for y in (0, edge) for z in (0, edge)])
    traces = [go.Scatter3d(x=corners[:, 0], y=corners[:, 1], z=corners[:, 2], mode="markers", marker={"opacity": 0}, hoverinfo="skip", showlegend=False)]
    for cls, colour in CLASS_COLOURS.items():
        x, y, z = np.nonzero(grid == cls)
        first = len(x) > 0 and cls not in in_legend
        in_legend.update([cls] if first else [])
        traces.append(
            go.Scatter3d(x=x, y=y, z=z, mode="markers", name=f"class {cls}", legendgroup=str(cls), showlegend=first, marker={"size": 6, "color": colour, "symbol": "square"})
        )
    return traces


def voxel_panels(rows: Sequence[np.ndarray], titles: Sequence[Sequence[str]], *, title: str) -> go.Figure:
    """Rows of 3-D voxel scenes, one per grid; each class enters the legend once."""
    n_rows, n_cols = len(rows), len(rows[0])
    edge = rows[0].shape[-1]
    figure = make_subplots(
        rows=n_rows,
        cols=n_cols,
        specs=[[{"type": "scene"}] * n_cols] * n_rows,
        subplot_titles=[t for row in titles for t in row],
        vertical_spacing=0.05,
    )
    in_legend: set[int] = set()
    for r, grids in enumerate(rows):
        for c, grid in enumerate(grids):
            for trace in _voxel_trace(grid, in_legend):
                figure.add_trace(trace, row=r + 1, col=c + 1)
    axis = {"range": [-0.5, edge - 0.5], "showticklabels": False, "title": ""}
    figure.update_scenes(xaxis=axis, yaxis=axis, zaxis=axis, aspectmode="cube")
    figure.update_layout(title=title, height=350 * n_rows, width=max(500, 240 * n_cols + 120), template="plotly_white", legend={"title": "descriptor"})
    return figure


def reconstruction_figure(originals: np.ndarray, reconstructions: np.ndarray, *, title: str = "Reconstructions", names: Sequence[str] | None = None) -> go.Figure:
    """Original (top row) against reconstruction (bottom row) for a few samples, as 3-D voxels.

    `names` heads each column (default "sample i"); a reconstruction's title counts its cells
    and, when it has any, the cells whose class differs from the original.
    """
    names = list(names) if names is not None else [f"sample {i}" for i in range(len(originals))]
    occupied = lambda grid: int((grid > 0).sum())  # noqa: E731

    def reconstructed(original: np.ndarray, grid: np.ndarray) -> str:
        wrong = int((original != grid).sum())
        return f"reconstructed: {occupied(grid)} cells" + (f", {wrong} wrong" if wrong and occupied(grid) else "")

    titles = [[f"{name}: {occupied(g)} cells" for name, g in zip(names, originals)], [reconstructed(o, g) for o, g in zip(originals, reconstructions)]]
    return voxel_panels([originals, reconstructions], titles, title=title)
