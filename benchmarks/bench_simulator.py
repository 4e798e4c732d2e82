"""Simulator throughput: patient-days per wall second of the scenario defaults, with a peer.

Runs the whole engine for one simulated day per configuration: the defaults users get
(UVA/Padova S2013 with counter-regulation, each patient's realistic behaviour, hypo
treatment and exercise, random daily meals, Dexcom G6-like readings) and, as the peer
measured in the same run, the textbook simulator (S2008, ``behaviour: ideal``, lows
untreated). Building and titrating the population is not timed.
Usage: python benchmarks/bench_simulator.py [--sizes 10000 100000] [--days 1] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numba

from simulators.scenario import parse_scenario

SIMGLUCOSE_PATIENT_DAYS_PER_S = 0.2  # shared/docs/cgm-domain.md: ~5 CPU-s per patient-day


CONFIGURATIONS = {
    "defaults": {},
    "ideal_s2008": {"model": "uva_padova", "behaviour": {"preset": "ideal"}},
}


def measure(n: int, days: float, threads: int, overrides: dict) -> tuple[float, int]:
    """Patient-days per second and readings produced for ``n`` patients."""
    scenario = parse_scenario({
        "duration_min": int(days * 1440), "patients": {"n": n, "seed": 1},
        "sensor": {"model": "dexcom_g6", "start": "staggered"}, "seed": 1, **overrides,
    })
    sim = scenario.build()
    numba.set_num_threads(threads)
    started = time.perf_counter()
    readings = sum(len(step.readings) for step in sim.run(scenario.duration_min))
    elapsed = time.perf_counter() - started
    return n * days / elapsed, readings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--days", type=float, default=1.0)
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = parser.parse_args()
    cores = numba.config.NUMBA_NUM_THREADS
    for overrides in CONFIGURATIONS.values():
        measure(100, 0.1, cores, overrides)  # compile / load the kernels
    rows = []
    for n in args.sizes:
        for name, overrides in CONFIGURATIONS.items():
            rate, readings = measure(n, args.days, cores, overrides)
            rows.append({"patients": n, "configuration": name, "threads": cores,
                         "patient_days_per_s": round(rate), "readings_per_s":
                         round(readings * rate / (n * args.days))})
    if args.json:
        print(json.dumps(rows))
        return
    print(f"cgm-ray simulator, {os.cpu_count()} cores, {args.days:g} simulated day(s) per run")
    print(f"{'patients':>9} {'configuration':>13} {'patient-days/s':>15} {'x simglucose':>13}"
          f" {'readings/s':>12} {'vs ideal_s2008':>15}")
    peer = {r["patients"]: r["patient_days_per_s"] for r in rows if r["configuration"] == "ideal_s2008"}
    for r in rows:
        rate = r["patient_days_per_s"]
        print(f"{r['patients']:>9,} {r['configuration']:>13} {rate:>15,} "
              f"{rate / SIMGLUCOSE_PATIENT_DAYS_PER_S:>12,.0f}x {r['readings_per_s']:>12,} "
              f"{rate / peer[r['patients']]:>15.2f}")


if __name__ == "__main__":
    main()
