"""The web dashboard, in headless Chromium, over a real `cumulo up` of examples/ml-pipeline.

Debian's chromium and chromium-driver (scripts/infra/install-chromium) are
driven by Selenium with the driver path given, so nothing is downloaded. With
``CUMULO_UPDATE_SCREENSHOTS=1`` the screenshots go to docs/screenshots (the
ones the docs show), else to the test's tmp_path.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from tests.e2e.platform import RunningPlatform, wait_for
from tests.e2e.test_ml_pipeline import TRAINING_TIMEOUT, chain_event, copy_example, dataset_ready

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
DOCS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--window-size=1400,900",
)  # fmt: skip

pytestmark = pytest.mark.timeout(600)


@pytest.fixture
def browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[WebDriver]:
    for tool in (CHROMIUM, CHROMEDRIVER):  # a missing tool fails: run scripts/infra/install
        assert tool.exists(), f"{tool} is missing: run scripts/infra/install-chromium"
    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager must not fetch anything
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    driver.implicitly_wait(5)
    yield driver
    driver.quit()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = DOCS if os.environ.get("CUMULO_UPDATE_SCREENSHOTS") == "1" else tmp_path / "shots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def screenshot(driver: WebDriver, folder: Path, name: str) -> None:
    """The whole page (the viewport stretched to its height), as a PNG."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    metrics = {"width": 1400, "height": min(max(int(height), 500), 3000)}
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride", {**metrics, "deviceScaleFactor": 1, "mobile": False}
    )
    driver.save_screenshot(str(folder / f"{name}.png"))
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def text(driver: WebDriver, css: str) -> str:
    return str(driver.find_element(By.CSS_SELECTOR, css).text)


def api(platform: RunningPlatform, path: str) -> Any:
    answer = platform.request("GET", path)
    assert answer.status == 200, answer.body
    return answer.json()


def run_the_pipeline(platform: RunningPlatform) -> None:
    """v1 from small.csv, v2 (champion) from large.csv, and broken.csv fails into a dead letter."""
    dataset_ready(platform, "data/small.csv", id="small")
    chain_event(platform, "dev.cumulo.model.deployed", "small")
    dataset_ready(platform, "data/large.csv", id="large")
    chain_event(platform, "dev.cumulo.model.deployed", "large")
    dataset_ready(platform, "data/broken.csv", id="broken")
    chain_event(platform, "dev.cumulo.run.failed", "broken")
    wait_for(lambda: api(platform, "/api/dead-letters"), TRAINING_TIMEOUT, "the dead letter")


def test_the_dashboard_shows_the_ml_pipeline(platform_factory, tmp_path, browser, shots):
    platform = platform_factory(copy_example(tmp_path))
    run_the_pipeline(platform)
    ui = platform.url + "/ui"

    browser.get(ui + "/")
    rows = {
        r.get_attribute("data-function"): r
        for r in browser.find_elements(By.CSS_SELECTOR, "tr[data-function]")
    }
    assert {"train", "evaluate", "deploy", "predict"} <= rows.keys()
    train_cells = rows["train"].find_elements(By.TAG_NAME, "td")
    assert int(rows["train"].find_element(By.CSS_SELECTOR, '[data-field="invocations"]').text) >= 3
    assert int(rows["train"].find_element(By.CSS_SELECTOR, '[data-field="errors"]').text) == 1
    assert train_cells[1].text == "job"
    assert (
        int(rows["evaluate"].find_element(By.CSS_SELECTOR, '[data-field="invocations"]').text) == 2
    )
    screenshot(browser, shots, "functions")

    browser.get(ui + "/graph")
    chain = [
        ("type:dev.cumulo.dataset.ready", "function:train"),
        ("function:train", "type:dev.cumulo.model.trained"),
        ("type:dev.cumulo.model.trained", "function:evaluate"),
        ("function:evaluate", "type:dev.cumulo.model.evaluated"),
        ("type:dev.cumulo.model.evaluated", "function:deploy"),
        ("function:deploy", "type:dev.cumulo.model.deployed"),
    ]
    for a, b in chain:
        label = browser.find_element(By.ID, f"edge-{a}->{b}")
        assert int(label.text) >= 2, (a, b, label.text)
    screenshot(browser, shots, "graph")

    browser.get(ui + "/events?type=dataset.ready")
    summaries = browser.find_elements(By.CSS_SELECTOR, "details.event summary")
    assert len(summaries) == 3 and all("dev.cumulo.dataset.ready" in s.text for s in summaries)
    broken = browser.find_element(By.ID, "broken")
    broken.find_element(By.TAG_NAME, "summary").click()
    assert "data/broken.csv" in broken.find_element(By.TAG_NAME, "pre").text
    assert "train" in broken.text  # the run it started
    screenshot(browser, shots, "events")

    browser.get(ui + "/runs")
    failed = browser.find_element(By.CSS_SELECTOR, "tr.failed")
    assert "train" in failed.text
    failed.find_element(By.CSS_SELECTOR, "a.log-link").click()
    assert "no column 'target'" in text(browser, "#log")
    screenshot(browser, shots, "run-log")
    browser.get(ui + "/runs")
    screenshot(browser, shots, "runs")

    browser.get(ui + "/models")
    stages = {
        r.get_attribute("data-version"): r.get_attribute("data-stage")
        for r in browser.find_elements(By.CSS_SELECTOR, "tr[data-version]")
    }
    assert stages == {"1": "archived", "2": "champion"}
    points = browser.find_elements(By.CSS_SELECTOR, 'svg.chart circle[data-metric="accuracy"]')
    assert [p.get_attribute("data-version") for p in points] == ["1", "2"]
    assert "small.csv" in text(browser, 'tr[data-version="1"]')
    screenshot(browser, shots, "models")

    browser.get(ui + "/dead-letters")
    letter = browser.find_element(By.CSS_SELECTOR, 'tr[data-id="broken"]')
    assert "PermanentError" in letter.text and "target" in letter.text
    train_runs = len(api(platform, "/api/runs?function=train"))
    screenshot(browser, shots, "dead-letters")
    letter.find_element(By.CSS_SELECTOR, "button.redrive").click()
    wait_for(lambda: "redriven" in letter.text, what="the redrive to answer")
    wait_for(lambda: len(api(platform, "/api/runs?function=train")) > train_runs, TRAINING_TIMEOUT,
             "a new delivery attempt of the redriven event")  # fmt: skip
    redriven = [m for m in platform.events("default") if m["event"]["id"] == "broken"]
    assert len(redriven) == 2 and "cumuloerrortype" not in redriven[1]["event"]


def test_redrive_is_idempotent_and_the_ui_takes_the_token(platform_factory, tmp_path, browser):
    platform = platform_factory(copy_example(tmp_path), env={"CUMULO_API_TOKEN": "s3cret"})
    auth = {"Authorization": "Bearer s3cret"}
    body = b'{"specversion":"1.0","id":"b1","source":"/t","type":"dev.cumulo.dataset.ready","data":{"uri":"data/broken.csv"}}'
    answer = platform.request(
        "POST", "/events", body, {**auth, "Content-Type": "application/cloudevents+json"}
    )
    assert answer.status == 202

    def dead_letters() -> list[Any]:
        return list(platform.request("GET", "/api/dead-letters", headers=auth).json())

    [letter] = wait_for(dead_letters, TRAINING_TIMEOUT, "the dead letter")
    assert letter["reason"]["errorType"] == "PermanentError" and letter["reason"]["attempts"] == 1
    path = f"/api/dead-letters/{letter['offset']}/redrive"
    assert platform.request("POST", path).status == 401
    first = platform.request("POST", path, headers=auth).json()
    again = platform.request("POST", path, headers=auth).json()
    assert (first["alreadyRedriven"], again["alreadyRedriven"]) == (False, True)
    assert first["newOffset"] == again["newOffset"]
    events = platform.request("GET", "/api/events?limit=10000", headers=auth).json()
    assert [m["event"]["id"] for m in events].count("b1") == 2

    browser.get(platform.url + "/ui/runs")
    assert "401" in browser.page_source or "Unauthorized" in browser.page_source
    browser.get(platform.url + "/ui/runs?token=s3cret")
    assert browser.current_url.endswith("/ui/runs")  # the token became a cookie
    assert browser.find_elements(By.CSS_SELECTOR, "tr[data-run]")
    browser.get(platform.url + "/api/runs")
    assert '"function"' in browser.page_source  # the cookie authorises the API's reads
