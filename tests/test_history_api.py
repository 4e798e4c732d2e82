"""History over real HTTP: a patient's profile, the doctor's report and a cohort's panel, from
the lake's readings and then the hot ones, each counted once."""

from __future__ import annotations

import time

import numpy as np
import pyarrow as pa
import pytest
import requests

from cgm_ray.lake.etl import discover_inputs, run_etl
from cgm_ray.lake.store import Lake
from serve_apps.auth import Authenticator
from tests.ingest_server import ADMIN, SECRET, ingest_server
from tests.lake_data import landing_table, write_segment

MIN, DAY = 60_000, 86_400_000
NOW = int(time.time() * 1000) // (5 * MIN) * (5 * MIN)
# The lake: "h1" every 5 min from 20 to 2 days ago, 150 mg/dL with every 10th reading at 60.
LAKE_TS = np.arange(NOW - 20 * DAY, NOW - 2 * DAY + 1, 5 * MIN)
LAKE_G = np.where(np.arange(len(LAKE_TS)) % 10 == 0, 60.0, 150.0)
# Hot: the last 200 readings at 200 mg/dL, and 5 re-sent over the lake's days (counted once).
HOT_TS = NOW - 5 * MIN * np.arange(200)[::-1]
STALE_TS = NOW - 3 * DAY + 5 * MIN * np.arange(5)


def _token(role: str, subject: str) -> str:
    return Authenticator(SECRET).make_token(role, subject)


def _bearer(role: str, subject: str) -> dict:
    return {"Authorization": f"Bearer {_token(role, subject)}"}


def _post(url: str, ts: np.ndarray, glucose: float) -> None:
    r = requests.post(f"{url}/api/v2/readings", headers=ADMIN, timeout=30, json={
        "patient_id": ["h1"] * len(ts), "sensor_id": ["h1-g7"] * len(ts),
        "ts_ms": [int(t) for t in ts], "glucose_mgdl": [glucose] * len(ts)})
    assert r.status_code == 200 and r.json()["accepted"] == len(ts), r.text


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("history")
    with ingest_server(tmp, lake_dir=str(tmp / "lake"), rate_limit_per_s=10_000.0) as base:
        n = len(LAKE_TS)
        write_segment(tmp / "lake" / "landing" / "ingest" / "p000-000000000001.arrows", landing_table(
            pa.table({"patient_id": ["h1"] * n, "sensor_id": ["h1-g7"] * n,
                      "ts_ms": pa.array(LAKE_TS, pa.int64()),
                      "glucose_mgdl": pa.array(LAKE_G, pa.float32()),
                      "range_flag": pa.array(np.zeros(n), pa.int8())})))
        lake = Lake(str(tmp / "lake"), 4, create=True)
        assert run_etl(lake, discover_inputs(lake), progress=lambda _: None).lake_rows == n
        r = requests.post(f"{base}/api/v2/sensors", headers=ADMIN, timeout=30,
                          json={"sensor_id": "h1-g7", "patient_id": "h1", "cohort": "c1"})
        assert r.status_code == 200, r.text
        _post(base, HOT_TS, 200.0)
        _post(base, STALE_TS, 300.0)
        yield base


def test_a_profile_takes_the_lake_then_newer_hot_readings_each_once(url):
    r = requests.get(f"{url}/api/v2/patients/h1/profile", params={"days": 14, "end_ms": NOW + 1},
                     headers=_bearer("patient", "h1"), timeout=60)
    assert r.status_code == 200, r.text
    body = r.json()
    in_lake = LAKE_TS >= NOW + 1 - 14 * DAY
    lake_g = LAKE_G[in_lake]
    assert (body["source"], body["lake_readings"], body["hot_readings"]) == (
        "lake+hot", int(in_lake.sum()), len(HOT_TS))  # the re-sent 300s are the lake's days
    glucose = np.r_[lake_g, np.full(len(HOT_TS), 200.0)]
    assert body["readings"] == len(glucose)
    panel = body["panel"]
    assert panel["mean"] == pytest.approx(glucose.mean(), abs=0.01)
    assert panel["in_range_70_180"] == pytest.approx(100 * np.mean(lake_g == 150) * len(lake_g)
                                                     / len(glucose), abs=0.01)
    assert panel["below_70"] == pytest.approx(100 * (lake_g == 60).sum() / len(glucose), abs=0.01)
    assert "tbr70" in body["targets_missed"]  # 10% of the lake's readings are below 70
    assert {"name": "tbr70", "label": "Time <70 mg/dL", "target": "< 4 %", "met": False} in body["targets"]
    agp = body["agp"]
    assert agp["percentiles"] == [5, 25, 50, 75, 95] and len(agp["minute_of_day"]) == 288
    assert all(len(column) == 288 for column in agp["mgdl"])
    assert 14 <= len(body["daily"]) <= 15 and body["daily"][-1]["glucose_mgdl"][-1] == 200.0
    assert sum(len(d["ts_ms"]) for d in body["daily"]) <= body["readings"]


def test_the_days_and_times_of_day_are_the_viewers(url):
    params = {"days": 1, "end_ms": NOW + 1}
    utc = requests.get(f"{url}/api/v2/patients/h1/profile", params=params, headers=ADMIN,
                       timeout=60).json()
    tokyo = requests.get(f"{url}/api/v2/patients/h1/profile", params={**params, "tz": "Asia/Tokyo"},
                         headers=ADMIN, timeout=60).json()
    assert utc["source"] == "hot" and utc["lake_readings"] == 0
    last_utc, last_tokyo = utc["daily"][-1]["minute_of_day"][-1], tokyo["daily"][-1]["minute_of_day"][-1]
    assert (last_tokyo - last_utc) % 1440 == pytest.approx(9 * 60)  # Tokyo is UTC+9, no DST


@pytest.mark.parametrize(("params", "status", "reason"), [
    ({"tz": "Mars/Olympus"}, 422, "tz"), ({"days": 0}, 422, "days"), ({"days": 91}, 422, "days"),
    ({"end_ms": NOW - 30 * DAY}, 404, "fewer than two readings")])
def test_a_bad_period_gets_a_4xx_naming_it(url, params, status, reason):
    r = requests.get(f"{url}/api/v2/patients/h1/profile", params=params, headers=ADMIN, timeout=60)
    assert r.status_code == status and reason in r.text, r.text


def test_a_report_opens_from_a_short_lived_key_for_reports_only(url):
    key = requests.post(f"{url}/api/v2/report-keys", headers=_bearer("caregiver", "x,h1"),
                        timeout=30).json()
    assert key["expires_s"] - time.time() == pytest.approx(600, abs=30)
    html = requests.get(f"{url}/api/v2/patients/h1/report.html", params={"key": key["key"]},
                        timeout=120)
    assert html.status_code == 200, html.text
    assert html.headers["content-type"].startswith("text/html")
    assert "script-src" not in html.headers["content-security-policy"]  # no script runs at all
    assert "h1" in html.text and "Time in ranges" in html.text
    pdf = requests.get(f"{url}/api/v2/patients/h1/report.pdf", params={"key": key["key"], "days": 3},
                       timeout=120)
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    mmol = requests.get(f"{url}/api/v2/patients/h1/report.html",
                        params={"key": key["key"], "units": "mmol/L"}, timeout=120)
    assert mmol.status_code == 200 and "3.9-10.0 mmol/L" in mmol.text
    bad = requests.get(f"{url}/api/v2/patients/h1/report.html",
                       params={"key": key["key"], "units": "mg"}, timeout=30)
    assert bad.status_code == 422 and "units" in bad.text
    # the key opens reports only, of the patients its holder may read
    assert requests.get(f"{url}/api/v2/patients/h1/latest", params={"token": key["key"]},
                        timeout=30).status_code == 401
    other = requests.post(f"{url}/api/v2/report-keys", headers=_bearer("patient", "h2"), timeout=30)
    assert requests.get(f"{url}/api/v2/patients/h1/report.html",
                        params={"key": other.json()["key"]}, timeout=30).status_code == 403
    tampered = key["key"][:-3] + ("aaa" if not key["key"].endswith("aaa") else "bbb")
    r = requests.get(f"{url}/api/v2/patients/h1/report.html", params={"key": tampered}, timeout=30)
    assert r.status_code == 401 and "report key" in r.text
    assert requests.get(f"{url}/api/v2/patients/h1/report.docx", headers=ADMIN,
                        timeout=30).status_code == 404


def test_the_cohort_panel_covers_the_lake_days_then_the_hot_ones(url):
    clinician = _bearer("clinician", "c1")
    rows = requests.get(f"{url}/api/v2/cohorts/c1/summary", params={"end_ms": NOW + 1},
                        headers=clinician, timeout=60).json()
    assert [r["patient_id"] for r in rows] == ["h1"]
    assert rows[0]["source"] == "lake+hot" and rows[0]["hours"] == pytest.approx(14 * 24, abs=0.2)
    one_day = requests.get(f"{url}/api/v2/cohorts/c1/summary", params={"days": 1, "end_ms": NOW + 1},
                           headers=clinician, timeout=60).json()
    assert one_day[0]["source"] == "hot" and one_day[0]["in_range_70_180"] == 0.0  # all 200 mg/dL
    assert requests.get(f"{url}/api/v2/cohorts/c1/summary", headers=_bearer("clinician", "c2"),
                        timeout=30).status_code == 403
