"""Simulator throughput: patient-days per wall second, by population size and threads.

Runs the full engine (UVA/Padova physiology, random daily meals, carb-ratio boluses with
corrections, Dexcom G6-like sensor readings) for one simulated day per configuration.
Usage: python benchmarks/bench_simulator.py [--sizes 1000 10000 100000] [--days 1]
       [--model uva_padova|uva_padova_s2013|bergman] [--treat-lows]
``--treat-lows`` turns on the ADA 15-15 hypo treatment (``HypoTreatment(below_mgdl=70)``).
"""

from __future__ import annotations

import argparse
import os
import time

import numba

from simulators.engine import Simulation
from simulators.models import MODELS, get_model
from simulators.scenario import parse_scenario
from simulators.therapy import HypoTreatment, Therapy
from simulators.titration import titrate

SIMGLUCOSE_PATIENT_DAYS_PER_S = 0.2  # shared/docs/cgm-domain.md: ~5 CPU-s per patient-day


def measure(n: int, days: float, threads: int, model: str = "uva_padova",
            treat_lows: bool = False) -> tuple[float, int]:
    """Patient-days per second and readings produced for ``n`` patients."""
    scenario = parse_scenario({
        "duration_min": int(days * 1440), "patients": {"n": n, "seed": 1},
        "sensor": {"model": "dexcom_g6", "start": "staggered"},
        "therapy": {"correction": True}, "meals": {"random": "daily"}, "seed": 1,
    })
    # Scenario.build() with the model and the hypo treatment chosen here (titrated for it).
    sim = Simulation(
        get_model(model), titrate(scenario.cohort(titrated=False), model), scenario.meal_plan(),
        Therapy(**scenario.therapy.model_dump()), scenario.sensor_spec(), seed=scenario.seed,
        staggered_sensors=True, hypo_treatment=HypoTreatment(below_mgdl=70 if treat_lows else 0))
    numba.set_num_threads(threads)
    started = time.perf_counter()
    readings = sum(len(step.readings) for step in sim.run(scenario.duration_min))
    elapsed = time.perf_counter() - started
    return n * days / elapsed, readings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--days", type=float, default=1.0)
    parser.add_argument("--model", choices=sorted(MODELS), default="uva_padova")
    parser.add_argument("--treat-lows", action="store_true", help="ADA 15-15 hypo treatment")
    args = parser.parse_args()
    cores = numba.config.NUMBA_NUM_THREADS
    measure(100, 0.1, cores, args.model, args.treat_lows)  # compile / load the kernels
    print(f"cgm-ray simulator, {os.cpu_count()} cores, {args.days:g} simulated day(s) per run,"
          f" model {args.model}, lows {'treated' if args.treat_lows else 'untreated'}")
    print(f"{'patients':>9} {'threads':>7} {'patient-days/s':>15} {'x simglucose':>13} {'readings/s':>12}")
    for n in args.sizes:
        for threads in sorted({1, cores}):
            rate, readings = measure(n, args.days, threads, args.model, args.treat_lows)
            per_s = readings * rate / (n * args.days)
            print(f"{n:>9,} {threads:>7} {rate:>15,.0f} {rate / SIMGLUCOSE_PATIENT_DAYS_PER_S:>12,.0f}x"
                  f" {per_s:>12,.0f}")


if __name__ == "__main__":
    main()
