"""Sensor-fleet throughput into the Parquet sink: 1,000,000 sensors in real time, and flat out.

(a) Real time: N sensors (default 1,000,000) reading every 5 minutes at speedup 1 in
one-minute windows, for a wall duration after start-up (rounded up to whole minutes):
readings delivered per second against the nominal N/300, how late each window landed after
its minute was over, and the fleet's memory (summed RSS of the shard processes; bar 4 GiB).
The first 5 minutes are slower than the rest (a staggered sensor's first reading walks its
noise process from insertion); ``--duration 480`` shows the steady state after them.
(b) Accelerated: M sensors (default 100,000) as fast as possible for a wall duration, once
per window length (``--max-tick``): sustained readings per second into Parquet.
Patients are sampled without carb-ratio titration (titrating 1,000,000 takes minutes; it
changes their therapy, not the work per reading).
Usage: python benchmarks/bench_fleet.py [--sensors 1000000] [--duration 120]
       [--max-sensors 100000] [--max-duration 60] [--max-tick 5 60] [--out out/bench_fleet]
       [--only realtime|max] [--keep]
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import ray

from actors.config import FleetConfig, parse_fleet_config
from actors.fleet import Fleet

POLL_S = 0.05
MEMORY_BAR_GIB = 4.0
SAMPLE_MIN = 5  # dexcom_g6


@dataclass
class Result:
    """One fleet run, measured from the driver."""

    sensors: int
    shards: int
    startup_s: float
    wall_s: float
    simulated_min: int
    readings: int
    peak_rss_gib: float
    files: int
    bytes_on_disk: int
    lags_s: list[float] = field(default_factory=list)  # per window: landed after its minute ended

    @property
    def per_s(self) -> float:
        return self.readings / self.wall_s


def fleet_config(n: int, duration_min: int, speedup: float | str, tick_min: int,
                 landing: Path) -> FleetConfig:
    return parse_fleet_config({
        "scenario": {"duration_min": duration_min, "seed": 1,
                     "patients": {"n": n, "seed": 1, "titrate": False},
                     "sensor": {"model": "dexcom_g6", "start": "staggered"},
                     "therapy": {"correction": True}, "meals": {"random": "daily"}},
        "sink": {"kind": "parquet", "path": str(landing)},
        "speedup": speedup, "tick_min": tick_min,
    })


def shard_rss_gib(pids: list[int]) -> float:
    """Summed resident set size of processes (Linux ``/proc``; the shards run on this host)."""
    pages = sum(int(Path(f"/proc/{pid}/statm").read_text().split()[1]) for pid in pids)
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**30


def measure(config: FleetConfig, wall_limit_s: float | None, keep: bool) -> Result:
    """Build the fleet (start-up), run it until it finishes or ``wall_limit_s``, poll progress;
    the landing area is deleted afterwards unless ``keep``."""
    landing = Path(config.sink.path)
    shutil.rmtree(landing, ignore_errors=True)
    begun = time.monotonic()
    fleet = Fleet(config)
    pids = ray.get([s.pid.remote() for s in fleet.shards], timeout=900)  # every shard built
    startup_s = time.monotonic() - begun
    fleet.start()
    peak, lags, minute, next_rss = shard_rss_gib(pids), [], 0, 0.0
    clock_start: float | None = None
    while True:
        status = fleet.status()
        now = time.monotonic()
        if clock_start is None and status.state == "running":
            clock_start = now - status.wall_s
        if clock_start is not None and status.minute > minute:  # a window landed
            if config.speedup != "max":
                lags.append(now - (clock_start + status.minute * 60 / config.speedup))
            minute = status.minute
        if now >= next_rss:
            peak, next_rss = max(peak, shard_rss_gib(pids)), now + 1.0
        if status.state in ("finished", "failed"):
            break
        if wall_limit_s is not None and status.wall_s >= wall_limit_s:
            break
        time.sleep(POLL_S)
    peak = max(peak, shard_rss_gib(pids))
    final = fleet.stop()  # wall_s: until the clock thread ended (after the round in flight)
    if final.error:
        raise SystemExit(f"fleet failed: {final.error}")
    files = list(landing.rglob("*.parquet"))
    size = sum(p.stat().st_size for p in files)
    if not keep:
        shutil.rmtree(landing)
    return Result(final.sensors, len(final.shards), startup_s, final.wall_s, final.minute,
                  final.acked, peak, len(files), size, lags)


def steady_lag(lags: list[float]) -> str:
    """Lag once every sensor has read once: a staggered sensor's first reading also walks
    its noise process from insertion to now (simulators.sensor), which makes the first
    minutes of a run slower than the rest."""
    steady = lags[SAMPLE_MIN:]
    return f"{max(steady):.2f} / {sum(steady) / len(steady):.2f} s" if steady else \
        f"- (run longer than {SAMPLE_MIN} min)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sensors", type=int, default=1_000_000, help="real-time fleet size")
    parser.add_argument("--duration", type=float, default=120.0,
                        help="real-time wall seconds after start-up (whole minutes)")
    parser.add_argument("--max-sensors", type=int, default=100_000,
                        help="accelerated fleet size")
    parser.add_argument("--max-duration", type=float, default=60.0,
                        help="accelerated wall seconds after start-up")
    parser.add_argument("--max-tick", type=int, nargs="+", default=[5, 60],
                        help="accelerated: simulated minutes per window (a file per shard "
                             "and window); one run each")
    parser.add_argument("--out", default="out/bench_fleet", help="landing areas go under here")
    parser.add_argument("--only", choices=["realtime", "max"], help="run one part only")
    parser.add_argument("--keep", action="store_true",
                        help="keep the landing areas (a minute flat out writes gigabytes)")
    args = parser.parse_args()
    out = Path(args.out)
    cpus = os.cpu_count() or 1
    ray.init(num_cpus=cpus, object_store_memory=300_000_000, include_dashboard=False,
             log_to_driver=False)
    memory_gib = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30
    print(f"cgm-ray fleet -> Parquet, {cpus} cores, {memory_gib:.0f} GiB; dexcom_g6 staggered "
          "(a reading every 5 min), random daily meals, patients sampled without titration")

    if args.only in (None, "realtime"):
        minutes = max(1, math.ceil(args.duration / 60))
        r = measure(fleet_config(args.sensors, minutes, 1.0, 1, out / "realtime"), None,
                    args.keep)
        nominal = args.sensors / (SAMPLE_MIN * 60)
        print(f"\n(a) real time: {r.sensors:,} sensors on {r.shards} shards, 1-minute windows, "
              f"{r.simulated_min} min")
        rows = [
            ("start-up (sample patients, build shards)", f"{r.startup_s:.1f} s"),
            ("wall time (clock start to last window landed)", f"{r.wall_s:.1f} s"),
            ("readings delivered", f"{r.readings:,}"),
            ("readings/s delivered", f"{r.per_s:,.0f}"),
            ("readings/s per simulated second", f"{r.readings / (r.simulated_min * 60):,.0f}"),
            ("readings/s expected (sensors / 300 s)", f"{nominal:,.0f}"),
            ("window lag s (landed after its minute ended)",
             " ".join(f"{lag:.1f}" for lag in r.lags_s) or "-"),
            (f"  max / mean after the first {SAMPLE_MIN} min", steady_lag(r.lags_s)),
            ("fleet memory, peak RSS of shard processes",
             f"{r.peak_rss_gib:.2f} GiB (bar <= {MEMORY_BAR_GIB:g} GiB: "
             f"{'met' if r.peak_rss_gib <= MEMORY_BAR_GIB else 'NOT met'})"),
            ("Parquet files / bytes per reading",
             f"{r.files} / {r.bytes_on_disk / max(r.readings, 1):.1f}"),
        ]
        width = max(len(k) for k, _ in rows)
        for key, value in rows:
            print(f"  {key:<{width}}  {value}")

    for tick in args.max_tick if args.only in (None, "max") else []:
        config = fleet_config(args.max_sensors, 365 * 1440, "max", tick, out / f"max-{tick}")
        r = measure(config, args.max_duration, args.keep)
        print(f"\n(b) accelerated: {r.sensors:,} sensors on {r.shards} shards, "
              f"as fast as possible, {tick}-minute windows")
        rows = [
            ("start-up (sample patients, build shards)", f"{r.startup_s:.1f} s"),
            ("wall time", f"{r.wall_s:.1f} s"),
            ("simulated", f"{r.simulated_min:,} min ({r.simulated_min / 1440:.2f} days, "
                          f"{r.simulated_min * 60 / r.wall_s:,.0f}x real time)"),
            ("readings delivered", f"{r.readings:,}"),
            ("readings/s sustained into Parquet", f"{r.per_s:,.0f}"),
            ("patient-days/s", f"{r.sensors * r.simulated_min / 1440 / r.wall_s:,.0f}"),
            ("fleet memory, peak RSS of shard processes", f"{r.peak_rss_gib:.2f} GiB"),
            ("Parquet files / bytes per reading",
             f"{r.files} / {r.bytes_on_disk / max(r.readings, 1):.1f}"),
        ]
        width = max(len(k) for k, _ in rows)
        for key, value in rows:
            print(f"  {key:<{width}}  {value}")
    ray.shutdown()


if __name__ == "__main__":
    main()
