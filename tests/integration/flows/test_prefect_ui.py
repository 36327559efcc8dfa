"""A person's path through the Prefect UI of the stack from ``lockgate up``, in headless Chromium.

Open the deployments page, find lockgate's deployments, open the ``monitor`` one, click Run -> Quick run
(and Run in the parameter form it opens), follow "View run" and watch the flow run page until it says
Completed; the Prefect API must agree. With no inference data the monitor run is a quick no-op.

Needs Debian's ``chromium`` and ``chromium-driver`` (``apt-get install -y chromium chromium-driver``);
Selenium drives /usr/bin/chromedriver directly, so nothing is downloaded.
"""

from __future__ import annotations

import contextlib
import json
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import pytest

if TYPE_CHECKING:
    from tests.support.stack import RunningStack

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]

# The stack fixtures (running_stack, stack_handle) are shared by every module that loads this plugin.
pytest_plugins = ["tests.support.stack"]

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1600,1000",
)
LOCKGATE_FLOWS = {"ingest", "train", "deploy", "monitor", "retrain", "retention"}
RUN_TIMEOUT_S = 180

T = TypeVar("T")


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    """Headless Chromium from Debian's packages (a missing browser fails the test, it does not skip)."""
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    if missing:
        pytest.fail(
            f"{' and '.join(missing)} not found: the browser test needs Debian's Chromium and its driver "
            "(sudo apt-get install -y chromium chromium-driver)"
        )
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail("the browser test needs selenium: pip install selenium")

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@contextlib.contextmanager
def _screenshot_on_failure(driver, directory: Path) -> Iterator[None]:
    """Keep what the browser showed when a step failed: a PNG and the page's HTML in ``directory``."""
    try:
        yield
    except BaseException:
        screenshot = directory / "prefect-ui-failure.png"
        with contextlib.suppress(Exception):
            driver.save_screenshot(str(screenshot))
            (directory / "prefect-ui-failure.html").write_text(driver.page_source)
            print(f"the page at {driver.current_url} when the test failed: {screenshot}")
        raise


def test_quick_run_of_the_monitor_deployment_from_the_ui_completes(
    running_stack: RunningStack, browser, tmp_path: Path
) -> None:
    with _screenshot_on_failure(browser, tmp_path):
        _quick_run_monitor_from_the_ui(running_stack, browser)


def _quick_run_monitor_from_the_ui(running_stack: RunningStack, driver) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, 60, poll_frequency=0.25)

    # The deployments page lists every lockgate deployment, by deployment name and flow name.
    driver.get(f"{running_stack.prefect_url}/deployments")
    rows = wait.until(lambda d: _lockgate_rows(d) if len(_lockgate_rows(d)) >= len(LOCKGATE_FLOWS) else None)
    assert {flow for flow, _row in rows} >= LOCKGATE_FLOWS
    monitor_row = next(row for flow, row in rows if flow == "monitor")
    deployment_name = monitor_row.find_element(By.CSS_SELECTOR, "a.deployment-list__name").text
    monitor_row.find_element(By.CSS_SELECTOR, "a.deployment-list__name").click()

    # The deployment page: Run -> Quick run; the monitor flow takes a parameter model, so Prefect shows
    # its form with the defaults filled in, and Run in that form starts the run.
    wait.until(lambda d: "/deployments/deployment/" in d.current_url)
    deployment_id = driver.current_url.split("/deployments/deployment/")[1].split("?")[0]
    _click(driver, lambda d: _button(d, "Run", css="button.run-menu__run-button"))
    _click(driver, lambda d: _button(d, "Quick run"))
    # Prefect skips the form when a deployment needs no parameters.
    _click(driver, lambda d: _button(d, "Run", css=".p-modal button[type=submit]"), timeout=10, optional=True)

    # The toast says the run is scheduled; "View run" opens it.
    _click(driver, lambda d: _button(d, "View run"))
    wait.until(lambda d: "/runs/flow-run/" in d.current_url)
    flow_run_id = driver.current_url.split("/runs/flow-run/")[1].split("?")[0].split("/")[0]

    # The flow run page updates itself; a person watches the state badge turn Completed.
    long_wait = WebDriverWait(driver, RUN_TIMEOUT_S, poll_frequency=1)
    state = long_wait.until(lambda d: _final_state(d))
    assert state == "Completed", f"the flow run page shows {state}"

    flow_run = _api_get(running_stack, f"/flow_runs/{flow_run_id}")
    assert flow_run["state"]["type"] == "COMPLETED"
    assert flow_run["deployment_id"] == deployment_id
    flow = _api_get(running_stack, f"/flows/{flow_run['flow_id']}")
    assert flow["name"] == "monitor"
    deployment = _api_get(running_stack, f"/deployments/{deployment_id}")
    assert deployment["name"] == deployment_name
    assert "lockgate" in deployment["tags"]
    # Started by hand from the UI, not by the deployment's schedule.
    assert "auto-scheduled" not in flow_run["tags"]


def _lockgate_rows(driver) -> list[tuple[str, object]]:
    """(flow name, table row) of each deployment tagged lockgate on the deployments page."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    found = []
    for row in driver.find_elements(By.CSS_SELECTOR, "tr.p-table-row"):
        try:
            flows = row.find_elements(By.CSS_SELECTOR, ".flow-popover__link-name")
            if flows and "lockgate" in row.text.split("\n"):
                found.append((flows[0].text.strip(), row))
        except StaleElementReferenceException:  # the list re-renders while it loads
            return []
    return found


def _button(driver, text: str, *, css: str = "button"):
    """The visible, enabled button labelled ``text`` (the last one: menus and toasts render on top)."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    try:
        matches = [
            element
            for element in driver.find_elements(By.CSS_SELECTOR, css)
            if element.text.strip() == text and element.is_displayed() and element.is_enabled()
        ]
    except StaleElementReferenceException:  # re-rendered while we looked; the next poll finds it
        return None
    return matches[-1] if matches else None


def _click(
    driver, find: Callable[[object], T | None], *, timeout: float = 60, optional: bool = False
) -> None:
    """Wait for an element and click it, retrying when the UI re-renders it under the pointer.

    ``optional``: an element that does not appear within ``timeout`` is skipped, not an error.
    """
    from selenium.common.exceptions import (
        ElementClickInterceptedException,
        StaleElementReferenceException,
        TimeoutException,
    )
    from selenium.webdriver.support.ui import WebDriverWait

    def attempt(driver) -> bool:
        element = find(driver)
        if element is None:
            return False
        try:
            element.click()
        except (StaleElementReferenceException, ElementClickInterceptedException):
            return False
        return True

    with contextlib.suppress(*((TimeoutException,) if optional else ())):
        WebDriverWait(driver, timeout, poll_frequency=0.25).until(attempt)


def _final_state(driver) -> str | None:
    """The flow run's state from its page header once it is final, else ``None``."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    try:
        badges = driver.find_elements(By.CSS_SELECTOR, ".state-badge")
        states = [badge.text.strip() for badge in badges if badge.is_displayed()]
    except StaleElementReferenceException:
        return None
    final = {"Completed", "Failed", "Crashed", "Cancelled", "TimedOut"}
    return next((state for state in states if state in final), None)


def _api_get(stack: RunningStack, path: str) -> dict:
    with urllib.request.urlopen(f"{stack.prefect_url}/api{path}", timeout=10) as response:
        return json.loads(response.read())
