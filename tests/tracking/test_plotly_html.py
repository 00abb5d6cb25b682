"""Figure pages that fetch plotly.js from plotly's CDN ask for the very file plotly itself would."""

from __future__ import annotations

import plotly.graph_objects as go

from vae_lab.tracking.plotly_html import PlotlyAssets, cdn_url, page_html


def test_the_cdn_address_is_the_one_plotly_writes_for_its_bundled_library():
    plotly_page = go.Figure().to_html(include_plotlyjs="cdn", full_html=False)
    assert f'src="{cdn_url()}"' in plotly_page
    assert f'<script src="{cdn_url()}"></script>' in page_html("", PlotlyAssets("cdn"), "t")
