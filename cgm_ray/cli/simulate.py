"""``cgm-ray simulate``: a scenario file into Parquet readings (and the true-glucose trace)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq

from cgm_ray.schema import READING_SCHEMA, TRACE_SCHEMA, TREATMENT_SCHEMA


def cmd_simulate(args: argparse.Namespace) -> int:
    """Run a scenario file and write readings, treatments (hypo rescues, boluses) and, on
    request, the true-glucose trace as Parquet."""
    from tqdm import tqdm

    from simulators.encoding import ReadingEncoder, patients_table, trace_table, treatments_table
    from simulators.scenario import load_scenario

    scenario = load_scenario(args.scenario)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    sim = scenario.build()
    pq.write_table(patients_table(sim), out / "patients.parquet")
    n_readings = 0
    encoder = ReadingEncoder(sim.cohort, scenario.start_ms, sim.sensor.name)
    readings_writer = pq.ParquetWriter(out / "readings.parquet", READING_SCHEMA)
    treatments_writer = pq.ParquetWriter(out / "treatments.parquet", TREATMENT_SCHEMA)
    trace_writer = pq.ParquetWriter(out / "trace.parquet", TRACE_SCHEMA) if args.trace else None
    progress = tqdm(total=scenario.duration_min, unit="sim-min", disable=args.quiet,
                    file=sys.stderr)
    with readings_writer, treatments_writer, progress as bar:
        for step in sim.run(scenario.duration_min, chunk_min=args.chunk_min, trace=args.trace):
            readings_writer.write_table(encoder.table(step.readings))
            n_readings += len(step.readings)
            treatments_writer.write_table(treatments_table(step, sim.cohort, scenario.start_ms))
            if trace_writer is not None:
                trace_writer.write_table(trace_table(sim.cohort, step.t0, step.gsub_mgdl,
                                                     step.bg_mgdl))
            bar.update(step.gsub_mgdl.shape[1] if step.gsub_mgdl is not None else
                       min(args.chunk_min, scenario.duration_min - step.t0))
    if trace_writer is not None:
        trace_writer.close()
    elapsed = time.perf_counter() - started
    days = len(sim) * scenario.duration_min / 1440
    print(f"simulated {len(sim)} patients x {scenario.duration_min} min "
          f"({days:,.1f} patient-days) in {elapsed:.1f} s; {n_readings:,} readings")
    for name in ("patients", "readings", "treatments") + (("trace",) if args.trace else ()):
        print(f"  {out / (name + '.parquet')}")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``simulate`` on the ``cgm-ray`` parser."""
    sim = sub.add_parser("simulate", help="simulate a scenario file into Parquet",
                         description=cmd_simulate.__doc__)
    sim.add_argument("scenario", help="scenario file (.yaml, .yml or .json)")
    sim.add_argument("--out", required=True, help="output directory")
    sim.add_argument("--trace", action="store_true",
                     help="also write trace.parquet: true glucose every minute")
    sim.add_argument("--chunk-min", type=int, default=60,
                     help="simulated minutes per compiled step (memory vs. overhead)")
    sim.add_argument("--quiet", action="store_true", help="no progress bar")
    sim.set_defaults(func=cmd_simulate)
