"""Vendor exports into lake rows (issue #15): Dexcom Clarity, LibreView (five languages), Tidepool,
OhioT1DM and Nightscout dumps, each recognised from its content, read from fixtures written by
hand from shared/docs/cgm-data-formats.md (tests/data/exports/), with the ugly cases: metadata
rows, translated headers, High/Low, mmol/L, both daylight-saving changes, duplicate, bad and
cut rows, and files no reader knows.

Expected times are written out as UTC instants, worked out by hand from the local times and
the zone's offset on that date; expected values as the file's numbers times the unit factor.
"""

from __future__ import annotations

import gzip
import json
import shutil
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pyarrow.fs as pafs
import pytest

from cgm_ray.errors import ConfigError
from cgm_ray.lake.readers import FORMATS, ImportOptions
from cgm_ray.lake.readers import ohiot1dm as ohiot1dm_module
from cgm_ray.lake.readers.local_times import (
    REPEATED_FIRST,
    REPEATED_SECOND,
    SKIPPED,
    local_to_utc_ms,
)
from cgm_ray.lake.sources import SourceError, SourceRows, read_source

from .conftest import DATA

EXPORTS = DATA / "exports"
FS = pafs.LocalFileSystem()
BERLIN = ImportOptions("Europe/Berlin")
CLARITY = EXPORTS / "Clarity_Export_Doe_Jane_2024-03-05_101500.csv"
LIBRE_US = EXPORTS / "JaneDoe_glucose_3-6-2024.csv"
MGDL_PER_MMOL = 18.0182
TIDEPOOL_FACTOR = 18.01559


def read(path: Path, options: ImportOptions = BERLIN) -> SourceRows:
    return read_source(str(path), FS, "import", options)


def utc_ms(text: str) -> int:
    """An ISO UTC instant ("2024-03-05T07:00") as epoch milliseconds."""
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def readings(rows: SourceRows) -> list[tuple]:
    """(patient, sensor, ts_ms, glucose, range_flag) of each reading, in file order."""
    return [(r["patient_id"], r["sensor_id"], int(r["ts"].timestamp() * 1000), r["glucose_mgdl"],
             r["range_flag"]) for r in rows.table.to_pylist()]


def treatments(rows: SourceRows) -> list[dict]:
    """The treatment documents, each with its row's patient and time."""
    return [json.loads(r["document"]) | {"_patient": r["patient_id"], "_ts": r["date_ms"]}
            for r in rows.treatments.to_pylist()]


def f32(value: float) -> float:
    """``value`` as the lake stores glucose (float32)."""
    import numpy as np

    return float(np.float32(value))


# -- Dexcom Clarity -----------------------------------------------------------------------------
CLARITY_EGV = [("07:00", 120), ("07:05", 135), ("07:10", 160), ("07:15", 185), ("07:20", 210),
               ("07:25", "High"), ("07:30", 250), ("07:35", 190), ("07:40", 150), ("07:45", 95),
               ("07:45", 95), ("07:50", 65), ("07:55", "Low"), ("08:00", 72)]  # UTC (CET = UTC+1)


def test_clarity_export_reads_metadata_readings_limits_and_treatments():
    got = read(CLARITY)
    assert (got.format, got.units_found) == ("Dexcom Clarity", "mg/dL")
    limit = {"High": (400.0, 1), "Low": (40.0, -1)}
    assert readings(got) == [("Jane Doe", "8XABCD", utc_ms(f"2024-03-05T{t}"),
                              *(limit[v] if isinstance(v, str) else (float(v), 0)))
                             for t, v in CLARITY_EGV]
    assert got.rejections == {} and got.rejected_rows == 0
    assert got.notes == {"metadata row (no timestamp)": 5, "Event Type Exercise: not loaded": 1}
    docs = {d["eventType"]: d for d in treatments(got)}
    assert set(docs) == {"Correction Bolus", "Carb Correction", "BG Check", "Basal Injection"}
    assert docs["Correction Bolus"]["insulin"] == 4.5
    assert docs["Correction Bolus"]["_ts"] == utc_ms("2024-03-05T07:20")
    assert docs["Carb Correction"]["carbs"] == 45
    assert (docs["BG Check"]["glucose"], docs["BG Check"]["glucoseType"]) == (68, "Finger")
    long_acting = docs["Basal Injection"]
    assert long_acting["longActingInsulin"] == 14 and "insulin" not in long_acting
    assert long_acting["_ts"] == utc_ms("2024-03-05T21:00")
    assert {d["_patient"] for d in docs.values()} == {"Jane Doe"}


def test_clarity_mmol_export_is_converted_and_high_low_stay_at_the_limits():
    got = read(EXPORTS / "clarity_mmol.csv")  # no vendor file name: recognised by its header
    assert (got.format, got.units_found) == ("Dexcom Clarity", "mmol/L")
    mmol = [5.5, 6.1, 7.8, 10.2, None, 3.6, None, 4.4]  # "4,4": a comma decimal mark
    expected = [(f32(v * MGDL_PER_MMOL), 0) if v is not None else limit
                for v, limit in zip(mmol, [None] * 4 + [(400.0, 1), None, (40.0, -1), None])]
    assert [(g, flag) for *_, g, flag in readings(got)] == expected
    # 2024-06-10 is summer time in Berlin (UTC+2): 12:00 local is 10:00 UTC
    assert readings(got)[0][:3] == ("Max Muster", "G7XYZ1", utc_ms("2024-06-10T10:00"))


def test_clarity_bad_rows_are_counted_by_a_reason_naming_the_column():
    got = read(EXPORTS / "clarity_bad_rows.csv")
    assert got.rejections == {
        "Glucose Value (mg/dL): not a number, High or Low": 1,
        "Glucose Value (mg/dL): missing": 1,
        "Timestamp (YYYY-MM-DDThh:mm:ss): not a time": 1,
        "Timestamp (YYYY-MM-DDThh:mm:ss): missing": 1,
        "glucose outside [10, 1000] mg/dL": 1,
        "Insulin Value (u): missing": 1,
        "row of 8 fields (the header has 14)": 1,
    }
    assert got.rejected_rows == 7
    assert [g for *_, g, _ in readings(got)] == [110.0, 119.0]
    assert readings(got)[0][0] == "clarity_bad_rows"  # no names in the file: the file's name


def test_device_local_times_need_a_zone():
    with pytest.raises(SourceError, match=r"Timestamp \(YYYY-MM-DDThh:mm:ss\): .*give --tz"):
        read(CLARITY, ImportOptions())


def test_the_patient_option_wins_over_the_file():
    got = read(CLARITY, ImportOptions("Europe/Berlin", "p1"))
    assert {r[0] for r in readings(got)} == {"p1"}
    assert set(got.treatments.column("patient_id").to_pylist()) == {"p1"}


def test_options_are_checked_when_made():
    with pytest.raises(ConfigError, match="tz: unknown time zone 'Mars/Olympus'"):
        ImportOptions("Mars/Olympus")
    with pytest.raises(ConfigError, match="patient: empty"):
        ImportOptions("UTC", " ")


# -- daylight-saving changes ----------------------------------------------------------------------
def test_clocks_going_back_repeat_an_hour_resolved_by_the_files_order():
    got = read(EXPORTS / "clarity_dst_autumn.csv")
    # Berlin, 2023-10-29: 03:00 CEST became 02:00 CET. 01:30..02:45 CEST are 23:30..00:45 UTC,
    # then 02:00..02:45 again (CET) are 01:00..01:45 UTC, then 03:00, 03:15 CET.
    start = utc_ms("2023-10-28T23:30")
    assert [ts for _, _, ts, _, _ in readings(got)] == [start + k * 900_000 for k in range(12)]
    assert got.notes == {REPEATED_FIRST: 4, REPEATED_SECOND: 4}


def test_clocks_going_forward_skip_an_hour_whose_times_are_shifted_forward():
    got = read(EXPORTS / "clarity_dst_spring.csv")
    # Berlin, 2024-03-31: 02:00 CET became 03:00 CEST. 02:00, 02:15, 02:30 never happened; read
    # with the offset before the change (+1) they are 01:00, 01:15, 01:30 UTC (03:00.. CEST),
    # between 01:45 CET (00:45 UTC) and 03:45 CEST (01:45 UTC): the spacing stays 15 minutes.
    start = utc_ms("2024-03-31T00:30")
    assert [ts for _, _, ts, _, _ in readings(got)] == [start + k * 900_000 for k in range(6)]
    assert got.notes == {SKIPPED: 3}


BERLIN_ZONE = ZoneInfo("Europe/Berlin")


def _local(*clock: str) -> list[datetime]:
    return [datetime.fromisoformat(f"2023-10-29T{c}") for c in clock]


def test_a_file_written_newest_first_is_read_from_its_end():
    notes: Counter[str] = Counter()
    got = local_to_utc_ms(_local("03:00", "02:30", "02:00", "02:30", "02:00", "01:30"),
                          ["s"] * 6, BERLIN_ZONE, notes)
    assert got == [utc_ms(f"2023-10-{t}") for t in
                   ("29T02:00", "29T01:30", "29T01:00", "29T00:30", "29T00:00", "28T23:30")]
    assert notes == {REPEATED_FIRST: 2, REPEATED_SECOND: 2}


def test_equal_repeated_times_side_by_side_are_the_two_occurrences():
    notes: Counter[str] = Counter()
    got = local_to_utc_ms(_local("02:00", "02:00", "02:30", "02:30"), ["s"] * 4, BERLIN_ZONE, notes)
    assert got == [utc_ms(t) for t in ("2023-10-29T00:00", "2023-10-29T01:00",
                                       "2023-10-29T00:30", "2023-10-29T01:30")]
    assert notes == {REPEATED_FIRST: 2, REPEATED_SECOND: 2}


def test_a_repeated_time_without_evidence_is_the_first_occurrence_and_streams_are_apart():
    notes: Counter[str] = Counter()
    # stream a goes back from 02:45 to 02:15: its second 02:15; stream b's times do not go
    # back, so its 02:15 is the first (summer-time) one
    got = local_to_utc_ms(_local("02:30", "01:50", "02:45", "02:15", "02:15"),
                          ["a", "b", "a", "a", "b"], BERLIN_ZONE, notes)
    assert got == [utc_ms(t) for t in ("2023-10-29T00:30", "2023-10-28T23:50", "2023-10-29T00:45",
                                       "2023-10-29T01:15", "2023-10-29T00:15")]
    assert notes == {REPEATED_FIRST: 3, REPEATED_SECOND: 1}


# -- LibreView -------------------------------------------------------------------------------------
def test_libreview_us_export_reads_both_record_types_and_every_treatment():
    got = read(LIBRE_US)
    assert (got.format, got.units_found) == ("LibreView (English)", "mg/dL")
    serial = "8F2A1C3E-5B7D-4E11-9C0A-2D6B8E4F1A37"
    # 03-05-2024 11:00 PM in Berlin (CET, UTC+1) is 22:00 UTC; 03-06-2024 12:00 AM is 23:00 UTC
    expected = [("22:00", 142), ("22:08", 140), ("22:15", 138), ("22:30", 131), ("22:45", 122),
                ("23:00", 110), ("23:15", 96), ("23:30", 84), ("23:30", 84), ("23:45", 71),
                ("23:52", 68), ("00:00", 66)]
    assert readings(got) == [("JaneDoe", serial,
                              utc_ms(f"2024-03-0{5 if t != '00:00' else 6}T{t}"), float(v), 0)
                             for t, v in expected]
    docs = treatments(got)
    assert [(d["eventType"], d.get("insulin"), d.get("carbs"), d.get("longActingInsulin"),
             d.get("glucose")) for d in docs] == [
        ("Basal Injection", None, None, 12, None),
        ("Correction Bolus", 3.5, None, None, None),
        ("Carb Correction", None, 40, None, None),
        ("Correction Bolus", 2.5, None, None, None),  # the calculator's parts 2.0 + 0.5 + 0
        ("BG Check", None, None, None, 70)]
    assert got.notes == {"record type 3: not loaded": 1, "record type 6: not loaded": 1,
                         "carbohydrate in servings: not loaded (grams per serving unknown)": 1}
    assert got.rejections == {}


def test_libreview_german_mmol_export_with_its_header_on_row_three():
    got = read(EXPORTS / "libreview_de_mmol.csv")  # semicolons, decimal commas, EU dates
    assert (got.format, got.units_found) == ("LibreView (German)", "mmol/L")
    mmol = [5.2, 5.8, 6.9, 8.4, 10.1, 6.4, 11.3, 9.7, 7.2, 4.1, 3.5]
    assert [g for *_, g, _ in readings(got)] == [f32(v * MGDL_PER_MMOL) for v in mmol]
    assert readings(got)[0][2] == utc_ms("2024-03-07T05:00")  # 07-03-2024 06:00 CET
    docs = treatments(got)
    assert [(d["eventType"], d.get("insulin"), d.get("carbs")) for d in docs[:2]] == [
        ("Correction Bolus", 4, None), ("Carb Correction", None, 50)]
    assert docs[2]["eventType"] == "BG Check"
    assert docs[2]["glucose"] == pytest.approx(5.0 * MGDL_PER_MMOL)


@pytest.mark.parametrize(("name", "language", "values", "insulin", "carbs"), [
    ("libreview_fr.csv", "French", [105, 118, 126, 190], 5, 55),
    ("libreview_es.csv", "Spanish", [99, 64, 88, 144], 3, 20),
    ("libreview_it.csv", "Italian", [201, 176, 150, 122], 6, 70),
])
def test_libreview_translated_headers(name, language, values, insulin, carbs):
    got = read(EXPORTS / name)
    assert (got.format, got.units_found) == (f"LibreView ({language})", "mg/dL")
    assert [g for *_, g, _ in readings(got)] == [float(v) for v in values]
    assert [ts for _, _, ts, _, _ in readings(got)] == [
        utc_ms(f"2024-03-08T06:{m}") for m in ("00", "15", "25", "30")]  # 08-03-2024 07:00 CET
    assert [(d["eventType"], d.get("insulin"), d.get("carbs")) for d in treatments(got)] == [
        ("Correction Bolus", insulin, None), ("Carb Correction", None, carbs)]


def test_libreview_without_a_known_record_type_column_reads_the_filled_glucose_column(tmp_path):
    text = (EXPORTS / "libreview_it.csv").read_text(encoding="utf-8")
    path = tmp_path / "libreview_it_variant.csv"
    path.write_text(text.replace("Tipo di registrazione", "Tipo record"), encoding="utf-8")
    got = read(path)
    assert [g for *_, g, _ in readings(got)] == [201.0, 176.0, 150.0, 122.0]
    assert got.notes == {"no record-type column recognised: readings taken from the glucose "
                         "column filled": 1}


def test_libreview_in_a_language_without_aliases_is_refused_naming_the_columns():
    with pytest.raises(SourceError) as err:
        read(EXPORTS / "libreview_nl.csv")
    assert "no LibreView header recognised" in err.value.reason
    assert "'Device Timestamp'" in err.value.reason and "'Historic Glucose mg/dL'" in err.value.reason


# -- Tidepool ----------------------------------------------------------------------------------------
TIDEPOOL_MMOL = [5.550747991045533, 6.993942468717372, 8.548151906210121, 10.10236134370287,
                 3.774508633910963, 5.051180671851435, 5.550747991045533]


def test_tidepool_records_give_readings_in_mgdl_and_treatments():
    got = read(EXPORTS / "tidepool.json")
    assert (got.format, got.units_found) == ("Tidepool", "mmol/L")
    times = ["07:00", "07:05", "07:10", "07:15",
             "07:20",  # deviceTime 08:20 with timezoneOffset 60
             "07:25",  # deviceTime 08:25 without an offset: --tz (CET)
             "07:00"]  # the first reading again, from a second upload
    assert readings(got) == [("a1b2c3d4e5", "DexG6MobRec_8XTP01", utc_ms(f"2024-03-01T{t}"),
                              f32(v * TIDEPOOL_FACTOR), 0) for t, v in zip(times, TIDEPOOL_MMOL)]
    # Tidepool's factor gives back the whole mg/dL values it converted from
    assert [round(g, 4) for *_, g, _ in readings(got)] == [100, 126, 154, 182, 68, 91, 100]
    docs = {(d["eventType"], d.get("deliveryType")): d for d in treatments(got)}
    assert docs[("Correction Bolus", None)]["insulin"] == 3.0
    combo = docs[("Combo Bolus", None)]
    assert (combo["insulin"], combo["duration"]) == (3.0, 60.0)
    assert (docs[("Temp Basal", "temp")]["absolute"], docs[("Temp Basal", "temp")]["duration"]) == (0.5, 30)
    assert docs[("Temp Basal", "suspend")]["absolute"] == 0.0
    assert docs[("Temp Basal", "scheduled")]["absolute"] == 0.8
    assert docs[("Carb Correction", None)]["carbs"] == 40
    assert docs[("BG Check", None)]["glucose"] == pytest.approx(110.0)
    assert got.notes == {"type upload: not loaded": 1, "type wizard: not loaded": 1}


def test_tidepool_offsets_win_and_only_offsetless_times_need_a_zone():
    with pytest.raises(SourceError, match="deviceTime: .*give --tz"):
        read(EXPORTS / "tidepool.json", ImportOptions())
    tokyo = read(EXPORTS / "tidepool.json", ImportOptions("Asia/Tokyo"))
    berlin = read(EXPORTS / "tidepool.json")
    changed = [(a[2], b[2]) for a, b in zip(readings(tokyo), readings(berlin)) if a[2] != b[2]]
    assert changed == [(utc_ms("2024-02-29T23:25"), utc_ms("2024-03-01T07:25"))]  # 08:25 JST vs CET


# -- OhioT1DM -----------------------------------------------------------------------------------------
OHIO_VALUES = [101, 98, 98, 96, 99, 104, 112, 125, 141, 168, 197, 226, 251, 65]
OHIO_MINUTES = [0, 5, 5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55, 60]
NEW_YORK = ImportOptions("America/New_York")


def test_ohiot1dm_glucose_levels_are_readings_and_the_rest_treatments():
    got = read(EXPORTS / "559-ws-training.xml", NEW_YORK)
    assert (got.format, got.units_found) == ("OhioT1DM", "mg/dL")
    start = utc_ms("2021-12-07T06:17")  # 07-12-2021 01:17:00 EST (UTC-5)
    assert readings(got) == [("559", "ohiot1dm:559", start + m * 60_000, float(v), 0)
                             for m, v in zip(OHIO_MINUTES, OHIO_VALUES)]
    docs = treatments(got)
    finger = [d for d in docs if d["eventType"] == "BG Check"]
    assert [(d["glucose"], d["_ts"]) for d in finger] == [(129, utc_ms("2021-12-07T12:47")),
                                                         (204, utc_ms("2021-12-07T17:12"))]
    basal = [(d["absolute"], d.get("duration"), d["_ts"]) for d in docs if d["eventType"] == "Temp Basal"]
    assert basal == [(0.7, 360.0, utc_ms("2021-12-07T05:00")), (0.9, None, utc_ms("2021-12-07T11:00")),
                     (0.0, 60.0, utc_ms("2021-12-07T19:00"))]
    boluses = [(d["eventType"], d["insulin"], d.get("duration"), d.get("bwzCarbInput"))
               for d in docs if "Bolus" in d["eventType"]]
    assert boluses == [("Meal Bolus", 6.2, None, 60), ("Correction Bolus", 2.0, 60.0, 0)]
    assert all("carbs" not in d for d in docs if "Bolus" in d["eventType"])
    (meal,) = [d for d in docs if d["eventType"] == "Carb Correction"]
    assert (meal["carbs"], meal["notes"]) == (60, "Breakfast")
    assert got.notes == {"sleep: not loaded": 1, "exercise: not loaded": 1}


def test_ohiot1dm_refuses_entity_declarations_and_oversized_files(tmp_path, monkeypatch):
    lol = tmp_path / "lol.xml"
    lol.write_text('<?xml version="1.0"?><!DOCTYPE patient [<!ENTITY a "aaaaaaaa">]>'
                   '<patient id="1"><glucose_level><event ts="07-12-2021 01:17:00" value="&a;"/>'
                   '</glucose_level></patient>')
    with pytest.raises(SourceError, match="DTD or entity declaration"):
        read(lol, NEW_YORK)
    monkeypatch.setattr(ohiot1dm_module, "MAX_XML_BYTES", 100)
    with pytest.raises(SourceError, match="over the 100 an OhioT1DM file is read up to"):
        read(EXPORTS / "559-ws-training.xml", NEW_YORK)


# -- Nightscout dumps ----------------------------------------------------------------------------------
def test_nightscout_mongoexport_entries_are_unwrapped():
    got = read(EXPORTS / "ns_entries.json")
    minutes = [0, 5, 10, 15, 20, 25, 30, 35, 0]  # the 08:15 one from "09:15:00.000+0100"
    values = [120, 132, 149, 171, 188, 176, 158, 139, 120]
    assert readings(got) == [("xDrip-DexcomG6", "xDrip-DexcomG6", utc_ms("2024-03-01T08:00") + m * 60_000,
                              float(v), 0) for m, v in zip(minutes, values)]
    assert got.rejections == {"not an sgv entry": 1}
    assert got.format == "Nightscout dump"


def test_nightscout_treatments_dump_keeps_its_documents_and_ids():
    with pytest.raises(SourceError, match="give --patient"):
        read(EXPORTS / "ns_treatments.json")
    got = read(EXPORTS / "ns_treatments.json", ImportOptions("Europe/Berlin", "p1"))
    rows = got.treatments.to_pylist()
    assert [r["identifier"] for r in rows] == [f"65e18c2a2f1d4a0001c1a00{k}" for k in range(1, 5)]
    assert [r["date_ms"] for r in rows] == [utc_ms("2024-03-01T08:02"), utc_ms("2024-03-01T08:30"),
                                            utc_ms("2024-03-01T09:00"),
                                            utc_ms("2024-03-01T09:00")]  # 10:00 local (CET)
    assert [r["srv_modified_ms"] for r in rows][2] == 1_709_283_700_000  # its srvModified
    docs = treatments(got)
    assert docs[0]["insulin"] == 4.5 and docs[0]["carbs"] == 45 and docs[0]["_id"] == rows[0]["identifier"]
    assert docs[2]["created_at"] == "2024-03-01T09:00:00.000Z"  # {"$date": ...} unwrapped
    assert got.table.num_rows == 0


# -- files that are not (whole) exports -----------------------------------------------------------------
@pytest.mark.parametrize(("name", "cut", "message"), [
    ("clarity_truncated.csv", None, "line 6: 7 of the header's 14 fields: the file is truncated"),
    ("tidepool.json", -40, "the file is truncated or not JSON"),
    ("ns_entries.json", -60, "line 10: not JSON"),
    ("559-ws-training.xml", -30, "not well-formed"),
    ("JaneDoe_glucose_3-6-2024.csv", -9, "the file is truncated"),
])
def test_truncated_exports_are_refused_whole(tmp_path, name, cut, message):
    path = EXPORTS / name
    if cut is not None:
        path = tmp_path / name
        path.write_bytes((EXPORTS / name).read_bytes()[:cut])
    with pytest.raises(SourceError) as err:
        read(path, NEW_YORK)
    assert message in err.value.reason


def test_an_unrecognised_file_is_refused_naming_the_columns_of_every_format():
    with pytest.raises(SourceError) as err:
        read(EXPORTS / "unknown.csv")
    reason = err.value.reason
    assert reason.startswith("no known glucose columns") and "found ['Zeit;Wert']" in reason
    for expected in ("iglu ['id', 'id', 'time', 'gl']", "Dexcom Clarity",
                     "'Timestamp (YYYY-MM-DDThh:mm:ss)'", "'Event Type'", "LibreView",
                     "'Device Timestamp'", "Tidepool", "OhioT1DM", "Nightscout dump"):
        assert expected in reason, expected


def test_xml_that_is_not_ohiot1dm_is_refused(tmp_path):
    (tmp_path / "x.xml").write_text("<?xml version='1.0'?><readings><r v='1'/></readings>")
    with pytest.raises(SourceError, match="not a known export: expected OhioT1DM"):
        read(tmp_path / "x.xml")


def test_content_decides_and_a_vendor_file_name_only_refuses(tmp_path):
    renamed = tmp_path / "readings.csv"
    shutil.copy(CLARITY, renamed)
    assert read(renamed).format == "Dexcom Clarity"
    misnamed = tmp_path / "Clarity_Export_Doe_Jane_2024-03-05_101500.csv"
    misnamed.write_text("id,time,gl\na,2024-03-05 08:00:00,120\n")
    with pytest.raises(SourceError, match="named like a Dexcom Clarity export but it is not one: "
                                          "expected header with 'Timestamp"):
        read(misnamed)


def test_gzipped_exports_are_recognised(tmp_path):
    path = tmp_path / f"{LIBRE_US.name}.gz"
    path.write_bytes(gzip.compress(LIBRE_US.read_bytes()))
    assert readings(read(path)) == readings(read(LIBRE_US))


def test_every_format_recognises_its_fixture_and_no_other():
    heads = {name: (EXPORTS / name).read_text(encoding="utf-8")[:4096] for name in (
        CLARITY.name, LIBRE_US.name, "libreview_de_mmol.csv", "tidepool.json",
        "559-ws-training.xml", "ns_entries.json", "ns_treatments.json")}
    owner = {CLARITY.name: "Dexcom Clarity", LIBRE_US.name: "LibreView",
             "libreview_de_mmol.csv": "LibreView", "tidepool.json": "Tidepool",
             "559-ws-training.xml": "OhioT1DM", "ns_entries.json": "Nightscout dump",
             "ns_treatments.json": "Nightscout dump"}
    for name, head in heads.items():
        assert [f.name for f in FORMATS if f.sniff(head)] == [owner[name]], name


def test_the_patient_option_applies_to_the_column_conventions_too(tmp_path):
    path = tmp_path / "iglu.csv"
    path.write_text("id,time,gl\nSubject 1,2024-03-05 08:00:00,120\nSubject 2,2024-03-05 08:00:00,99\n")
    got = read(path, ImportOptions(None, "p7"))
    assert got.table.column("patient_id").to_pylist() == ["p7", "p7"]
    assert got.table.column("sensor_id").to_pylist() == ["Subject 1", "Subject 2"]
    assert (got.format, got.units_found) == ("iglu", "mg/dL")
    assert datetime.fromtimestamp(0, UTC) + timedelta(milliseconds=readings(got)[0][2]) == \
        datetime(2024, 3, 5, 8, tzinfo=UTC)  # naive times in the conventions stay UTC
