"""The dashboard in a real headless browser (Debian's chromium + chromium-driver, Selenium),
over a real local-mode rollout: runtime processes, the router, client traffic, the engine.

The rollout holds at each weight on a `pause` step until the test promotes it, so "the page
updates as the weight changes" does not depend on timing: the page is loaded once, at 30 %, and
must show 60 % (then the promotion) by itself. Screenshots go to test-artifacts/ at the
repository root (SERINUS_TEST_ARTIFACTS to change it).
"""

from __future__ import annotations

import os
import shutil
import threading
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from serinus.api.status import ModelDeploymentStatus, Phase
from serinus.demo.bundles import FEATURES, MODEL_NAME, DemoBundles, build_demo_bundles
from serinus.demo.run import demo_manifest
from serinus.local.controller import NAMESPACE, LocalController
from serinus.local.load import LoadGenerator, rows_from_profile
from serinus.local.state import StateDir

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("SERINUS_TEST_ARTIFACTS") or ROOT / "test-artifacts")
TICK_S = 0.25
FIRST_S = 90.0
STEP_S = 60.0
PAGE_S = 20.0
"""The page polls every 2 s: anything the API says must be on the page well within this."""


def browser_binaries() -> tuple[str, str]:
    """(chromium, chromedriver); fails in CI without them, skips elsewhere (as
    tests/metrics/conftest.py does for Prometheus)."""
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing = "the selenium package (pip install -e .[test])"
    else:
        missing = None if chromium and driver else "chromium and chromium-driver"
    if missing is None:
        assert chromium is not None and driver is not None
        return chromium, driver
    message = (
        f"{missing} not installed: apt-get install -y --no-install-recommends chromium "
        "chromium-driver (Debian; ./dev setup does it)"
    )
    if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
        pytest.fail(f"CI must run the dashboard's browser test, but {message}")
    pytest.skip(message)


def manifest(bundles: DemoBundles, version: str) -> dict[str, Any]:
    model = {"1": bundles.v1, "2": bundles.v2}[version]
    body = demo_manifest(model)
    spec = body["spec"]
    spec["runtime"] = {"replicas": 1}
    rollout = spec["rollout"]
    rollout["interval"] = "3s"
    rollout["scaleDownDelay"] = "1s"
    rollout["steps"] = [
        {"setWeight": 30}, {"analysis": {"passes": 1}}, {"pause": {}},
        {"setWeight": 60}, {"analysis": {"passes": 1}}, {"pause": {}},
    ]  # fmt: skip
    analysis = rollout["analysis"]
    analysis["minRequests"] = 30
    analysis["confidence"] = 0.9999  # v2 is good; never fail it by chance
    analysis["inconclusiveLimit"] = 0
    return body


@dataclass
class Rollout:
    """A LocalController with the dashboard, ticked by a thread, under client traffic."""

    state: StateDir
    controller: LocalController
    dashboard: Any
    error: str | None = None
    load: LoadGenerator | None = None

    def status(self) -> ModelDeploymentStatus:
        if self.error is not None:
            raise AssertionError(f"a controller tick raised:\n{self.error}")
        return self.controller.status

    def wait(self, what: str, condition: Callable[[ModelDeploymentStatus], bool], timeout: float):
        import time

        deadline = time.monotonic() + timeout
        while not condition(status := self.status()):
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not within {timeout}s; {status.phase}: "
                                     f"{status.message}")  # fmt: skip
            time.sleep(0.1)
        return status

    @property
    def page(self) -> str:
        return f"{self.dashboard.url}/md/{NAMESPACE}/{MODEL_NAME}"


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> DemoBundles:
    return build_demo_bundles(tmp_path_factory.mktemp("dashboard-bundles"))


@pytest.fixture
def rollout(tmp_path: Path, bundles: DemoBundles) -> Iterator[Rollout]:
    from serinus.dashboard.server import DashboardServer
    from serinus.dashboard.timeline import Timeline

    state = StateDir(tmp_path / "state")
    state.apply(manifest(bundles, "1"))
    controller = LocalController(state, router_port=0, prometheus=False)
    controller.timeline = Timeline()
    stop = threading.Event()
    dashboard = DashboardServer(controller.timeline, port=0, title="Serinus local")
    running = Rollout(state, controller, dashboard)

    def ticks() -> None:
        while not stop.wait(TICK_S):
            try:
                controller.tick()
            except Exception:
                running.error = traceback.format_exc()
                return

    thread = threading.Thread(target=ticks, name="dashboard-test-ticks", daemon=True)
    try:
        controller.start()
        dashboard.start()
        thread.start()
        yield running
    finally:
        if running.load is not None:
            running.load.stop(timeout=15.0)
        stop.set()
        thread.join(timeout=30.0)
        dashboard.stop()
        controller.close()


@pytest.fixture
def browser() -> Iterator[Any]:
    chromium, chromedriver = browser_binaries()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium Manager download a driver
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-gpu", "--window-size=1280,2000", "--hide-scrollbars"):  # fmt: skip
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


class Console:
    """Every browser console entry seen so far (get_log empties the browser's buffer)."""

    def __init__(self, driver: Any) -> None:
        self.driver = driver
        self.entries: list[dict[str, Any]] = []

    def errors(self) -> list[dict[str, Any]]:
        self.entries.extend(self.driver.get_log("browser"))
        return [e for e in self.entries if e.get("level") == "SEVERE"]


def text_of(driver: Any, element_id: str) -> str:
    from selenium.webdriver.common.by import By

    return str(driver.find_element(By.ID, element_id).text).strip()


def page_shows(driver: Any, what: str, check: Callable[[], bool], timeout: float = PAGE_S) -> None:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        WebDriverWait(driver, timeout, poll_frequency=0.2).until(lambda _: check())
    except TimeoutException:
        shot = ARTIFACTS / "dashboard-failure.png"
        driver.save_screenshot(str(shot))
        shown = ("phase", "canary-weight", "stable-version", "canary-version", "message", "refresh")
        summary = {i: text_of(driver, i) for i in shown}
        raise AssertionError(
            f"the page did not show {what} within {timeout}s: {summary} (screenshot {shot})"
        ) from None


def test_the_page_follows_a_real_rollout_without_reloading(
    rollout: Rollout, bundles: DemoBundles, browser: Any
) -> None:
    from selenium.webdriver.common.by import By

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    console = Console(browser)
    rollout.wait("v1 stable", lambda s: s.phase == Phase.STABLE, FIRST_S)
    rows = rows_from_profile(bundles.v1.bundle, n=300, seed=0)
    rollout.load = LoadGenerator(
        rollout.controller.router.url, MODEL_NAME, rows, 60.0, concurrency=4,
        features=list(FEATURES), seed=1, timeout=10.0,
    ).start()  # fmt: skip

    # The list page lists the one deployment of this state directory.
    browser.get(rollout.dashboard.url + "/")
    page_shows(
        browser, "the deployment in the list", lambda: "iris" in text_of(browser, "deployments")
    )
    assert "Stable" in text_of(browser, "deployments")

    # v2 rolls out and holds at 30 % after its first passing check: open its page then.
    rollout.state.apply(manifest(bundles, "2"))
    held = rollout.wait(
        "v2 held at 30 % after a passing check",
        lambda s: s.phase == Phase.PAUSED and s.canary is not None and s.canary.weight == 30,
        STEP_S,
    )
    assert held.analysis.checks and held.analysis.checks[-1].verdict.value == "Pass"
    browser.get(rollout.page)
    page_shows(browser, "phase Paused at 30 %", lambda: (
        text_of(browser, "phase") == "Paused" and text_of(browser, "canary-weight") == "30%"
    ))  # fmt: skip
    assert text_of(browser, "canary-version") == "2" and text_of(browser, "stable-version") == "1"
    assert text_of(browser, "stable-weight") == "70%"
    page_shows(browser, "a Pass marker on the timeline", lambda: bool(
        browser.find_elements(By.CSS_SELECTOR, "#charts circle.marker-pass")
    ))  # fmt: skip
    marker = browser.find_element(By.CSS_SELECTOR, "#charts circle.marker-pass title")
    assert "error-rate" in marker.get_attribute("textContent")
    checks = text_of(browser, "checks")
    assert "Pass" in checks and "error-rate" in checks and "prediction-drift" in checks
    browser.save_screenshot(str(ARTIFACTS / "dashboard.png"))

    # Promote: the engine moves to 60 %. The same page, never reloaded, must follow.
    browser.execute_script("window.__sameDocument = 'yes';")
    rollout.state.request_action("promote")
    page_shows(browser, "the canary at 60 %", lambda: text_of(browser, "canary-weight") == "60%")
    assert text_of(browser, "stable-weight") == "40%"
    rollout.wait(
        "v2 held at 60 % after a passing check",
        lambda s: s.phase == Phase.PAUSED and s.canary is not None and s.canary.weight == 60,
        STEP_S,
    )
    page_shows(browser, "two Pass markers", lambda: len(
        browser.find_elements(By.CSS_SELECTOR, "#charts circle.marker-pass")
    ) >= 2)  # fmt: skip
    weights = browser.find_element(By.CSS_SELECTOR, "#charts path.weight")
    assert weights.get_attribute("data-weights").split(",")[-2:] == ["60", "60"]
    browser.save_screenshot(str(ARTIFACTS / "dashboard-60.png"))

    # The last promote: v2 becomes stable; the page says so, still the same document.
    rollout.state.request_action("promote")
    rollout.wait("v2 stable", lambda s: s.phase == Phase.STABLE and s.canary is None, STEP_S)
    page_shows(browser, "v2 stable", lambda: (
        text_of(browser, "phase") == "Stable" and text_of(browser, "stable-version") == "2"
    ))  # fmt: skip
    assert text_of(browser, "stable-weight") == "100%"
    page_shows(browser, "the rollout ending at 100 %", lambda: browser.find_element(
        By.CSS_SELECTOR, "#charts path.weight"
    ).get_attribute("data-weights").endswith(",100"))  # fmt: skip
    assert "Promoted" in text_of(browser, "rollouts")
    assert browser.execute_script("return window.__sameDocument;") == "yes", "the page reloaded"
    browser.save_screenshot(str(ARTIFACTS / "dashboard-promoted.png"))

    assert console.errors() == [], console.entries
    assert (ARTIFACTS / "dashboard.png").stat().st_size > 10_000
