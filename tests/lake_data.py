"""Builders of landing areas for the lake tests: a simulated cohort, fleet Parquet windows,
overlapping write-ahead-log segments and patient attributes, and the keys they deliver."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from cgm_ray.cli import main
from cgm_ray.lake.store import Lake
from cgm_ray.schema import LANDING_SCHEMA
from simulators.encoding import ReadingEncoder, patients_table
from simulators.scenario import parse_scenario

N_PATIENTS, DAYS = 12, 3
Key = tuple[str, int]  # sensor_id, ts_ms


def simulate_cohort() -> tuple[pa.Table, pa.Table]:
    """(readings as READING_SCHEMA, patient attributes) of a small 3-day cohort."""
    scenario = parse_scenario({
        "duration_min": DAYS * 1440, "patients": {"n": N_PATIENTS, "seed": 11},
        "sensor": {"model": "dexcom_g6", "start": "staggered"}, "seed": 4,
        "start": "2026-03-01T00:00:00Z"})
    sim = scenario.build()
    encoder = ReadingEncoder(sim.cohort, scenario.start_ms, sim.sensor.name)
    tables = [encoder.table(step.readings) for step in sim.run(scenario.duration_min, chunk_min=360)]
    return pa.concat_tables(tables), patients_table(sim)


def landing_table(readings: pa.Table) -> pa.Table:
    """Readings as the ingest's write-ahead log stores them."""
    return pa.table({
        "patient_id": readings["patient_id"].cast(pa.string()),
        "sensor_id": readings["sensor_id"].cast(pa.string()),
        "ts_ms": readings["ts_ms"], "glucose_mgdl": readings["glucose_mgdl"],
        "range_flag": readings["range_flag"],
        "received_ms": pa.array(np.full(readings.num_rows, 1), pa.int64()),
        "trend": pa.array(np.zeros(readings.num_rows), pa.int8()),
    }, schema=LANDING_SCHEMA)


def write_segment(path: Path, table: pa.Table) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh, ipc.new_stream(fh, LANDING_SCHEMA) as out:
        for batch in table.to_batches(max_chunksize=500):
            out.write_batch(batch)


def build_landing(lake_dir: Path, simulated: tuple[pa.Table, pa.Table]) -> set[Key]:
    """Fill ``lake_dir/landing`` with fleet files, overlapping WAL segments and a CSV import;
    return the distinct (sensor_id, ts_ms) keys delivered."""
    readings, patients = simulated
    landing = lake_dir / "landing"
    n = readings.num_rows
    fleet, ingest = readings.slice(0, 2 * n // 3), readings.slice(n // 2)  # overlap: 1/6
    for k, chunk in enumerate(fleet.combine_chunks().to_batches(max_chunksize=fleet.num_rows // 5 + 1)):
        day = "2026-03-0" + str(1 + k % 3)
        path = landing / "fleet" / f"date={day}" / f"fleet-s00000-m{k:010d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_batches([chunk]), path)
    wal = landing_table(ingest)
    step = wal.num_rows // 4 + 1
    for k in range(4):
        write_segment(landing / "ingest" / f"p000-{k + 1:012d}.arrows", wal.slice(k * step, step))
    (landing / "patients").mkdir(parents=True)
    pq.write_table(patients, landing / "patients" / "patients-s00000.parquet")
    return keys_of(readings)


def keys_of(readings: pa.Table) -> set[Key]:
    ts = readings["ts_ms"] if "ts_ms" in readings.column_names else readings["ts"].cast(pa.int64())
    return set(zip(readings["sensor_id"].cast(pa.string()).to_pylist(), ts.to_pylist()))


def lake_keys(lake: Lake) -> list[Key]:
    table = lake.read([lake.path(f.path) for f in lake.readings_files()])
    return list(zip(table["sensor_id"].to_pylist(), table["ts"].cast(pa.int64()).to_pylist()))


def etl(lake_dir: Path, *extra: str) -> dict:
    return run_etl_cli(["etl", "--lake", str(lake_dir), "--json", *extra])


def run_etl_cli(argv: list[str]) -> dict:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(argv) == 0
    return json.loads(out.getvalue())
