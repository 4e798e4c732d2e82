"""The fleet as Nightscout uploaders (xDrip+ and Loop): profiles, window events, documents,
retries, and the fleet and ``loadtest --protocol nightscout`` against a real cgm-ray server.

The pure parts run in-process on windows simulated exactly as a shard does; the sink's HTTP
behaviour is checked against a stand-in site (standard library, 127.0.0.1) that records what it
is sent; the end-to-end tests share one real ingest server for the module.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from actors.config import FleetConfig, load_fleet_config, parse_fleet_config
from actors.fleet import Fleet, expected_minutes
from actors.sinks import Window, make_sink
from actors.sinks.nightscout import NightscoutSink
from actors.sinks.nightscout_docs import XDRIP_DEVICE, entry
from actors.sinks.posting import Poster, Request
from actors.window_events import TREATMENT_KINDS, window_events
from cgm_ray.cli import main
from cgm_ray.errors import ConfigError
from serve_apps.local import free_port
from serve_apps.validation import nightscout_sensor
from simulators.encoding import ReadingEncoder
from simulators.engine import Simulation, Step
from simulators.nightscout_profile import nightscout_profile, programmed_therapy
from simulators.population import REFERENCE
from simulators.scenario import parse_scenario
from tests.ingest_server import ADMIN, SECRET, ingest_server, stored_keys
from tests.test_fleet import expected_readings

ROOT = Path(__file__).resolve().parents[1]
OREF0_SMB = {"algorithm": "oref0", "enable_smb": True}


def ns_config(url: str, style: str = "xdrip", n: int = 6, duration_min: int = 720, seed: int = 21,
              controller: dict | None = None, **sink) -> FleetConfig:
    """``n`` sampled patients (realistic behaviour) uploading to ``url`` in ``style``."""
    therapy = {"controller": controller} if controller else {}
    return parse_fleet_config({
        "scenario": {"duration_min": duration_min, "patients": {"n": n, "seed": seed}, "seed": seed,
                     "sensor": {"model": "dexcom_g6", "start": "staggered"}, "therapy": therapy},
        "sink": {"kind": "nightscout", "url": url, "style": style, **sink},
        "shards": min(2, n), "speedup": "max", "tick_min": 5,
    })


@dataclass(frozen=True)
class Simulated:
    """A fleet's windows as one shard of all its patients makes them, in-process."""

    sim: Simulation
    windows: list[tuple[Window, Step]]


def simulate(config: FleetConfig) -> Simulated:
    scenario = config.scenario
    sim = scenario.build()
    encoder = ReadingEncoder(sim.cohort, scenario.start_ms, sim.sensor.name)
    windows = []
    while sim.minute < expected_minutes(config):
        step = sim.advance(config.tick_min)
        treatments, loop = window_events(step, sim, scenario.start_ms)
        windows.append((Window(0, step.t0, sim.minute, scenario.start_ms,
                               encoder.table(step.readings), treatments, loop), step))
    return Simulated(sim, windows)


# -- the profile ---------------------------------------------------------------------------
def item(value: float) -> list[dict]:
    return [{"time": "00:00", "value": value, "timeAsSeconds": 0}]


def test_a_patients_profile_is_their_programmed_therapy():
    """Reference patients' profiles hold their published carb ratio and correction factor
    (quest.csv) and the steady-state basal u2ss * BW / 6000 U/min; targets follow the therapy."""
    open_loop = parse_scenario({"duration_min": 60, "patients": ["adult#001", "child#002"],
                                "behaviour": {"preset": "ideal"}})
    sim = open_loop.build()
    doc = nightscout_profile(programmed_therapy(sim), 1, open_loop.start_ms)
    ref = REFERENCE["child#002"]
    assert {k: doc[k] for k in ("defaultProfile", "startDate", "units")} == {
        "defaultProfile": "Default", "startDate": "2026-01-01T00:00:00.000Z", "units": "mg/dl"}
    store = doc["store"]["Default"]
    assert store["carbratio"] == item(round(ref["CR"], 1)) and store["sens"] == item(round(ref["CF"], 1))
    assert store["basal"] == item(round(ref["u2ss"] * ref["BW"] / 6000 * 60, 3))
    assert store["target_low"] == store["target_high"] == item(140)  # the correction target
    assert store["dia"] == 5.0 and store["timezone"] == "UTC" and store["units"] == "mg/dl"

    closed = parse_scenario({"duration_min": 60, "patients": ["adult#001"], "behaviour": {"preset": "ideal"},
                             "therapy": {"controller": {"algorithm": "loop_reference", "target_mgdl": 110}}})
    loop_sim = closed.build()
    store = nightscout_profile(programmed_therapy(loop_sim), 0, closed.start_ms)["store"]["Default"]
    assert store["target_low"] == store["target_high"] == item(110) and store["dia"] == 6.0
    assert store["basal"] == item(round(loop_sim.loop.schedules.basal_u_per_h[0], 3))


# -- window events -------------------------------------------------------------------------
def test_window_treatments_account_for_every_meal_rescue_and_bolus():
    """Open loop: the meals are the meal plan's and the boluses the engine's (carb units);
    closed loop: the patients' and the automatic boluses add up to what the pump delivered."""
    for controller in (None, OREF0_SMB):
        run = simulate(ns_config("http://127.0.0.1:9", n=4, duration_min=1440, controller=controller))
        found: Counter = Counter()
        for window, step in run.windows:
            t = window.treatments.to_pydict()
            assert set(t["kind"]) <= set(TREATMENT_KINDS)
            for kind, carbs, insulin in zip(t["kind"], t["carbs_g"], t["insulin_u"]):
                found[kind, "g"] += carbs or 0.0
                found[kind, "u"] += insulin or 0.0
                found[kind] += 1
            found["delivered_u"] += step.boluses.units.sum()
            found["dosed"] += int((step.boluses.units > 0).sum())
            found["rescue_g"] += 0.0 if step.rescues is None else step.rescues.grams.sum()
            assert (window.loop is None) == (controller is None)
            if window.loop is not None:
                assert window.loop.num_rows == 4  # one decision period per patient and window
        meals = run.sim.meals.events(run.sim.cohort.keys, 0, 1440)
        assert found["meal", "g"] == pytest.approx(meals.grams.sum()) and found["meal"] == len(meals.minute)
        assert found["hypo_carbs", "g"] == pytest.approx(found["rescue_g"])
        patient_u, auto_u = found["bolus", "u"], found["auto_bolus", "u"]
        assert patient_u + auto_u == pytest.approx(found["delivered_u"]) and patient_u > 0
        assert (auto_u > 0) == (controller is not None)
        if controller is None:
            assert found["bolus"] == found["dosed"]


# -- documents -----------------------------------------------------------------------------
def documents_of(config: FleetConfig) -> list:
    """Every (window, readings, documents) a fresh sink makes of the fleet's windows (none sent)."""
    run = simulate(config)
    sink = NightscoutSink(config.sink.url, config.sink.style, {}, {}, therapy=programmed_therapy(run.sim))
    out = [(window, *sink.documents(window)) for window, _ in run.windows]
    sink.close()
    return out


def test_xdrip_documents_are_deterministic_and_shaped_like_xdrip():
    config = ns_config("http://127.0.0.1:9", n=3, duration_min=720)
    first, again = documents_of(config), documents_of(config)
    assert [d for _, _, d in first] == [d for _, _, d in again]  # a re-sent window is the same
    treatments = [doc for _, _, d in first for _, doc in d["treatments"]]
    assert treatments and all(t["eventType"] == "<none>" and t["enteredBy"] == "xdrip"
                              and t["_id"] == t["uuid"].replace("-", "")[:24] for t in treatments)
    moments = Counter((t["identifier"], t["created_at"]) for t in treatments)
    assert max(moments.values()) == 1  # carbs and insulin of one moment in one record
    assert any(t["carbs"] > 0 and t["insulin"] > 0 for t in treatments)
    for _, readings, docs in first:
        assert "profile" not in docs
        with_readings = {r.patient_id for r in readings}
        assert {p for p, _ in docs["devicestatus"]} == with_readings  # a battery report per upload
        assert all(d["uploader"]["type"] == "PHONE" and 36 <= d["uploader"]["battery"] <= 100
                   for _, d in docs["devicestatus"])
    sensor = next(r for _, rs, _ in first for r in rs)
    e = entry("xdrip", sensor)
    assert e["device"] == XDRIP_DEVICE and e["type"] == "sgv" and e["direction"] == sensor.direction
    assert e["sgv"] == round(sensor.glucose_mgdl) and e["dateString"].endswith(".000Z")


def test_loop_documents_carry_the_loops_decisions_and_the_profile_once():
    config = ns_config("http://127.0.0.1:9", style="loop", n=3, duration_min=720, controller=OREF0_SMB)
    produced = documents_of(config)
    kinds: Counter = Counter()
    for window, _, docs in produced:
        assert ("profile" in docs) == (window.t0_min == 0)
        assert len(docs["devicestatus"]) == 3  # one loop cycle per patient per 5-min window
        loop = window.loop.to_pylist()
        temps = {(p, d["created_at"]): d for p, d in docs["treatments"] if d["eventType"] == "Temp Basal"}
        for row in loop:  # a temp basal record wherever the pump ran other than the schedule
            ran_temp = abs(row["basal_u_per_h"] - row["scheduled_basal_u_per_h"]) > 1e-9
            assert ran_temp == any(p == row["patient_id"] for p, _ in temps)
        for _, d in docs["treatments"]:
            kinds[d["eventType"], d.get("automatic")] += 1
        for _, d in docs["devicestatus"]:
            assert d["device"] == "loop://iPhone" and d["loop"]["name"] == "Loop"
            assert set(d["pump"]) == {"clock", "reservoir", "battery", "status"}
    assert {k for k, _ in kinds} == {"Carb Correction", "Correction Bolus", "Temp Basal"}
    assert kinds["Correction Bolus", True] > 0 and kinds["Correction Bolus", False] > 0
    profile = produced[0][2]["profile"]
    assert [p for p, _ in profile] == list(config.scenario.cohort().names)
    assert all(set(doc["store"]["Default"]) >= {"dia", "carbratio", "sens", "basal", "target_low",
                                                "target_high", "timezone", "units"} for _, doc in profile)
    ids = [d["identifier"] for _, _, docs in produced for c in docs.values() for _, d in c]
    assert len(ids) == len(set(ids))
    predicted = [d["loop"].get("predicted") for _, _, docs in produced for _, d in docs["devicestatus"]]
    assert sum(p is not None for p in predicted) > len(predicted) // 2
    assert all(len(p["values"]) == 7 for p in predicted if p)


# -- HTTP: a stand-in site -----------------------------------------------------------------
@dataclass
class StandIn:
    """A Nightscout stand-in on 127.0.0.1: records every POST (path, query, headers, JSON).

    ``lose_first``: the first attempt of each distinct request is stored but answered 503 (the
    answer is lost, so the client must retry); ``status``: answer every request with it.
    """

    lose_first: bool = False
    status: int = 200
    posts: list = field(default_factory=list)
    attempts: Counter = field(default_factory=Counter)

    def __enter__(self) -> StandIn:
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real servers
            disable_nagle_algorithm = True  # headers and body go out at once

            def do_POST(self):  # noqa: N802 - the standard library's name
                url = urllib.parse.urlsplit(self.path)
                body = self.rfile.read(int(self.headers["content-length"]))
                key = (self.path, body)
                site.attempts[key] += 1
                site.posts.append((url.path, dict(urllib.parse.parse_qsl(url.query)),
                                   {k.lower(): v for k, v in self.headers.items()}, json.loads(body)))
                status = 503 if site.lose_first and site.attempts[key] == 1 else site.status
                self.send_response(status)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"[]")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def stored(self) -> dict[str, set]:
        """What the site holds by collection, keyed as a Nightscout server deduplicates."""
        out: dict[str, set] = {}
        for path, query, _, body in self.posts:
            for doc in body if isinstance(body, list) else [body]:
                key = (doc["device"], doc["date"]) if path.endswith("entries") else doc["identifier"]
                out.setdefault(path.rsplit("/", 1)[1], set()).add((query["patient"], key))
        return out


def deliver_all(url: str, config: FleetConfig, run: Simulated | None = None) -> tuple[list, int]:
    """Deliver every window of ``config`` (simulated ``run``) through a Nightscout sink at ``url``;
    the deliveries and the number of readings."""
    run = run or simulate(config)
    sink = make_sink(config.sink.model_copy(update={"url": url}),
                     programmed_therapy(run.sim))
    sink.poster.backoff_s = 0.0  # retries at once: nothing here waits on a clock
    deliveries = [sink.deliver(window) for window, _ in run.windows]
    sink.close()
    return deliveries, sum(window.readings.num_rows for window, _ in run.windows)


def post_all(requests: list[Request], **poster) -> list[bool]:
    """``requests`` sent by a fresh Poster that retries at once (nothing here waits on a clock)."""
    sender = Poster(backoff_s=0.0, **poster)
    try:
        return sender.post_all(requests)
    finally:
        sender.close()


def test_poster_retries_what_a_retry_can_fix_and_gives_up_on_refusals():
    with StandIn(lose_first=True) as site:
        requests = [Request(f"{site.url}/a", b"[1]", {}), Request(f"{site.url}/b", b"[2]", {}, {"x": "1"})]
        assert post_all(requests) == [True, True]
        assert post_all([Request(f"{site.url}/c", b"[3]", {})], max_retries=0) == [False]
        assert sorted(site.attempts.values()) == [1, 2, 2]
        assert {q.get("x") for _, q, _, _ in site.posts} == {None, "1"}
    with StandIn(status=401) as site:
        assert post_all([Request(f"{site.url}/d", b"[4]", {})]) == [False]
        assert list(site.attempts.values()) == [1]  # a refusal is not retried


def test_lost_answers_are_retried_and_store_nothing_twice(monkeypatch):
    """Every request's first answer lost: the sink retries, counts everything delivered, and
    what the site holds (deduplicated as Nightscout does) is exactly a clean delivery's."""
    monkeypatch.setenv("API_SECRET", SECRET)
    config = ns_config("http://unused", style="loop", n=3, duration_min=60, controller=OREF0_SMB)
    run = simulate(config)
    with StandIn() as clean_site, StandIn(lose_first=True) as lossy_site:
        clean, n_readings = deliver_all(clean_site.url, config, run)
        lossy, _ = deliver_all(lossy_site.url, config, run)
    for deliveries in (clean, lossy):
        assert sum(d.acked for d in deliveries) == n_readings > 0
        assert sum(d.failed + d.documents_failed for d in deliveries) == 0
    assert sum(d.documents_acked for d in lossy) == sum(d.documents_acked for d in clean) > 0
    assert len(lossy_site.posts) == 2 * len(clean_site.posts)
    stored = clean_site.stored()
    assert lossy_site.stored() == stored and set(stored) == {"entries", "treatments", "devicestatus",
                                                               "profile"}
    assert {p for p, _ in stored["profile"]} == set(config.scenario.cohort().names)
    for path, query, headers, _ in clean_site.posts:
        assert headers["api-secret"] == ADMIN["api-secret"] and headers["content-type"] == "application/json"
        assert path.startswith("/api/v1/") and set(query) == {"patient"}


def test_a_token_travels_as_a_query_parameter():
    config = ns_config("http://unused", n=1, duration_min=30, token="uploader-token")
    run = simulate(config)
    with StandIn() as site:
        deliveries, n_readings = deliver_all(site.url, config, run)
    assert sum(d.acked for d in deliveries) == n_readings
    assert site.posts and all(q == {"patient": config.scenario.cohort().names[0], "token": "uploader-token"}
                              and "api-secret" not in h for _, q, h, _ in site.posts)
    with StandIn(status=401) as site:
        deliveries, n_readings = deliver_all(site.url, config, run)
    assert sum(d.failed for d in deliveries) == n_readings and not any(d.acked for d in deliveries)


BASE = {"scenario": {"duration_min": 60, "patients": {"n": 2}},
        "sink": {"kind": "nightscout", "url": "http://127.0.0.1:9"}}


@pytest.mark.parametrize("sink, field", [
    ({"style": "loop"}, "sink.style"),  # an open-loop scenario has no loop to upload
    ({"style": "aaps"}, "sink.style"),
    ({"url": "127.0.0.1:9"}, "sink.url"),
    ({"token": "t", "api_secret_env": "S"}, "sink.token"),
    ({"token": "t"}, "sink.token"),  # one patient's credential, two patients
    ({"batch_size": 0}, "sink.batch_size"),
])
def test_bad_nightscout_sinks_name_the_field(sink, field):
    with pytest.raises(ConfigError) as err:
        parse_fleet_config({**BASE, "sink": {**BASE["sink"], **sink}})
    assert err.value.field == field


def test_the_example_config_is_a_loop_fleet():
    config = load_fleet_config(str(ROOT / "configs" / "fleet-nightscout.yaml"))
    assert config.sink.kind == "nightscout" and config.sink.style == "loop"
    assert config.scenario.therapy.controller.closes_loop


@pytest.mark.parametrize("args, says", [
    (["--protocol", "nightscout"], "--protocol: nightscout needs a --target"),
    (["--protocol", "nightscout", "--target", "http://127.0.0.1:{port}"], "cannot reach"),
])
def test_loadtest_nightscout_refuses_without_a_site(capsys, args, says):
    argv = ["loadtest", "--sensors", "5", "--duration", "5"] + [a.format(port=free_port()) for a in args]
    assert main(argv) == 2
    assert says in capsys.readouterr().err


# -- a real cgm-ray server -----------------------------------------------------------------
@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fleet-nightscout")
    with ingest_server(tmp, rate_limit_per_s=1e6) as url:
        yield url, tmp


def stored_readings(root) -> Counter:
    """(sensor, ts) of every durable reading (the readings' logs, not the documents')."""
    return stored_keys(root / "ingest" / "wal") + stored_keys(root / "landing")


def get_json(url: str, path: str, **params) -> list:
    query = urllib.parse.urlencode(params)
    with urllib.request.urlopen(urllib.request.Request(f"{url}{path}?{query}", headers=ADMIN)) as r:
        return json.load(r)


def run_fleet_to_the_end(config: FleetConfig):
    fleet = Fleet(config).start()
    status = fleet.wait(300)
    fleet.stop()
    assert status.state == "finished", status.error
    return status


@dataclass(frozen=True)
class Uploads:
    """What a fleet uploads: documents by patient, collection and identifier; each reading's
    arrow by (patient, ts_ms)."""

    documents: dict[str, dict[str, dict[str, dict]]]
    directions: dict[tuple[str, int], str]


def expected_uploads(config: FleetConfig) -> Uploads:
    documents: dict = {}
    directions = {}
    for _, readings, docs in documents_of(config):
        directions.update({(r.patient_id, r.ts_ms): r.direction for r in readings})
        for collection, found in docs.items():
            for patient, doc in found:
                documents.setdefault(patient, {}).setdefault(collection, {})[doc["identifier"]] = doc
    return Uploads(documents, directions)


SINCE_START = {"find[created_at][$gte]": "2026-01-01T00:00:00.000Z"}  # the scenarios' start


def stored_documents(url: str, patient: str) -> dict[str, dict[str, dict]]:
    """What the server holds of ``patient``'s documents, by collection and identifier (reads
    without a time see the last 4 days only, as Nightscout's)."""
    return {c: {d["identifier"]: d for d in get_json(url, f"/api/v1/{c}.json", patient=patient,
                                                      count=10_000, **SINCE_START)}
            for c in ("treatments", "devicestatus", "profile")}


def test_an_xdrip_fleet_stores_every_reading_and_document_once(server):
    url, root = server
    before = stored_readings(root)
    config = ns_config(url, n=12, duration_min=360, seed=31)
    status = run_fleet_to_the_end(config)
    expected = expected_readings(config)
    stored = stored_readings(root) - before
    assert status.acked == len(expected) and status.failed == 0
    cohort = config.scenario.cohort()
    patient_of = dict(zip(cohort.keys.astype(str), cohort.names))  # sensor dexcom_g6-<key>-<n>
    uploads = [(patient_of[s.split("-")[1]], t, g) for s, t, g in expected]
    assert {(nightscout_sensor(p, XDRIP_DEVICE), t) for p, t, _ in uploads} == set(stored)
    assert max(stored.values()) == 1
    assert status.documents_acked > 0 and status.documents_failed == 0
    sent = expected_uploads(config)
    patient = next(p for p in cohort.names if sent.documents[p].get("treatments"))
    got = get_json(url, "/api/v1/entries.json", patient=patient, count=1000)
    assert sorted((e["date"], round(e["sgv"])) for e in got) == sorted(
        (t, round(g)) for p, t, g in uploads if p == patient)
    assert all(e["direction"] == sent.directions[patient, e["date"]] for e in got)  # kept as sent
    want, have = sent.documents[patient], stored_documents(url, patient)
    for collection in ("treatments", "devicestatus"):
        assert set(have[collection]) == set(want[collection]) and want[collection]
    for ident, doc in want["treatments"].items():  # Nightscout drops zero carbs and insulin
        assert have["treatments"][ident].get("carbs", 0) == doc["carbs"]
        assert have["treatments"][ident].get("insulin", 0) == doc["insulin"]
    assert not have["profile"]


def test_a_loop_fleet_uploads_its_profile_decisions_and_treatments(server):
    url, _ = server
    config = ns_config(url, style="loop", n=4, duration_min=240, seed=34, controller=OREF0_SMB)
    status = run_fleet_to_the_end(config)
    assert status.failed == 0 and status.documents_failed == 0
    patient = config.scenario.cohort().names[1]
    want, have = expected_uploads(config).documents[patient], stored_documents(url, patient)
    for collection in ("treatments", "devicestatus", "profile"):
        assert set(have[collection]) == set(want[collection]) and want[collection]
    assert len(have["devicestatus"]) == 240 // 5  # a loop cycle every 5 min
    current = get_json(url, "/api/v1/profile/current.json", patient=patient)
    profile = next(iter(want["profile"].values()))
    assert current["store"]["Default"] == profile["store"]["Default"]
    temps = get_json(url, "/api/v1/treatments.json", patient=patient, count=1000,
                     **{"find[eventType]": "Temp Basal"}, **SINCE_START)
    assert temps and {t["identifier"] for t in temps} == {
        i for i, d in want["treatments"].items() if d["eventType"] == "Temp Basal"}
    newest = get_json(url, "/api/v1/devicestatus.json", patient=patient, count=1, **SINCE_START)[0]
    assert newest["loop"] == want["devicestatus"][newest["identifier"]]["loop"]


def test_a_window_sent_again_stores_nothing_new(server, monkeypatch):
    url, root = server
    monkeypatch.setenv("API_SECRET", SECRET)
    config = ns_config(url, n=5, duration_min=120, seed=32)
    deliver_all(url, config)
    first = stored_readings(root)
    again, n_readings = deliver_all(url, config)  # a fresh sink, as after a shard restart
    assert sum(d.acked for d in again) == n_readings and not any(d.failed for d in again)
    assert stored_readings(root) == first


def test_loadtest_protocol_nightscout_reports_the_same_keys(server, capsys):
    url, _ = server
    reports = {}
    for protocol in ("cgm-ray", "nightscout"):
        code = main(["loadtest", "--sensors", "20", "--duration", "3", "--speedup", "max",
                     "--target", url, "--protocol", protocol, "--shards", "1", "--seed", "33",
                     "--json", "--quiet"])
        reports[protocol] = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert code == 0, reports[protocol]
    assert set(reports["nightscout"]) == set(reports["cgm-ray"])
    ns = reports["nightscout"]
    assert ns["readings_acked"] == ns["readings_sent"] > 0 and ns["readings_failed"] == 0
    assert ns["documents_acked"] > 0 and ns["documents_failed"] == 0


def test_a_refused_secret_is_a_clear_error(server, monkeypatch, capsys):
    url, _ = server
    monkeypatch.setenv("API_SECRET", "not-the-secret-0123")
    argv = ["loadtest", "--sensors", "5", "--duration", "5", "--target", url, "--protocol", "nightscout"]
    assert main(argv) == 2
    assert "the API secret is not accepted" in capsys.readouterr().err
