"""Controllers in the closed loop: speed, the oref0 port's agreement with the real oref0, outcomes.

- ``pd_per_s``: patient-days per second of the whole closed loop (physiology, meals, patient
  behaviour, CGM sensor, controller, pump), keyed by controller, on ``--patients`` sampled
  patients (the default scenario) over ``--days``, timed after one warm-up hour (kernels compiled),
  the patients split over one single-threaded Ray actor per CPU as a fleet runs them;
  ``pd_per_s_one_process`` is the same in this process with numba's threads (measured: the
  actors are ~15 % faster, numba's parallel loops wait at each of a period's small kernels).
- ``oref0_decisions_per_s``: the port's decisions alone, best of 20 batches of ``--patients``.
- ``oref0_parity``: the port against oref0 0.7.1 in Node on the inputs of every decision of a
  closed-loop run of 20 sampled patients x 2 days (the port decides in the loop).
- ``loop_reference_pd_per_s``: Loop (PyLoopKit) in the loop, ``--loop-patients`` x ``--loop-days``,
  as Ray tasks over patient shards (one per CPU), wall clock.
- ``reference_cohort``: the 30 reference patients (realistic behaviour, random meals, same seeds)
  under each controller: median and mean over patients of TIR 70-180 and time < 54 mg/dL (%) on
  CGM readings after a day of warm-up.
Usage: python benchmarks/bench_controllers.py [--json] [--patients 10000] [--days 1] [--skip-reference]
       [--loop-patients 100] [--loop-days 1]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numba
import numpy as np

from simulators.controllers.oref0 import determine_basal
from simulators.controllers.oref0_reference import Oref0Reference
from simulators.oref0_parity import closed_loop_decisions, compare, random_decisions
from simulators.population import REFERENCE_NAMES
from simulators.scenario import Scenario, parse_scenario

DECISIONS_PER_DAY = 288
CONTROLLERS = ("basal_bolus", "pid", "oref0")
COHORT_DAYS = 7


class _Shard:
    """Patients [lo, hi) of a scenario on ``threads`` numba threads (a fleet shard has one)."""

    def __init__(self, scenario: Scenario, lo: int, hi: int, threads: int = 1) -> None:
        numba.set_num_threads(threads)
        self.scenario = scenario
        self.sim = scenario.build(scenario.cohort(lo, hi))
        for _ in self.sim.run(60):  # compile the kernels before the clock starts
            pass

    def run(self) -> float:
        """Seconds to simulate the scenario's duration."""
        started = time.perf_counter()
        for _ in self.sim.run(self.scenario.duration_min):
            pass
        return time.perf_counter() - started


def closed_loop_pd_per_s(scenario: Scenario) -> float:
    """Patient-days per second of ``scenario`` in this process on all of numba's threads."""
    shard = _Shard(scenario, 0, scenario.n_patients, numba.config.NUMBA_NUM_THREADS)
    return scenario.n_patients * scenario.duration_min / 1440 / shard.run()


def sharded_pd_per_s(scenario: Scenario, shards: int) -> float:
    """Patient-days per second of ``scenario`` split over ``shards`` single-threaded Ray actors
    (a fleet's default layout: one shard per CPU), timed from the start signal to the last finish."""
    import ray

    from cgm_ray.cli.ray_runtime import init_ray

    init_ray()
    try:
        actor = ray.remote(num_cpus=1)(_Shard)
        n = scenario.n_patients
        actors = [actor.remote(scenario, n * k // shards, n * (k + 1) // shards) for k in range(shards)]
        ray.get([a.__ray_ready__.remote() for a in actors])
        started = time.perf_counter()
        ray.get([a.run.remote() for a in actors])
        return n * scenario.duration_min / 1440 / (time.perf_counter() - started)
    finally:
        ray.shutdown()


def oref0_decisions_per_s(patients: int, seed: int, repeats: int = 20) -> float:
    """Best-of-``repeats`` decisions per second of the port for one batch of ``patients``."""
    state, profile = random_decisions(patients, seed)
    determine_basal(state, profile, False)  # compile / load the kernel
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        determine_basal(state, profile, False)
        best = min(best, time.perf_counter() - started)
    return patients / best


def cohort_outcomes(controller: dict, seed: int) -> dict[str, float]:
    """TIR and time < 54 mg/dL of the 30 reference patients under ``controller`` (see the docstring)."""
    scenario = parse_scenario({"duration_min": (COHORT_DAYS + 1) * 1440, "patients": list(REFERENCE_NAMES),
                               "seed": seed, "therapy": {"controller": controller}})
    patient, glucose = [], []
    for step in scenario.build().run(scenario.duration_min):
        after = step.readings.minute >= 1440
        patient.append(step.readings.patient[after])
        glucose.append(step.readings.glucose_mgdl[after].astype(np.float64))
    p, g = np.concatenate(patient), np.concatenate(glucose)
    n = len(REFERENCE_NAMES)
    count = np.bincount(p, minlength=n)
    tir = 100 * np.bincount(p, (g >= 70) & (g <= 180), n) / count
    tbr54 = 100 * np.bincount(p, g < 54, n) / count
    return {"tir_median": float(np.median(tir)), "tir_mean": float(tir.mean()),
            "tbr54_median": float(np.median(tbr54)), "tbr54_mean": float(tbr54.mean())}


def loop_reference_pd_per_s(patients: int, days: float, seed: int) -> float:
    """Wall-clock patient-days per second of Loop (PyLoopKit) in the loop, one Ray task per CPU.

    Run as a trial with a second, open-loop arm (a trial compares arms; that arm takes well under a
    second of the wall time measured).
    """
    import ray

    from actors.trial import run_trial
    from cgm_ray.cli.ray_runtime import init_ray
    from simulators.trial import parse_trial

    spec = parse_trial({
        "name": "bench-loop-reference", "warmup_min": 0, "shards": os.cpu_count() or 1,
        "scenario": {"duration_min": int(days * 1440), "patients": {"n": patients, "seed": seed},
                     "seed": seed},
        "arms": {"open_loop": {"controller": {"algorithm": "basal_bolus"}},
                 "loop_reference": {"controller": {"algorithm": "loop_reference"}}}})
    init_ray()
    try:
        with tempfile.TemporaryDirectory() as out:
            started = time.perf_counter()
            run_trial(spec, Path(out))
            return patients * days / (time.perf_counter() - started)
    finally:
        ray.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--patients", type=int, default=10_000)
    parser.add_argument("--days", type=float, default=1.0)
    parser.add_argument("--loop-patients", type=int, default=100)
    parser.add_argument("--loop-days", type=float, default=1.0)
    parser.add_argument("--skip-reference", action="store_true",
                        help="skip the 30-patient outcomes and the slow reference controllers")
    args = parser.parse_args()

    result: dict = {"pd_per_s": {}, "pd_per_s_one_process": {}}
    for name in CONTROLLERS:
        scenario = parse_scenario({"duration_min": int(args.days * 1440),
                                   "patients": {"n": args.patients, "seed": args.seed}, "seed": args.seed,
                                   "therapy": {"controller": {"algorithm": name}}})
        result["pd_per_s"][name] = sharded_pd_per_s(scenario, os.cpu_count() or 1)
        result["pd_per_s_one_process"][name] = closed_loop_pd_per_s(scenario)
    result["oref0_decisions_per_s"] = oref0_decisions_per_s(args.patients, args.seed)
    if shutil.which("node"):
        state, profile = closed_loop_decisions(20, 2, args.seed)
        with Oref0Reference() as reference:
            report, _, _ = compare(state, profile, reference)
        result["oref0_parity"] = report.as_bar()
    else:
        result["oref0_parity"] = {"skipped": "node is not installed"}
    if not args.skip_reference:
        result["loop_reference_pd_per_s"] = loop_reference_pd_per_s(args.loop_patients, args.loop_days,
                                                                    args.seed)
        result["reference_cohort"] = {name: cohort_outcomes({"algorithm": name}, args.seed)
                                      for name in CONTROLLERS}

    if args.json:
        print(json.dumps(result))
        return
    print(f"closed loop, {args.patients:,} patients x {args.days:g} days: {os.cpu_count()} single-threaded "
          f"Ray actors | one process with {numba.config.NUMBA_NUM_THREADS} numba threads")
    for name, rate in result["pd_per_s"].items():
        print(f"  {name:12s} {rate:10,.0f} | {result['pd_per_s_one_process'][name]:10,.0f} patient-days/s")
    rate = result["oref0_decisions_per_s"]
    print(f"oref0 port alone: {rate:,.0f} decisions/s = {rate / DECISIONS_PER_DAY:,.0f} patient-days/s")
    parity = result["oref0_parity"]
    if "decisions" in parity:
        print(f"parity with oref0 0.7.1 on closed-loop states: {parity['decisions']:,} decisions, "
              f"{parity['fraction_within_0.05']:.4f} within 0.05 U/h, "
              f"suspend agreement {parity['suspend_agreement']:.4f}")
    else:
        print(f"parity with oref0 0.7.1: skipped ({parity['skipped']})")
    if "loop_reference_pd_per_s" in result:
        print(f"loop_reference (PyLoopKit), {args.loop_patients} patients x {args.loop_days:g} days on "
              f"{os.cpu_count()} Ray tasks: {result['loop_reference_pd_per_s']:.3f} patient-days/s")
    for name, out in result.get("reference_cohort", {}).items():
        print(f"30 reference patients, {name:12s} TIR median {out['tir_median']:.1f} % "
              f"(mean {out['tir_mean']:.1f}), <54 median {out['tbr54_median']:.2f} % "
              f"(mean {out['tbr54_mean']:.2f})")


if __name__ == "__main__":
    main()
