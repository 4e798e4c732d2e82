"""Nightscout clients nobody here wrote, against a real ingest server.

- share2nightscout-bridge (npm, the Dexcom Share bridge Nightscout users deploy) runs unmodified
  as a child process and uploads to the server; Dexcom's side is a small stand-in on 127.0.0.1.
  nightscout-connect 0.0.12 was the first choice and cannot do this job: its sidecar command
  passes a source only a URL and a secret, so only its "nightscout" source is usable, and that
  source's batches carry no ``treatments`` key, which its own Nightscout output dereferences
  (``batch.treatments.length`` in lib/outputs/nightscout.js: a TypeError before any upload).
- Recorded xDrip+ and Loop upload sequences (tests/data/nightscout/, written from the apps'
  sources) are replayed and everything they uploaded is read back.
- py-nightscout 1.3.3, Home Assistant's client, reads what Loop uploaded.
- Acknowledged treatments survive a SIGKILLed replica holding the partition's log (replay).
- Bad treatments, devicestatus and profiles get a 4xx naming the field, never a 5xx.
- What these clients send that the ingest does not handle yet is a strict xfail each, naming the
  request and the answer, so fixing the server turns it into a failure that asks for the mark's
  removal.

One server for the module; the replica-killing test runs last. The bridge test skips only when
Node.js or npm is absent (`make node-deps` installs the bridge into .node/).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import ssl
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tests.ingest_server import ADMIN, SECRET, ingest_server, log_replica
from tests.nightscout_sequences import load, minute_floor_ms, replay

ROOT = Path(__file__).resolve().parents[1]
NODE_DIR = Path(os.environ.get("CGM_RAY_NODE_DIR") or ROOT / ".node")
SHARE_BRIDGE = NODE_DIR / "node_modules" / "share2nightscout-bridge" / "index.js"
MIN = 60_000
MAX_BODY = 1 << 20
COLOCATED = True  # the one partition in the ingress replica (the default for one partition)


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    with ingest_server(tmp_path_factory.mktemp("ns-clients"), partitions=1, colocate_partition=COLOCATED,
                       max_body_bytes=MAX_BODY) as base:
        yield base


def _token(role: str, patient: str) -> str:
    from serve_apps.auth import Authenticator
    return Authenticator(SECRET).make_token(role, patient)


def _get(url: str, path: str, **params) -> list | dict:
    reply = requests.get(f"{url}{path}", params=params, headers=ADMIN, timeout=30)
    assert reply.status_code == 200, f"GET {path} {params}: {reply.status_code} {reply.text[:300]}"
    return reply.json()


def _ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


# -- share2nightscout-bridge ---------------------------------------------------------------
def _self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A throw-away certificate for 127.0.0.1 (the bridge speaks https to Dexcom, unverified).

    ``cryptography`` comes with the test extra (moto's dependency)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(datetime.fromtimestamp(now.timestamp() + 86_400, UTC))
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "share.crt", directory / "share.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class DexcomShareStandIn:
    """Dexcom Share's three publisher calls, over TLS on 127.0.0.1, serving fixed readings.

    Shapes as the bridge parses them (share2nightscout-bridge index.js: getAccountId, authorize,
    fetch, dex_to_entry): the account id and the session id are JSON strings, and readings are
    ``{WT, ST, DT, Value, Trend}``, newest first, at most ``maxCount``.
    """

    ACCOUNT, SESSION = "8c1f3b72-5d7e-4a09-b7c2-0f4e6a9d2b13", "3e9a5c10-7f2b-4d6e-a1c8-5b0d9e7f4a26"

    def __init__(self, readings: list[dict], directory: Path) -> None:
        self.readings, self.calls = readings, []
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw.strip() else None
                parts = urlsplit(self.path)
                stand_in.calls.append((parts.path, parse_qs(parts.query), body))
                answer = stand_in.answer(parts.path, parse_qs(parts.query), body)
                data = json.dumps(answer).encode()
                self.send_response(200 if answer is not None else 500)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*_self_signed_certificate(directory))
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def answer(self, path: str, query: dict, body: dict | None):
        if path.endswith("/General/AuthenticatePublisherAccount"):
            return self.ACCOUNT
        if path.endswith("/General/LoginPublisherAccountById"):
            return self.SESSION if body and body.get("accountId") == self.ACCOUNT else None
        if path.endswith("/Publisher/ReadPublisherLatestGlucoseValues"):
            if query.get("sessionID") != [self.SESSION]:
                return None
            return self.readings[:int(query.get("maxCount", ["1"])[0])]
        return None

    def __enter__(self) -> DexcomShareStandIn:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


@dataclass
class BridgeRun:
    readings: list[dict]  # what the Dexcom Share stand-in served, newest first
    served: list[dict]  # the server's entries afterwards, newest first
    output: str  # the bridge's own log
    share_calls: list[tuple]


_TRENDS = ["Flat", "FortyFiveUp", "SingleUp", "DoubleUp", "Flat", "FortyFiveDown",
           "SingleDown", "DoubleDown", "Flat", "NotComputable", "FortyFiveUp", "Flat"]


@pytest.fixture(scope="module")
def bridge_run(url, tmp_path_factory) -> BridgeRun:
    """share2nightscout-bridge run until its first upload is served, then SIGKILLed by pid.

    It logs in to the stand-in, fetches 12 readings (``firstFetchCount``) and POSTs them to
    ``/api/v1/entries.json`` with ``api-secret: sha1hex(API_SECRET)``: the default patient.
    """
    node = shutil.which("node")
    if node is None or shutil.which("npm") is None:
        pytest.skip("node/npm are not installed: share2nightscout-bridge runs in Node.js")
    assert SHARE_BRIDGE.is_file(), f"{SHARE_BRIDGE} is missing: run `make node-deps`"
    tmp = tmp_path_factory.mktemp("bridge")
    newest = minute_floor_ms(int(time.time() * 1000)) - 2 * MIN
    readings = [{"WT": f"Date({newest - k * 5 * MIN})", "ST": f"Date({newest - k * 5 * MIN})",
                 "DT": f"Date({newest - k * 5 * MIN}+0100)", "Value": 150 - 3 * k, "Trend": _TRENDS[k]}
                for k in range(12)]
    env = {k: v for k, v in os.environ.items()
           if k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
    served: list = []
    with DexcomShareStandIn(readings, tmp) as share, open(tmp / "bridge.log", "wb") as log:
        env |= {"API_SECRET": SECRET, "NS": url, "NO_PROXY": "127.0.0.1,localhost",
                "BRIDGE_SERVER": f"127.0.0.1:{share.server.server_port}",
                "DEXCOM_ACCOUNT_NAME": "share-follower", "DEXCOM_PASSWORD": "share-password-0",
                "firstFetchCount": "12", "SHARE_INTERVAL": "600000"}
        bridge = subprocess.Popen([node, str(SHARE_BRIDGE)], cwd=tmp, env=env, stdout=log,
                                  stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and bridge.poll() is None and len(served) < 12:
                time.sleep(0.3)
                served = _get(url, "/api/v1/entries.json", count=50)
        finally:
            if bridge.poll() is None:
                os.kill(bridge.pid, signal.SIGKILL)
            bridge.wait(10)
    return BridgeRun(readings, served, (tmp / "bridge.log").read_text(errors="replace"), share.calls)


def test_share2nightscout_bridge_uploads_readings_the_server_serves(bridge_run):
    run = bridge_run
    assert len(run.served) == 12, f"the bridge's upload is not served; its output:\n{run.output[-3000:]}"
    assert "status 200" in run.output, run.output[-3000:]
    login = [body for path, _, body in run.share_calls if path.endswith("AuthenticatePublisherAccount")]
    assert login and login[0]["accountName"] == "share-follower"
    assert [e["sgv"] for e in run.served] == [r["Value"] for r in run.readings]
    newest = run.served[0]["date"]
    assert [e["date"] for e in run.served] == [newest - k * 5 * MIN for k in range(12)]
    assert f"Date({newest})" == run.readings[0]["WT"]
    assert {e["device"] for e in run.served} == {"share2"}


def test_uploaded_trend_arrows_are_served_as_sent(bridge_run):
    expected = ["NOT COMPUTABLE" if t == "NotComputable" else t for t in _TRENDS]
    assert [e["direction"] for e in bridge_run.served] == expected


# -- recorded xDrip+ and Loop sequences, py-nightscout --------------------------------------
@pytest.fixture(scope="module")
def replayed(url):
    """Both sequences replayed once (each step's status checked), with their captures."""
    start = minute_floor_ms(int(time.time() * 1000)) - 2 * MIN
    out = {}
    for name in ("xdrip_upload", "loop_upload"):
        sequence = load(name)
        results, state = replay(url, sequence, admin=ADMIN, token=_token("uploader", sequence["patient"]),
                                start_ms=start)
        out[name] = (sequence, results, state)
    return out


def test_xdrip_upload_sequence_is_served_back(url, replayed):
    sequence, results, state = replayed["xdrip_upload"]
    patient, start = sequence["patient"], state.start_ms
    entries = _get(url, "/api/v1/entries.json", patient=patient, count=10)
    assert [(e["type"], e.get("sgv", e.get("mbg")), e["date"]) for e in entries] == [
        ("sgv", 163, start), ("mbg", 158, start - 2 * MIN), ("sgv", 151, start - 5 * MIN),
        ("sgv", 142, start - 10 * MIN)]
    assert [e["sgv"] for e in _get(url, "/api/v1/entries/sgv.json", patient=patient)] == [163, 151, 142]
    assert state.captured["undo_id"] == "c0ffee0012344abc9def0123"  # xDrip's uuid_to_id
    treatments = _get(url, "/api/v1/treatments.json", patient=patient)
    by_id = {t["_id"]: t for t in treatments}
    assert set(by_id) == {"5f3c9a1e7b2d4c8e9a6f1d2e", "0a1b2c3d4e5f4a6b8c7d9e0f"}, treatments
    bolus, carbs = by_id["5f3c9a1e7b2d4c8e9a6f1d2e"], by_id["0a1b2c3d4e5f4a6b8c7d9e0f"]
    assert bolus["insulin"] == 4.5 and _ms(bolus["created_at"]) == start - 30 * MIN
    assert carbs["carbs"] == 30 and _ms(carbs["created_at"]) == start - 25 * MIN
    assert carbs["uuid"] == "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d" and carbs["eventType"] == "<none>"
    statuses = _get(url, "/api/v1/devicestatus.json", patient=patient, count=10)
    assert len(statuses) == 1 and statuses[0]["device"] == "Google Pixel 7"
    assert statuses[0]["uploader"] == {"battery": 85, "type": "PHONE"}
    assert abs(_ms(statuses[0]["created_at"]) - time.time() * 1000) < 86_400_000  # stamped on arrival


def test_loop_upload_sequence_is_served_back(url, replayed):
    sequence, results, state = replayed["loop_upload"]
    patient, start = sequence["patient"], state.start_ms
    posted = [d for r in results if r.step["method"] == "POST" and r.step["path"].endswith("treatments")
              for d in r.body]
    assert len(posted) == 3 and all(d["_id"] and d["identifier"] for d in posted), posted
    assert [_ms(d["created_at"]) for d in posted] == [start - 40 * MIN, start - 15 * MIN, start - 35 * MIN]
    treatments = {t["eventType"]: t for t in _get(url, "/api/v1/treatments.json", patient=patient)}
    assert set(treatments) == {"Correction Bolus", "Temp Basal", "Carb Correction"}
    bolus, temp, carbs = (treatments[k] for k in ("Correction Bolus", "Temp Basal", "Carb Correction"))
    assert bolus["insulin"] == 2.35 and bolus["programmed"] == 2.35 and bolus["automatic"] is False
    assert _ms(bolus["created_at"]) == start - 40 * MIN
    assert (temp["temp"], temp["rate"], temp["absolute"], temp["duration"]) == ("absolute", 1.35, 1.35, 30)
    assert carbs["_id"] == state.captured["carb_id"] and carbs["carbs"] == 50  # the PUT's edit
    assert carbs["foodType"] == "🍝" and carbs["absorptionTime"] == 180
    statuses = _get(url, "/api/v1/devicestatus.json", patient=patient, count=10)
    assert len(statuses) == 1 and statuses[0]["device"] == "loop://iPhone"
    loop = statuses[0]["loop"]
    assert loop["iob"]["iob"] == 2.61 and loop["cob"]["cob"] == 31.4 and len(loop["predicted"]["values"]) == 8
    assert statuses[0]["pump"]["reservoir"] == 42.5 and _ms(statuses[0]["created_at"]) == start
    profiles = _get(url, "/api/v1/profile.json", patient=patient)
    assert len(profiles) == 1 and profiles[0]["defaultProfile"] == "Default"
    store = profiles[0]["store"]["Default"]
    assert [b["value"] for b in store["basal"]] == [0.85, 1.05, 0.9] and store["dia"] == 6
    current = _get(url, "/api/v1/profile/current", patient=patient)
    assert current["defaultProfile"] == "Default" and current["store"]["Default"]["timezone"] == "ETC/GMT-1"
    other = requests.get(f"{url}/api/v1/treatments.json", timeout=30,
                         params={"token": _token("caregiver", patient), "patient": "xdrip-patient"})
    assert other.status_code == 403


def test_py_nightscout_reads_what_loop_uploaded(url, replayed):
    py_nightscout = pytest.importorskip("py_nightscout", reason="py-nightscout (test extra) absent")
    sequence, _, state = replayed["loop_upload"]
    token = _token("caregiver", sequence["patient"])

    async def read():
        api = py_nightscout.Api(url, api_secret=f"token={token}")
        return (await api.get_sgvs(), await api.get_server_status(), await api.get_treatments(),
                await api.get_profiles())

    sgvs, status, treatments, profiles = asyncio.run(read())
    assert [s.sgv for s in sgvs] == [131, 124, 118] and all(isinstance(s.delta, float) for s in sgvs)
    assert sgvs[0].date == datetime.fromtimestamp(state.start_ms / 1000, UTC)
    assert status.status == "ok" and status.apiEnabled is True
    by_type = {t.eventType: t for t in treatments}
    assert by_type["Correction Bolus"].insulin == 2.35 and by_type["Carb Correction"].carbs == 50
    assert by_type["Temp Basal"].rate == 1.35 and by_type["Temp Basal"].duration == 30
    assert by_type["Temp Basal"].created_at == datetime.fromtimestamp((state.start_ms - 15 * MIN) / 1000, UTC)
    definition = profiles.get_profile_definition_active_at(datetime.now(UTC))
    profile = definition.get_default_profile()
    assert profile.dia == 6.0 and str(profile.timezone) == "Etc/GMT-1"
    at_five = datetime(2024, 1, 1, 5, 0, tzinfo=profile.timezone)
    assert profile.basal.value_at_date(at_five) == 1.05 and profile.sens.value_at_date(at_five) == 45


# -- what real clients send that the server does not handle yet (reported; strict xfails) ------
def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_loop_entry_dates_with_fractional_milliseconds_are_accepted(url):
    # GlucoseEntry.dictionaryRepresentation: "date": date.timeIntervalSince1970 * 1000, a Double
    # that keeps the sample time's sub-millisecond part.
    date = minute_floor_ms(int(time.time() * 1000)) - 3 * MIN + 0.4567
    reply = requests.post(f"{url}/api/v1/entries", params={"token": _token("uploader", "loop-fraction")},
                          json=[{"date": date, "dateString": _iso(int(date)), "sgv": 121, "type": "sgv",
                                 "device": "CGMBLEKit Dexcom G6 21.0", "direction": "Flat"}], timeout=30)
    assert reply.status_code == 200, reply.text
    served = _get(url, "/api/v1/entries.json", patient="loop-fraction")
    assert [e["sgv"] for e in served] == [121] and abs(served[0]["date"] - date) < 1


def test_entries_are_found_by_date_string_window(url):
    # Loop's fetchGlucose (a Loop follower), nightscout-connect and py-nightscout's examples ask
    # for a time window with find[dateString][$gte]/[$lte].
    now = minute_floor_ms(int(time.time() * 1000))
    readings = [{"type": "sgv", "sgv": 100 + k, "date": now - k * 5 * MIN, "device": "window"}
                for k in range(36)]
    reply = requests.post(f"{url}/api/v1/entries", params={"patient": "window-patient"}, json=readings,
                          headers=ADMIN, timeout=30)
    assert reply.status_code == 200, reply.text
    served = _get(url, "/api/v1/entries.json", patient="window-patient", **{
        "find[dateString][$gte]": _iso(now - 150 * MIN), "find[dateString][$lte]": _iso(now - 120 * MIN)})
    assert [e["sgv"] for e in served] == [124, 125, 126, 127, 128, 129, 130]


def test_loops_credential_check_is_answered(url):
    reply = requests.get(f"{url}/api/v1/experiments/test", headers=ADMIN, timeout=30)
    assert reply.status_code == 200 and reply.json()["status"] == "ok", reply.text
    assert requests.get(f"{url}/api/v1/experiments/test", timeout=30).status_code == 401


# -- bad input --------------------------------------------------------------------------------
def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


_OVERSIZED = json.dumps([{"eventType": "Note", "created_at": "2024-01-01T00:00:00Z", "notes": "x" * 1000}]
                        * (MAX_BODY // 1000 + 10)).encode()
_BAD = [
    ("treatments", b"{not json", "json"),
    ("treatments", {"eventType": "Note", "created_at": "yesterday"}, "created_at"),
    ("treatments", {"eventType": "Correction Bolus", "insulin": "abc", "created_at": "NOW"}, "insulin"),
    ("treatments", {"carbs": 20, "created_at": "NOW"}, "eventType"),
    ("treatments", [1, "two"], "object"),
    ("treatments", _OVERSIZED, "body"),
    ("devicestatus", b"[{", "json"),
    ("devicestatus", {"device": "loop://iPhone", "created_at": "yesterday"}, "created_at"),
    ("devicestatus", [1, "two"], "object"),
    ("devicestatus", _OVERSIZED, "body"),
    ("profile", b"not json at all", "json"),
    ("profile", {"defaultProfile": "Default", "store": {"Default": {"dia": 5, "basal": [{"time": "00:00",
                 "value": 1}]}}, "startDate": "yesterday"}, "startDate"),
    ("profile", {"defaultProfile": "Default", "store": {"Default": {"dia": "abc"}}}, "dia"),
    ("profile", [1, "two"], "object"),
    ("profile", _OVERSIZED, "body"),
]


@pytest.mark.parametrize("route, body, reason", _BAD,
                         ids=[f"{route}-{reason}-{k}" for k, (route, _, reason) in enumerate(_BAD)])
def test_bad_documents_get_a_4xx_naming_the_field(url, route, body, reason):
    if isinstance(body, bytes):
        data = body
    else:
        data = json.dumps(body).replace('"NOW"', json.dumps(_now_iso())).encode()
    reply = requests.post(f"{url}/api/v1/{route}", params={"patient": "bad-input"}, data=data, timeout=60,
                          headers={**ADMIN, "content-type": "application/json"})
    assert 400 <= reply.status_code < 500, f"{route} {data[:80]!r}: {reply.status_code} {reply.text[:300]}"
    assert reason.lower() in reply.json()["description"].lower(), reply.text[:300]


@pytest.mark.parametrize("route", ["treatments", "devicestatus", "profile"])
def test_odd_documents_never_get_a_5xx(url, route):
    odd = [b"", b"null", b'"text"', b"123", b"{}", b"[]", b"[[]]", b'{"created_at": 1e400}',
           b'{"eventType": "Note", "created_at": NaN}', b'{"eventType": null}', b"[" * 5000 + b"]" * 5000,
           json.dumps({"eventType": "Note", "created_at": 10**30}).encode(),
           json.dumps({"eventType": "Note", "carbs": -1e308, "insulin": [1], "duration": {"a": 1}}).encode(),
           json.dumps({"device": "", "created_at": ""}).encode(), json.dumps({"store": "x"}).encode()]
    for data in odd:
        for method in ("POST", "PUT"):
            reply = requests.request(method, f"{url}/api/v1/{route}", params={"patient": "bad-input"},
                                     data=data, headers={**ADMIN, "content-type": "application/json"},
                                     timeout=30)
            assert reply.status_code < 500, \
                f"{method} {route} {data[:60]!r}: {reply.status_code} {reply.text[:300]}"


# -- nothing acknowledged is lost (last: it kills the replica holding the log) -----------------
def _kill_log_replica() -> int:
    """SIGKILL this test's Ray's replica holding the partition's log (a descendant of this
    process)."""
    import psutil

    holder = f"ServeReplica:ingest:{log_replica(COLOCATED)}"
    for proc in psutil.Process(os.getpid()).children(recursive=True):
        try:
            if holder in " ".join(proc.cmdline()):
                os.kill(proc.pid, signal.SIGKILL)
                return proc.pid
        except psutil.Error:
            continue
    raise AssertionError(f"no {holder} replica among this process's descendants")


def test_acknowledged_treatments_survive_a_killed_partition(url):
    patient = "treatment-recovery"
    base_ms = minute_floor_ms(int(time.time() * 1000)) - 2 * 86_400_000
    acked: list[dict] = []
    stop = threading.Event()

    def post_forever():
        k = 0
        while not stop.is_set() and k < 1000:
            treatment = {"eventType": "Carb Correction", "carbs": 1 + k % 90, "enteredBy": "recovery-test",
                         "notes": f"ack-{k}",
                         "created_at": datetime.fromtimestamp((base_ms + k * MIN) / 1000, UTC).isoformat()}
            try:
                reply = requests.post(f"{url}/api/v1/treatments", params={"patient": patient},
                                      json=treatment, headers=ADMIN, timeout=10)
            except requests.RequestException:
                continue  # not acknowledged: send the same treatment again
            if reply.status_code == 200:
                acked.append(treatment)
                k += 1
            elif reply.status_code >= 500 or reply.status_code == 429:
                time.sleep(0.05)  # not acknowledged (or too fast): send it again
            else:
                raise AssertionError(reply.text)

    poster = threading.Thread(target=post_forever, daemon=True)
    poster.start()
    while len(acked) < 30 and poster.is_alive():
        time.sleep(0.05)
    before = len(acked)
    _kill_log_replica()
    deadline = time.monotonic() + 60
    while len(acked) < before + 30 and time.monotonic() < deadline and poster.is_alive():
        time.sleep(0.2)  # posting resumes once Serve has replaced the replica
    stop.set()
    poster.join(30)
    assert len(acked) >= before + 30, "writes did not resume after the replica was replaced"
    served = _get(url, "/api/v1/treatments.json", patient=patient, count=5000,
                  **{"find[created_at][$gte]": datetime.fromtimestamp(base_ms / 1000 - 60, UTC).isoformat()})
    copies = Counter(t.get("notes") for t in served)
    missing = [t["notes"] for t in acked if not copies[t["notes"]]]
    assert not missing, f"{len(missing)} acknowledged treatments lost, e.g. {missing[:5]}"
    assert max(copies.values()) == 1, "a treatment is served twice (upserts are on created_at + eventType)"
    sent = {t["notes"]: _ms(t["created_at"]) for t in acked}
    assert all(_ms(t["created_at"]) == sent[t["notes"]] for t in served if t.get("notes") in sent)
