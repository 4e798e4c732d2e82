"""Rate limits over real HTTP: a patient's writes have their own bucket, a 429 says when to
retry, and one credential shared by many patients' uploads is not capped by theirs."""

from __future__ import annotations

import time

import pytest
import requests

from tests.ingest_server import ADMIN, ingest_server


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    with ingest_server(tmp_path_factory.mktemp("limits"), rate_limit_per_s=10_000.0,
                       patient_rate_limit_per_s=0.5, patient_rate_limit_burst=3.0) as base:
        yield base


def _post_one(url: str, patient: str, ts_ms: int) -> requests.Response:
    return requests.post(f"{url}/api/v2/readings", headers=ADMIN, timeout=30, json={
        "patient_id": [patient], "sensor_id": [f"{patient}-g7"], "ts_ms": [ts_ms],
        "glucose_mgdl": [120.0]})


def test_a_patients_writes_beyond_its_burst_get_429_with_retry_after(url):
    now = int(time.time() * 1000)
    answers = [_post_one(url, "busy", now - k * 300_000) for k in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    refused = answers[-1]
    assert refused.headers["retry-after"] == "2"  # one token at 0.5 a second
    assert "patient 'busy'" in refused.json()["description"]
    # Nightscout documents of the same patient share its bucket
    r = requests.post(f"{url}/api/v1/treatments?patient=busy", headers=ADMIN, timeout=30,
                      json={"eventType": "Note", "created_at": "2026-01-01T00:00:00Z", "notes": "x"})
    assert r.status_code == 429


def test_one_credential_uploading_for_many_patients_is_not_capped_by_their_limits(url):
    now = int(time.time() * 1000)
    codes = [_post_one(url, f"p{k}", now).status_code for k in range(40)]
    assert codes == [200] * 40  # 40 requests on one credential, one per patient
    batch = requests.post(f"{url}/api/v2/readings", headers=ADMIN, timeout=30, json={
        "patient_id": ["busy", "p1"], "sensor_id": ["busy-g7", "p1-g7"], "ts_ms": [now, now - 1],
        "glucose_mgdl": [100.0, 101.0]})
    assert batch.status_code == 200  # a batch of several patients counts on its credential only
