"""Simulator throughput: patient-days per wall second, by population size and threads.

Runs the full engine (UVA/Padova physiology, random daily meals, carb-ratio boluses with
corrections, Dexcom G6-like sensor readings) for one simulated day per configuration.
Usage: python benchmarks/bench_simulator.py [--sizes 1000 10000 100000] [--days 1]
"""

from __future__ import annotations

import argparse
import os
import time

import numba

from simulators.scenario import parse_scenario

SIMGLUCOSE_PATIENT_DAYS_PER_S = 0.2  # shared/docs/cgm-domain.md: ~5 CPU-s per patient-day


def measure(n: int, days: float, threads: int) -> tuple[float, int]:
    """Patient-days per second and readings produced for ``n`` patients."""
    scenario = parse_scenario({
        "duration_min": int(days * 1440), "patients": {"n": n, "seed": 1},
        "sensor": {"model": "dexcom_g6", "start": "staggered"},
        "therapy": {"correction": True}, "meals": {"random": "daily"}, "seed": 1,
    })
    sim = scenario.build()
    numba.set_num_threads(threads)
    started = time.perf_counter()
    readings = sum(len(step.readings) for step in sim.run(scenario.duration_min))
    elapsed = time.perf_counter() - started
    return n * days / elapsed, readings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--days", type=float, default=1.0)
    args = parser.parse_args()
    cores = numba.config.NUMBA_NUM_THREADS
    measure(100, 0.1, cores)  # compile / load the kernels
    print(f"cgm-ray simulator, {os.cpu_count()} cores, {args.days:g} simulated day(s) per run")
    print(f"{'patients':>9} {'threads':>7} {'patient-days/s':>15} {'x simglucose':>13} {'readings/s':>12}")
    for n in args.sizes:
        for threads in sorted({1, cores}):
            rate, readings = measure(n, args.days, threads)
            per_s = readings * rate / (n * args.days)
            print(f"{n:>9,} {threads:>7} {rate:>15,.0f} {rate / SIMGLUCOSE_PATIENT_DAYS_PER_S:>12,.0f}x"
                  f" {per_s:>12,.0f}")


if __name__ == "__main__":
    main()
