"""``cgm-ray simulate``: a scenario file into Parquet readings (and the true-glucose trace)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def cmd_simulate(args: argparse.Namespace) -> int:
    """Run a scenario file and write readings, treatments (hypo rescues, boluses) and, on
    request, the true-glucose trace as Parquet."""
    from tqdm import tqdm

    from simulators.encoding import OutputWriter
    from simulators.scenario import load_scenario

    scenario = load_scenario(args.scenario)
    out = Path(args.out)
    started = time.perf_counter()
    sim = scenario.build()
    progress = tqdm(total=scenario.duration_min, unit="sim-min", disable=args.quiet,
                    file=sys.stderr)
    with OutputWriter(sim, scenario.start_ms, out, trace=args.trace) as writer, progress as bar:
        for step in sim.run(scenario.duration_min, chunk_min=args.chunk_min, trace=args.trace):
            writer.write(step)
            bar.update(step.gsub_mgdl.shape[1] if step.gsub_mgdl is not None else
                       min(args.chunk_min, scenario.duration_min - step.t0))
    elapsed = time.perf_counter() - started
    days = len(sim) * scenario.duration_min / 1440
    print(f"simulated {len(sim)} patients x {scenario.duration_min} min "
          f"({days:,.1f} patient-days) in {elapsed:.1f} s; {writer.n_readings:,} readings")
    for path in writer.files:
        print(f"  {path}")
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
