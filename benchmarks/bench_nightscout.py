"""The fleet as Nightscout uploaders against the cgm-ray v2 path, into one ingest server.

Starts the ingest (local Ray + Serve on 127.0.0.1, rate limit lifted), then alternates
``cgm-ray loadtest --protocol cgm-ray`` (Arrow batches to ``/api/v2/readings``) and
``--protocol nightscout`` (xDrip+-style entries, treatments and device statuses per patient
to ``/api/v1``) with the same sensors, seed and wall duration, ``--rounds`` times each,
each in its own process joined to the server's Ray. Prints readings/s and documents/s of
both and their ratio per round: the ratio is the figure to quote on a shared machine.
Usage: python benchmarks/bench_nightscout.py [--sensors 500] [--seconds 20] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

import ray

from cgm_ray.cli.serve import start_ingest
from serve_apps.local import free_port

SECRET = "bench-secret-0123456789"


def _loadtest(url: str, protocol: str, sensors: int, seconds: float, address: str) -> dict:
    """One loadtest run in its own process; its JSON report."""
    out = subprocess.run(
        [sys.executable, "-m", "cgm_ray.cli", "loadtest", "--target", url, "--protocol", protocol,
         "--sensors", str(sensors), "--duration", str(seconds), "--speedup", "max",
         "--seed", "1", "--address", address, "--json", "--quiet"],
        capture_output=True, text=True, env={**os.environ, "API_SECRET": SECRET}, check=False)
    lines = out.stdout.strip().splitlines()
    if not lines:
        raise RuntimeError(f"loadtest {protocol} printed no report: {out.stderr[-2000:]}")
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sensors", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=20.0, help="wall seconds per run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--proxy", choices=["haproxy", "python"], default="haproxy")
    parser.add_argument("--json", action="store_true", help="one JSON line per round")
    args = parser.parse_args()
    data = tempfile.mkdtemp(prefix="cgm-bench-nightscout-")
    os.environ["API_SECRET"] = SECRET
    url = start_ingest("127.0.0.1", free_port(), {
        "data_dir": f"{data}/ingest", "landing_dir": f"{data}/landing",
        "documents_landing_dir": f"{data}/documents", "rate_limit_per_s": 1e9}, args.proxy)
    address = ray.get_runtime_context().gcs_address
    if not args.json:
        print(f"{args.sensors} sensors as fast as possible for {args.seconds:g} s per run, "
              f"into {url} ({os.cpu_count()} cores shared by the fleet and the server)")
        print(f"{'round':>5} {'cgm-ray readings/s':>19} {'nightscout readings/s':>22} "
              f"{'documents/s':>12} {'ratio':>6} {'failed':>7}")
    try:
        for k in range(1, args.rounds + 1):
            v2 = _loadtest(url, "cgm-ray", args.sensors, args.seconds, address)
            ns = _loadtest(url, "nightscout", args.sensors, args.seconds, address)
            ratio = ns["readings_per_s"] / max(v2["readings_per_s"], 1e-9)
            documents_per_s = ns["documents_acked"] / max(ns["duration_s"], 1e-9)
            failed = v2["readings_failed"] + ns["readings_failed"] + ns["documents_failed"]
            if args.json:
                print(json.dumps({"round": k, "cgm_ray": v2, "nightscout": ns, "ratio": ratio}))
            else:
                print(f"{k:>5} {v2['readings_per_s']:>19,.0f} {ns['readings_per_s']:>22,.0f} "
                      f"{documents_per_s:>12,.0f} {ratio:>6.3f} {failed:>7}")
    finally:
        from ray import serve

        serve.shutdown()
        ray.shutdown()


if __name__ == "__main__":
    main()
