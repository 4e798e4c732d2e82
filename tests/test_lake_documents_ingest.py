"""From Nightscout uploads to the doctor's report: readings, a profile, treatments (one then
deleted) and a device status posted to the real ingest, its logs landed, loaded by the ETL
into the lake's tables and totalled by the report."""

from __future__ import annotations

import requests

from cgm_ray.cli import main
from cgm_ray.lake.store import Lake

from .ingest_server import ADMIN, ingest_server
from .lake_data import etl
from .test_report import _tables

T0 = 1_772_323_200_000  # 2026-03-01T00:00Z
H = 3_600_000
PROFILE = {"defaultProfile": "Default", "startDate": "2026-02-01T00:00:00Z",
           "store": {"Default": {"timezone": "UTC", "basal": [{"time": "00:00", "value": 1.0}]}}}
TREATMENTS = [
    {"eventType": "Meal Bolus", "insulin": 5, "carbs": 50, "created_at": T0 + 8 * H},
    {"eventType": "Temp Basal", "absolute": 0, "duration": 60, "created_at": T0 + 10 * H,
     "enteredBy": "loop://iPhone"},
    {"eventType": "Correction Bolus", "insulin": "2", "created_at": T0 + 30 * H},
    {"eventType": "Note", "notes": "entered by mistake", "created_at": T0 + 31 * H}]


def test_uploads_reach_the_lake_tables_and_the_report(tmp_path):
    import ray

    lake_dir = tmp_path / "lake"
    with ingest_server(tmp_path, landing_dir=str(lake_dir / "landing" / "ingest"),
                       documents_landing_dir=str(lake_dir / "landing" / "documents")) as url:
        admin = requests.Session()
        admin.headers.update(ADMIN)
        entries = [{"type": "sgv", "sgv": 100 + k % 50, "date": T0 + k * 300_000, "device": "xDrip-G6"}
                   for k in range(2 * 288)]
        assert admin.post(f"{url}/api/v1/entries?patient=pat", json=entries).status_code == 200
        assert admin.post(f"{url}/api/v1/profile?patient=pat", json=PROFILE).status_code == 200
        posted = admin.post(f"{url}/api/v1/treatments?patient=pat", json=TREATMENTS).json()
        note = next(t for t in posted if t["eventType"] == "Note")
        assert admin.delete(f"{url}/api/v1/treatments/{note['_id']}?patient=pat").json()["n"] == 1
        status = {"device": "loop://iPhone", "created_at": T0 + 10 * H,
                  "loop": {"iob": {"iob": 1.5}, "cob": {"cob": 10}}, "pump": {"reservoir": 100}}
        assert admin.post(f"{url}/api/v1/devicestatus?patient=pat", json=status).status_code == 200
        assert admin.post(f"{url}/api/v2/admin/flush").status_code == 200

    ray.init(address="local", num_cpus=2, object_store_memory=300_000_000,
             include_dashboard=False, log_to_driver=False)
    try:
        out = etl(lake_dir)
    finally:
        ray.shutdown()
    assert out["lake_rows"] == 2 * 288 and not out["files_rejected"]
    assert out["documents"]["in_lake"] == {"treatments": 3, "devicestatus": 1, "profiles": 1}
    assert out["documents"]["deleted"] == {"treatments": 1} and out["documents"]["rejected"] == 0
    lake = Lake(str(lake_dir))
    treatments = lake.patient_documents("treatments", "pat")
    assert treatments["event_type"].to_pylist() == ["Meal Bolus", "Temp Basal", "Correction Bolus"]
    assert treatments["insulin_u"].to_pylist() == [5.0, None, 2.0]
    assert lake.patient_documents("devicestatus", "pat")["iob_u"].to_pylist() == [1.5]

    report = tmp_path / "report"
    assert main(["report", "--lake", str(lake_dir), "--patient", "pat", "--out", str(report)]) == 0
    # Basal: 24 U a day less the hour at 0 U/h; boluses 5 + 2 U and 50 g over the 2 days.
    insulin = _tables(next(report.glob("*.html")).read_text())["Insulin and carbohydrate"]
    assert insulin["Basal"] == ["23.5 U/day"] and insulin["Bolus"] == ["3.5 U/day"]
    assert insulin["Total daily dose (TDD)"] == ["27.0 U/day"]
    assert insulin["Carbohydrate"] == ["25 g/day"]
