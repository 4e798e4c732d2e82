"""The ingest API over real HTTP: storage, Nightscout reads, alerts, auth and bad input."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest
import requests

from tests.ingest_server import ADMIN, SECRET, ingest_server

MIN = 60_000


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    with ingest_server(tmp_path_factory.mktemp("ingest"), partitions=2) as base:
        yield base


def _now() -> int:
    return int(time.time() * 1000)


def _post(url, patient, sensor, ts, glucose, headers=ADMIN):
    return requests.post(f"{url}/api/v2/readings", headers=headers, timeout=30, json={
        "patient_id": [patient] * len(ts), "sensor_id": [sensor] * len(ts),
        "ts_ms": list(ts), "glucose_mgdl": list(glucose)})


def _token(role, subject):
    from serve_apps.auth import Authenticator
    return Authenticator(SECRET).make_token(role, subject)


def test_batches_are_stored_once_and_read_back_newest_first(url):
    now = _now()
    ts = [now - k * 5 * MIN for k in range(6)][::-1]
    r = _post(url, "pat-a", "sen-a", ts, [100, 104, 109, 115, 122, 130])
    assert r.status_code == 200 and r.json() == {"accepted": 6, "duplicates": 0}
    again = _post(url, "pat-a", "sen-a", ts, [100, 104, 109, 115, 122, 130])
    assert again.json() == {"accepted": 0, "duplicates": 6}
    entries = requests.get(f"{url}/api/v1/entries/sgv.json", params={"patient": "pat-a", "count": 3},
                           headers=ADMIN, timeout=30).json()
    assert [e["sgv"] for e in entries] == [130, 122, 115]
    assert entries[0]["delta"] == 8.0 and isinstance(entries[0]["delta"], float)
    assert entries[0]["direction"] == "FortyFiveUp" and entries[0]["date"] == ts[-1]
    since = requests.get(f"{url}/api/v1/entries.json", headers=ADMIN, timeout=30,
                         params={"patient": "pat-a", "find[date][$gte]": ts[3]}).json()
    assert len(since) == 3
    current = requests.get(f"{url}/api/v1/entries/current.json", params={"patient": "pat-a"},
                           headers=ADMIN, timeout=30).json()
    assert len(current) == 1 and current[0]["sgv"] == 130


def test_nightscout_upload_and_status(url):
    token = _token("uploader", "ns-patient")
    now = _now()
    entries = [{"type": "sgv", "sgv": 150 - k, "date": now - k * 5 * MIN, "device": "xDrip"}
               for k in range(3)]
    r = requests.post(f"{url}/api/v1/entries", params={"token": token}, json=entries, timeout=30)
    assert r.status_code == 200
    got = requests.get(f"{url}/api/v1/entries.json", params={"token": token}, timeout=30).json()
    assert [e["sgv"] for e in got] == [150, 149, 148] and got[0]["device"] == "xDrip"
    status = requests.get(f"{url}/api/v1/status.json", params={"token": token}, timeout=30).json()
    assert status["status"] == "ok" and status["settings"]["thresholds"]["bgLow"] == 55


def test_a_real_nightscout_client_reads_sgvs_and_status(url):
    py_nightscout = pytest.importorskip("py_nightscout", reason="py-nightscout (test extra) absent")
    token = _token("caregiver", "ns-patient")

    async def read():
        api = py_nightscout.Api(url, api_secret=f"token={token}")
        return await api.get_sgvs(), await api.get_server_status()

    sgvs, status = asyncio.run(read())
    assert sgvs[0].sgv == 150 and isinstance(sgvs[0].delta, float)
    assert status.status == "ok"


def test_alerts_fire_and_stream_over_sse(url):
    token = _token("caregiver", "pat-low")
    received: list[dict] = []
    connected = threading.Event()

    def listen():
        with requests.get(f"{url}/api/v2/patients/pat-low/alerts/stream",
                          params={"token": token}, stream=True, timeout=30) as resp:
            assert resp.status_code == 200
            for line in resp.iter_lines(decode_unicode=True):
                connected.set()
                if line and line.startswith("data: "):
                    received.append(json.loads(line[6:]))
                    if any(e["type"] == "urgent_low" for e in received):
                        return

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    assert connected.wait(20)
    time.sleep(0.5)
    now = _now()
    posted = time.monotonic()
    for k, g in enumerate([110, 95, 80, 66, 52]):
        _post(url, "pat-low", "sen-low", [now - (4 - k) * 5 * MIN], [g])
    thread.join(20)
    types = [e["type"] for e in received]
    assert "urgent_low_soon" in types and "urgent_low" in types
    assert time.monotonic() - posted < 20
    history = requests.get(f"{url}/api/v2/patients/pat-low/alerts", params={"token": token},
                           timeout=30).json()
    assert {"urgent_low", "low"} <= {e["type"] for e in history}


def test_credentials_and_cross_patient_reads(url):
    r = requests.get(f"{url}/api/v1/entries.json", timeout=30)
    assert r.status_code == 401 and r.json() == {"status": 401, "message": "Unauthorized",
                                                 "description": "Invalid/Missing"}
    r = requests.get(f"{url}/api/v1/entries.json", headers={"api-secret": "0" * 40}, timeout=30)
    assert r.status_code == 401
    other = _token("caregiver", "someone-else")
    r = requests.get(f"{url}/api/v2/patients/pat-a/latest", params={"token": other}, timeout=30)
    assert r.status_code == 403 and "pat-a" in r.json()["description"]
    r = requests.get(f"{url}/api/v1/entries.json", params={"token": other, "patient": "pat-a"},
                     timeout=30)
    assert r.status_code == 403
    uploader = _token("uploader", "pat-b")
    r = _post(url, "pat-a", "sen-x", [_now()], [100], headers={"api-secret": f"token={uploader}"})
    assert r.status_code == 403


@pytest.mark.parametrize("body, status, reason", [
    (b"{not json", 422, "body"),
    (json.dumps({"patient_id": ["p"], "sensor_id": ["s"], "ts_ms": ["yesterday"],
                 "glucose_mgdl": [100]}).encode(), 422, "ts_ms"),
    (json.dumps({"patient_id": ["p"], "sensor_id": ["s"], "ts_ms": [1_790_000_000_000],
                 "glucose_mgdl": [1500]}).encode(), 422, "glucose_mgdl"),
    (json.dumps({"patient_id": ["p"], "sensor_id": ["s"], "ts_ms": [4_000_000_000_000],
                 "glucose_mgdl": [100]}).encode(), 422, "future"),
    (json.dumps({"patient_id": ["p", "q"], "sensor_id": ["s"], "ts_ms": [1_790_000_000_000],
                 "glucose_mgdl": [100]}).encode(), 422, "same length"),
    (json.dumps({"patient_id": [""], "sensor_id": ["s"], "ts_ms": [1_790_000_000_000],
                 "glucose_mgdl": [100]}).encode(), 422, "patient_id"),
    (b"x" * (9 << 20), 413, "body over"),
])
def test_bad_requests_get_a_4xx_with_a_reason(url, body, status, reason):
    r = requests.post(f"{url}/api/v2/readings", data=body, timeout=60,
                      headers={**ADMIN, "content-type": "application/json"})
    assert r.status_code == status, r.text
    assert reason in r.json()["description"]


def test_bad_nightscout_entries_and_snoozes(url):
    r = requests.post(f"{url}/api/v1/entries", data=b"[{", timeout=30,
                      headers={**ADMIN, "content-type": "application/json"})
    assert r.status_code == 400
    r = requests.post(f"{url}/api/v1/entries", json=[{"type": "sgv", "sgv": 120}], headers=ADMIN,
                      timeout=30)
    assert r.status_code == 422 and "date" in r.json()["description"]
    r = requests.post(f"{url}/api/v2/patients/pat-a/alerts/snooze", json={"type": "nope"},
                      headers=ADMIN, timeout=30)
    assert r.status_code == 422
    r = requests.post(f"{url}/api/v2/patients/pat-a/alerts/snooze", json={"type": "high", "minutes": 30},
                      headers=ADMIN, timeout=30)
    assert r.status_code == 200


def test_sensor_registry_and_status(url):
    now = _now()
    r = requests.post(f"{url}/api/v2/sensors", headers=ADMIN, timeout=30, json={
        "sensor_id": "g7-001", "patient_id": "pat-reg", "model": "dexcom_g7",
        "started_ms": now - 10 * 86_400_000, "expires_ms": now + 3_600_000})
    assert r.status_code == 200
    r = requests.post(f"{url}/api/v2/sensors", headers=ADMIN, timeout=30,
                      json={"sensor_id": "g7-001", "patient_id": "intruder"})
    assert r.status_code == 409
    _post(url, "pat-reg", "g7-001", [now - 20 * MIN], [120])
    status = requests.get(f"{url}/api/v2/patients/pat-reg/sensors", headers=ADMIN, timeout=30).json()
    assert status[0]["sensor_id"] == "g7-001" and status[0]["signal"] == "stale"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # the partition timer raises stale + expiring
        alerts = requests.get(f"{url}/api/v2/patients/pat-reg/alerts", headers=ADMIN, timeout=30).json()
        if {"stale", "sensor_expiring"} <= {a["type"] for a in alerts}:
            break
        time.sleep(1)
    assert {"stale", "sensor_expiring"} <= {a["type"] for a in alerts}


def test_alert_webhooks_receive_events(url):
    import http.server

    from serve_apps.local import free_port

    received: list[dict] = []

    class Receiver(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's naming)
            received.extend(json.loads(self.rfile.read(int(self.headers["content-length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", free_port()), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        hook = f"http://127.0.0.1:{server.server_port}/alerts"
        r = requests.put(f"{url}/api/v2/patients/pat-hook/settings", headers=ADMIN, timeout=30,
                         json={"webhook_url": hook})
        assert r.status_code == 200
        now = _now()
        _post(url, "pat-hook", "sen-hook", [now - 5 * MIN, now], [90, 70])
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not any(e["type"] == "low" for e in received):
            time.sleep(0.2)
        assert any(e["type"] == "low" and e["patient_id"] == "pat-hook" for e in received)
        bad = requests.put(f"{url}/api/v2/patients/pat-hook/settings", headers=ADMIN, timeout=30,
                           json={"webhook_url": "ftp://nope"})
        assert bad.status_code == 422 and "webhook_url" in bad.json()["description"]
    finally:
        server.shutdown()
        thread.join(5)
