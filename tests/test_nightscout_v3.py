"""Nightscout's API v3 and JWTs: the rules as plain functions, then a client's flow over HTTP.

The HTTP tests share one server; each uses patients of its own. Shapes and messages are
cgm-remote-monitor's (lib/api3, lib/authorization); its tutorial's identifier is the check
that documents get Nightscout's identities.
"""

from __future__ import annotations

import hashlib
import time

import pytest
import requests

from serve_apps.nightscout import v3
from serve_apps.nightscout.documents import identifier_for
from serve_apps.nightscout.query import Filter
from serve_apps.nightscout.shiro import api_permissions, permits
from serve_apps.nightscout.status import permissions
from tests.ingest_server import ADMIN, SECRET, ingest_server

MIN = 60_000
V3 = "/api/v3"


# -- the rules -------------------------------------------------------------------------------
def test_a_search_reads_nightscouts_parameters():
    search = v3.parse_search({"limit": "5", "skip": "2", "sort": "carbs", "fields": "a,b",
                              "eventType$in": "Meal Bolus|Snack Bolus", "carbs$gt": "10",
                              "date$gte": "1525383610", "token": "t", "patient": "p"})
    assert (search.limit, search.skip, search.sort, search.descending) == (5, 2, "carbs", False)
    assert search.fields == ("a", "b") and search.wanted == 7
    assert Filter("date", "gte", "1525383610000") in search.filters  # epoch s read as s
    assert {f.field for f in search.filters} == {"eventType", "carbs", "date"}
    default = v3.parse_search({})
    assert (default.limit, default.sort, default.descending, default.fields) == (100, "date", True,
                                                                               None)
    assert v3.parse_search({"sort$desc": "date", "date$gt": "2021-01-01T00:00:00Z",
                            "date$lte": "1609545600000"}).by_date_only()
    for params, message in [({"limit": "0"}, v3.BAD_LIMIT), ({"limit": "1001"}, v3.BAD_LIMIT),
                            ({"limit": "x"}, v3.BAD_LIMIT), ({"skip": "-1"}, v3.BAD_SKIP),
                            ({"sort": "a", "sort$desc": "b"}, v3.SORT_AND_SORT_DESC),
                            ({"carbs$between": "1"}, "Bad filter")]:
        with pytest.raises(v3.BadRequest) as exc:
            v3.parse_search(params)
        assert exc.value.message == message


def test_pages_are_ordered_as_mongodb_orders_types_with_nightscouts_tie_breaks():
    docs = [{"identifier": "b", "date": 2, "x": "text"}, {"identifier": "a", "date": 2, "x": 5},
            {"identifier": "c", "date": 1}, {"identifier": "d", "date": 3, "x": True},
            {"identifier": "e", "date": 4, "x": {"k": 1}, "_id": "0" * 24}]
    ids = lambda found: [d["identifier"] for d in found]  # noqa: E731
    assert ids(v3.page(docs, v3.Search())) == ["e", "d", "b", "a", "c"]
    assert ids(v3.page(docs, v3.Search(sort="x", descending=False))) == ["c", "a", "b", "e", "d"]
    assert ids(v3.page(docs, v3.Search(sort="date", descending=False, skip=1, limit=2))) == ["a", "b"]
    assert v3.page(docs, v3.Search(fields=("x",), limit=1)) == [{"x": {"k": 1}}]
    assert "_id" not in v3.present(docs[4])


def test_times_are_read_as_nightscouts_parse_to_moment_reads_them():
    assert v3.instant(1525383610088) == (1525383610088, 0)
    assert v3.instant("1525383610") == (1525383610000, 0)  # epoch seconds
    assert v3.instant("2018-05-03T23:40:10.088+02:00") == (1525383610088, 120)
    assert v3.instant("Thu, 03 May 2018 21:40:10 GMT") == (1525383610000, 0)
    for bad in (None, 0, "", "soon", True, 12, "1999-12-31T00:00:00Z", [1], 253402300800000):
        assert v3.instant(bad) is None
    assert v3.parse_http_date(v3.http_date(1525383610088)) == 1525383610000
    assert v3.parse_http_date("yesterday") is None
    with pytest.raises(v3.BadRequest, match="lastModified"):
        v3.since_param("12")


def test_posted_documents_need_a_date_a_utc_offset_and_an_app():
    doc = v3.dated({"created_at": "2021-02-11T16:30:04.186+01:00", "app": "AAPS"})
    assert doc["date"] == 1613057404186 and doc["utcOffset"] == 60
    assert doc["created_at"] == "2021-02-11T15:30:04.186Z"
    both = v3.dated({"date": 1613057404186, "created_at": "garbage", "app": "AAPS"})
    assert both["created_at"] == "2021-02-11T15:30:04.186Z" and both["utcOffset"] == 0
    for body, message in [({"app": "AAPS"}, v3.BAD_DATE),
                          ({"date": 946684799999, "app": "AAPS"}, v3.BAD_DATE),
                          ({"date": 1613057404186}, v3.BAD_APP),
                          ({"date": 1613057404186, "app": " "}, v3.BAD_APP),
                          ({"date": 1613057404186, "app": "a", "utcOffset": 2000}, v3.BAD_UTC),
                          ({"date": 1613057404186, "app": "a", "identifier": 7}, v3.BAD_IDENTIFIER)]:
        with pytest.raises(v3.BadRequest) as exc:
            v3.dated(body)
        assert exc.value.message == message


def test_immutable_fields_read_only_documents_and_reading_identities():
    stored = {"identifier": "i", "date": 5, "eventType": "Note", "app": "x", "notes": "a"}
    assert v3.changed_immutable({"notes": "b", "date": 5}, stored) is None
    assert v3.changed_immutable({"eventType": "Meal Bolus"}, stored) == "eventType"
    assert v3.changed_immutable({"device": "pump"}, stored) == "device"  # added counts too
    assert v3.changed_immutable({"eventType": "x"}, {**stored, "isValid": False}) is None
    assert v3.read_only({"readonly": True}) and not v3.read_only({"isReadOnly": "yes"})
    device, date = "Samsung XCover 4-861536030196001", 1613057404186
    reading = v3.reading_document({"type": "sgv", "sgv": 120, "date": date, "device": device})
    assert reading["srvModified"] == reading["srvCreated"] == date
    assert reading["identifier"] == identifier_for(device, date)
    # the identifier of Nightscout's API v3 tutorial (lib/api3/doc/tutorial.md, CREATE):
    assert identifier_for(device, date, "Correction Bolus") == "5b0f7124-475f-5db0-824c-a73c5eea0975"


def test_shiro_permissions_and_the_crud_letters_of_each_role():
    assert permits(["api:*:read"], "api:treatments:read")
    assert permits(["api"], "api:treatments:read") and permits(["*"], "admin:api:subjects:read")
    assert not permits(["api:*:read"], "api:treatments:create")
    assert permits(["api:entries,treatments:read,create"], "api:treatments:create")
    assert not permits(["api:treatments:read"], "api:treatments")
    cols = v3.COLLECTIONS
    from serve_apps.auth import Principal
    assert api_permissions(permissions(Principal("admin", "*")), cols) == dict.fromkeys(cols, "crud")
    assert api_permissions(permissions(Principal("uploader", "p")), cols) == dict.fromkeys(cols, "crud")
    assert api_permissions(permissions(Principal("caregiver", "p")), cols) == dict.fromkeys(cols, "r")


# -- over HTTP -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def url(tmp_path_factory):
    with ingest_server(tmp_path_factory.mktemp("v3"), partitions=2,
                       rate_limit_per_s=10_000.0) as base:
        yield base


def _token(role: str, subject: str) -> str:
    from serve_apps.auth import Authenticator
    return Authenticator(SECRET).make_token(role, subject)


def _jwt(url: str, access_token: str) -> dict:
    """The Authorization header of a JWT obtained for ``access_token``."""
    r = requests.get(f"{url}/api/v2/authorization/request/{access_token}", timeout=30)
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def _call(method: str, url: str, path: str, headers: dict, **kw) -> requests.Response:
    r = requests.request(method, f"{url}{V3}{path}", headers=headers, timeout=30, **kw)
    assert r.status_code < 500, r.text
    return r


def _now() -> int:
    return int(time.time() * 1000)


def test_an_access_token_is_exchanged_for_a_jwt_as_nightscout_answers(url):
    r = requests.get(f"{url}/api/v2/authorization/request/{_token('uploader', 'v3-jwt')}",
                     timeout=30)
    grant = r.json()
    assert set(grant) == {"token", "sub", "permissionGroups", "iat", "exp"}
    assert grant["sub"] == "uploader:v3-jwt" and grant["exp"] - grant["iat"] == 8 * 3600
    assert grant["permissionGroups"] == [["api:*:read", "api:*:create", "api:*:update",
                                          "api:*:delete"]]
    admin = requests.get(f"{url}/api/v2/authorization/request/"
                         f"{hashlib.sha1(SECRET.encode()).hexdigest()}", timeout=30).json()
    assert (admin["sub"], admin["permissionGroups"]) == ("admin:*", [["*"]])
    bad = requests.get(f"{url}/api/v2/authorization/request/uploader.x.y", timeout=30)
    assert bad.status_code == 401
    assert bad.json() == {"status": 401, "message": "Unauthorized", "description": "Invalid/Missing"}


def test_the_jwt_is_accepted_by_v1_v2_and_v3_and_a_bad_one_is_refused_with_a_reason(url):
    from serve_apps.jwt_tokens import LIFETIME_S, JWTCodec
    headers = _jwt(url, _token("uploader", "v3-any"))
    assert requests.get(f"{url}/api/v1/entries.json", headers=headers, timeout=30).status_code == 200
    assert requests.get(f"{url}/api/v2/patients/v3-any/latest", headers=headers,
                        timeout=30).status_code == 404  # authorised; no readings yet
    status = _call("GET", url, "/status", headers).json()["result"]
    assert status["apiPermissions"] == dict.fromkeys(v3.COLLECTIONS, "crud")
    assert status["apiVersion"] == v3.API_VERSION
    role_token = {"Authorization": f"Bearer {_token('uploader', 'v3-any')}"}  # still works
    assert _call("GET", url, "/status", role_token).status_code == 200
    forged, _ = JWTCodec("another-secret-x").sign("admin:*")
    expired, _ = JWTCodec(SECRET).sign("uploader:v3-any", now_s=int(time.time()) - LIFETIME_S - 5)
    head, _, sig = headers["Authorization"][7:].split(".")
    garbled = f"{head}.!!!.{sig}"  # a payload that is not base64url: malformed, whatever the key
    for bad, reason in [(forged, "signature"), (expired, "expired"), (garbled, "malformed"),
                        (None, "Invalid/Missing")]:
        r = _call("GET", url, "/treatments", {"Authorization": f"Bearer {bad}"} if bad else {})
        assert r.status_code == 401 and reason in r.json()["description"]


def test_version_is_public_and_status_shows_a_readers_permissions(url):
    version = requests.get(f"{url}{V3}/version", timeout=30).json()
    assert version["status"] == 200 and version["result"]["apiVersion"] == v3.API_VERSION
    assert abs(version["result"]["srvDate"] - _now()) < 60_000
    reader = _jwt(url, _token("caregiver", "v3-any"))
    assert _call("GET", url, "/status", reader).json()["result"]["apiPermissions"] == \
        dict.fromkeys(v3.COLLECTIONS, "r")


TREATMENTS = [  # AndroidAPS-like uploads: app, device, date (epoch ms), utcOffset
    {"eventType": "Meal Bolus", "insulin": 4.5, "carbs": 45, "minutes_ago": 60},
    {"eventType": "Correction Bolus", "insulin": 1.2, "minutes_ago": 40},
    {"eventType": "Carb Correction", "carbs": 15, "minutes_ago": 20},
    {"eventType": "Note", "notes": "site feels fine", "minutes_ago": 10},
]


def _create_treatments(url: str, headers: dict, now: int) -> list[str]:
    identifiers = []
    for t in TREATMENTS:
        body = {k: v for k, v in t.items() if k != "minutes_ago"}
        body.update(app="AAPS", device="pump-1", date=now - t["minutes_ago"] * MIN, utcOffset=60)
        r = _call("POST", url, "/treatments", headers, json=body)
        assert r.status_code == 201, r.text
        answer = r.json()
        assert set(answer) == {"status", "identifier", "lastModified"} and answer["status"] == 201
        assert r.headers["Location"] == f"{V3}/treatments/{answer['identifier']}"
        identifiers.append(answer["identifier"])
    return identifiers


def test_a_client_creates_documents_and_searches_them(url):
    headers, now = _jwt(url, _token("uploader", "v3-search")), _now()
    ids = _create_treatments(url, headers, now)
    status = {"app": "AAPS", "device": "openaps://phone", "date": now - 5 * MIN,
              "pump": {"reservoir": "87.5"}, "openaps": {"iob": {"iob": 1.4}}}
    profile = {"app": "AAPS", "date": now - 120 * MIN, "defaultProfile": "Day", "store": {
        "Day": {"dia": 5, "units": "mg/dl", "basal": [{"time": "00:00", "value": 0.8}],
                "sens": 45, "carbratio": [{"time": "00:00", "value": 10}]}}}
    for col, body in [("devicestatus", status), ("profile", profile)]:
        assert _call("POST", url, f"/{col}", headers, json=body).status_code == 201

    def search(col: str = "treatments", **params) -> list[dict]:
        r = _call("GET", url, f"/{col}", headers, params=params)
        assert r.status_code == 200 and r.json()["status"] == 200, r.text
        return r.json()["result"]

    newest = search(**{"sort$desc": "date", "limit": 2})
    assert [d["eventType"] for d in newest] == ["Note", "Carb Correction"]
    assert [d["identifier"] for d in search()] == ids[::-1]  # default: newest first
    assert [d["eventType"] for d in search(sort="date", skip=1, limit=2)] == [
        "Correction Bolus", "Carb Correction"]
    assert [d["insulin"] for d in search(**{"insulin$gte": "1", "sort$desc": "insulin"})] == [4.5, 1.2]
    assert [d["eventType"] for d in search(**{"eventType$in": "Note|Meal Bolus", "sort": "date"})] \
        == ["Meal Bolus", "Note"]
    assert [d["eventType"] for d in search(**{"eventType$re": "^C", "date$gt": str(now - 30 * MIN)})] \
        == ["Carb Correction"]
    assert [d["eventType"] for d in search(**{"carbs$ne": "15", "eventType$nin": "Note"})] == [
        "Correction Bolus", "Meal Bolus"]
    assert search(fields="eventType,carbs", limit=1, sort="date") == [
        {"eventType": "Meal Bolus", "carbs": 45}]
    first = search(limit=1, sort="date")[0]
    assert "_id" not in first and first["subject"] == "uploader:v3-search"
    assert first["srvCreated"] == first["srvModified"] and first["utcOffset"] == 60
    assert search("devicestatus")[0]["pump"]["reservoir"] == 87.5
    assert search("profile")[0]["store"]["Day"]["sens"][0]["value"] == 45

    one = _call("GET", url, f"/treatments/{ids[0]}", headers)
    assert one.status_code == 200 and one.json()["result"]["identifier"] == ids[0]
    assert one.headers["Last-Modified"] == v3.http_date(one.json()["result"]["srvModified"])
    assert _call("GET", url, f"/treatments/{ids[0]}", headers,
                 params={"fields": "insulin"}).json()["result"] == {"insulin": 4.5}
    unchanged = _call("GET", url, f"/treatments/{ids[0]}",
                      {**headers, "If-Modified-Since": one.headers["Last-Modified"]})
    assert unchanged.status_code == 304 and not unchanged.content


def test_history_patch_soft_delete_and_deduplication(url):
    headers, now = _jwt(url, _token("uploader", "v3-history")), _now()
    srv_start = _call("GET", url, "/version", {}).json()["result"]["srvDate"] - 1
    meal, correction, *_ = _create_treatments(url, headers, now)
    history = _call("GET", url, f"/treatments/history/{srv_start}", headers).json()["result"]
    assert [d["identifier"] for d in history][:2] == [meal, correction] and len(history) == 4
    mark = history[-1]["srvModified"]

    patched = _call("PATCH", url, f"/treatments/{correction}", headers,
                    json={"insulin": 1.5, "notes": "fixed"})
    assert patched.status_code == 200 and patched.json() == {"status": 200}
    doc = _call("GET", url, f"/treatments/{correction}", headers).json()["result"]
    assert (doc["insulin"], doc["notes"], doc["eventType"]) == (1.5, "fixed", "Correction Bolus")
    assert doc["modifiedBy"] == "uploader:v3-history" and doc["srvModified"] > doc["srvCreated"]
    immutable = _call("PATCH", url, f"/treatments/{correction}", headers,
                      json={"eventType": "Meal Bolus"})
    assert immutable.status_code == 400
    assert immutable.json()["message"] == "Field eventType cannot be modified by the client"
    stale = _call("PATCH", url, f"/treatments/{correction}",
                  {**headers, "If-Unmodified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"},
                  json={"insulin": 2})
    assert stale.status_code == 412

    replaced = _call("PUT", url, f"/treatments/{correction}", headers, json={
        "eventType": "Correction Bolus", "insulin": 1.6, "app": "AAPS", "device": "pump-1",
        "date": now - 40 * MIN, "utcOffset": 60})
    assert replaced.status_code == 200 and set(replaced.json()) == {"status", "lastModified"}
    assert _call("GET", url, f"/treatments/{correction}", headers).json()["result"]["insulin"] == 1.6

    assert _call("DELETE", url, f"/treatments/{meal}", headers).json() == {"status": 200}
    assert _call("GET", url, f"/treatments/{meal}", headers).status_code == 410
    assert _call("PATCH", url, f"/treatments/{meal}", headers, json={"notes": "x"}).status_code == 410
    assert meal not in [d["identifier"] for d in
                        _call("GET", url, "/treatments", headers).json()["result"]]
    changes = _call("GET", url, f"/treatments/history/{mark}", headers)
    assert [(d["identifier"], d.get("isValid", True)) for d in changes.json()["result"]] == [
        (correction, True), (meal, False)]
    newest = changes.json()["result"][-1]["srvModified"]
    assert changes.headers["ETag"] == f'W/"{newest}"'
    assert changes.headers["Last-Modified"] == v3.http_date(newest)
    by_header = _call("GET", url, "/treatments/history",
                      {**headers, "Last-Modified": v3.http_date(mark)})
    assert meal in [d["identifier"] for d in by_header.json()["result"]]

    again = _call("POST", url, "/treatments", headers, json={
        "eventType": "Meal Bolus", "insulin": 4.0, "carbs": 45, "app": "AAPS",
        "device": "pump-1", "date": now - 60 * MIN, "utcOffset": 60})
    assert again.status_code == 200, again.text
    assert again.json()["isDeduplication"] is True and again.json()["identifier"] == meal
    restored = _call("GET", url, f"/treatments/{meal}", headers).json()["result"]
    assert restored["insulin"] == 4.0 and restored.get("isValid", True)

    last = _call("GET", url, "/lastModified", headers).json()["result"]
    assert set(last) == {"srvDate", "collections"}
    assert last["collections"]["treatments"] == restored["srvModified"]


def test_sgv_entries_are_readings_with_a_v3_identity(url):
    headers, now = _jwt(url, _token("uploader", "v3-entries")), _now()
    sgvs = [{"type": "sgv", "sgv": 100 + 5 * k, "date": now - (30 - 5 * k) * MIN,
             "device": "xDrip-v3", "direction": "Flat", "app": "xDrip+"} for k in range(6)]
    answers = [_call("POST", url, "/entries", headers, json=e) for e in sgvs]
    assert {a.status_code for a in answers} == {201}
    first = answers[0].json()
    assert first["identifier"] == v3.reading_document(sgvs[0])["identifier"]
    assert first["lastModified"] == sgvs[0]["date"]
    duplicate = _call("POST", url, "/entries", headers, json=sgvs[0])
    assert duplicate.status_code == 200 and duplicate.json()["isDeduplication"] is True
    mbg = _call("POST", url, "/entries", headers, json={
        "type": "mbg", "mbg": 140, "date": now - 2 * MIN, "device": "meter", "app": "xDrip+"})
    assert mbg.status_code == 201

    found = _call("GET", url, "/entries", headers,
                  params={"sort$desc": "date", "limit": 3}).json()["result"]
    assert [(e["type"], e.get("sgv", e.get("mbg"))) for e in found] == [
        ("mbg", 140), ("sgv", 125), ("sgv", 120)]
    assert [e["sgv"] for e in _call("GET", url, "/entries", headers, params={
        "type": "sgv", "date$gte": str(sgvs[3]["date"]), "sort": "date",
        "fields": "sgv"}).json()["result"]] == [115, 120, 125]
    assert [e["sgv"] for e in _call("GET", url, "/entries", headers, params={
        "sgv$gt": "110", "sort$desc": "sgv", "limit": 2}).json()["result"]] == [125, 120]
    read = _call("GET", url, f"/entries/{first['identifier']}", headers).json()["result"]
    assert read["sgv"] == 100 and read["srvModified"] == sgvs[0]["date"]
    refused = [_call("DELETE", url, f"/entries/{first['identifier']}", headers),
               _call("PATCH", url, f"/entries/{first['identifier']}", headers, json={"sgv": 99}),
               _call("PUT", url, "/entries/new-one", headers, json=sgvs[1])]
    assert [r.status_code for r in refused] == [422] * 3
    assert "readings" in refused[0].json()["description"]
    history = _call("GET", url, f"/entries/history/{sgvs[4]['date']}", headers).json()["result"]
    assert [e.get("sgv", e.get("mbg")) for e in history] == [125, 140]
    last = _call("GET", url, "/lastModified", headers).json()["result"]["collections"]
    assert last["entries"] >= now - 2 * MIN


def test_credentials_reach_only_their_patient(url):
    uploader = _jwt(url, _token("uploader", "v3-own"))
    doc = {"eventType": "Note", "notes": "mine", "app": "AAPS", "date": _now() - MIN}
    assert _call("POST", url, "/treatments", uploader, json=doc).status_code == 201
    reader = _jwt(url, _token("patient", "v3-own"))
    assert _call("GET", url, "/treatments", reader).json()["result"][0]["notes"] == "mine"
    cases = [(reader, "POST", "/treatments", {"json": doc}, "api:treatments:create"),
             (reader, "GET", "/treatments", {"params": {"patient": "v3-other"}},
              "api:treatments:read"),
             (reader, "GET", "/lastModified", {"params": {"patient": "v3-other"}}, "api:*:read"),
             (_jwt(url, _token("uploader", "v3-other")), "DELETE", "/treatments/x",
              {"params": {"patient": "v3-own"}}, "api:treatments:delete")]
    for headers, method, path, kw, wanted in cases:
        r = _call(method, url, path, headers, **kw)
        assert r.status_code == 403 and r.json()["message"] == f"Missing permission {wanted}"
    admin = _jwt(url, hashlib.sha1(SECRET.encode()).hexdigest())
    assert _call("GET", url, "/treatments", admin,
                 params={"patient": "v3-own"}).json()["result"][0]["notes"] == "mine"


@pytest.mark.parametrize("method, path, kw, status, message", [
    ("GET", "/treatments", {"params": {"limit": "0"}}, 400, "Parameter limit out of tolerance"),
    ("GET", "/treatments", {"params": {"sort": "date", "sort$desc": "date"}}, 400,
     "Parameters sort and sort_desc cannot be combined"),
    ("GET", "/treatments", {"params": {"carbs$between": "1"}}, 400, "Bad filter"),
    ("GET", "/treatments/history/yesterday", {}, 400, v3.BAD_LAST_MODIFIED),
    ("GET", "/treatments/history", {}, 400, v3.BAD_LAST_MODIFIED),
    ("POST", "/treatments", {"json": {"eventType": "Note", "date": 1613057404186}}, 400,
     "Bad or missing app field"),
    ("POST", "/treatments", {"json": {"eventType": "Note", "app": "x"}}, 400,
     "Bad or missing date field"),
    ("POST", "/treatments", {"json": [{"eventType": "Note"}]}, 400, "Bad or missing request body"),
    ("POST", "/treatments", {"data": "{"}, 400, "Bad Request"),
    ("POST", "/treatments", {"json": {"eventType": "Note", "app": "x", "date": 1613057404186,
                                      "insulin": -1}}, 422, "Unprocessable Entity"),
    ("POST", "/profile", {"json": {"app": "x", "date": 1613057404186}}, 422,
     "Unprocessable Entity"),
    ("POST", "/entries", {"json": {"sgv": 900, "app": "x", "date": 1613057404186}}, 422,
     "Unprocessable Entity"),
    ("PATCH", "/treatments/nothing-here", {"json": {"notes": "x"}}, 404, "Not Found"),
    ("PATCH", "/treatments/nothing-here", {"json": {}}, 400, "Bad or missing request body"),
    ("DELETE", "/treatments/nothing-here", {}, 404, "Not Found"),
    ("GET", "/treatments/nothing-here", {}, 404, "Not Found"),
    ("GET", "/food", {}, 404, "Bad operation or collection"),
    ("POST", "/settings", {"json": {"app": "x"}}, 404, "Bad operation or collection"),
    ("PUT", "/food/x", {"json": {"app": "x"}}, 404, "Bad operation or collection"),
])
def test_bad_requests_get_a_4xx_with_nightscouts_message(url, method, path, kw, status, message):
    r = _call(method, url, path, ADMIN, **kw)
    assert r.status_code == status and r.json()["message"] == message, r.text
    assert r.json()["status"] == status and r.json()["description"]


def test_permanent_deletion_is_refused(url):
    created = _call("POST", url, "/treatments", ADMIN, json={
        "eventType": "Note", "app": "x", "date": _now() - MIN}).json()
    r = _call("DELETE", url, f"/treatments/{created['identifier']}", ADMIN,
              params={"permanent": "true"})
    assert r.status_code == 422 and "permanent" in r.json()["description"]
