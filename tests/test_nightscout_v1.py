"""Nightscout v1 documents over HTTP: treatments, device status, profiles and the extras.

One real ingest server (Ray Serve on 127.0.0.1) for the module, with display units mmol/L.
"""

from __future__ import annotations

import time

import pytest
import requests

from serve_apps.auth import Authenticator
from tests.ingest_server import ADMIN, SECRET, ingest_server

MIN_MS = 60_000


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    with ingest_server(tmp_path_factory.mktemp("ns_v1"), units="mmol",
                       rate_limit_per_s=10_000.0) as base:
        yield base


@pytest.fixture(scope="module")
def admin():
    session = requests.Session()
    session.headers.update(ADMIN)
    return session


def _now_ms() -> int:
    return int(time.time() * 1000)


def test_treatments_round_trip_with_nightscout_defaults(url, admin):
    now = _now_ms()
    old = {"eventType": "Note", "notes": "five days ago", "created_at": now - 5 * 1440 * MIN_MS}
    recent = [{"eventType": "Correction Bolus", "insulin": "1.25", "created_at": now - k * MIN_MS,
               "enteredBy": "test"} for k in range(1, 121)]
    r = admin.post(f"{url}/api/v1/treatments?patient=defaults", json=[old, *recent])
    assert r.status_code == 200 and len(r.json()) == 121
    listed = admin.get(f"{url}/api/v1/treatments.json?patient=defaults").json()
    assert len(listed) == 100  # the default count
    assert listed[0]["created_at"] > listed[-1]["created_at"] and listed[0]["insulin"] == 1.25
    found = admin.get(f"{url}/api/v1/treatments.json", params={
        "patient": "defaults", "find[eventType]": "Correction Bolus"}).json()
    assert len(found) == 120  # a find lifts the count to 1000; the 4-day window still applies
    notes = admin.get(f"{url}/api/v1/treatments.json", params={
        "patient": "defaults", "find[created_at][$gte]": "2000-01-01",
        "find[eventType]": "Note"}).json()
    assert [n["notes"] for n in notes] == ["five days ago"]  # a time in the query opens it
    assert len(admin.get(f"{url}/api/v1/treatments.json?patient=defaults&count=7").json()) == 7


def test_re_posting_a_treatment_replaces_it(url, admin):
    t = {"eventType": "Carb Correction", "carbs": 15, "created_at": "2026-11-01T08:00:00Z"}
    first = admin.post(f"{url}/api/v1/treatments?patient=dedup", json=t).json()[0]
    again = admin.post(f"{url}/api/v1/treatments?patient=dedup", json={**t, "carbs": 20}).json()[0]
    assert again["_id"] == first["_id"] and again["identifier"] == first["identifier"]
    listed = admin.get(f"{url}/api/v1/treatments?patient=dedup&find[created_at][$gte]=2026-01-01"
                       ).json()
    assert [x["carbs"] for x in listed] == [20]
    gone = admin.delete(f"{url}/api/v1/treatments/{first['_id']}?patient=dedup").json()
    assert gone["n"] == 1
    assert admin.get(f"{url}/api/v1/treatments?patient=dedup&find[created_at][$gte]=2026-01-01"
                     ).json() == []


def test_delete_by_find(url, admin):
    now = _now_ms()
    admin.post(f"{url}/api/v1/devicestatus?patient=del", json=[
        {"device": "xDrip-DexcomG6", "created_at": now - k * 5 * MIN_MS, "uploader": {"battery": 80}}
        for k in range(3)])
    r = admin.delete(f"{url}/api/v1/devicestatus", params={
        "patient": "del", "find[created_at][$lt]": str(now - MIN_MS), "count": "10"})
    assert r.json()["n"] == 2
    left = admin.get(f"{url}/api/v1/devicestatus.json?patient=del&count=5").json()
    assert len(left) == 1 and left[0]["uploader"]["battery"] == 80


def test_credentials_are_scoped_to_their_patient(url):
    auth = Authenticator(SECRET)
    uploader = auth.make_token("uploader", "alice")
    follower = auth.make_token("caregiver", "alice")
    t = {"eventType": "Site Change", "created_at": _now_ms()}
    assert requests.post(f"{url}/api/v1/treatments?token={uploader}", json=t).status_code == 200
    assert requests.post(f"{url}/api/v1/treatments?token={follower}", json=t).status_code == 403
    assert requests.post(f"{url}/api/v1/treatments?token={uploader}&patient=bob",
                         json=t).status_code == 403
    seen = requests.get(f"{url}/api/v1/treatments.json", headers={"api-secret": f"token={follower}"})
    assert [x["eventType"] for x in seen.json()] == ["Site Change"]
    assert requests.get(f"{url}/api/v1/treatments.json").status_code == 401
    checked = requests.get(f"{url}/api/v1/verifyauth?token={follower}").json()["message"]
    assert checked["canRead"] and not checked["canWrite"] and not checked["isAdmin"]


def test_profile_status_and_properties_in_mmol(url, admin):
    now = _now_ms()
    profile = {"defaultProfile": "Default", "startDate": "2026-01-01T00:00:00Z", "store": {
        "Default": {"dia": 6, "carbratio": [{"time": "00:00", "value": 10}],
                    "sens": [{"time": "00:00", "value": 2.5}], "basal": [{"time": "00:00", "value": 0.9}],
                    "target_low": [{"time": "00:00", "value": 5.5}],
                    "target_high": [{"time": "00:00", "value": 6.5}], "units": "mmol",
                    "timezone": "UTC"}}}
    assert admin.post(f"{url}/api/v1/profile?patient=props", json=profile).status_code == 200
    current = admin.get(f"{url}/api/v1/profile/current?patient=props").json()
    assert current["units"] == "mmol" and current["store"]["Default"]["basal"][0]["value"] == 0.9
    assert admin.get(f"{url}/api/v1/profile/current?patient=nobody").status_code == 404
    admin.post(f"{url}/api/v1/entries?patient=props", json=[
        {"type": "sgv", "sgv": 180, "date": now - 5 * MIN_MS, "device": "g6"},
        {"type": "sgv", "sgv": 162, "date": now, "device": "g6"}])
    admin.post(f"{url}/api/v1/devicestatus?patient=props", json={
        "device": "openaps://rig", "created_at": now,
        "openaps": {"iob": {"iob": 2.1}, "suggested": {"COB": 24.4}}})
    admin.post(f"{url}/api/v1/treatments?patient=props", json={
        "eventType": "Temp Basal", "absolute": 0.3, "duration": 30, "created_at": now - MIN_MS})
    p = admin.get(f"{url}/api/v2/properties?patient=props").json()
    assert p["bgnow"]["last"] == 162 and p["bgnow"]["sgvs"][0]["scaled"] == 9.0
    assert p["delta"]["mgdl"] == -18 and p["delta"]["display"] == "-1.0"
    assert p["iob"]["iob"] == 2.1 and p["cob"]["cob"] == 24.4
    assert p["basal"]["current"]["basal"] == 0.9 and p["basal"]["current"]["totalbasal"] == 0.3
    only = admin.get(f"{url}/api/v2/properties/iob,cob?patient=props").json()
    assert set(only) == {"iob", "cob"}
    status = admin.get(f"{url}/api/v1/status.json").json()
    assert status["settings"]["units"] == "mmol" and status["careportalEnabled"] is True
    assert status["settings"]["thresholds"]["bgLow"] == 55  # mg/dL, as Nightscout keeps them


def test_meter_values_and_text_formats(url, admin):
    now = _now_ms()
    r = admin.post(f"{url}/api/v1/entries.json?patient=mbg", json=[
        {"type": "sgv", "sgv": 101, "date": now - MIN_MS, "device": "g7-mbg"},
        {"type": "mbg", "mbg": 99, "date": now, "device": "meter"}])
    assert r.status_code == 200
    assert [e["mbg"] for e in admin.get(f"{url}/api/v1/entries/mbg.json?patient=mbg").json()] == [99]
    both = admin.get(f"{url}/api/v1/entries.json?patient=mbg").json()
    assert [e["type"] for e in both] == ["mbg", "sgv"]
    sgv = admin.get(f"{url}/api/v1/entries/sgv.json?patient=mbg").json()
    assert [e["sgv"] for e in sgv] == [101]
    text = admin.get(f"{url}/api/v1/entries.txt?patient=mbg&find[type]=sgv").text
    assert text.split("\t")[1:3] == [str(now - MIN_MS), "101"]
    assert admin.get(f"{url}/api/v1/entries.csv?patient=mbg").text.count("\r\n") == 1
    assert admin.get(f"{url}/api/v1/entries.xml?patient=mbg").status_code == 404


@pytest.mark.parametrize(("path", "body", "reason"), [
    ("treatments", b"{not json", "malformed JSON"),
    ("treatments", b'{"insulin": 1}', "eventType"),
    ("treatments", b'[{"eventType": "Note"}, {"eventType": "Note", "created_at": "soon"}]',
     "created_at (record 1)"),
    ("devicestatus", b'"text"', "each record must be a JSON object"),
    ("profile", b'{"store": {"A": {"basal": "fast"}}}', "store.A.basal"),
    ("entries", b'{"type": "mbg", "date": 1}', "mbg"),
])
def test_bad_documents_are_refused_with_the_field_named(url, admin, path, body, reason):
    r = admin.post(f"{url}/api/v1/{path}?patient=bad", data=body,
                   headers={"content-type": "application/json"})
    assert 400 <= r.status_code < 500 and reason in r.json()["description"]


def test_bad_queries_are_refused(url, admin):
    r = admin.get(f"{url}/api/v1/treatments.json", params={"find[created_at][$gte]": "tomorrow"})
    assert r.status_code == 400 and "created_at" in r.json()["description"]
    r = admin.get(f"{url}/api/v1/treatments.json?count=abc")
    assert r.status_code == 400


@pytest.mark.parametrize("body", [b'{"eventType": "Note", "x": NaN}', b'{"eventType": "Note", "x": 1e400}',
                                  b'{"eventType": "Note", "x": "\\ud800"}'])
def test_json_no_encoder_could_answer_is_refused(url, admin, body):
    r = admin.post(f"{url}/api/v1/treatments?patient=bad", data=body,
                   headers={"content-type": "application/json"})
    assert r.status_code == 400 and "malformed JSON" in r.json()["description"]
