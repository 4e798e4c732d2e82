"""Nightscout documents in the lake (issue #13): typed columns of treatments, devicestatus and
profiles, the newest version of each document kept and deleted ones dropped, whatever the
runs or the order segments land in, bad rows and files counted by reason, a failed run
changing nothing, and the doctor's report totalling insulin and carbohydrate from the lake.

Segments are written by the ingest's own write-ahead log (``serve_apps.wal``) where the test
is about loading them, and as plain Arrow streams where it is about a damaged one.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.ipc as ipc
import pytest

from cgm_ray.cli import main
from cgm_ray.lake.documents import newest_versions, parse_documents
from cgm_ray.lake.etl import discover_inputs
from cgm_ray.lake.nightscout import (
    DocumentError,
    devicestatus_columns,
    profile_columns,
    treatment_columns,
)
from cgm_ray.lake.store import Lake, Snapshot
from cgm_ray.schema import DOCUMENT_SCHEMA
from serve_apps.wal import WriteAheadLog

from .lake_data import etl
from .test_report import _tables

T0 = 1_709_251_200_000  # 2024-03-01T00:00Z
H = 3_600_000
PATIENT = "ns-patient"

# Record shapes as the clients upload them (shared/docs/nightscout-ecosystem.md).
LOOP_TEMP_BASAL = {"eventType": "Temp Basal", "temp": "absolute", "rate": 0.5, "absolute": 0.5,
                   "duration": 30, "automatic": True, "enteredBy": "loop://iPhone",
                   "created_at": "2024-03-01T10:00:00.000Z"}
MEAL_BOLUS = {"eventType": "Meal Bolus", "insulin": "4.5", "carbs": 45, "enteredBy": "xdrip",
              "created_at": "2024-03-01T08:00:00.000Z", "notes": "porridge"}
LOOP_STATUS = {"device": "loop://iPhone", "created_at": "2024-03-01T10:00:00Z",
               "pump": {"reservoir": 112.5, "battery": {"percent": 75}},
               "uploader": {"battery": 88},
               "loop": {"iob": {"iob": -0.25}, "cob": {"cob": 12}, "enacted": {"rate": 0.5, "duration": 30}}}
OPENAPS_STATUS = {"device": "openaps://rig", "created_at": "2024-03-01T10:05:00Z",
                  "openaps": {"iob": [{"iob": 1.75, "activity": 0.01}, {"iob": 1.5}],
                              "suggested": {"COB": 20, "IOB": 1.7, "eventualBG": 120},
                              "enacted": {"rate": 1.2, "duration": 30}}}
PROFILE = {"defaultProfile": "Weekday", "startDate": "2024-02-01T00:00:00.000Z",
           "store": {"Weekday": {"dia": 5, "timezone": "Europe/Paris", "units": "mg/dl",
                                 "basal": [{"time": "06:00", "value": 1.0, "timeAsSeconds": 21600},
                                           {"time": "00:00", "value": "0.5"},
                                           {"time": "22:00", "value": 0.8}]},
                     "Sport": {"basal": [{"time": "00:00", "value": 0.3}]}}}


def row(identifier: str, document: dict, collection: str = "treatments", date_ms: int = T0,
        version: int = 1, valid: bool = True, patient: str = PATIENT) -> dict:
    """One landing row: a version of a document (``version`` is its srv_modified_ms)."""
    return {"patient_id": patient, "collection": collection, "identifier": identifier,
            "date_ms": date_ms, "srv_modified_ms": version, "is_valid": valid,
            "document": json.dumps(document if valid else {"identifier": identifier, "isValid": False})}


def land(lake_dir: Path, *segments: list[dict], partition: str = "p000") -> list[Path]:
    """Append each segment's rows to a documents write-ahead log and land it (one segment each)."""
    landing = lake_dir / "landing" / "documents"

    async def write() -> None:
        wal = WriteAheadLog(lake_dir.parent / f"wal-{lake_dir.name}", landing, partition, DOCUMENT_SCHEMA)
        for rows in segments:
            await wal.append(pa.RecordBatch.from_pylist(rows, schema=DOCUMENT_SCHEMA))
            await wal.roll()

    before = set(landing.glob("*.arrows"))
    asyncio.run(write())
    return sorted(set(landing.glob("*.arrows")) - before)


def documents(lake_dir: Path, table: str, patient: str = PATIENT) -> dict[str, dict]:
    """A patient's rows of a document table by identifier."""
    rows = Lake(str(lake_dir)).patient_documents(table, patient).to_pylist()
    return {r["identifier"]: r for r in rows}


# -- typed columns -------------------------------------------------------------------------------
def test_treatment_columns_of_client_records():
    temp = treatment_columns(LOOP_TEMP_BASAL)
    assert temp == {"event_type": "Temp Basal", "insulin_u": None, "carbs_g": None, "duration_min": 30.0,
                    "rate_u_per_h": 0.5, "rate_change_pct": None, "entered_by": "loop://iPhone"}
    meal = treatment_columns(MEAL_BOLUS)  # numeric text, as the server coerces it
    assert (meal["insulin_u"], meal["carbs_g"], meal["event_type"]) == (4.5, 45.0, "Meal Bolus")
    careportal = treatment_columns({"eventType": "Temp Basal", "percent": -50, "duration": 60})
    assert (careportal["rate_u_per_h"], careportal["rate_change_pct"]) == (None, -50.0)
    assert treatment_columns({"eventType": "Temp Basal", "rate": 1.1})["rate_u_per_h"] == 1.1


def test_devicestatus_columns_of_loop_openaps_and_uploaders():
    assert devicestatus_columns(LOOP_STATUS) == {
        "device": "loop://iPhone", "iob_u": -0.25, "cob_g": 12.0, "reservoir_u": 112.5,
        "pump_battery_pct": 75.0, "uploader_battery_pct": 88.0, "enacted_rate_u_per_h": 0.5,
        "enacted_duration_min": 30.0}
    openaps = devicestatus_columns(OPENAPS_STATUS)  # iob is a list, newest first
    assert (openaps["iob_u"], openaps["cob_g"], openaps["enacted_rate_u_per_h"]) == (1.75, 20.0, 1.2)
    xdrip = devicestatus_columns({"device": "xDrip-DexcomG5", "uploaderBattery": 54})
    assert xdrip["uploader_battery_pct"] == 54.0 and xdrip["iob_u"] is None


def test_profile_columns_take_the_default_profiles_basal_schedule():
    assert profile_columns(PROFILE) == {
        "default_profile": "Weekday", "timezone": "Europe/Paris",
        "basal": [{"start_s": 0, "rate_u_per_h": 0.5}, {"start_s": 21600, "rate_u_per_h": 1.0},
                  {"start_s": 79200, "rate_u_per_h": 0.8}]}


@pytest.mark.parametrize("columns, document, field, reason", [
    (treatment_columns, {"insulin": "two"}, "insulin", "not a number"),
    (treatment_columns, {"carbs": -5}, "carbs", "below 0"),
    (treatment_columns, {"insulin": True}, "insulin", "not a number"),
    (treatment_columns, {"percent": -150, "eventType": "Temp Basal"}, "percent", "below -100"),
    (treatment_columns, {"eventType": 7}, "eventType", "not text"),
    (devicestatus_columns, {"pump": {"battery": {"percent": 140}}}, "pump.battery.percent", "above 100"),
    (devicestatus_columns, {"loop": {"cob": {"cob": "lots"}}}, "loop.cob.cob", "not a number"),
    (profile_columns, {"store": {}}, "defaultProfile", "missing"),
    (profile_columns, {"defaultProfile": "A", "store": {"B": {}}}, "store.A",
     "missing (the default profile)"),
    (profile_columns, {"defaultProfile": "A", "store": {"A": {"timezone": "Mars/Olympus"}}},
     "store.A.timezone", "unknown time zone"),
    (profile_columns, {"defaultProfile": "A", "store": {"A": {"basal": [{"time": "25:00", "value": 1}]}}},
     "store.A.basal.0.time", "not a time of day (HH:MM)"),
    (profile_columns, {"defaultProfile": "A", "store": {"A": {"basal": [{"time": "01:00"}]}}},
     "store.A.basal.0.value", "missing"),
    (profile_columns, {"defaultProfile": "A", "store": {"A": {"basal": [
        {"time": "01:00", "value": 1}, {"time": "01:00", "value": 2}]}}},
     "store.A.basal", "two entries at the same time of day"),
])
def test_unusable_fields_are_named(columns, document, field, reason):
    with pytest.raises(DocumentError) as raised:
        columns(document)
    assert (raised.value.field, raised.value.reason) == (field, reason)


def test_parse_documents_counts_what_it_cannot_use_by_reason():
    rows = [row("a", MEAL_BOLUS), row("b", LOOP_STATUS, "devicestatus"), row("c", PROFILE, "profile"),
            row("d", {}, valid=False),  # a deletion carries only its key
            row("e", {"type": "mbg", "mbg": 100}, "entries"),
            row("f", {"insulin": "two"}), row("g", {}, date_ms=1_000),
            {**row("h", {}), "document": "{not json"}, {**row("i", {}), "document": "[1, 2]"},
            {**row("j", {}), "identifier": ""}]
    parsed = parse_documents(rows)
    assert {name: t["identifier"].to_pylist() for name, t in parsed.tables.items()} == {
        "treatments": ["a", "d"], "devicestatus": ["b"], "profiles": ["c"]}
    assert parsed.tables["treatments"]["is_valid"].to_pylist() == [True, False]
    assert parsed.rejections == {
        "entries: collection: has no lake table (tables are kept of ['devicestatus', 'profile', "
        "'treatments'])": 1,
        "treatments: insulin: not a number": 1, "treatments: date_ms: before 2000-01-01": 1,
        "treatments: document: not JSON": 1, "treatments: document: not a JSON object": 1,
        "treatments: identifier: missing": 1}


def test_newest_version_is_the_latest_srv_modified_then_the_highest_rank():
    keys = pa.table({"patient_id": ["p", "p", "p", "q", "p", "p"],
                     "identifier": ["a", "a", "b", "a", "b", "a"],
                     "srv_modified_ms": [5, 7, 3, 1, 3, 7],
                     "rank": [0, 1, 2, 3, 4, 5]})
    assert newest_versions(keys).tolist() == [3, 4, 5]
    assert newest_versions(keys.slice(0, 0)).tolist() == []


def test_a_manifest_from_before_the_document_tables_still_loads():
    old = {"version": 3, "run_id": "r", "committed_ms": 1, "files": [], "inputs": [],
           "patients_file": None, "sensors_file": None}
    snapshot = Snapshot.from_json(json.dumps(old))
    assert snapshot.table_files == {} and snapshot.table_rows("treatments") == 0
    assert Snapshot.from_json(snapshot.to_json()) == snapshot


def test_landing_documents_are_routed_as_documents(tmp_path):
    land(tmp_path, [row("a", MEAL_BOLUS)])
    lake = Lake(str(tmp_path), create=True)
    assert [f.source for f in discover_inputs(lake)] == ["documents"]


# -- the ETL -----------------------------------------------------------------------------------
def test_etl_keeps_the_newest_version_and_drops_deleted_documents(ray_runtime, tmp_path):
    land(tmp_path,
         [row("bolus", MEAL_BOLUS, date_ms=T0 + 8 * H), row("temp", LOOP_TEMP_BASAL, date_ms=T0 + 10 * H),
          row("loop", LOOP_STATUS, "devicestatus", T0 + 10 * H), row("profile", PROFILE, "profile"),
          row("typo", {"eventType": "Note", "notes": "oops"}, date_ms=T0 + 9 * H)],
         [row("bolus", {**MEAL_BOLUS, "insulin": 5.0}, date_ms=T0 + 8 * H, version=2),
          row("typo", {}, version=2, valid=False),
          row("rig", OPENAPS_STATUS, "devicestatus", T0 + 10 * H + 300_000, version=2),
          row("bad", {"carbs": "many"}, version=2)])
    out = etl(tmp_path)
    assert out["lake_rows"] == 0 and out["rows_read"] == 0  # documents are not readings
    assert out["documents"] == {
        "read": 9, "rejected": 1, "rejections": {"treatments: carbs: not a number": 1},
        "superseded": 2, "written": {"treatments": 2, "devicestatus": 2, "profiles": 1},
        "deleted": {"treatments": 1}, "in_lake": {"treatments": 2, "devicestatus": 2, "profiles": 1}}
    treatments = documents(tmp_path, "treatments")
    assert list(treatments) == ["bolus", "temp"]  # sorted by time; the deleted note is gone
    bolus = treatments["bolus"]
    assert (bolus["insulin_u"], bolus["carbs_g"], bolus["srv_modified_ms"]) == (5.0, 45.0, 2)
    assert json.loads(bolus["document"])["notes"] == "porridge"
    assert bolus["ts"].timestamp() * 1000 == T0 + 8 * H
    assert treatments["temp"]["rate_u_per_h"] == 0.5
    status = documents(tmp_path, "devicestatus")
    assert (status["loop"]["iob_u"], status["rig"]["cob_g"]) == (-0.25, 20.0)
    assert documents(tmp_path, "profiles")["profile"]["basal"][1] == {"start_s": 21600, "rate_u_per_h": 1.0}

    lake = Lake(str(tmp_path))
    files = lake.snapshot().table_files
    again = etl(tmp_path)  # nothing new: every segment is skipped, nothing changes
    assert again["inputs_skipped"] == 2 and again["documents"]["read"] == 0
    assert again["documents"]["in_lake"] == out["documents"]["in_lake"]
    assert lake.snapshot().table_files == files


def test_a_late_segment_cannot_revive_or_roll_back_a_document(ray_runtime, tmp_path_factory):
    """Versions loaded over two runs, the newer segment first, give the lake one run gives."""
    older = [row("kept", MEAL_BOLUS), row("edited", MEAL_BOLUS), row("deleted", MEAL_BOLUS),
             row("status", LOOP_STATUS, "devicestatus")]
    newer = [row("edited", {**MEAL_BOLUS, "carbs": 60}, version=5),
             row("deleted", {}, version=5, valid=False),
             row("status", OPENAPS_STATUS, "devicestatus", version=5)]
    once, twice = tmp_path_factory.mktemp("once"), tmp_path_factory.mktemp("twice")
    land(once, older, newer)
    etl(once)
    land(twice, newer, partition="p001")  # the newer versions land first (another partition)
    first = etl(twice)
    assert first["documents"]["in_lake"] == {"treatments": 1, "devicestatus": 1, "profiles": 0}
    land(twice, older)
    late = etl(twice)
    assert late["documents"]["superseded"] == 3 and late["documents"]["written"] == {"treatments": 1}
    for table in ("treatments", "devicestatus"):
        assert documents(twice, table) == documents(once, table)
    assert documents(twice, "treatments")["edited"]["carbs_g"] == 60.0
    assert "deleted" not in documents(twice, "treatments")


def test_damaged_or_foreign_segments_are_rejected_whole(ray_runtime, tmp_path):
    good = land(tmp_path, [row("a", MEAL_BOLUS)])[0]
    landing = good.parent
    torn = landing / "p001-000000000001.arrows"
    torn.write_bytes(good.read_bytes()[:-100])
    readings = landing / "p002-000000000001.arrows"
    schema = pa.schema([("patient_id", pa.string()), ("glucose_mgdl", pa.float32())])
    with open(readings, "wb") as fh, ipc.new_stream(fh, schema) as out:
        out.write_table(pa.table({"patient_id": ["x"], "glucose_mgdl": [100.0]}, schema=schema))
    out = etl(tmp_path)
    assert set(out["files_rejected"]) == {str(torn), str(readings)}
    assert "no end-of-stream marker" in out["files_rejected"][str(torn)]
    assert "missing column 'collection' of a documents segment" in out["files_rejected"][str(readings)]
    assert out["documents"]["in_lake"]["treatments"] == 1


def test_etl_prints_what_it_did_with_documents(ray_runtime, tmp_path, capsys):
    land(tmp_path, [row("a", MEAL_BOLUS), row("b", {"insulin": "two"})])
    assert main(["etl", "--lake", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert ("  documents: 1 treatments, 0 devicestatus, 0 profiles; this run: 2 versions read, "
            "1 treatments written, 0 superseded, 1 rejected") in out
    assert "  rejected documents: 1 treatments: insulin: not a number" in out


def test_a_run_failing_before_its_commit_changes_nothing(ray_runtime, tmp_path, monkeypatch):
    land(tmp_path, [row("a", MEAL_BOLUS), row("b", LOOP_STATUS, "devicestatus")])

    def crash(self, snapshot):
        raise RuntimeError("killed before the commit")

    with monkeypatch.context() as patched:
        patched.setattr(Lake, "commit", crash)
        with pytest.raises(RuntimeError):
            etl(tmp_path)
    lake = Lake(str(tmp_path))
    assert lake.snapshot().version == 0 and not documents(tmp_path, "treatments")
    assert list((tmp_path / "treatments").rglob("*.parquet"))  # written but never committed
    out = etl(tmp_path)
    assert out["documents"]["in_lake"] == {"treatments": 1, "devicestatus": 1, "profiles": 0}
    live = {str(tmp_path / path) for path in lake.snapshot().table_files}
    on_disk = {str(p) for table in ("treatments", "devicestatus")
               for p in (tmp_path / table).rglob("*.parquet")}
    assert on_disk == live  # the failed run's files were collected


# -- the report ------------------------------------------------------------------------------------
def test_the_report_totals_insulin_and_carbs_from_the_lake(ray_runtime, tmp_path):
    """Two days of readings and treatments. Basal: the profile's schedule in Paris time (UTC+1):
    0.5 U/h 00-06, 1.0 06-22, 0.8 22-24 local, 20.6 U a day, plus Loop's 0.5 U/h for 30 min
    from 10:00Z (11:00 local, scheduled 1.0): -0.25 U on the first day. Boluses 5 + 3 U and
    45 + 30 g on day one, 2 U on day two."""
    minutes = np.arange(0, 2 * 1440, 5)
    csv = tmp_path / "readings.csv"
    pacsv.write_csv(pa.table({
        "id": [PATIENT] * len(minutes),
        "time": [str(np.datetime64(T0 + int(m) * 60_000, "ms")) for m in minutes],
        "gl": 120.0 + 30.0 * np.sin(minutes / 200.0)}), csv)
    lake_dir = tmp_path / "lake"
    land(lake_dir, [row("profile", PROFILE, "profile", T0 - 24 * H),
                    row("meal", {**MEAL_BOLUS, "insulin": 5.0}, date_ms=T0 + 8 * H),
                    row("temp", LOOP_TEMP_BASAL, date_ms=T0 + 10 * H),
                    row("snack", {"eventType": "Snack Bolus", "insulin": 3, "carbs": 30},
                        date_ms=T0 + 15 * H),
                    row("fix", {"eventType": "Correction Bolus", "insulin": 2}, date_ms=T0 + 30 * H)])
    etl(lake_dir, "--import", str(csv))
    out = tmp_path / "report"
    assert main(["report", "--lake", str(lake_dir), "--patient", PATIENT, "--out", str(out)]) == 0
    insulin = _tables(next(out.glob("*.html")).read_text())["Insulin and carbohydrate"]
    # Day one: 20.35 basal + 8 bolus = 28.35; day two: 20.6 + 2 = 22.6.
    assert insulin == {
        "Days with records": ["2 (2024-03-01 to 2024-03-02, UTC days)"],
        "Total daily dose (TDD)": ["25.5 U/day"], "Basal": ["20.5 U/day"], "Bolus": ["5.0 U/day"],
        "Bolus / basal": ["20 % / 80 %"], "Basal schedule": ["profile Weekday (Europe/Paris)"],
        "Temporary basal rates": ["1"], "Carbohydrate": ["38 g/day"]}
    assert _tables(next(out.glob("*.html")).read_text())["Patient"]["Boluses"] == ["3 (1.5 a day)"]


def test_the_report_says_when_the_lake_has_no_treatments(ray_runtime, tmp_path):
    csv = tmp_path / "readings.csv"
    pacsv.write_csv(pa.table({"id": ["quiet"] * 3, "gl": [100.0, 110.0, 120.0],
                              "time": ["2024-03-01 00:00:00", "2024-03-01 00:05:00", "2024-03-01 00:10:00"]}),
                    csv)
    land(tmp_path / "lake", [row("other", MEAL_BOLUS)])  # someone else's
    etl(tmp_path / "lake", "--import", str(csv))
    out = tmp_path / "report"
    assert main(["report", "--lake", str(tmp_path / "lake"), "--patient", "quiet", "--out", str(out)]) == 0
    page = next(out.glob("*.html")).read_text()
    assert _tables(page)["Insulin and carbohydrate"] == {"Treatments": ["none recorded for this patient"]}
    assert not re.search(r"\d U/day|g/day", page)
