"""The latent explorer: its data (compact, exact), and in Chromium, a click drawing the right sample."""

from __future__ import annotations

import base64
import json
import zlib

import numpy as np
import pytest

from tests.browser_helpers import Browser, missing_browser, start_chromium
from tests.conftest import sparse_grids
from vae_lab.tracking.plotly_html import PlotlyAssets, figure_html
from vae_lab.viz.explorer import latent_explorer, sample_f1


def decode(data: dict) -> list[tuple[set, set]]:
    """The (input cells, reconstruction cells) of every sample, as {(x, y, z, class)}, from the page data."""
    codes = np.frombuffer(zlib.decompress(base64.b64decode(data["cells"])), dtype="<u2").astype(int)
    edge, at, grids = data["edge"], 0, []
    for counts in (data["countsIn"], data["countsOut"]):
        for n in counts:
            grids.append(
                {((c >> 3) // edge**2, (c >> 3) // edge % edge, (c >> 3) % edge, c & 7) for c in codes[at : at + n]}
            )
            at += n
    half = len(grids) // 2
    return list(zip(grids[:half], grids[half:]))


def cells_of(grid: np.ndarray) -> set:
    return {(*map(int, xyz), int(grid[tuple(xyz)])) for xyz in zip(*np.nonzero(grid))}


def explorer(n: int = 60, seed: int = 0):
    originals = sparse_grids(n, seed=seed)
    predicted = originals.copy()
    predicted[1::2, 0, 0, 0] = 3  # every other reconstruction adds a wrong cell
    labels = np.arange(n) % 3
    xy = np.random.default_rng(seed).normal(size=(n, 2)) + labels[:, None] * 4
    return (
        originals,
        predicted,
        labels,
        latent_explorer(xy, labels, ["C", "N", "O"], originals, predicted, title="explorer", ids=np.arange(n) + 100),
    )


def test_sample_f1_per_row():
    truth = np.zeros((3, 3, 3, 3), dtype=np.uint8)
    truth[:, 0, 0, 0] = 1
    truth[:, 1, 1, 1] = 2
    guess = truth.copy()
    guess[1, 1, 1, 1] = 1  # class 2 missed, a false class 1: F1 class 1 = 2/3, class 2 = 0
    guess[2] = 0
    empty = np.zeros((1, 3, 3, 3), dtype=np.uint8)
    assert sample_f1(truth, guess) == pytest.approx([1.0, 1 / 3, 0.0])
    assert sample_f1(empty, empty) == pytest.approx([1.0])


def test_the_page_data_holds_every_samples_cells_exactly_and_compactly():
    originals, predicted, labels, (figure, parts) = explorer(n=2000)
    data = parts.data
    for k, (cells_in, cells_out) in enumerate(decode(data)):
        assert cells_in == cells_of(originals[k]) and cells_out == cells_of(predicted[k]), k
    assert data["ids"][:3] == [100, 101, 102] and data["names"][:3] == ["C", "N", "O"]
    assert data["f1"][0] == 1.0 and data["f1"][1] < 1.0
    # 2,000 samples in well under the ~21 MB of their raw grids (about 3.5 cells each, twice).
    assert len(json.dumps(data)) < 120_000
    assert {t.type for t in figure.data} == {"scatter"}  # SVG: the side panel is the page's one WebGL scene
    assert [list(row) for row in figure.data[0].customdata[:2]] == [[0, 100], [3, 103]]  # (row, id)


pytestmark_browser = pytest.mark.skipif(missing_browser() is not None, reason=missing_browser() or "")

POINT_AT = """
const gd = document.getElementById("vae-lab-figure"), k = arguments[0];
const rows = t => Array.from(t.customdata, c => c[0]);
const trace = gd._fullData.findIndex(t => rows(t).includes(k));
const i = rows(gd._fullData[trace]).indexOf(k);
const box = gd.querySelector(".nsewdrag").getBoundingClientRect();
return [box.left + gd._fullLayout.xaxis.l2p(gd._fullData[trace].x[i]), box.top + gd._fullLayout.yaxis.l2p(gd._fullData[trace].y[i])];
"""


@pytest.mark.slow
@pytestmark_browser
def test_clicking_a_point_draws_that_sample_and_a_box_lists_its_ids(tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    originals, predicted, labels, (figure, parts) = explorer(n=60)
    page = tmp_path / "latents_pca.html"
    page.write_text(figure_html(figure, PlotlyAssets("embed"), "latents_pca.html", parts=parts))
    driver = start_chromium(tmp_path / "profile")
    browser = Browser(driver, tmp_path / "screens")
    try:
        driver.get(page.as_uri())
        browser.wait(
            lambda d: d.execute_script("return !!document.querySelector('#vae-lab-figure .nsewdrag')"), "the map drawn"
        )
        browser.screenshot("explorer-loaded")
        for k in (7, 32):
            x, y = driver.execute_script(POINT_AT, k)
            body = driver.find_element(By.TAG_NAME, "body")
            ActionChains(driver).move_to_element_with_offset(body, 0, 0).perform()  # leave the point, so hover re-fires
            driver.execute_script("window.scrollTo(0, 0)")
            click = ActionChains(driver)
            click.w3c_actions.pointer_action.move_to_location(int(x), int(y)).click()
            click.perform()
            browser.wait(
                lambda d: d.find_element(By.ID, "vae-lab-sample-info").get_attribute("data-sample") == str(100 + k),
                f"sample #{100 + k} shown",
            )
            info = driver.find_element(By.ID, "vae-lab-sample-info").text
            assert info.startswith(
                f"#{100 + k} · {['C', 'N', 'O'][k % 3]} · F1 {sample_f1(originals[k : k + 1], predicted[k : k + 1])[0]:.2f}"
            )
            drawn = driver.execute_script(
                "return document.getElementById('vae-lab-sample').data.filter(t => t.name).map(t => [t.name, t.x.length])"
            )
            expected = {
                f"input class {c}": int((originals[k] == c).sum()) for c in range(1, 5) if (originals[k] == c).any()
            }
            expected |= {f"class {c}": int((predicted[k] == c).sum()) for c in range(1, 5) if (predicted[k] == c).any()}
            assert dict(drawn) == expected
            browser.screenshot(f"explorer-sample-{100 + k}")
        assert (
            driver.execute_script("return document.querySelectorAll('canvas.gl-canvas, .gl-container canvas').length")
            <= 2
        )

        # A box over the whole plot area selects every sample.
        left, top, width, height = driver.execute_script(
            "const b = document.querySelector('#vae-lab-figure .nsewdrag').getBoundingClientRect(); return [b.left, b.top, b.width, b.height]"
        )
        actions = ActionChains(driver)
        actions.w3c_actions.pointer_action.move_to_location(int(left + 3), int(top + 3)).pointer_down()
        actions.w3c_actions.pointer_action.move_to_location(int(left + width / 2), int(top + height / 2))
        actions.w3c_actions.pointer_action.move_to_location(int(left + width - 3), int(top + height - 3)).pointer_up()
        actions.perform()
        browser.wait(
            lambda d: d.find_element(By.ID, "vae-lab-selection").get_attribute("data-ids"), "the selected ids listed"
        )
        ids = driver.find_element(By.ID, "vae-lab-selection").get_attribute("data-ids").split(",")
        assert sorted(map(int, ids)) == list(range(100, 160))
        browser.screenshot("explorer-selection")
    finally:
        driver.quit()
