"""Plotly figures as small HTML artifacts that still render offline in the MLflow UI.

Embedding plotly.js makes every figure ~3.5 MB, which a 50-trial study with several figures per
trial cannot afford. With `shared` (the default) the library is logged once per study
invocation, on the parent run, as `plotly.min.mjs`, and each figure's page loads it from there.

How a page finds it. The MLflow UI shows an HTML artifact in a sandboxed iframe made from a
`blob:` URL, so relative links resolve nowhere; the page derives the UI's address from its own
blob URL (or the referrer) and asks the UI's `get-artifact` endpoint for the library. The `.mjs`
name matters: MLflow serves `.js` artifacts as text/plain with `nosniff`, which browsers refuse
to execute, and `.mjs` as JavaScript. Opened from a downloaded folder, the page tries the file
beside it, then plotly's CDN.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import plotly.graph_objects as go

LIBRARY_FILE = "plotly.min.mjs"
PlotlyMode = Literal["shared", "embed", "cdn"]


@dataclass(frozen=True)
class PlotlyAssets:
    """How figure pages get plotly.js: from `library_run_id`'s artifacts, embedded, or the CDN."""

    mode: PlotlyMode = "shared"
    library_run_id: str | None = None


@lru_cache(maxsize=1)
def plotly_library() -> str:
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def _cdn_url() -> str:
    import plotly

    from plotly.io._utils import plotly_cdn_url

    try:
        return plotly_cdn_url()
    except Exception:  # older plotly: build it from the bundled version
        return f"https://cdn.plot.ly/plotly-{plotly.__version__}.min.js"


LOADER = """
(function () {
  var runId = %(run_id)s, file = %(file)s, cdn = %(cdn)s;
  function uiBase() {
    try {
      var here = new URL(location.href.replace(/^blob:/, ""));
      if (document.referrer) {
        var from = new URL(document.referrer);
        if (from.origin === here.origin) return from.origin + from.pathname.replace(/[^/]*$/, "");
      }
      var at = here.pathname.indexOf("get-artifact");
      return here.origin + (at >= 0 ? here.pathname.slice(0, at) : "/");
    } catch (e) { return null; }
  }
  var candidates = [];
  var base = uiBase();
  if (runId && base && /^https?:/.test(base)) {
    candidates.push(base + "get-artifact?path=" + encodeURIComponent(file) + "&run_uuid=" + encodeURIComponent(runId));
  }
  candidates.push(file, cdn);
  function load(i) {
    if (window.Plotly) return draw();
    if (i >= candidates.length) {
      document.getElementById("vae-lab-figure").textContent = "plotly.js could not be loaded: open this page from the MLflow UI or online.";
      return;
    }
    var script = document.createElement("script");
    script.src = candidates[i];
    script.onload = function () { window.Plotly ? draw() : load(i + 1); };
    script.onerror = function () { load(i + 1); };
    document.head.appendChild(script);
  }
  function draw() {
    var figure = JSON.parse(document.getElementById("vae-lab-figure-data").textContent);
    Plotly.newPlot("vae-lab-figure", figure.data, figure.layout, {responsive: true, displaylogo: false});
  }
  load(0);
})();
"""

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>%(title)s</title>%(head)s
<style>body{margin:0;font-family:system-ui,sans-serif}#vae-lab-figure{width:100%%;min-height:%(height)spx}</style>
</head><body>
<div id="vae-lab-figure"></div>
<script type="application/json" id="vae-lab-figure-data">%(figure)s</script>
<script>%(script)s</script>
</body></html>
"""


def figure_html(figure: "go.Figure", assets: PlotlyAssets, title: str = "figure") -> str:
    """A whole HTML page for `figure`, getting plotly.js as `assets` says."""
    if assets.mode != "shared":
        return figure.to_html(include_plotlyjs=True if assets.mode == "embed" else "cdn", full_html=True)
    payload = figure.to_json().replace("</", "<\\/")  # keep "</script>" in strings from ending the block
    script = LOADER % {"run_id": json.dumps(assets.library_run_id), "file": json.dumps(LIBRARY_FILE), "cdn": json.dumps(_cdn_url())}
    height = int(figure.layout.height or 600)
    return PAGE % {"title": title, "head": "", "figure": payload, "script": script, "height": height}
