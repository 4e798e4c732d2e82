"""`cgm-ray simulate`: files written, and bad input reported by field with exit code 2."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from cgm_ray.cli import main

CHECK = """\
duration_min: 1440
patients: [adult#001, child#004]
sensor: {model: ideal}
therapy: {basal: steady_state, bolus: carb_ratio}
meals:
  - {minute: 420, grams: 50}
  - {minute: 1320, grams: 15, bolus: false}
"""


def test_simulate_writes_readings_and_trace(tmp_path):
    scenario = tmp_path / "check.yaml"
    scenario.write_text(CHECK)
    assert main(["simulate", str(scenario), "--out", str(tmp_path / "out"), "--trace",
                 "--quiet"]) == 0
    trace = pq.read_table(tmp_path / "out" / "trace.parquet").to_pydict()
    assert set(trace) == {"patient", "minute", "gsub_mgdl", "bg_mgdl"}
    assert len(trace["minute"]) == 2 * 1440 and set(trace["patient"]) == {"adult#001", "child#004"}
    readings = pq.read_table(tmp_path / "out" / "readings.parquet")
    assert readings.num_rows == 2 * 1440
    assert readings.column_names == ["patient_id", "sensor_id", "ts_ms", "glucose_mgdl", "range_flag"]
    adult = np.array(trace["gsub_mgdl"])[np.array(trace["patient"]) == "adult#001"]
    assert adult[430:600].max() > adult[0] + 20  # the 50 g meal shows


def test_json_scenarios_work_too(tmp_path):
    scenario = tmp_path / "s.json"
    scenario.write_text(json.dumps({"duration_min": 60, "patients": {"n": 5, "seed": 1},
                                    "sensor": {"model": "dexcom_g7", "start": "staggered"}}))
    assert main(["simulate", str(scenario), "--out", str(tmp_path / "o"), "--quiet"]) == 0
    assert pq.read_table(tmp_path / "o" / "readings.parquet").num_rows > 0


@pytest.mark.parametrize("text, field", [
    (CHECK.replace("child#004", "child#404"), "patients[1]"),
    (CHECK.replace("grams: 50", "grams: -50"), "meals.0.grams"),
    (CHECK.replace("model: ideal", "model: dexcom_g99"), "sensor.model"),
    ("duration_min: [1440\npatients: x", "malformed YAML"),
    ("- just\n- a list\n", "must be a mapping"),
    (CHECK.replace("duration_min: 1440\n", ""), "duration_min"),
])
def test_bad_scenarios_name_the_problem(tmp_path, capsys, text, field):
    scenario = tmp_path / "bad.yaml"
    scenario.write_text(text)
    assert main(["simulate", str(scenario), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert field in err and "Traceback" not in err


def test_missing_file_is_reported(tmp_path, capsys):
    assert main(["simulate", str(tmp_path / "nope.yaml"), "--out", str(tmp_path)]) == 2
    assert "nope.yaml: cannot read file" in capsys.readouterr().err


def test_simulate_writes_treatments_and_the_report_counts_and_marks_them(tmp_path):
    import re

    from cgm_ray.cli.lake import patient_treatments
    from cgm_ray.lake.report import render_report
    from cgm_ray.schema import TREATMENT_SCHEMA

    scenario = tmp_path / "s.json"
    scenario.write_text(json.dumps({"duration_min": 2 * 1440, "patients": {"n": 40, "seed": 3},
                                    "sensor": {"model": "dexcom_g6"}, "seed": 1}))
    assert main(["simulate", str(scenario), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    treatments = pq.read_table(tmp_path / "out" / "treatments.parquet")
    assert treatments.schema.equals(TREATMENT_SCHEMA)
    kinds = np.array(treatments.column("kind").to_pylist())
    rescue_g = np.array(treatments.column("carbs_g").to_pylist(), dtype=float)[kinds == "hypo_carbs"]
    assert {"bolus", "hypo_carbs"} <= set(kinds)  # realistic patients bolus and treat lows
    assert set(rescue_g) <= {15.0, 30.0}  # the 15-15 rule, sometimes doubled
    ids = np.array(treatments.column("patient_id").to_pylist())
    patient = max(set(ids[kinds == "hypo_carbs"]), key=lambda p: ((ids == p) & (kinds == "hypo_carbs")).sum())
    readings = pq.read_table(tmp_path / "out" / "readings.parquet").to_pandas()
    mine = readings[readings.patient_id == patient]
    files = render_report(patient, mine.ts_ms.to_numpy() * 1_000_000, mine.glucose_mgdl.to_numpy(),
                          tmp_path / "report", treatments=patient_treatments(
                              str(tmp_path / "out" / "treatments.parquet"), patient))
    row = re.search(r"<td>Hypo treatments</td><td>([\d,]+) \(", files.html.read_text())
    assert row and int(row.group(1)) == int(((ids == patient) & (kinds == "hypo_carbs")).sum())


def test_token_prints_the_token_and_the_web_app_link(capsys, monkeypatch):
    monkeypatch.setenv("API_SECRET", "a-secret-of-some-length")
    assert main(["token", "--role", "caregiver", "--subject", "ana b",
                 "--url", "http://host:8000/cgm/"]) == 0
    out = capsys.readouterr()
    token = out.out.strip()
    assert token.startswith("caregiver.") and out.err.strip() == (
        f"web app: http://host:8000/cgm/?token={token}")
