"""The latent explorer: the latent map, and beside it the sample a click picks.

Clicking a point draws that validation sample's input and reconstruction in one 3-D scene (the
gallery's drawing: filled squares for the reconstruction inside open squares for the input), with
its id (the validation row), label and F1; a box selection lists the ids it holds.

The page stays small and offline: the grids travel as the occupied cells only, each cell one
16-bit code (flat index * 8 + class), zlib-compressed and base64-encoded, and the browser
inflates them with its own DecompressionStream. The map is SVG and the side panel one 3-D
scene whatever is clicked, so the page uses one WebGL context (Chrome keeps about 16).
"""

from __future__ import annotations

import base64
import zlib
from typing import Sequence

import numpy as np
import plotly.graph_objects as go

from vae_lab.tracking.plotly_html import PageParts
from vae_lab.viz.figures import CLASS_COLOURS

CELL_BITS = 3  # a cell's class (0-4) fits in the low 3 bits of its code


def sample_f1(originals: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Each sample's macro F1 over the classes 1-4 in its input or reconstruction (1.0 for an
    empty grid reconstructed empty): the per-sample view of the study's val_f1."""
    n = len(originals)
    truth = originals.reshape(n, -1).astype(np.uint8, copy=False)
    guess = predicted.reshape(n, -1).astype(np.uint8, copy=False)
    totals, present = np.zeros(n), np.zeros(n)
    for cls in range(1, 5):
        is_true, is_guess = truth == cls, guess == cls
        hits = np.count_nonzero(is_true & is_guess, axis=1)
        errors = np.count_nonzero(is_true ^ is_guess, axis=1)  # false positives + false negatives
        seen = hits + errors > 0
        totals += np.where(seen, 2 * hits / np.maximum(2 * hits + errors, 1), 0.0)
        present += seen
    return np.where(present > 0, totals / np.maximum(present, 1), 1.0)


def encode_cells(grids: np.ndarray) -> tuple[list[int], np.ndarray]:
    """(occupied cells per grid, their codes in grid order): code = flat index * 8 + class."""
    cells = grids[0].size if len(grids) else 1
    flat = grids.reshape(-1)
    index = np.flatnonzero(flat)
    codes = ((index % cells) << CELL_BITS).astype(np.uint16) | flat[index].astype(np.uint16)
    return np.bincount(index // cells, minlength=len(grids)).tolist(), codes


def explorer_data(
    ids: Sequence[int], names: Sequence[str], f1: np.ndarray, originals: np.ndarray, predicted: np.ndarray
) -> dict:
    """What the page's script needs, compactly: see the module docstring."""
    edge = originals.shape[-1]
    if (edge**3) << CELL_BITS >= 1 << 16:
        raise ValueError(f"a {edge}^3 grid does not fit 16-bit cell codes")
    counts_in, codes_in = encode_cells(originals)
    counts_out, codes_out = encode_cells(predicted)
    packed = zlib.compress(np.concatenate([codes_in, codes_out]).astype("<u2", copy=False).tobytes(), 6)
    return {
        "edge": int(edge),
        "ids": [int(i) for i in ids],
        "names": list(names),
        "f1": [round(float(v), 4) for v in f1],
        "countsIn": counts_in,
        "countsOut": counts_out,
        "cells": base64.b64encode(packed).decode("ascii"),
        "colours": {str(k): v for k, v in CLASS_COLOURS.items()},
    }


def latent_explorer(
    xy: np.ndarray,
    labels: np.ndarray,
    label_names: Sequence[str],
    originals: np.ndarray,
    predicted: np.ndarray,
    *,
    title: str,
    axis: str = "PCA",
    ids: Sequence[int] | None = None,
) -> tuple[go.Figure, PageParts]:
    """The map (one trace per label, so the legend filters them) and the page parts around it.

    `xy` is the (N, 2) projection of the samples whose grids are `originals` (N, D, D, D) and
    reconstructions `predicted`; `ids` names them (default: their row, 0..N-1).
    """
    ids = list(range(len(xy))) if ids is None else [int(i) for i in ids]
    names = [label_names[c] if 0 <= c < len(label_names) else "unlabelled" for c in labels]
    f1 = sample_f1(originals, predicted)
    figure = go.Figure()
    for code in np.unique(labels):
        keep = np.flatnonzero(labels == code)
        name = names[keep[0]]
        # customdata: (row in the page data, sample id), typed arrays in the page's JSON.
        figure.add_trace(
            go.Scatter(
                x=xy[keep, 0].astype(np.float32),
                y=xy[keep, 1].astype(np.float32),
                mode="markers",
                name=f"{name} ({len(keep)})",
                customdata=np.stack([keep, np.asarray(ids)[keep]], axis=1).astype(np.int32),
                hovertemplate="#%{customdata[1]}<extra>" + name + "</extra>",
                marker={"size": 6, "opacity": 0.75},
            )
        )
    figure.update_layout(
        title=title,
        xaxis_title=f"{axis} 1",
        yaxis_title=f"{axis} 2",
        legend_title="label",
        template="plotly_white",
        height=650,
        dragmode="select",
        clickmode="event",
        hovermode="closest",
    )
    data = explorer_data(ids, names, f1, originals, predicted)
    return figure, PageParts(body=BODY, style=STYLE, data=data, script=SCRIPT)


BODY = """<div id="vae-lab-explorer"><div id="vae-lab-map">{figure}</div>
<div id="vae-lab-panel"><p class="hint">Click a point to draw its sample (open squares: input; filled: reconstruction);
drag a box to list the samples in it.</p>
<div id="vae-lab-sample-info"></div><div id="vae-lab-sample"></div><div id="vae-lab-selection"></div></div></div>"""
STYLE = """#vae-lab-explorer{display:flex;flex-wrap:wrap;gap:8px}#vae-lab-map{flex:3;min-width:480px}
#vae-lab-panel{flex:2;min-width:360px;padding:8px;font-size:14px}#vae-lab-sample{height:440px}
#vae-lab-sample-info{font-weight:600;min-height:1.4em}.hint{color:#666;margin:4px 0}
#vae-lab-selection{max-height:160px;overflow:auto;color:#333;word-break:break-word}"""
# (In a narrow viewer, the MLflow artifact pane, the panel wraps below the map.)
# The side panel: decode the cells once, then draw the clicked sample in the one 3-D scene.
SCRIPT = r"""
(function () {
  var data = JSON.parse(document.getElementById("vae-lab-page-data").textContent);
  var codes = null, startIn = [], startOut = [];
  function offsets(counts, from, out) { var at = from; counts.forEach(function (n) { out.push(at); at += n; }); return at; }
  var afterIn = offsets(data.countsIn, 0, startIn);
  offsets(data.countsOut, afterIn, startOut);
  var bytes = Uint8Array.from(atob(data.cells), function (c) { return c.charCodeAt(0); });
  var ready = new Response(new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate")))
    .arrayBuffer().then(function (buffer) { codes = new Uint16Array(buffer); });
  function cells(start, count) {
    var byClass = {};
    for (var i = start; i < start + count; i++) {
      var code = codes[i], cls = code & 7, flat = code >> 3, e = data.edge;
      var c = byClass[cls] || (byClass[cls] = {x: [], y: [], z: []});
      c.x.push(Math.floor(flat / (e * e))); c.y.push(Math.floor(flat / e) % e); c.z.push(flat % e);
    }
    return byClass;
  }
  function traces(k) {
    var e = data.edge - 1, out = [{type: "scatter3d", mode: "markers", x: [0, e, 0, e, 0, e, 0, e],
      y: [0, 0, e, e, 0, 0, e, e], z: [0, 0, 0, 0, e, e, e, e], marker: {opacity: 0}, hoverinfo: "skip", showlegend: false}];
    [[cells(startIn[k], data.countsIn[k]), true], [cells(startOut[k], data.countsOut[k]), false]].forEach(function (pair) {
      Object.keys(pair[0]).forEach(function (cls) {
        var c = pair[0][cls], colour = data.colours[cls];
        out.push({type: "scatter3d", mode: "markers", x: c.x, y: c.y, z: c.z, name: (pair[1] ? "input class " : "class ") + cls,
          marker: pair[1] ? {size: 11, color: colour, symbol: "square-open"} : {size: 6, color: colour, symbol: "square"}});
      });
    });
    return out;
  }
  function show(k) {
    ready.then(function () {
      var info = document.getElementById("vae-lab-sample-info");
      info.textContent = "#" + data.ids[k] + " \u00b7 " + data.names[k] + " \u00b7 F1 " + data.f1[k].toFixed(2) +
        " \u00b7 " + data.countsIn[k] + " cells -> " + data.countsOut[k];
      info.setAttribute("data-sample", data.ids[k]);
      var axis = {range: [-0.5, data.edge - 0.5], showticklabels: false, title: ""};
      Plotly.react("vae-lab-sample", traces(k), {margin: {l: 0, r: 0, t: 30, b: 0}, template: "plotly_white",
        scene: {xaxis: axis, yaxis: axis, zaxis: axis, aspectmode: "cube"}, legend: {x: 0, y: 0}}, {displaylogo: false});
    });
  }
  window.vaeLabExplorerShow = show;
  window.vaeLabAfterDraw = function (gd) {
    if (gd.id !== "vae-lab-figure") return;
    gd.on("plotly_click", function (event) { if (event.points.length) show(event.points[0].customdata[0]); });
    gd.on("plotly_selected", function (event) {
      var picked = (event && event.points || []).map(function (p) { return data.ids[p.customdata[0]]; }).sort(function (a, b) { return a - b; });
      var list = document.getElementById("vae-lab-selection");
      list.textContent = picked.length ? picked.length + " selected: " + picked.map(function (i) { return "#" + i; }).join(", ") : "";
      list.setAttribute("data-ids", picked.join(","));
    });
  };
})();
"""
