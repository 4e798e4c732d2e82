"""The lake on S3 (issues #5 and #6): ETL, cohort and report through pyarrow's S3 filesystem.

A real S3 API (moto's server, on a free loopback port) stands in for the cloud: landing
segments uploaded to the bucket and a local import are loaded into a lake in the bucket by
the Ray Data ETL, whose tasks reopen the lake from its URI; then the cohort job and a report
read it back.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pyarrow.fs as pafs
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest

from cgm_ray.cli import main
from cgm_ray.lake.cohort import run_cohort
from cgm_ray.lake.store import Lake
from cgm_ray.schema import LANDING_SCHEMA

from .lake_data import N_PATIENTS, etl, keys_of, lake_keys, landing_table, simulate_cohort

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}


@pytest.fixture(scope="module")
def s3_endpoint():
    """moto's S3 server on 127.0.0.1; the credentials go to the environment Ray inherits."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "moto_server"),
                               "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    saved = {k: os.environ.get(k) for k in CREDENTIALS}
    os.environ.update(CREDENTIALS)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "moto did not start"
                time.sleep(0.2)
        yield f"endpoint_override=127.0.0.1:{port}&scheme=http&region=us-east-1"
    finally:
        server.kill()
        server.wait(timeout=30)
        for k, v in saved.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)


def test_etl_cohort_and_report_on_s3(s3_endpoint, ray_runtime, tmp_path):
    readings, patients = simulate_cohort()
    lake_uri = f"s3://cgm-lake/lake?{s3_endpoint}&allow_bucket_creation=true"
    fs, root = pafs.FileSystem.from_uri(lake_uri)
    fs.create_dir("cgm-lake")
    half = readings.num_rows // 2
    with fs.open_output_stream(f"{root}/landing/ingest/p000-000000000001.arrows") as out, \
            ipc.new_stream(out, LANDING_SCHEMA) as stream:
        stream.write_table(landing_table(readings.slice(0, half + 500)))  # 500 re-delivered
    with fs.open_output_stream(f"{root}/landing/patients/patients-s00000.parquet") as out:
        pq.write_table(patients, out)
    local = tmp_path / "fleet.parquet"
    pq.write_table(readings.slice(half), local)

    report = etl(lake_uri, "--import", str(local), "--buckets", "4")
    lake = Lake(lake_uri)
    keys = lake_keys(lake)
    assert len(keys) == len(set(keys)) == readings.num_rows == report["lake_rows"]
    assert set(keys) == keys_of(readings) and report["duplicates"] == 500
    assert report["patients"] == N_PATIENTS and not report["files_rejected"]
    assert all(f.path.startswith("readings/bucket=") for f in lake.readings_files())
    again = etl(lake_uri, "--import", str(local))  # the snapshot on S3 remembers all three
    assert again["inputs_skipped"] == 3 and again["lake_rows"] == readings.num_rows

    cohort = run_cohort(lake, group_by=("age_group",), name="s3")
    assert cohort.summary["patients"] == N_PATIENTS
    assert cohort.summary["readings"] == readings.num_rows
    assert fs.get_file_info(f"{root}/cohort/s3/summary.json").type == pafs.FileType.File
    patient = patients["patient_id"][0].as_py()
    assert main(["report", "--lake", lake_uri, "--patient", patient, "--out", str(tmp_path)]) == 0
    assert next(tmp_path.glob("report-*.pdf")).read_bytes()[:4] == b"%PDF"
    leftovers = fs.get_file_info(pafs.FileSelector(f"{root}/_staging", allow_not_found=True,
                                                   recursive=True))
    assert not [f for f in leftovers if f.type == pafs.FileType.File]
