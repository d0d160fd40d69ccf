"""The console in a real browser (headless Chromium driven by Selenium) against a running agent
on a real broker: log in, see an alert appear without a reload, acknowledge it; a viewer has no
button and a forged post is refused; a post without the CSRF token is refused; readings become
points on the machine page's chart.

Screenshots go to $AGENT_TEST_SCREENSHOTS (default: the test's tmp dir), never into the repo.
Skipped only with AGENT_TEST_NO_BROWSER=1; otherwise a missing Chromium fails the test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.store.repository import Store
from tests.support.agent_process import AgentProcess
from tests.support.console import PASSWORDS, start_console
from tests.support.live import PRESS, STOCK, Publisher
from tests.support.mosquitto import Mosquitto

pytestmark = pytest.mark.skipif(
    os.environ.get("AGENT_TEST_NO_BROWSER") == "1", reason="AGENT_TEST_NO_BROWSER=1"
)

if os.environ.get("AGENT_TEST_NO_BROWSER") != "1":
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.support import expected_conditions as seen
    from selenium.webdriver.support.ui import WebDriverWait

CHROMEDRIVER = "/usr/bin/chromedriver"
# What a page's script gets back from a POST it makes itself (a forged form).
FETCH = """
const [path, body, done] = arguments;
fetch(path, {method: "POST", credentials: "same-origin", redirect: "manual",
             headers: {"Content-Type": "application/x-www-form-urlencoded"}, body: body})
  .then(r => done(r.status), e => done(String(e)));
"""


@pytest.fixture
def console(broker: Mosquitto, tmp_path: Path) -> Iterator[tuple[AgentProcess, int]]:
    process, port = start_console(broker, tmp_path)
    yield process, port
    process.stop()


@pytest.fixture
def charted(broker: Mosquitto, tmp_path: Path) -> Iterator[tuple[AgentProcess, int]]:
    """The console with the readings history on (it is off by default): charts have points."""
    process, port = start_console(broker, tmp_path, history=True)
    yield process, port
    process.stop()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("AGENT_TEST_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    print(f"screenshots in {folder}")
    return folder


def browser() -> WebDriver:
    options = webdriver.ChromeOptions()
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1366,900",
        "--disable-gpu",
    ):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)


@pytest.fixture
def driver() -> Iterator[WebDriver]:
    chrome = browser()
    yield chrome
    chrome.quit()


def log_in(driver: WebDriver, base: str, name: str) -> None:
    driver.get(f"{base}/login")
    driver.find_element(By.ID, "name").send_keys(name)
    driver.find_element(By.ID, "password").send_keys(PASSWORDS[name])
    driver.find_element(By.ID, "login").click()
    WebDriverWait(driver, 10).until(seen.text_to_be_present_in_element((By.ID, "user"), name))


def wait_for_alert_row(driver: WebDriver) -> int:
    row = WebDriverWait(driver, 20).until(
        seen.presence_of_element_located((By.CSS_SELECTOR, "#rows tr[id^='alert-']"))
    )
    return int(str(row.get_attribute("id")).removeprefix("alert-"))


def alerts_json(config: Path, cwd: Path, status: str) -> list[dict[str, object]]:
    """What `factory-agent alerts --json --status S` prints (the CLI people use)."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "agent",
            "alerts",
            "--json",
            "--status",
            status,
            "--config",
            str(config),
        ],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_an_operator_sees_an_alert_arrive_live_and_acknowledges_it(
    console: tuple[AgentProcess, int],
    publisher: Publisher,
    driver: WebDriver,
    shots: Path,
    tmp_path: Path,
) -> None:
    process, port = console
    base = f"http://127.0.0.1:{port}"
    log_in(driver, base, "olga")
    assert "no alerts" in driver.find_element(By.ID, "rows").text
    driver.execute_script("window.stillThisPage = true;")  # gone if the page reloads

    publisher.send(PRESS, {"state": "down", "fault": "E17"})
    id = wait_for_alert_row(driver)
    assert driver.execute_script("return window.stillThisPage === true;"), "the page reloaded"
    row = driver.find_element(By.ID, f"alert-{id}")
    assert "press-01 is down (fault E17)" in row.text and "CRITICAL" in row.text
    assert driver.find_element(By.ID, "open-count").text == "1"
    driver.save_screenshot(str(shots / "alerts-firing.png"))

    # A post without the form's token, from the logged-in operator's own page: refused.
    status = driver.execute_async_script(FETCH, f"/alerts/{id}/ack", "back=/alerts")
    assert status == 403

    row.find_element(By.CSS_SELECTOR, "button[data-command='ack']").click()
    WebDriverWait(driver, 10).until(
        seen.text_to_be_present_in_element((By.CSS_SELECTOR, f"#alert-{id} .acked-by"), "olga")
    )
    assert driver.find_element(By.CSS_SELECTOR, f"#alert-{id} .status").text == "acknowledged"
    driver.save_screenshot(str(shots / "alerts-acknowledged.png"))

    acknowledged = alerts_json(process.config, tmp_path, "acknowledged")
    assert [a["id"] for a in acknowledged] == [id]
    with Store.open(f"sqlite:///{tmp_path}/agent.db") as store:
        stored = next(a for a in store.alerts() if a["id"] == id)
    assert stored["acknowledged_by"] == "olga"

    driver.get(f"{base}/actions")
    assert "repair" in driver.find_element(By.ID, "rows").text
    driver.save_screenshot(str(shots / "actions.png"))
    # The alert's own page, reached from its row: its rule, where it is written, its episodes.
    driver.get(f"{base}/alerts?status=all")
    driver.find_element(By.CSS_SELECTOR, f"#alert-{id} a.detail").click()
    WebDriverWait(driver, 10).until(seen.presence_of_element_located((By.ID, "episodes")))
    assert driver.find_element(By.ID, "rule-id").text == "machine-down"
    assert "maintenance.yaml:" in driver.find_element(By.ID, "rule-where").text
    driver.save_screenshot(str(shots / "alert-detail.png"))
    driver.get(f"{base}/rules")
    assert "enabled" in driver.find_element(By.ID, "rule-machine-down").text
    driver.save_screenshot(str(shots / "rules.png"))
    publisher.send(PRESS, b"not json at all")
    driver.get(f"{base}/dead-letters")
    WebDriverWait(driver, 20).until(
        lambda d: d.refresh() or "not json at all" in d.find_element(By.ID, "rows").text
    )
    assert driver.find_elements(By.CSS_SELECTOR, "button.cmd-reprocess")
    driver.save_screenshot(str(shots / "dead-letters.png"))
    driver.set_window_size(390, 844)  # a phone
    driver.get(f"{base}/alerts?status=all")
    driver.save_screenshot(str(shots / "alerts-phone.png"))


def test_a_viewer_has_no_button_and_a_forged_post_is_refused(
    console: tuple[AgentProcess, int],
    publisher: Publisher,
    driver: WebDriver,
    shots: Path,
    tmp_path: Path,
) -> None:
    process, port = console
    base = f"http://127.0.0.1:{port}"
    publisher.send(PRESS, {"state": "down", "fault": "E17"})
    log_in(driver, base, "victor")
    id = wait_for_alert_row(driver)
    assert driver.find_elements(By.CSS_SELECTOR, "button[data-command]") == []
    driver.save_screenshot(str(shots / "alerts-viewer.png"))

    # The viewer's own valid token (from the log-out form) on a hand-made ack form.
    token = driver.find_element(By.CSS_SELECTOR, "input[name='csrf']").get_attribute("value")
    status = driver.execute_async_script(FETCH, f"/alerts/{id}/ack", f"csrf={token}")
    assert status == 403
    assert [a["id"] for a in alerts_json(process.config, tmp_path, "firing")] == [id]


def test_the_machine_page_charts_the_readings_published(
    charted: tuple[AgentProcess, int],
    publisher: Publisher,
    driver: WebDriver,
    shots: Path,
) -> None:
    """Readings published on MQTT become points on the machine's chart, with its limit drawn;
    a stock count shows on the stock page and its chart (issue 17 items 1 and 2)."""
    _, port = charted
    base = f"http://127.0.0.1:{port}"
    start = datetime.now(UTC) - timedelta(minutes=12)
    for minute in range(12):  # one reading a minute: twelve buckets, twelve points
        at = (start + timedelta(minutes=minute)).isoformat()
        reading = {"state": "running", "temp_c": 62.0 + 1.5 * minute, "vibration_mm_s": 2.0}
        publisher.send(PRESS, {**reading, "ts": at})
    publisher.send(STOCK, {"on_hand": 7})
    log_in(driver, base, "victor")

    driver.get(f"{base}/machines")
    link = WebDriverWait(driver, 20).until(
        seen.presence_of_element_located((By.CSS_SELECTOR, "a[href='/machines/plant1/press-01']"))
    )
    assert "running" in driver.find_element(By.ID, "rows").text.lower()
    driver.save_screenshot(str(shots / "machines.png"))
    link.click()

    def points(chrome: WebDriver) -> int:
        found = chrome.find_elements(By.CSS_SELECTOR, "#chart-temp_c svg.chart circle.point")
        if len(found) < 12:
            chrome.refresh()  # the readings' last commit may follow the first page view
        return len(found)

    WebDriverWait(driver, 20).until(lambda chrome: points(chrome) >= 12)
    chart = driver.find_element(By.CSS_SELECTOR, "#chart-temp_c svg.chart")
    assert chart.find_elements(By.CSS_SELECTOR, "line.limit")  # max_temp_c from master data
    assert "max_temp_c 80" in chart.get_attribute("innerHTML")
    assert chart.size["width"] > 300 and chart.size["height"] > 80  # drawn, not collapsed
    assert driver.find_elements(By.CSS_SELECTOR, "#chart-vibration_mm_s circle.point")
    driver.get(f"{base}/machines/plant1/press-01?hours=1")
    assert len(driver.find_elements(By.CSS_SELECTOR, "#chart-temp_c circle.point")) == 12
    driver.save_screenshot(str(shots / "machine.png"))

    driver.get(f"{base}/stock")
    WebDriverWait(driver, 20).until(
        seen.presence_of_element_located((By.CSS_SELECTOR, "a[href='/stock/plant1/BRG-6204']"))
    ).click()
    WebDriverWait(driver, 20).until(
        lambda chrome: (
            chrome.find_elements(By.CSS_SELECTOR, "#chart-on_hand circle.point") or chrome.refresh()
        )
    )
    assert "reorder point" in driver.find_element(By.ID, "chart-on_hand").get_attribute("innerHTML")
    driver.save_screenshot(str(shots / "stock-item.png"))
    driver.get(f"{base}/stock")
    driver.save_screenshot(str(shots / "stock.png"))
