"""The diagnostics status page as a person sees it: headless Chromium, then a screenshot."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testkit.serverproc import concurrent_gets, get, project_env, start_server, wait_until

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
PAGE_TIMEOUT = 20

pytestmark = pytest.mark.browser


def _missing(reason: str) -> None:
    if os.environ.get("CSERVER_REQUIRE_BROWSER", "") == "1":
        pytest.fail(f"{reason} (CSERVER_REQUIRE_BROWSER=1)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    """Headless Debian Chromium with a fresh profile, quit after the test."""
    chromium = CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium")
    driver_path = CHROMEDRIVER if os.path.exists(CHROMEDRIVER) else shutil.which("chromedriver")
    if not chromium or not driver_path:
        _missing("chromium and chromedriver are not installed")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _missing("selenium is not installed")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1280,1000",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        driver.set_page_load_timeout(PAGE_TIMEOUT)
        driver.set_script_timeout(PAGE_TIMEOUT)
        yield driver
    finally:
        driver.quit()


def test_status_page_reads_at_a_glance(browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    env = project_env(
        {"TEST_SQLITE": str(tmp_path / "page.sqlite3"), "DJANGO_CONN_MAX_AGE": "None"}
    )
    args = ["--mode", "pool", "--workers", "3", "--diagnostics", "--delay", "--delay-max", "30"]
    with start_server(args, env=env) as server:
        for _ in range(4):
            assert get(server.url("/db"))[0] == 200
            assert get(server.url("/hello"))[0] == 200
        assert get(server.url("/missing"))[0] == 404
        concurrent_gets(server.url("/inflight?ms=200"), 3)

        # A request is counted once its response has been sent: wait for the last ones.
        def stats() -> dict[str, Any]:
            return json.loads(get(server.url("/__cserver__/stats"))[2])

        assert wait_until(lambda: stats()["requests"] == 12, timeout=10)
        data = stats()

        browser.get(server.url("/__cserver__/"))
        assert browser.title.startswith("cserver status: pool")
        cards = {
            card.find_element(By.CLASS_NAME, "label").text: card.find_element(
                By.CLASS_NAME, "value"
            ).text
            for card in browser.find_elements(By.CSS_SELECTOR, ".card")
        }
        # Labels are upper-cased by CSS: the visible text is what a reader sees.
        assert cards["MODE"] == "pool"
        assert cards["REQUESTS"] == str(data["requests"]) == "12"
        assert cards["OPENED"] == str(data["connections"]["opened"])
        assert cards["REUSED"] == str(data["connections"]["reused"])
        assert cards["LEFT OPEN"] == "0"
        assert cards["IN FLIGHT"] == "0"

        rows = browser.find_elements(By.CSS_SELECTOR, "#workers tbody tr")
        assert len(rows) == 3  # three workers, one connection row each at most
        text = browser.find_element(By.ID, "workers").text
        for name in ("pool-1", "pool-2", "pool-3"):
            assert name in text
        assert "sqlite" in text

        recent = browser.find_elements(By.CSS_SELECTOR, "#recent tbody tr")
        assert len(recent) == 12
        recent_text = browser.find_element(By.ID, "recent").text
        assert "/missing" in recent_text and "404" in recent_text
        assert "default reused" in recent_text

        # Readable: nothing overflows the window sideways at a laptop's width.
        width = browser.execute_script("return document.documentElement.scrollWidth")
        assert width <= 1280

        shot = tmp_path / "status.png"
        assert browser.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000
        keep = os.environ.get("CSERVER_SCREENSHOT_DIR")
        if keep:
            shutil.copy(shot, Path(keep) / "status-page.png")
