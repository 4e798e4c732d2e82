"""Cohort statistics over the lake: cgm-ray (Ray Data) against DuckDB on the same files.

Builds (or reuses) a lake of N simulated patients x D days at 5-min sampling: the patients
are simulated, written as fleet Parquet files into the landing area and loaded by the ETL
(timed too). Then times, with Ray already running:
- ``cohort`` with the full panel (consensus + iglu set incl. MAGE, MODD, CONGA, episodes);
- ``cohort`` with the simple panel (mean, SD, CV, GMI, time in ranges);
- DuckDB computing mean, SD and time in range per patient over the same Parquet files;
and prints the times and the ratio simple/DuckDB, and checks both agree.
Usage: python benchmarks/bench_cohort.py [--patients 10000] [--days 14] [--lake out/bench/lake]
"""

from __future__ import annotations

import argparse
import os
import shutil
import time

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import ray

from cgm_ray.cli.ray_runtime import init_ray
from cgm_ray.fs import write_parquet_atomic
from cgm_ray.lake.cohort import run_cohort
from cgm_ray.lake.etl import discover_inputs, run_etl
from cgm_ray.lake.store import Lake
from simulators.encoding import ReadingEncoder, patients_table
from simulators.scenario import parse_scenario

CHUNK_PATIENTS = 2500


def build_landing(root: str, n: int, days: int) -> int:
    """Simulate ``n`` patients for ``days`` into ``root/landing``; return the readings written."""
    written = 0
    for lo in range(0, n, CHUNK_PATIENTS):
        hi = min(n, lo + CHUNK_PATIENTS)
        scenario = parse_scenario({
            "duration_min": days * 1440, "patients": {"n": n, "seed": 1, "titrate": False},
            "sensor": {"model": "dexcom_g6", "start": "staggered"},
            "therapy": {"correction": True}, "meals": {"random": "daily"}, "seed": 1,
            "start": "2026-01-05T00:00:00Z"})
        sim = scenario.build(scenario.cohort(lo, hi, titrated=False))
        encoder = ReadingEncoder(sim.cohort, scenario.start_ms, sim.sensor.name)
        for day, step in enumerate(sim.run(scenario.duration_min, chunk_min=1440)):
            table = encoder.table(step.readings)
            write_parquet_atomic(pa.fs.LocalFileSystem(), f"{root}/landing/fleet/date=d{day:02d}/"
                                 f"fleet-c{lo:06d}.parquet", table)
            written += table.num_rows
        write_parquet_atomic(pa.fs.LocalFileSystem(), f"{root}/landing/patients/c{lo:06d}.parquet",
                             patients_table(sim))
        print(f"  simulated patients {lo:,}-{hi:,}: {written:,} readings so far", flush=True)
    return written


def duckdb_simple(files: list[str]) -> tuple[float, pa.Table]:
    """Seconds for DuckDB's mean/SD/TIR per patient over ``files``, and its result."""
    con = duckdb.connect()
    con.execute(f"SET threads TO {os.cpu_count()}")
    started = time.perf_counter()
    result = con.sql("""
        SELECT patient_id, avg(glucose_mgdl) AS mean, stddev_samp(glucose_mgdl) AS sd,
               100 * avg(CASE WHEN glucose_mgdl BETWEEN 70 AND 180 THEN 1 ELSE 0 END) AS tir
        FROM read_parquet($files) GROUP BY patient_id ORDER BY patient_id""",
                     params={"files": files}).to_arrow_table()
    return time.perf_counter() - started, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--lake", default="out/bench/lake")
    parser.add_argument("--rebuild", action="store_true", help="discard an existing lake")
    args = parser.parse_args()
    if args.rebuild:
        shutil.rmtree(args.lake, ignore_errors=True)
    print(f"cgm-ray cohort benchmark: {args.patients:,} patients x {args.days} days, "
          f"{os.cpu_count()} cores")
    fresh = not os.path.exists(f"{args.lake}/_lake.json")
    lake = Lake(args.lake, create=True)
    started = time.perf_counter()
    init_ray()
    ray_start_s = time.perf_counter() - started
    if fresh:
        started = time.perf_counter()
        n_written = build_landing(os.path.abspath(args.lake), args.patients, args.days)
        print(f"simulated {n_written:,} readings in {time.perf_counter() - started:.1f} s")
        report = run_etl(lake, discover_inputs(lake))
        print(f"etl: {report.readings_added:,} readings into {report.files_written} files "
              f"in {report.seconds:.1f} s ({report.readings_added / report.seconds:,.0f} readings/s)")
    files = [lake.path(f.path) for f in lake.readings_files()]
    rows = sum(f.rows for f in lake.readings_files())
    print(f"lake: {rows:,} readings in {len(files)} files; Ray start-up {ray_start_s:.1f} s")

    full = run_cohort(lake, panel="full", name="bench-full")
    simple = run_cohort(lake, panel="simple", name="bench-simple")
    duck_s, duck = duckdb_simple(files)
    ours = simple.patients.select(["patient_id", "mean", "sd", "in_range_70_180"]).sort_by("patient_id")
    assert ours["patient_id"].to_pylist() == duck["patient_id"].to_pylist()
    diff = max(float(pc.max(pc.abs(pc.subtract(ours[a].cast(pa.float64()),
                                               duck[b].cast(pa.float64())))).as_py())
               for a, b in (("mean", "mean"), ("sd", "sd"), ("in_range_70_180", "tir")))
    print(f"{'job':<44} {'seconds':>8}")
    print(f"{'cohort, full panel (incl. MAGE, episodes)':<44} {full.seconds:>8.2f}")
    print(f"{'cohort, simple panel (mean/SD/CV/ranges)':<44} {simple.seconds:>8.2f}")
    print(f"{'DuckDB mean/SD/TIR per patient':<44} {duck_s:>8.2f}")
    print(f"simple / DuckDB = {simple.seconds / duck_s:.2f}x; full panel "
          f"{rows / full.seconds:,.0f} readings/s, {full.patients.num_rows / full.seconds:,.0f} "
          f"patients/s; max |cgm-ray - DuckDB| = {diff:.2e}")
    tir = np.asarray(full.summary["groups"]["all"]["all"]["metrics"]["in_range_70_180"]["median"])
    print(f"cohort median TIR {tir:.1f}%; targets met by "
          f"{full.summary['groups']['all']['all']['targets_met_percent']['all']}% of patients")
    ray.shutdown()


if __name__ == "__main__":
    main()
