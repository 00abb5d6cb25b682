"""Headless Chromium for the browser test: Debian's chromium + chromedriver, driven by selenium."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Callable, TypeVar

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
TIMEOUT = 60  # seconds for any one thing to appear: the UI is a React app on a busy machine
# Where screenshots also go (besides the test's tmp folder), e.g. to keep them as CI artifacts.
SCREENSHOTS_ENV = "VAE_LAB_SCREENSHOTS"

T = TypeVar("T")


def missing_browser() -> str | None:
    """Why the browser test cannot run here, or None when it can."""
    absent = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if absent:
        return f"needs Debian's chromium and chromium-driver ({', '.join(absent)} missing): apt-get install -y chromium chromium-driver"
    return None


def start_chromium(profile: Path):
    """A headless Chromium with a fresh profile in `profile`, keeping the console log for diagnosis."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1600,1000",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(TIMEOUT)
    return driver


class Browser:
    """A selenium driver plus the folder its screenshots go to; waits that leave evidence when they fail."""

    def __init__(self, driver, screens: Path):
        self.driver = driver
        self.screens = screens
        screens.mkdir(parents=True, exist_ok=True)

    def screenshot(self, name: str) -> Path:
        path = self.screens / f"{name}.png"
        self.driver.save_screenshot(str(path))
        extra = os.environ.get(SCREENSHOTS_ENV)
        if extra:
            Path(extra).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(extra) / path.name)
        return path

    def wait(self, condition: Callable[[object], T], what: str, timeout: float = TIMEOUT) -> T:
        """Wait until `condition(driver)` is truthy; on timeout keep a screenshot, the page and the console."""
        from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
        from selenium.webdriver.support.ui import WebDriverWait

        # A React page re-renders under the condition: an element found then gone is "not yet", not a failure.
        waiting = WebDriverWait(
            self.driver, timeout, poll_frequency=0.5, ignored_exceptions=(StaleElementReferenceException,)
        )
        try:
            return waiting.until(condition)
        except TimeoutException:
            slug = "".join(c if c.isalnum() else "-" for c in what)[:60]
            shot = self.screenshot(f"failed-{slug}")
            self.driver.switch_to.default_content()
            (self.screens / f"failed-{slug}.html").write_text(self.driver.page_source)
            console = "\n".join(str(entry) for entry in self.console())
            raise AssertionError(
                f"timed out after {timeout}s waiting for {what} at {self.driver.current_url}; screenshot {shot}\nbrowser console:\n{console}"
            ) from None

    def console(self) -> list[dict]:
        try:
            return self.driver.get_log("browser")
        except Exception:  # the log is for diagnosis only
            return []
