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


def project_latents(
    latents: np.ndarray, method: Literal["pca", "umap"] = "pca", seed: int = 0
) -> tuple[np.ndarray, str]:
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
            go.Scattergl(
                x=xy[keep, 0],
                y=xy[keep, 1],
                mode="markers",
                name=f"{name} ({keep.sum()})",
                marker={"size": 5, "opacity": 0.7},
            )
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


# A browser keeps about 16 WebGL contexts per page (Chrome: 16) and every 3-D scene takes one;
# past that it drops the oldest and their panels go blank. Figures stay under it.
MAX_SCENES = 14


def _box_trace(edge: int) -> dict:
    """Invisible corners that keep a scene's box drawn even when a reconstruction is empty."""
    corners = np.array([[x, y, z] for x in (0, edge) for y in (0, edge) for z in (0, edge)])
    return {
        "type": "scatter3d",
        "x": corners[:, 0],
        "y": corners[:, 1],
        "z": corners[:, 2],
        "mode": "markers",
        "marker": {"opacity": 0},
        "hoverinfo": "skip",
        "showlegend": False,
    }


def _voxel_traces(grid: np.ndarray, in_legend: set[str], *, hollow: bool = False) -> list[dict]:
    """One trace per class present in `grid`; each class enters the legend once, the first
    time it appears. `hollow` draws it as open squares around the cells (the input under a
    reconstruction). Traces are plain dicts, checked once when the figure takes them."""
    traces = []
    for cls, colour in CLASS_COLOURS.items():
        x, y, z = np.nonzero(grid == cls)
        if not len(x):
            continue  # an empty trace draws nothing and costs plotly a validation
        name = f"input class {cls}" if hollow else f"class {cls}"
        first = name not in in_legend
        in_legend.add(name)
        marker = (
            {"size": 11, "color": colour, "symbol": "square-open"}
            if hollow
            else {"size": 6, "color": colour, "symbol": "square"}
        )
        traces.append(
            {
                "type": "scatter3d",
                "x": x,
                "y": y,
                "z": z,
                "mode": "markers",
                "name": name,
                "legendgroup": name,
                "showlegend": first,
                "marker": marker,
            }
        )
    return traces


def voxel_panels(
    grids: Sequence[np.ndarray], titles: Sequence[str], *, title: str, under: Sequence[np.ndarray] | None = None
) -> go.Figure:
    """One 3-D scene per grid, in rows of at most 7; `under[i]`, when given, is drawn hollow
    beneath grid i. At most MAX_SCENES scenes: the title says when some were left out."""
    shown = min(len(grids), MAX_SCENES)
    if shown < len(grids):
        title = f"{title} (the first {shown} of {len(grids)}: a browser draws at most {MAX_SCENES} 3-D scenes per page)"
    n_rows = -(-shown // 7)  # rows of at most 7, evenly filled
    n_cols = -(-shown // n_rows)
    edge = grids[0].shape[-1]
    grid_layout = make_subplots(
        rows=n_rows,
        cols=n_cols,
        specs=[[{"type": "scene"}] * n_cols] * n_rows,
        subplot_titles=list(titles[:shown]),
        vertical_spacing=0.08 if n_rows > 1 else 0.05,
    ).layout.to_plotly_json()
    # The scenes and traces are built as plain data and handed to plotly once: placing each
    # trace with add_trace(row, col) and styling the scenes with update_scenes validated every
    # property again, most of a trial's figure time.
    axis = {"range": [-0.5, edge - 0.5], "showticklabels": False, "title": ""}
    for name in (name for name in grid_layout if name.startswith("scene")):  # a row's spare cells too
        grid_layout[name].update(xaxis=axis, yaxis=axis, zaxis=axis, aspectmode="cube")
    in_legend: set[str] = set()
    traces = []
    for i in range(shown):
        scene = "scene" if i == 0 else f"scene{i + 1}"
        panel = [_box_trace(edge - 1)]
        panel += _voxel_traces(under[i], in_legend, hollow=True) if under is not None else []
        panel += _voxel_traces(grids[i], in_legend)
        traces += [{**trace, "scene": scene} for trace in panel]
    grid_layout.update(
        title=title,
        height=350 * n_rows + 60,
        width=max(500, 240 * n_cols + 160),
        template="plotly_white",
        legend={"title": "descriptor"},
    )
    return go.Figure(data=traces, layout=grid_layout)


def reconstruction_figure(
    originals: np.ndarray,
    reconstructions: np.ndarray,
    *,
    title: str = "Reconstructions",
    names: Sequence[str] | None = None,
) -> go.Figure:
    """Each sample's reconstruction (filled squares) drawn inside its input (open squares), one
    scene per sample, so a right cell is a filled square in an open one of its colour.

    `names` heads each panel (default "sample i"), with the input's cells, the reconstruction's
    and, when it has any, the cells whose class differs.
    """
    names = list(names) if names is not None else [f"sample {i}" for i in range(len(originals))]

    def caption(name: str, original: np.ndarray, grid: np.ndarray) -> str:
        wrong = int((original != grid).sum())
        made = int((grid > 0).sum())
        return f"{name}: {int((original > 0).sum())} cells -> {made}" + (f", {wrong} wrong" if wrong and made else "")

    titles = [caption(n, o, g) for n, o, g in zip(names, originals, reconstructions)]
    return voxel_panels(
        list(reconstructions),
        titles,
        title=f"{title} (open squares: input; filled: reconstruction)",
        under=list(originals),
    )
