"""Controllers: the oref0 port's agreement with the real oref0, and controller speed.

``oref0_parity`` compares the port with oref0 0.7.1 in Node on 20 patients x 2 days' worth of
decisions (11,520; random, physiologically consistent states from
`simulators.controllers.oref0_parity` until the closed-loop engine supplies real ones).
``pd_per_s`` is, for now, decision throughput in patient-days per second (decisions per second
/ 288 five-minute decisions a day), measured on a batch of ``--patients`` decisions after the
kernels are compiled, with the predicted-glucose curves stored (the text report also gives the
rate without them).
Usage: python benchmarks/bench_controllers.py [--json] [--seed 1] [--features basic] [--patients 10000]
"""

from __future__ import annotations

import argparse
import json
import shutil
import time

import numba

from simulators.controllers.oref0 import determine_basal
from simulators.controllers.oref0_parity import FEATURES, compare, random_decisions
from simulators.controllers.oref0_reference import Oref0Reference

DECISIONS_PER_DAY = 288
PARITY_DECISIONS = 20 * 2 * DECISIONS_PER_DAY  # 20 patients x 2 days


def oref0_decisions_per_s(patients: int, seed: int, features: str, predictions: bool = True,
                          repeats: int = 20) -> float:
    """Best-of-``repeats`` decisions per second of the port for one batch of ``patients``."""
    state, profile = random_decisions(patients, seed, features)
    determine_basal(state, profile, predictions)  # compile / load the kernel
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        determine_basal(state, profile, predictions)
        best = min(best, time.perf_counter() - started)
    return patients / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--features", choices=FEATURES, default="basic")
    parser.add_argument("--patients", type=int, default=10_000)
    args = parser.parse_args()

    result: dict = {}
    if shutil.which("node"):
        state, profile = random_decisions(PARITY_DECISIONS, args.seed, args.features)
        with Oref0Reference() as reference:
            report, _, _ = compare(state, profile, reference)
        result["oref0_parity"] = report.as_bar()
    else:
        result["oref0_parity"] = {"skipped": "node is not installed"}
    rate = oref0_decisions_per_s(args.patients, args.seed, args.features)
    result["pd_per_s"] = {"oref0": rate / DECISIONS_PER_DAY}

    if args.json:
        print(json.dumps(result))
        return
    print(f"oref0 port, {numba.config.NUMBA_NUM_THREADS} threads, features {args.features!r}")
    parity = result["oref0_parity"]
    if "decisions" in parity:
        print(f"parity with oref0 0.7.1: {parity['decisions']:,} decisions, "
              f"{parity['fraction_within_0.05']:.4f} within 0.05 U/h, "
              f"suspend agreement {parity['suspend_agreement']:.4f}")
    else:
        print(f"parity with oref0 0.7.1: skipped ({parity['skipped']})")
    print(f"{rate:,.0f} decisions/s = {rate / DECISIONS_PER_DAY:,.0f} patient-days/s (decisions only)")
    fast = oref0_decisions_per_s(args.patients, args.seed, args.features, predictions=False)
    print(f"without the predicted curves: {fast:,.0f} decisions/s"
          f" = {fast / DECISIONS_PER_DAY:,.0f} patient-days/s")


if __name__ == "__main__":
    main()
