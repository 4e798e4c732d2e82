"""Headless Chromium (Debian's chromium and chromium-driver) for the browser tests, through
Selenium; ``make browser-deps`` installs both."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
needs_chromium = pytest.mark.skipif(not (CHROMIUM and DRIVER),
                                    reason="Debian's chromium and chromium-driver are not "
                                    "installed (make browser-deps)")


@contextmanager
def chromium() -> Iterator:
    """A headless Chromium that reaches nothing beyond this machine, as in a hospital: no page
    may need a CDN. Stopped (driver and browser) when the block ends."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
