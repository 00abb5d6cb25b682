"""The MLflow UI as a user sees it, in headless Chromium: a tiny study's runs, a metric chart, a plotly figure.

One study and one `vae-lab ui` server are shared by the module's tests; each test opens its own page.
Screenshots land in the module's tmp folder (`.../screens/`) and, when VAE_LAB_SCREENSHOTS names a
folder, there too.
"""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request

import pytest

from tests.browser_helpers import Browser, missing_browser, start_chromium
from tests.conftest import copy_mlflow_store, free_port, wait_for_mlflow
from tests.test_cli import VAE_LAB
from vae_lab.data import synthesize, write_dataset

pytestmark = [pytest.mark.slow, pytest.mark.skipif(missing_browser() is not None, reason=missing_browser() or "")]

STUDY = """
name: tiny
data: {toy_fraction: 1.0, seed: 0}
sampler: grid
training: {epochs: 2}
space:
  architecture: [fc]
  latent_dim: [2, 3]
artifacts: {max_points: 200, reconstructions: 1}
"""

FIGURE_DRAWN = """
const gd = document.getElementById("vae-lab-figure");
return Boolean(gd && gd.data && gd.data.length && gd.querySelector(".main-svg .xtick") && gd.querySelector(".legend .traces")
               && !/WebGL is not supported/i.test(gd.textContent));
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory, empty_mlflow_store):
    """A lab with a finished two-trial study and `vae-lab ui` serving it: (base URL, study report, lab)."""
    lab = tmp_path_factory.mktemp("browser-lab")
    copy_mlflow_store(empty_mlflow_store, lab)
    (lab / "studies").mkdir()
    (lab / "studies" / "tiny.yaml").write_text(STUDY)
    write_dataset(synthesize(rows=1500, seed=1), lab / "voxels.parquet")
    # The same isolated stores as the `lab` fixture, but for subprocesses: nothing in this process changes.
    env = os.environ | {
        "MLFLOW_TRACKING_URI": f"sqlite:///{lab / 'mlflow.db'}",
        "VAE_LAB_ARTIFACT_ROOT": str(lab / "mlruns"),
        "VAE_LAB_OPTUNA_STORAGE": str(lab / ".vae-lab" / "optuna.log"),
        "VAE_LAB_CACHE_DIR": str(lab / ".vae-lab" / "cache"),
        "VAE_LAB_DATA": str(lab / "data" / "synthetic.parquet"),
    }
    study = subprocess.run(
        [VAE_LAB, "study", "run", "tiny", "--data", "voxels.parquet", "--json"],
        cwd=lab,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert study.returncode == 0, study.stderr[-4000:]
    report = json.loads(study.stdout)
    assert [t["state"] for t in report["trials"]] == ["complete", "complete"], report["trials"]

    port = free_port()
    log = open(lab / "ui.log", "wb")
    server = subprocess.Popen(
        [VAE_LAB, "ui", "--port", str(port)], cwd=lab, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_mlflow(base)
        yield base, report, lab
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


@pytest.fixture(scope="module")
def browser(served, tmp_path_factory):
    base, report, lab = served
    driver = start_chromium(tmp_path_factory.mktemp("chromium-profile"))
    try:
        yield Browser(driver, lab / "screens")
    finally:
        driver.quit()


def by_xpath(xpath: str):
    from selenium.webdriver.common.by import By

    return lambda driver: [e for e in driver.find_elements(By.XPATH, xpath) if e.is_displayed()]


def by_css(css: str):
    from selenium.webdriver.common.by import By

    return lambda driver: driver.find_elements(By.CSS_SELECTOR, css)


def trial_run(report: dict, number: int = 0) -> str:
    return next(t["mlflow_run_id"] for t in report["trials"] if t["number"] == number)


def test_runs_page_lists_the_trials_in_the_runs_table(served, browser):
    base, report, lab = served
    experiment = json.loads(
        urllib.request.urlopen(
            f"{base}/api/2.0/mlflow/experiments/get?experiment_id={report['experiment_id']}", timeout=30
        ).read()
    )
    assert {"key": "mlflow.experimentKind", "value": "custom_model_development"} in experiment["experiment"]["tags"]

    browser.driver.get(f"{base}/#/experiments/{report['experiment_id']}/runs")
    # The model-training runs view: a runs table (ag-grid, "Run Name" column) under a "...Runs" heading,
    # not the GenAI overview or traces view.
    browser.wait(by_xpath("//*[@role='grid']//*[@role='columnheader'][normalize-space()='Run Name']"), "the runs table")
    heading = browser.wait(
        by_xpath("//h2[contains(translate(normalize-space(), 'R', 'r'), 'runs')]"), "a runs heading"
    )[0].text
    assert heading in {"Runs", "Training runs"}, heading
    assert not by_xpath("//h2[normalize-space()='Traces' or normalize-space()='Overview']")(browser.driver), (
        "a GenAI view is open"
    )

    # The trials are nested under the study's parent run: expand it, as a user would.
    parent = report["parent_run_id"]
    expand = browser.wait(
        by_xpath(f"//*[@role='gridcell'][.//a[contains(@href, '/runs/{parent}')]]//button"),
        "the parent run's expand button",
    )
    expand[0].click()
    names = [f"trial-{t['number']:03d}-fc" for t in report["trials"]]
    for name in names:
        browser.wait(
            by_xpath(f"//*[@role='gridcell']//a[normalize-space()='{name}']"), f"trial run {name} in the table"
        )
    browser.screenshot("runs")


def test_a_trial_run_shows_its_val_f1_chart(served, browser):
    base, report, lab = served
    run = trial_run(report)
    browser.driver.get(f"{base}/#/experiments/{report['experiment_id']}/runs/{run}/model-metrics")
    browser.wait(by_xpath("//*[normalize-space()='trial-000-fc']"), "the trial run's page")
    search = browser.wait(by_xpath("//input[@placeholder='Search metric charts']"), "the metric chart search box")[0]
    search.send_keys("val_f1")
    card = "//h4[normalize-space()='reconstruction/val_f1' or normalize-space()='val_f1']/ancestor::*[.//*[contains(@class, 'js-plotly-plot')]][1]"
    found = browser.wait(by_xpath(card), "a val_f1 chart card")[0]
    browser.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", found)
    browser.wait(
        by_xpath(
            f"{card}//*[contains(@class, 'main-svg')]//*[contains(@class, 'scatterlayer')]/*[contains(@class, 'trace')]"
        ),
        "the val_f1 line drawn",
    )
    browser.screenshot("chart")


def test_a_plotly_artifact_renders_with_the_study_plotly_library(served, browser):
    base, report, lab = served
    run = trial_run(report)
    driver = browser.driver
    driver.get(f"{base}/#/experiments/{report['experiment_id']}/runs/{run}/artifacts")
    browser.wait(by_xpath("//*[normalize-space(text())='latents_pca.html']"), "latents_pca.html in the artifact tree")[
        0
    ].click()
    # MLflow shows HTML artifacts in a sandboxed iframe made from a blob: URL.
    frame = browser.wait(by_css("iframe[src^='blob:']"), "the HTML artifact's iframe")[0]
    assert frame.get_attribute("sandbox") == "allow-scripts"
    driver.switch_to.frame(frame)
    try:
        browser.wait(by_css("#vae-lab-figure .main-svg"), "plotly to draw latents_pca.html")
        # The points are WebGL (scattergl), so check what plotly drew around them: axes, legend, no WebGL error.
        browser.wait(lambda d: d.execute_script(FIGURE_DRAWN), "the latent points drawn")
        # plotly.js came from the study's parent run through the UI, not from a CDN fallback.
        scripts = driver.execute_script("return Array.from(document.scripts).map(s => s.src).filter(Boolean)")
    finally:
        driver.switch_to.default_content()
    library = f"{base}/get-artifact?path=plotly.min.mjs&run_uuid={report['parent_run_id']}"
    assert scripts == [library], scripts
    browser.screenshot("artifact")


def test_the_link_vae_lab_prints_lands_on_the_training_runs(served, browser):
    """MLflow 3.17's UI picks GenAI or Model training from a per-browser switch (GenAI by default)
    rather than the experiment's kind tag, so `vae-lab ui` and `study run` print a link that
    selects the training view; a fresh browser following it lands on the runs table."""
    base, report, lab = served
    env = os.environ | {"MLFLOW_TRACKING_URI": f"sqlite:///{lab / 'mlflow.db'}"}
    shown = json.loads(
        subprocess.run(
            [VAE_LAB, "ui", "--port", base.rsplit(":", 1)[1], "--json"],
            cwd=lab,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    link = shown["studies"]["tiny"]
    assert link.startswith(base) and "workflowType=machine_learning" in link
    driver = browser.driver
    driver.get(base)
    driver.execute_script("window.localStorage.clear()")  # a first visit: no saved view
    driver.get(link)
    browser.wait(by_xpath("//*[@role='grid']//*[@role='columnheader'][normalize-space()='Run Name']"), "the runs table")
    assert "/runs" in driver.current_url and "workflowType=genai" not in driver.current_url, driver.current_url
    assert not by_xpath("//h2[normalize-space()='Traces' or normalize-space()='Overview']")(driver), (
        "a GenAI view is open"
    )
    browser.screenshot("landing")


SECTION_TITLES = """
// A section's header reads "name (charts)", possibly over several nodes: take the innermost element.
const found = [];
for (const e of document.querySelectorAll("body *")) {
  const text = e.textContent.trim();
  const match = /^([a-z]+)\\s*\\(\\d+\\)$/.exec(text);
  if (match && !Array.from(e.children).some(c => c.textContent.trim() === text) && !found.includes(match[1])) {
    found.push(match[1]);
  }
}
// The UI draws sections as they scroll into view: scroll the charts on for the next look.
const pane = Array.from(document.querySelectorAll("*")).find(e => e.scrollHeight > e.clientHeight + 50
  && /(auto|scroll)/.test(getComputedStyle(e).overflowY) && /latent \\(\\d+\\)/.test(e.textContent));
if (pane) pane.scrollTop += pane.clientHeight;
return found;
"""


def sections_seen(driver, seen: list[str]) -> bool:
    """Add the sections now on the page to `seen` (in order); True once the last one is there."""
    for name in driver.execute_script(SECTION_TITLES):
        if name not in seen:
            seen.append(name)
    return "summary" in seen


def test_a_trial_page_opens_on_its_curves_with_the_best_epoch_summaries_apart(served, browser):
    """MLflow groups a run's charts by the part of a metric's name before "/": the trial page
    shows the per-epoch curves by what they measure, and the once-logged summaries last."""
    from selenium.webdriver.common.keys import Keys

    base, report, lab = served
    run = trial_run(report)
    browser.driver.get(f"{base}/#/experiments/{report['experiment_id']}/runs/{run}/model-metrics")
    browser.wait(by_xpath("//*[normalize-space()='trial-000-fc']"), "the trial run's page")
    search = browser.wait(by_xpath("//input[@placeholder='Search metric charts']"), "the metric chart search box")[0]
    search.send_keys(Keys.CONTROL, "a")  # the UI keeps an earlier test's search: clear it
    search.send_keys(Keys.DELETE)
    browser.wait(lambda d: "generation" in d.execute_script(SECTION_TITLES), "the first section")
    browser.screenshot("model-metrics")
    browser.driver.refresh()  # back to the top
    browser.wait(by_xpath("//input[@placeholder='Search metric charts']"), "the metric chart search box")
    seen: list[str] = []
    browser.wait(lambda d: sections_seen(d, seen), "every section, scrolling down")
    # generation/ holds the restored model's generation figures (issue 23), alphabetically first
    assert seen == ["generation", "latent", "losses", "reconstruction", "speed", "summary"], seen


def test_the_latent_explorer_draws_a_clicked_sample_inside_the_artifact_viewer(served, browser):
    """The explorer's script runs in MLflow's sandboxed artifact iframe: a click on a point draws
    that validation sample in the side panel's one 3-D scene."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    base, report, lab = served
    driver = browser.driver
    driver.get(f"{base}/#/experiments/{report['experiment_id']}/runs/{trial_run(report)}/artifacts")
    browser.wait(by_xpath("//*[normalize-space(text())='latents_pca.html']"), "latents_pca.html in the artifact tree")[
        0
    ].click()
    frame = browser.wait(by_css("iframe[src^='blob:']"), "the HTML artifact's iframe")[0]
    driver.switch_to.frame(frame)
    try:
        browser.wait(lambda d: d.execute_script(FIGURE_DRAWN), "the latent map drawn")
        # The first point of the first label: its offset from the plot area's centre.
        dx, dy, sample = driver.execute_script(
            """const gd = document.getElementById("vae-lab-figure"), t = gd._fullData[0], L = gd._fullLayout;
            const box = gd.querySelector(".nsewdrag").getBoundingClientRect();
            return [L.xaxis.l2p(t.x[0]) - box.width / 2, L.yaxis.l2p(t.y[0]) - box.height / 2, t.customdata[0][0]];"""
        )
        area = driver.find_element(By.CSS_SELECTOR, "#vae-lab-figure .nsewdrag")
        ActionChains(driver).move_to_element_with_offset(area, int(dx), int(dy)).click().perform()
        data = driver.execute_script("return JSON.parse(document.getElementById('vae-lab-page-data').textContent)")
        shown = str(data["ids"][sample])
        browser.wait(
            lambda d: d.find_element(By.ID, "vae-lab-sample-info").get_attribute("data-sample") == shown,
            f"sample #{shown} drawn",
        )
        assert driver.execute_script(
            "return document.getElementById('vae-lab-sample').data.some(t => t.name && t.name.startsWith('input class'))"
        )
    finally:
        driver.switch_to.default_content()
    browser.screenshot("explorer-in-mlflow")


def test_the_champions_registry_page_shows_its_model_card(served, browser):
    """The champion's version page renders its description, the model card, as Markdown: its
    sections, its data table and its commands; the model's page lists the aliases."""
    base, report, lab = served
    version = report["champion"]["version"]
    browser.driver.get(f"{base}/#/models/tiny/versions/{version}")
    browser.wait(by_xpath("//h3[normalize-space()='How it was chosen']"), "the card's 'How it was chosen' heading")
    for heading in ("What it is", "What it was trained on", "How well it does", "Use it"):
        assert by_xpath(f"//h3[normalize-space()='{heading}']")(browser.driver), f"no {heading!r} heading"
    browser.wait(
        by_xpath("//li[contains(normalize-space(), 'chosen by the rule best val_tradeoff among the study')]"),
        "the champion's rule",
    )
    assert by_xpath("//li[starts-with(normalize-space(), 'training: voxels')]")(browser.driver), "no training data"
    assert by_xpath("//table//td[normalize-space()='val_f1']")(browser.driver), "no rendered table of metrics"
    serve = by_xpath("//pre//code[contains(., 'mlflow models serve -m models:/tiny@champion')]")(browser.driver)
    assert serve, "no serve command"
    browser.screenshot("model-card")
    browser.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", serve[0])
    browser.screenshot("model-card-use-it")

    browser.driver.get(f"{base}/#/models/tiny")
    browser.wait(by_xpath("//table//td[.//code[normalize-space()='champion']]"), "the model's table of aliases")
    browser.screenshot("registered-model")
