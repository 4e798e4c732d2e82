"""The web app in a real browser: headless Chromium (Debian's) driven by Selenium.

One ingest server for the module; each test opens the page the way a person would (a link
with a token) and checks what is on screen. Screenshots of each view at phone and desktop
sizes are kept in ``out/screenshots/`` as test artefacts. The tests skip only when Chromium
or its driver is not installed (``make browser-deps`` installs them).
"""

from __future__ import annotations

import math
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import requests

from serve_apps.auth import Authenticator
from tests.browser import chromium, needs_chromium
from tests.ingest_server import ADMIN, SECRET, ingest_server

pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import TimeoutException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as ec  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

pytestmark = needs_chromium
SCREENSHOTS = Path(__file__).resolve().parents[1] / "out" / "screenshots"
PHONE, DESKTOP = (390, 844), (1280, 900)
MIN_MS = 60_000


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    with ingest_server(tmp_path_factory.mktemp("web"), rate_limit_per_s=10_000.0) as base:
        yield base


@pytest.fixture(scope="module")
def browser():
    with chromium() as driver:
        yield driver


def _token(role: str, subject: str) -> str:
    return Authenticator(SECRET).make_token(role, subject)


def _post(url: str, patient: str, readings: list[tuple[int, float]]) -> None:
    r = requests.post(f"{url}/api/v2/readings", headers=ADMIN, timeout=30, json={
        "patient_id": [patient] * len(readings), "sensor_id": [f"{patient}-g7"] * len(readings),
        "ts_ms": [t for t, _ in readings], "glucose_mgdl": [g for _, g in readings]})
    assert r.status_code == 200, r.text


def _text(driver, element_id: str, expected: str, timeout_s: float = 10) -> None:
    try:
        WebDriverWait(driver, timeout_s).until(
            ec.text_to_be_present_in_element((By.ID, element_id), expected))
    except TimeoutException:
        shown = driver.find_element(By.ID, element_id).text
        raise AssertionError(f"#{element_id} shows {shown!r}, not {expected!r}") from None


def _shots(driver, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for label, (w, h) in (("phone", PHONE), ("desktop", DESKTOP)):
        driver.set_window_size(w, h)
        time.sleep(0.5)  # the chart redraws 100 ms after a resize
        driver.save_screenshot(str(SCREENSHOTS / f"{name}-{label}.png"))


def test_a_patient_link_shows_the_latest_value_and_new_readings_live(url, browser):
    now = int(time.time() * 1000)
    _post(url, "ana", [(now - k * 5 * MIN_MS, 120 + 2 * k) for k in range(36, 0, -1)])
    browser.get(f"{url}/?token={_token('patient', 'ana')}")
    _text(browser, "value", "122")
    assert "token=" not in browser.current_url  # the link's token leaves the address bar
    _shots(browser, "patient")
    sent = time.monotonic()
    _post(url, "ana", [(now, 131)])
    _text(browser, "value", "131", timeout_s=2)  # without a reload, within 2 s
    assert time.monotonic() - sent < 2
    assert browser.find_element(By.ID, "arrow").text == "↗"  # +9 mg/dL in 5 min: 45° up


def test_a_low_raises_the_banner_and_snoozing_clears_it(url, browser):
    now = int(time.time() * 1000)
    _post(url, "ben", [(now - 10 * MIN_MS, 100), (now - 5 * MIN_MS, 90)])
    browser.get(f"{url}/?token={_token('caregiver', 'ben')}")
    _text(browser, "value", "90")
    _post(url, "ben", [(now, 50)])
    _text(browser, "alert-text", "urgent low", timeout_s=5)
    _shots(browser, "alert")
    browser.find_element(By.ID, "snooze").click()
    WebDriverWait(browser, 5).until(ec.invisibility_of_element_located((By.ID, "alert-banner")))


def test_a_caregiver_sees_the_patients_followed_and_not_others(url, browser):
    now = int(time.time() * 1000)
    for patient, mgdl in (("cara", 140), ("dan", 210), ("eve", 99)):
        _post(url, patient, [(now - 5 * MIN_MS, mgdl - 3), (now, mgdl)])
    token = _token("caregiver", "cara,dan")
    browser.get(f"{url}/?token={token}")
    WebDriverWait(browser, 10).until(ec.visibility_of_element_located((By.ID, "followed")))
    WebDriverWait(browser, 10).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".tile")) == 2
                                     and "---" not in d.find_element(By.ID, "followed-grid").text)
    tiles = {t.find_element(By.CLASS_NAME, "name").text: t.find_element(By.CLASS_NAME, "value").text
             for t in browser.find_elements(By.CSS_SELECTOR, ".tile")}
    assert tiles == {"cara": "140", "dan": "210"}  # eve is not theirs
    _shots(browser, "followed")
    seen = requests.get(f"{url}/api/v2/patients/eve/latest", timeout=30,
                        headers={"Authorization": f"Bearer {token}"})
    assert seen.status_code == 403  # the API refuses, whatever a page would ask
    browser.find_element(By.CSS_SELECTOR, '.tile[data-patient="dan"]').click()
    _text(browser, "value", "210")
    assert browser.find_element(By.ID, "back").is_displayed()


def _cohort(url: str, cohort: str, patients: dict[str, list[float]]) -> None:
    """Patients registered to ``cohort`` with these readings, 5 minutes apart up to now."""
    now = int(time.time() * 1000)
    for patient, values in patients.items():
        r = requests.post(f"{url}/api/v2/sensors", headers=ADMIN, timeout=30, json={
            "sensor_id": f"{patient}-g7", "patient_id": patient, "cohort": cohort})
        assert r.status_code == 200, r.text
        _post(url, patient, [(now - (len(values) - 1 - k) * 5 * MIN_MS, g) for k, g in enumerate(values)])


def _open_report(browser, link_css: str, patient: str) -> None:
    """Click a report link; the report opens in a new tab (then closed)."""
    link = browser.find_element(By.CSS_SELECTOR, link_css)
    WebDriverWait(browser, 10).until(lambda d: "key=" in (link.get_attribute("href") or ""))
    page = browser.current_window_handle
    link.click()
    WebDriverWait(browser, 10).until(lambda d: len(d.window_handles) == 2)
    browser.switch_to.window(next(h for h in browser.window_handles if h != page))
    try:
        WebDriverWait(browser, 60).until(lambda d: patient in d.title)
        assert browser.title.startswith("Ambulatory glucose profile")
        assert "Time in ranges" in browser.page_source
        _shots(browser, "report")
    finally:
        browser.close()
        browser.switch_to.window(page)


def _first_column(browser) -> list[str]:
    return [r.find_element(By.CSS_SELECTOR, "td button").text
            for r in browser.find_elements(By.CSS_SELECTOR, "#cohort-table tbody tr")]


def test_the_clinician_table_sorts_and_opens_a_patient_and_a_report(url, browser):
    _cohort(url, "clinic-a", {"gus": [50, 52, 60, 75, 90, 110], "hal": [110, 120, 130, 125, 118, 121],
                              "ivy": [190, 220, 260, 240, 200, 170]})
    browser.get(f"{url}/?token={_token('clinician', 'clinic-a')}")
    WebDriverWait(browser, 10).until(
        lambda d: len(d.find_elements(By.CSS_SELECTOR, "#cohort-table tbody tr")) == 3)
    assert _first_column(browser) == ["gus", "ivy", "hal"]  # most time below 54 first
    assert "gus" in browser.find_element(By.ID, "attention").text
    _shots(browser, "cohort")
    browser.set_window_size(*DESKTOP)
    tir = browser.find_element(By.CSS_SELECTOR, 'th button[data-key="in_range_70_180"]')
    tir.click()
    assert _first_column(browser) == ["hal", "gus", "ivy"]  # highest time in range first
    tir.click()
    assert _first_column(browser)[0] == "ivy"
    _open_report(browser, 'a.report[data-patient="gus"]', "gus")
    browser.find_element(By.XPATH, "//td/button[text()='hal']").click()
    _text(browser, "value", "121")
    other = requests.get(f"{url}/api/v2/cohorts/other/summary", timeout=30,
                         headers={"Authorization": f"Bearer {_token('clinician', 'clinic-a')}"})
    assert other.status_code == 403


def test_the_history_view_shows_the_period_agp_days_and_the_report(url, browser):
    now = int(time.time() * 1000)
    readings = [(now - k * 5 * MIN_MS, 120 + 60 * math.sin(k / 24)) for k in range(250, -1, -1)]
    _post(url, "kim", readings)
    browser.set_window_size(*DESKTOP)
    browser.get(f"{url}/?token={_token('patient', 'kim')}")
    _text(browser, "history-status", "251 readings")
    assert browser.find_elements(By.CSS_SELECTOR, "#agp-chart canvas")
    days = browser.find_elements(By.CSS_SELECTOR, "#daily figure canvas")
    assert 1 <= len(days) <= 2  # 21 hours of readings: today and perhaps yesterday
    panel = browser.find_element(By.ID, "history-panel").text
    stored = np.float32([g for _, g in readings])  # the ingest keeps float32 mg/dL
    tir = 100 * np.mean((stored >= 70) & (stored <= 180))
    assert f"{tir:.1f} %" in panel and "mg/dL" in panel
    assert "Time <70 mg/dL (target < 4 %)" in browser.find_element(By.ID, "history-missed").text
    browser.find_element(By.CSS_SELECTOR, '.period button[data-days="7"]').click()
    WebDriverWait(browser, 10).until(lambda d: "days=7&" in d.find_element(By.ID, "report-pdf")
                                     .get_attribute("href"))
    units = Select(browser.find_element(By.ID, "units"))
    units.select_by_value("mmol")
    _text(browser, "history-panel", "mmol/L")
    assert "units=mmol%2FL" in browser.find_element(By.ID, "report-pdf").get_attribute("href")
    units.select_by_value("mg/dl")  # the choice outlives the page: back to the default
    browser.execute_script("document.getElementById('history').scrollIntoView()")
    _shots(browser, "history")
    _open_report(browser, "#report-html", "kim")


def test_a_tampered_token_gets_the_sign_in_screen_with_a_message(url, browser):
    good = _token("caregiver", "ana")
    browser.get(f"{url}/?token={good[:-4]}beef")
    WebDriverWait(browser, 5).until(ec.visibility_of_element_located((By.ID, "sign-in")))
    _text(browser, "sign-in-message", "not accepted")
    assert not browser.find_element(By.ID, "patient").is_displayed()


def test_the_page_is_served_with_a_strict_policy_and_etags(url):
    page = requests.get(f"{url}/", timeout=30)
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "<script>" not in page.text  # no inline script
    again = requests.get(f"{url}/", headers={"if-none-match": page.headers["etag"]}, timeout=30)
    assert again.status_code == 304
    assert requests.get(f"{url}/app/main.js", timeout=30).headers["content-type"].startswith(
        "text/javascript")
    assert requests.get(f"{url}/app/../ingress.py", timeout=30).status_code == 404
    assert requests.get(f"{url}/app/vendor/uPlot-LICENSE", timeout=30).status_code == 200


def test_the_api_docs_render_with_no_network_beyond_this_machine(url, browser):
    assert "https://" not in requests.get(f"{url}/docs", timeout=30).text  # no CDN asset
    browser.get(f"{url}/docs")
    WebDriverWait(browser, 30).until(
        lambda d: "/api/v2/readings" in d.find_element(By.ID, "swagger-ui").text)
    browser.get(f"{url}/redoc")
    WebDriverWait(browser, 30).until(lambda d: "Store a batch of readings" in d.page_source)


AXE = Path(__file__).resolve().parents[1] / ".node" / "node_modules" / "axe-core" / "axe.min.js"


@pytest.mark.skipif(not shutil.which("node"), reason="Node.js is absent, so axe-core is not installed")
def test_each_view_passes_axe_with_no_serious_violations(url, browser):
    assert AXE.exists(), "axe-core is missing: run `make node-deps`"
    now = int(time.time() * 1000)
    _post(url, "fay", [(now - 5 * MIN_MS, 150), (now, 152)])
    views = {  # each with what shows once it has loaded
        "sign-in": (f"{url}/?token=not-a-token", "sign-in-message", "not accepted"),
        "patient": (f"{url}/?token={_token('patient', 'fay')}", "history-status", "2 readings"),
        "followed": (f"{url}/?token={_token('caregiver', 'fay,cara')}", "followed-grid", "152"),
        "cohort": (f"{url}/?token={_token('clinician', 'clinic-b')}", "attention", "Nobody")}
    for name, (link, element_id, loaded) in views.items():
        browser.set_window_size(*DESKTOP)
        browser.get(link)
        _text(browser, element_id, loaded)
        browser.execute_script(AXE.read_text())
        result = browser.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "axe.run(document, {resultTypes: ['violations']}).then((r) => done(r.violations));")
        serious = [(v["id"], v["impact"], v["help"]) for v in result
                   if v["impact"] in ("serious", "critical")]
        assert serious == [], f"{name}: {serious}"
