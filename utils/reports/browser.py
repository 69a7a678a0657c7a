"""Headless Debian Chromium driven through chromedriver (selenium): how the page tests and the page benchmark open
the reports, as a user's browser would (file://, scripts run).

    from utils.reports.browser import headless_chromium
    with headless_chromium() as driver:
        driver.get(Path("report.html").resolve().as_uri())
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator

FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1000")


def browser_missing() -> str | None:
    """Why no browser can be started here (None when chromium and chromedriver are on PATH)."""
    if shutil.which("chromium") and shutil.which("chromedriver"):
        return None
    return "no chromium + chromedriver on this machine (bash tools/install_browser.sh installs them as root)"


@contextlib.contextmanager
def headless_chromium() -> Iterator:
    """A selenium Chrome driver on Debian's chromium, quit on exit. Raises RuntimeError when none can start."""
    missing = browser_missing()
    if missing:
        raise RuntimeError(missing)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    try:
        yield driver
    finally:
        driver.quit()
