"""``cgm-ray fleet`` and ``cgm-ray loadtest``: run a sensor fleet with live progress."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from cgm_ray.cli.ray_runtime import add_dashboard_option, announce_dashboard, init_ray
from cgm_ray.client import check_nightscout, check_target
from cgm_ray.errors import ConfigError

if TYPE_CHECKING:
    from actors.config import FleetConfig
    from actors.run import FleetReport


def _run(config: FleetConfig, args: argparse.Namespace, title: str,
         max_wall_s: float | None = None) -> FleetReport:
    from actors.run import ProgressLine, run_fleet

    return run_fleet(config, None if args.quiet or args.json else ProgressLine(), max_wall_s,
                     report_dir=args.report, title=title)


def _print_report(report: FleetReport, as_json: bool) -> int:
    if as_json:
        print(json.dumps(report.as_dict()))
    else:
        lat = report.latency_ms
        fmt = lambda v: "-" if v is None else f"{v:.1f}"  # noqa: E731
        print(f"{report.state}: {report.sensors:,} sensors on {report.shards} shards, "
              f"{report.simulated_min:,} simulated min in {report.duration_s:.1f} s "
              f"(after {report.startup_s:.1f} s start-up)\n"
              f"  readings sent {report.readings_sent:,}, acked {report.readings_acked:,}, "
              f"failed {report.readings_failed:,} ({report.readings_per_s:,.0f}/s)\n"
              f"  window delivery latency ms p50 {fmt(lat.p50)} p95 {fmt(lat.p95)} "
              f"p99 {fmt(lat.p99)}")
        if report.documents_acked or report.documents_failed:
            print(f"  documents (treatments, device status, profiles) acked "
                  f"{report.documents_acked:,}, failed {report.documents_failed:,}")
        if report.error:
            print(f"  error: {report.error}")
        if report.report_html:
            print(f"  the run over time: {report.report_html}")
    return 0 if report.ok else 1


def _check_sink_target(config: FleetConfig) -> None:
    """Fail fast when the server an HTTP or Nightscout sink posts to is not there or refuses us."""
    sink = config.sink
    if sink.kind == "http":
        check_target(sink.url, sink.secret_env)
    elif sink.kind == "nightscout":
        check_nightscout(sink.url, *sink.credentials())


def cmd_fleet(args: argparse.Namespace) -> int:
    """Run the fleet a config file describes (see configs/fleet.yaml)."""
    from actors.config import load_fleet_config

    config = load_fleet_config(args.config)
    if args.speedup is not None:
        config = config.model_copy(update={"speedup": args.speedup})
    _check_sink_target(config)
    announce_dashboard(init_ray(args.address, args.dashboard_port))
    return _print_report(_run(config, args, f"cgm-ray fleet {args.config}"), args.json)


def cmd_loadtest(args: argparse.Namespace) -> int:
    """N virtual sensors at a speed-up factor for a wall-clock duration."""
    from actors.config import parse_fleet_config

    if args.sensors < 1:
        raise ConfigError("--sensors", f"must be at least 1, got {args.sensors}")
    if args.duration <= 0:
        raise ConfigError("--duration", f"must be > 0 seconds, got {args.duration}")
    if args.protocol == "nightscout" and not args.target:
        raise ConfigError("--protocol", "nightscout needs a --target site to post to")
    speedup = args.speedup
    sim_min = 10 * 365 * 1440 if speedup == "max" else max(1, int(args.duration * speedup / 60))
    kind = "http" if args.protocol == "cgm-ray" else "nightscout"
    config = parse_fleet_config({
        "scenario": {"duration_min": sim_min, "seed": args.seed,
                     "patients": {"n": args.sensors, "seed": args.seed, "titrate": args.titrate},
                     "sensor": {"model": args.sensor_model, "start": "staggered"}},
        "sink": ({"kind": kind, "url": args.target} if args.target
                 else {"kind": "parquet", "path": args.out}),
        "speedup": speedup, "tick_min": 1 if speedup != "max" else 5,
        "shards": args.shards or "auto",
    })
    _check_sink_target(config)
    announce_dashboard(init_ray(args.address, args.dashboard_port))
    report = _run(config, args, f"cgm-ray loadtest: {args.sensors:,} sensors, speed-up "
                  f"{args.speedup}, {args.duration:g} s" + (f", {args.target}" if args.target else ""),
                  max_wall_s=args.duration)
    if report.state == "stopped" and report.error is None:
        report.state = "finished"  # the wall-clock duration ran out, as asked
    return _print_report(report, args.json)


def _speedup(value: str) -> float | str:
    if value == "max":
        return value
    try:
        factor = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError("a number (1 = real time) or 'max'") from None
    if factor <= 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return factor


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``fleet`` and ``loadtest`` on the ``cgm-ray`` parser."""
    fleet = sub.add_parser("fleet", help="run a fleet of virtual sensors from a config",
                           description=cmd_fleet.__doc__)
    fleet.add_argument("config", help="fleet config file (configs/fleet.yaml)")
    fleet.add_argument("--speedup", type=_speedup, help="override the config's speed-up")
    fleet.add_argument("--report", default="out/fleet/report", metavar="DIR",
                       help="where the run over time goes: report.html, report.png, series.json")
    fleet.set_defaults(func=cmd_fleet)
    load = sub.add_parser("loadtest", help="load-test with N virtual sensors",
                          description=cmd_loadtest.__doc__)
    load.add_argument("--sensors", type=int, required=True)
    load.add_argument("--speedup", type=_speedup, default=1.0,
                      help="1 = real time, 288 = a day in 5 minutes, 'max' = as fast as possible")
    load.add_argument("--duration", type=float, required=True, help="wall-clock seconds")
    load.add_argument("--target", help="server base URL (API secret from $API_SECRET); "
                      "default: Parquet files in --out")
    load.add_argument("--protocol", choices=("cgm-ray", "nightscout"), default="cgm-ray",
                      help="how to post to --target: cgm-ray's v2 Arrow batches (default), or "
                      "as xDrip+ uploads to any Nightscout-compatible site (entries, treatments, "
                      "device status per patient)")
    load.add_argument("--out", default="out/loadtest/landing",
                      help="Parquet landing directory the readings go to (without --target)")
    load.add_argument("--sensor-model", default="dexcom_g6")
    load.add_argument("--shards", type=int, default=None, help="default: one per CPU")
    load.add_argument("--seed", type=int, default=0)
    load.add_argument("--report", default="out/loadtest/report", metavar="DIR",
                      help="where the run over time goes: report.html, report.png, series.json")
    load.add_argument("--titrate", action="store_true",
                      help="titrate each sampled patient's carb ratio first (slower start)")
    load.set_defaults(func=cmd_loadtest)
    for p in (fleet, load):
        p.add_argument("--address", help="Ray cluster address (default: start a local Ray)")
        p.add_argument("--json", action="store_true", help="print one JSON report")
        p.add_argument("--quiet", action="store_true", help="no progress line")
        add_dashboard_option(p)
