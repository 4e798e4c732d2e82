"""Vendor exports through ``cgm-ray etl --import FILE --tz ZONE --patient ID`` (issue #15): readings
and treatments land in the lake once however often a file is imported, each imported file's
format, units and notes are reported, and files that are cut, unknown or lack what they need
are reported and skipped whole, never partly loaded.
"""

from __future__ import annotations

import shutil

import pyarrow.compute as pc

from cgm_ray.cli import main
from cgm_ray.lake.store import Lake

from .conftest import DATA
from .lake_data import etl

EXPORTS = DATA / "exports"
CLARITY = EXPORTS / "Clarity_Export_Doe_Jane_2024-03-05_101500.csv"
T0_MS = 1_709_622_000_000  # 2024-03-05T07:00Z: the Clarity fixture's first reading, 08:00 CET


def test_an_export_loads_once_with_its_treatments(ray_runtime, tmp_path):
    lake_dir = tmp_path / "lake"
    first = etl(lake_dir, "--import", str(CLARITY), "--tz", "Europe/Berlin", "--patient", "p1")
    assert (first["readings_added"], first["duplicates"], first["lake_rows"]) == (13, 1, 13)
    assert first["imports"] == {str(CLARITY): {
        "format": "Dexcom Clarity", "units_found": "mg/dL", "patients": ["p1"], "readings": 14,
        "treatments": 4, "treatments_rejected": 0,
        "notes": {"metadata row (no timestamp)": 5, "Event Type Exercise: not loaded": 1}}}
    assert first["documents"]["written"] == {"treatments": 4}
    lake = Lake(str(lake_dir))
    rows = lake.patient_readings("p1")
    assert rows.num_rows == 13 and set(rows.column("sensor_id").to_pylist()) == {"8XABCD"}
    flagged = rows.filter(pc.not_equal(rows.column("range_flag"), 0))
    assert [(int(r["ts"].timestamp() * 1000), r["glucose_mgdl"], r["range_flag"])
            for r in flagged.to_pylist()] == [(T0_MS + 25 * 60_000, 400.0, 1),
                                             (T0_MS + 55 * 60_000, 40.0, -1)]
    docs = lake.patient_documents("treatments", "p1").sort_by("event_type")
    assert docs.column("event_type").to_pylist() == ["BG Check", "Basal Injection", "Carb Correction",
                                                     "Correction Bolus"]
    assert docs.column("insulin_u").to_pylist() == [None, None, None, 4.5]
    assert docs.column("carbs_g").to_pylist() == [None, None, 45.0, None]

    again = etl(lake_dir, "--import", str(CLARITY), "--tz", "Europe/Berlin", "--patient", "p1")
    assert (again["inputs_skipped"], again["inputs_loaded"], again["lake_rows"]) == (1, 0, 13)

    copy = tmp_path / "elsewhere" / CLARITY.name  # the same export under another path
    copy.parent.mkdir()
    shutil.copy(CLARITY, copy)
    third = etl(lake_dir, "--import", str(copy), "--tz", "Europe/Berlin", "--patient", "p1")
    assert (third["readings_added"], third["duplicates"], third["lake_rows"]) == (0, 14, 13)
    assert third["documents"]["written"] == {} and third["documents"]["superseded"] == 4
    assert third["documents"]["in_lake"]["treatments"] == 4


def test_a_folder_of_exports_loads_what_it_can_and_refuses_the_rest_whole(ray_runtime, tmp_path):
    folder = tmp_path / "exports"
    folder.mkdir()
    for name in (CLARITY.name, "clarity_truncated.csv", "JaneDoe_glucose_3-6-2024.csv",
                 "libreview_de_mmol.csv", "tidepool.json", "559-ws-training.xml", "ns_entries.json",
                 "ns_treatments.json", "libreview_nl.csv", "unknown.csv"):
        shutil.copy(EXPORTS / name, folder / name)
    out = etl(tmp_path / "lake", "--import", str(folder), "--tz", "Europe/Berlin")
    rejected = {path.rsplit("/", 1)[1]: reason for path, reason in out["files_rejected"].items()}
    assert set(rejected) == {"clarity_truncated.csv", "libreview_nl.csv", "unknown.csv",
                             "ns_treatments.json"}
    assert "line 6: 7 of the header's 14 fields: the file is truncated" in rejected["clarity_truncated.csv"]
    assert "no LibreView header recognised" in rejected["libreview_nl.csv"]
    assert "no known glucose columns" in rejected["unknown.csv"]
    assert "give --patient" in rejected["ns_treatments.json"]
    found = {path.rsplit("/", 1)[1]: (s["format"], s["units_found"], s["patients"])
             for path, s in out["imports"].items()}
    assert found == {
        CLARITY.name: ("Dexcom Clarity", "mg/dL", ["Jane Doe"]),
        "JaneDoe_glucose_3-6-2024.csv": ("LibreView (English)", "mg/dL", ["JaneDoe"]),
        "libreview_de_mmol.csv": ("LibreView (German)", "mmol/L", ["libreview_de_mmol"]),
        "tidepool.json": ("Tidepool", "mmol/L", ["a1b2c3d4e5"]),
        "559-ws-training.xml": ("OhioT1DM", "mg/dL", ["559"]),
        "ns_entries.json": ("Nightscout dump", "mg/dL", ["xDrip-DexcomG6"]),
    }
    # distinct readings: 13 + 11 + 11 + 6 + 13 + 8; the cut file added none of its rows
    assert out["lake_rows"] == 62 and out["inputs_loaded"] == 6
    jane = Lake(str(tmp_path / "lake")).patient_readings("Jane Doe")
    assert jane.num_rows == 13
    assert set(pc.strftime(jane.column("ts"), "%Y-%m-%d").to_pylist()) == {"2024-03-05"}


def test_the_command_prints_what_each_import_was(ray_runtime, tmp_path, capsys):
    assert main(["etl", "--lake", str(tmp_path / "lake"), "--import", str(EXPORTS / "clarity_dst_autumn.csv"),
                 "--tz", "Europe/Berlin"]) == 0
    printed = capsys.readouterr().out
    assert "Dexcom Clarity, glucose in mg/dL, patient(s) clarity_dst_autumn, 12 readings" in printed
    assert "note: 4 local time repeated when the clocks went back: first occurrence taken" in printed


def test_a_bad_zone_stops_the_command_before_it_loads(tmp_path, capsys):
    code = main(["etl", "--lake", str(tmp_path / "lake"), "--import", str(CLARITY), "--tz", "Europe/Berlim"])
    err = capsys.readouterr().err
    assert code == 2 and "tz: unknown time zone 'Europe/Berlim'" in err
    assert not (tmp_path / "lake").exists()
