"""The study report and the comparison page, from plain data."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from tests.browser_helpers import Browser, missing_browser, start_chromium
from tests.conftest import sparse_grids
from vae_lab.tracking.plotly_html import PlotlyAssets
from vae_lab.viz.study_report import (
    ChampionView,
    StudyView,
    TrialView,
    compare_html,
    compare_rows,
    pareto_figure,
    study_report_html,
)

OBJECTIVES = {"val_f1": "maximize", "val_kl": "minimize"}
YAML = "name: two\nobjective: {metrics: [val_f1, val_kl]}\nchampion: {rule: knee}\n"


def view(name: str = "two", champion_view: bool = True) -> StudyView:
    values = [(0.5, 5.0), (0.8, 20.0), (0.9, 40.0), (0.7, 30.0)]
    trials = [
        TrialView(
            i,
            ("fc", "conv")[i % 2],
            "complete",
            {"val_f1": f1, "val_kl": kl},
            duration_s=10.0 + i,
            curves={
                "val_f1": [(e, f1 * (e + 1) / 3) for e in range(3)],
                "val_kl": [(e, kl / (e + 1)) for e in range(3)],
            },
        )
        for i, (f1, kl) in enumerate(values)
    ]
    trials.append(TrialView(4, "pointnet", "failed", reason="RuntimeError: out of memory"))
    trials.append(TrialView(5, "fc", "pruned", reason="pruned at epoch 1 (val_f1=0.1000)"))
    champ = None
    if champion_view:
        grids = sparse_grids(30)
        champ = ChampionView(
            grids[:4],
            grids[:4],
            [f"s{i}" for i in range(4)],
            np.random.default_rng(0).normal(size=(30, 2)),
            np.arange(30) % 2,
            ["C", "N"],
            grids,
            grids,
            {"c1": 0.9, "c2": 0.5},
        )
    return StudyView(
        name, YAML, OBJECTIVES, trials, champion=1, rule="knee", planned_s=60.0, real_s=75.0, champion_view=champ
    )


def figure_blocks(page: str) -> dict[str, dict]:
    found = re.findall(r'data-vae-lab-target="([^"]+)" id="[^"]+">(.*?)</script>', page, flags=re.S)
    return {target: json.loads(text.replace("<\\/", "</")) for target, text in found}


def test_the_report_tells_the_study_in_one_page():
    page = study_report_html(view(), PlotlyAssets("cdn"))
    for heading in (
        "Study",
        "Wall time",
        "Leaderboard",
        "Pareto front",
        "Best trial per family",
        "Validation curves",
        "Champion",
        "Failed and pruned trials",
    ):
        assert f"<h2>{heading}</h2>" in page, heading
    assert "objective: {metrics: [val_f1, val_kl]}" in page and "60 s planned, 75 s real (1.25x the plan)" in page
    assert "RuntimeError: out of memory" in page and "pruned at epoch 1" in page
    blocks = figure_blocks(page)
    assert set(blocks) == {"report-front", "report-curves", "report-gallery", "vae-lab-figure", "report-classes"}
    curves = blocks["report-curves"]["data"]
    assert (
        len(curves) == 8 and sum(t["showlegend"] is not False for t in curves) == 2
    )  # 4 trials x 2 curves, a legend entry per family
    scenes = [k for k in blocks["report-gallery"]["layout"] if k.startswith("scene")]
    assert len(scenes) == 4  # the gallery, plus the explorer's one scene: far below 16 WebGL contexts
    assert json.loads(re.search(r'id="vae-lab-page-data">(.*?)</script>', page, re.S).group(1))["ids"] == list(
        range(30)
    )


def test_the_pareto_figure_highlights_the_front_and_stars_the_champion():
    figure = pareto_figure(view(champion_view=False))
    front = next(t for t in figure.data if t.name == "Pareto front")
    assert list(front.x) == [0.5, 0.8, 0.9] and list(front.y) == [5.0, 20.0, 40.0]
    star = next(t for t in figure.data if t.name.startswith("champion"))
    assert (star.x[0], star.y[0]) == (0.8, 20.0)
    hover = [text for t in figure.data if t.text is not None for text in t.text]
    assert "trial 3 (conv), Pareto rank 2" in hover


def test_one_objective_shows_the_optimisation_history_and_compare_puts_two_side_by_side():
    single = view("one", champion_view=False)
    single.objectives = {"val_f1": "maximize"}
    single.rule = "best"
    page = compare_html(single, view("two", champion_view=False), PlotlyAssets("cdn"))
    assert "<h1>one vs two</h1>" in page and page.count("class='columns'") == 7
    blocks = figure_blocks(page)
    assert {"a-front", "b-front", "a-curves", "b-curves"} <= set(blocks)
    assert blocks["a-front"]["data"][1]["y"] == [0.5, 0.8, 0.9, 0.9]  # best so far, trial by trial
    rows = dict((what, (x, y)) for what, x, y in compare_rows(single, view("two", champion_view=False)))
    assert rows["champion val_f1"] == ("0.8", "0.8") and rows["trials finished"] == ("4", "4")


@pytest.mark.slow
@pytest.mark.skipif(missing_browser() is not None, reason=missing_browser() or "")
def test_the_report_opens_offline_in_chromium(tmp_path):
    page = tmp_path / "report.html"
    page.write_text(study_report_html(view(), PlotlyAssets("embed")))
    driver = start_chromium(tmp_path / "profile")
    browser = Browser(driver, tmp_path / "screens")
    try:
        driver.get(page.as_uri())
        drawn = (
            "return ['report-front', 'report-curves', 'report-gallery', 'vae-lab-figure']"
            ".every(id => document.getElementById(id).querySelector('.main-svg'))"
        )
        browser.wait(lambda d: d.execute_script(drawn), "every figure drawn")
        driver.execute_script("window.vaeLabExplorerShow(3)")
        browser.wait(
            lambda d: d.execute_script(
                "return document.getElementById('vae-lab-sample-info').textContent.startsWith('#3 ')"
            ),
            "the explorer's sample",
        )
        browser.screenshot("report-top")
        driver.execute_script("document.getElementById('vae-lab-figure').scrollIntoView()")
        browser.screenshot("report-champion")
        assert not [e for e in browser.console() if e.get("level") == "SEVERE"]
    finally:
        driver.quit()
