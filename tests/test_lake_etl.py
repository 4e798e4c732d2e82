"""The lake ETL (issue #5): exactly-once loading from every source, reruns, a kill mid-run,
corrupt inputs, compaction, and what the cohort, report and export commands read back.

The landing area is built from a real simulation: fleet Parquet windows, ingest write-ahead
log segments that overlap them (re-deliveries), and an iglu-style CSV import. The expected
lake is the set of distinct (sensor_id, ts) over everything delivered, computed here
independently of the ETL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import psutil
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from cgm_ray.cli import main
from cgm_ray.glucose.grid import group_readings
from cgm_ray.glucose.metrics import glucose_metrics
from cgm_ray.lake.cohort import run_cohort
from cgm_ray.lake.etl import MAX_FILES_PER_PARTITION
from cgm_ray.lake.store import Lake
from cgm_ray.schema import LANDING_SCHEMA

from .lake_data import (
    N_PATIENTS,
    Key,
    build_landing,
    etl,
    keys_of,
    lake_keys,
    landing_table,
    simulate_cohort,
    write_segment,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def simulated() -> tuple[pa.Table, pa.Table]:
    return simulate_cohort()


def test_etl_loads_every_source_exactly_once(ray_runtime, simulated, tmp_path):
    expected = build_landing(tmp_path, simulated)
    first = etl(tmp_path)
    lake = Lake(str(tmp_path))
    keys = lake_keys(lake)
    assert len(keys) == len(set(keys)) == len(expected) == first["lake_rows"]
    assert set(keys) == expected
    assert first["readings_added"] == len(expected) and first["duplicates"] > 0
    assert first["inputs_loaded"] == 5 + 4 + 1 and not first["files_rejected"]
    assert first["patients"] == N_PATIENTS

    again = etl(tmp_path)  # nothing new: every input is skipped, nothing changes
    assert again["inputs_skipped"] == 10 and again["inputs_loaded"] == 0
    assert again["lake_rows"] == len(expected) and again["version"] == first["version"] + 1

    sensors = lake.sensors()
    assert sensors["readings"].to_numpy().sum() == len(expected)
    assert set(sensors["sensor_id"].to_pylist()) == {s for s, _ in expected}


def test_lake_layout_is_bucketed_dated_and_sorted(ray_runtime, simulated, tmp_path):
    build_landing(tmp_path, simulated)
    etl(tmp_path)
    lake = Lake(str(tmp_path))
    for f in lake.readings_files():
        table = pq.read_table(lake.path(f.path), partitioning=None)
        assert f.path.startswith(f"readings/bucket={f.bucket:03d}/date={f.date}/")
        days = set(pc.strftime(table["ts"], "%Y-%m-%d").to_pylist())
        assert days == {f.date} and table.num_rows == f.rows
        assert set(lake.bucket_of(table["patient_id"]).tolist()) == {f.bucket}
        order = pc.sort_indices(table, [("patient_id", "ascending"), ("ts", "ascending")])
        assert order.to_pylist() == list(range(table.num_rows))


def test_new_deliveries_add_only_unseen_readings(ray_runtime, simulated, tmp_path):
    expected = build_landing(tmp_path, simulated)
    etl(tmp_path)
    readings, _ = simulated
    redelivered = landing_table(readings.slice(0, 1000))  # already in the lake
    write_segment(tmp_path / "landing" / "ingest" / "p001-000000000001.arrows", redelivered)
    late = pa.table({"id": ["late-patient"] * 3,
                     "time": ["2026-03-02 10:00:00", "2026-03-02 10:05:00", "2026-03-02 10:05:00"],
                     "gl": [101.0, 99.0, 99.0]})
    csv = tmp_path / "imports" / "late.csv"
    csv.parent.mkdir()
    pacsv.write_csv(late, csv)
    out = etl(tmp_path, "--import", str(csv))
    assert out["readings_added"] == 2 and out["duplicates"] == 1000 + 1
    assert len(lake_keys(Lake(str(tmp_path)))) == len(expected) + 2


def test_corrupt_files_are_reported_and_skipped(ray_runtime, simulated, tmp_path):
    expected = build_landing(tmp_path, simulated)
    ingest = tmp_path / "landing" / "ingest"
    torn = ingest / "p009-000000000001.arrows"
    write_segment(torn, landing_table(simulated[0].slice(0, 2000)).set_column(
        1, LANDING_SCHEMA.field("sensor_id"), pa.array(["torn-sensor"] * 2000)))
    torn.write_bytes(torn.read_bytes()[:-300])
    (tmp_path / "landing" / "fleet" / "garbage.parquet").write_bytes(b"PAR1 not parquet")
    bad_rows = tmp_path / "bad_rows.csv"
    bad_rows.write_text("id,time,gl\nx,2026-03-01 00:00:00,95\nx,2026-03-01 00:05:00,-3\n"
                        "x,2026-03-01 00:10:00,\n")
    out = etl(tmp_path, "--import", str(bad_rows))
    assert set(out["files_rejected"]) == {str(torn), str(tmp_path / "landing/fleet/garbage.parquet")}
    assert out["rows_rejected"] == 2 and sum(out["rejections"].values()) == 2
    keys = set(lake_keys(Lake(str(tmp_path))))
    assert keys == expected | {("x", 1772323200000)}  # nothing of the torn segment got in


def test_killed_mid_run_then_rerun_loses_and_duplicates_nothing(ray_runtime, simulated, tmp_path):
    expected = build_landing(tmp_path, simulated)
    command = [sys.executable, "-m", "cgm_ray.cli", "etl", "--lake", str(tmp_path)]
    proc = subprocess.Popen(command, cwd=ROOT, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        staging = tmp_path / "_staging"
        deadline = time.monotonic() + 120
        while not any(staging.rglob("*.parquet")):
            assert proc.poll() is None and time.monotonic() < deadline, "ETL ended before staging"
            time.sleep(0.05)
    finally:
        kill_session(proc)
    assert Lake(str(tmp_path)).snapshot().version == 0  # killed before its commit
    out = etl(tmp_path)
    keys = lake_keys(Lake(str(tmp_path)))
    assert len(keys) == len(set(keys)) == len(expected) == out["lake_rows"]
    assert not any((tmp_path / "_staging").rglob("*.parquet"))


def kill_session(proc: subprocess.Popen) -> None:
    """SIGKILL a process started with ``start_new_session`` and everything in its session."""
    members = [p for p in psutil.process_iter() if _session(p) == proc.pid]
    os.killpg(proc.pid, signal.SIGKILL)
    for p in members:
        p.kill() if p.is_running() else None
    proc.wait(timeout=30)
    psutil.wait_procs(members, timeout=30)


def _session(p: psutil.Process) -> int | None:
    try:
        return os.getsid(p.pid)
    except (ProcessLookupError, PermissionError):
        return None


def test_compaction_merges_small_files(ray_runtime, simulated, tmp_path):
    readings, _ = simulated
    one_patient = readings.filter(pc.equal(readings["patient_id"].cast(pa.string()),
                                           readings["patient_id"].cast(pa.string())[0]))
    day1 = one_patient.filter(pc.less(one_patient["ts_ms"], one_patient["ts_ms"][0].as_py()
                                      + 20 * 3_600_000))
    step = day1.num_rows // (MAX_FILES_PER_PARTITION + 2) + 1
    lake = None
    for k in range(MAX_FILES_PER_PARTITION + 2):  # one load per slice: one new file each
        write_segment(tmp_path / "landing" / "ingest" / f"p000-{k + 1:012d}.arrows",
                      landing_table(day1.slice(k * step, step)))
        etl(tmp_path)
        lake = Lake(str(tmp_path))
        per_partition = {}
        for f in lake.readings_files():
            per_partition[(f.bucket, f.date)] = per_partition.get((f.bucket, f.date), 0) + 1
        assert max(per_partition.values()) <= MAX_FILES_PER_PARTITION
    assert sorted(lake_keys(lake)) == sorted(keys_of(day1))
    out = etl(tmp_path, "--compact")
    assert out["files_compacted"] >= 2
    dates = [(f.bucket, f.date) for f in Lake(str(tmp_path)).readings_files()]
    assert len(dates) == len(set(dates))  # one file per partition
    assert sorted(lake_keys(Lake(str(tmp_path)))) == sorted(keys_of(day1))
    live = {str(tmp_path / f.path) for f in Lake(str(tmp_path)).readings_files()}
    assert {str(p) for p in (tmp_path / "readings").rglob("*.parquet")} == live  # GC'd the rest


@pytest.fixture(scope="module")
def loaded_lake(ray_runtime, simulated, tmp_path_factory) -> tuple[Path, set[Key]]:
    root = tmp_path_factory.mktemp("lake")
    expected = build_landing(root, simulated)
    etl(root)
    return root, expected


def test_cohort_metrics_equal_the_library_on_the_same_readings(loaded_lake, simulated):
    root, _ = loaded_lake
    lake = Lake(str(root))
    result = run_cohort(lake, group_by=("age_group",))
    table = lake.read([lake.path(f.path) for f in lake.readings_files()])
    direct = glucose_metrics(group_readings(
        table["patient_id"].to_numpy(zero_copy_only=False),
        table["ts"].cast(pa.int64()).to_numpy() * 1_000_000, table["glucose_mgdl"].to_numpy()))
    ids = group_readings(table["patient_id"].to_numpy(zero_copy_only=False),
                         table["ts"].cast(pa.int64()).to_numpy(), table["glucose_mgdl"].to_numpy()).ids
    got = result.patients
    assert sorted(got["patient_id"].to_pylist()) == sorted(ids.tolist())
    order = {p: k for k, p in enumerate(ids)}
    rows = [order[p] for p in got["patient_id"].to_pylist()]
    for column in ("mean", "sd", "in_range_70_180", "mage", "modd", "conga24", "gri",
                   "episodes_hypo_l1", "active_percent"):
        np.testing.assert_allclose(got[column].to_numpy(), direct[column][rows], rtol=1e-9,
                                   equal_nan=True, err_msg=column)
    assert set(got.column_names) >= {"age_group", "carb_ratio_g_per_u", "days", "readings"}
    summary = result.summary
    assert summary["patients"] == N_PATIENTS and summary["readings"] == table.num_rows
    groups = summary["groups"]["age_group"]
    assert sum(g["patients"] for g in groups.values()) == N_PATIENTS
    tir = got["in_range_70_180"].to_numpy()
    assert groups and summary["groups"]["all"]["all"]["targets_met_percent"]["tir"] == \
        pytest.approx(100 * np.mean(tir > 70), abs=0.01)
    assert summary["groups"]["all"]["all"]["metrics"]["mean"]["median"] == \
        pytest.approx(np.median(got["mean"].to_numpy()), abs=1e-3)
    written = pq.read_table(f"{result.location}/patient_metrics.parquet")
    assert written.num_rows == N_PATIENTS


def test_cohort_date_window_and_simple_panel(loaded_lake):
    root, expected = loaded_lake
    lake = Lake(str(root))
    day2 = run_cohort(lake, date(2026, 3, 2), date(2026, 3, 2), panel="simple")
    day2_keys = {k for k in expected if 1772409600000 <= k[1] < 1772496000000}
    assert day2.summary["readings"] == len(day2_keys)
    assert "mage" not in day2.patients.column_names and "cv" in day2.patients.column_names
    first = pc.min(day2.patients["first_ts"]).cast(pa.int64()).as_py()
    assert first >= 1772409600000


def test_cohort_and_report_errors_are_clear(loaded_lake, tmp_path, capsys):
    root, _ = loaded_lake
    assert main(["cohort", "--lake", str(root), "--group-by", "shoe_size"]) == 2
    assert "unknown patient attribute(s) ['shoe_size']" in capsys.readouterr().err
    assert main(["cohort", "--lake", str(root), "--start", "2030-01-01"]) == 2
    assert "no readings" in capsys.readouterr().err
    assert main(["cohort", "--lake", str(tmp_path / "nothing")]) == 2
    assert "not a cgm-ray lake" in capsys.readouterr().err
    assert main(["report", "--lake", str(root), "--patient", "nobody", "--out",
                 str(tmp_path)]) == 2
    assert "no readings of patient 'nobody'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["cohort", "--lake", str(root), "--start", "yesterday"])


def test_cohort_cli_prints_the_table(loaded_lake, capsys):
    root, _ = loaded_lake
    assert main(["cohort", "--lake", str(root), "--group-by", "age_group"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:2] == ["group", "patients"]
    assert "age_group=adult" in out and f"{N_PATIENTS} patients" in out


def test_report_of_a_patient_from_the_lake(loaded_lake, tmp_path, capsys):
    root, _ = loaded_lake
    patient = Lake(str(root)).patients()["patient_id"][0].as_py()
    assert main(["report", "--lake", str(root), "--patient", patient, "--out",
                 str(tmp_path)]) == 0
    html = next(tmp_path.glob("*.html")).read_text()
    assert patient in html and "data:image/png;base64," in html
    assert next(tmp_path.glob("*.pdf")).read_bytes()[:4] == b"%PDF"


@pytest.mark.parametrize("fmt", ["json", "avro"])
def test_exports_by_sensor_round_trip_into_a_new_lake(loaded_lake, tmp_path, fmt):
    root, expected = loaded_lake
    out = tmp_path / "export"
    assert main(["export", "--lake", str(root), "--format", fmt, "--out", str(out)]) == 0
    files = sorted(out.glob(f"*.{fmt}"))
    assert len(files) == len({s for s, _ in expected})
    second = tmp_path / "lake2"
    etl(second, "--import", str(out))
    assert set(lake_keys(Lake(str(second)))) == expected
