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
from typing import TYPE_CHECKING, Any, Literal

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


def cdn_url() -> str:
    """plotly's CDN copy of the plotly.js bundled with the installed plotly: the address
    `figure.to_html(include_plotlyjs="cdn")` uses, built from public parts."""
    from plotly.offline import get_plotlyjs_version

    return f"https://cdn.plot.ly/plotly-{get_plotlyjs_version()}.min.js"


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
      document.body.insertAdjacentText("afterbegin", "plotly.js could not be loaded: open this page from the MLflow UI or online.");
      return;
    }
    var script = document.createElement("script");
    script.src = candidates[i];
    script.onload = function () { window.Plotly ? draw() : load(i + 1); };
    script.onerror = function () { load(i + 1); };
    document.head.appendChild(script);
  }
  function draw() {
    // Every figure block names the div it draws into; a page's own script (the latent
    // explorer's) hooks in through window.vaeLabAfterDraw once a figure is drawn.
    document.querySelectorAll("script[data-vae-lab-target]").forEach(function (block) {
      var figure = JSON.parse(block.textContent);
      var gd = document.getElementById(block.getAttribute("data-vae-lab-target"));
      Plotly.newPlot(gd, figure.data, figure.layout, {responsive: true, displaylogo: false}).then(function (gd) {
        if (window.vaeLabAfterDraw) window.vaeLabAfterDraw(gd);
      });
    });
  }
  load(0);
})();
"""

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>%(title)s</title>%(head)s
<style>body{margin:0;font-family:system-ui,sans-serif}#vae-lab-figure{width:100%%;min-height:%(height)spx}%(style)s</style>
</head><body>
%(body)s
<script type="application/json" id="vae-lab-page-data">%(data)s</script>
<script>%(page_script)s</script>
<script>%(script)s</script>
</body></html>
"""
FIGURE_DIV = """<div id="%(id)s"></div>
<script type="application/json" data-vae-lab-target="%(id)s" id="%(id)s-data">%(figure)s</script>"""


@dataclass(frozen=True)
class PageParts:
    """What a page carries besides its figure: HTML placed around it (`body`, where the text
    `{figure}` marks the figure's place), CSS, JSON data (readable by the script as
    `JSON.parse(document.getElementById("vae-lab-page-data").textContent)`) and a script that
    defines `window.vaeLabAfterDraw(gd)`, called once each figure is drawn."""

    body: str = "{figure}"
    style: str = ""
    data: Any = None
    script: str = ""


def figure_div(figure: "go.Figure", div_id: str = "vae-lab-figure") -> str:
    """A div and the JSON block the page's loader draws into it."""
    return FIGURE_DIV % {"id": div_id, "figure": _json_block(figure.to_json())}


def _json_block(text: str) -> str:
    return text.replace("</", "<\\/")  # keep "</script>" in strings from ending the block


def figure_html(
    figure: "go.Figure", assets: PlotlyAssets, title: str = "figure", parts: PageParts | None = None
) -> str:
    """A whole HTML page for `figure`, getting plotly.js as `assets` says."""
    if assets.mode != "shared" and parts is None:
        return figure.to_html(include_plotlyjs=True if assets.mode == "embed" else "cdn", full_html=True)
    parts = parts or PageParts()
    body = parts.body.replace("{figure}", figure_div(figure))
    return page_html(body, assets, title, height=int(figure.layout.height or 600), parts=parts)


def page_html(body: str, assets: PlotlyAssets, title: str, *, height: int = 600, parts: PageParts | None = None) -> str:
    """A page of figure divs (see `figure_div`) and any HTML, drawn by one copy of plotly.js:
    loaded as `assets` says, or inline when `assets.mode` is "embed"."""
    import html

    parts = parts or PageParts()
    head = ""
    if assets.mode == "embed":
        head = f"<script>{plotly_library()}</script>"
    elif assets.mode == "cdn":
        head = f'<script src="{cdn_url()}"></script>'
    script = LOADER % {
        "run_id": json.dumps(assets.library_run_id),
        "file": json.dumps(LIBRARY_FILE),
        "cdn": json.dumps(cdn_url()),
    }
    data = _json_block(json.dumps(parts.data, separators=(",", ":")))
    return PAGE % {
        "title": html.escape(title),
        "head": head,
        "height": height,
        "style": parts.style,
        "body": body,
        "data": data,
        "page_script": parts.script,
        "script": script,
    }
