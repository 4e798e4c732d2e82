"""The ``cgm-ray`` command line."""

from __future__ import annotations

import argparse
import sys

from cgm_ray.cli.demo import add_commands as demo_commands
from cgm_ray.cli.fleet import add_commands as fleet_commands
from cgm_ray.cli.lake import add_commands as lake_commands
from cgm_ray.cli.metrics import add_commands as metrics_commands
from cgm_ray.cli.monitor import add_commands as monitor_commands
from cgm_ray.cli.serve import add_commands as serve_commands
from cgm_ray.cli.simulate import add_commands as simulate_commands
from cgm_ray.cli.trial import add_commands as trial_commands
from cgm_ray.errors import CgmRayError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cgm-ray", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    simulate_commands(sub)
    trial_commands(sub)
    fleet_commands(sub)
    serve_commands(sub)
    metrics_commands(sub)
    lake_commands(sub)
    demo_commands(sub)
    monitor_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point: errors users can fix are printed as one line with exit code 2."""
    args = build_parser().parse_args(argv)
    if getattr(args, "chunk_min", 1) < 1:
        print("cgm-ray: error: --chunk-min must be at least 1", file=sys.stderr)
        return 2
    try:
        return args.func(args)
    except CgmRayError as exc:
        print(f"cgm-ray: error: {exc}", file=sys.stderr)
        return 2
