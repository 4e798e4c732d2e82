"""``cgm-ray trial``: an in-silico trial file into per-patient metrics, a paired comparison and
each arm's readings in the lake layout."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from cgm_ray.cli.ray_runtime import init_ray

if TYPE_CHECKING:
    from simulators.trial import ShardOutcome


def cmd_trial(args: argparse.Namespace) -> int:
    """Simulate every arm of a trial on the same patients with the same seeds, and compare each arm
    with the first patient by patient (median [IQR], median difference, Wilcoxon signed-rank p)."""
    from actors.trial import run_trial
    from simulators.trial import comparison_table, load_trial

    spec = load_trial(args.trial)
    out = Path(args.out or f"out/trial/{spec.name}")
    if spec.shards > 1:
        init_ray(args.address)
    result = run_trial(spec, out, progress=(lambda _: None) if args.quiet else _progress)
    days = (spec.scenario.duration_min - spec.warmup_min) / 1440
    print(f"trial {spec.name}: {result.n_patients} patients x {len(result.arms)} arms, metrics over "
          f"{days:.3g} days after {spec.warmup_min} min of warm-up; reference arm {result.arms[0]}")
    print(comparison_table(result.outcomes))
    for arm, counts in result.loop.items():
        loop = "open loop" if counts is None else (
            f"{counts.periods:,} patient-periods, {counts.failures:,} controller failures, "
            f"{counts.suspends:,} low suspends, {counts.iob_limited:,} max-IOB limits")
        print(f"  {arm}: {loop}; simulated in {result.simulated_s[arm]:.1f} s")
    print(f"outputs in {result.out}:")
    for path in result.files:
        print(f"  {path}{'/' if path.is_dir() else ''}")
    return 0


def _progress(outcome: ShardOutcome) -> None:
    print(f"  {outcome.arm}: patients {outcome.lo}-{outcome.hi - 1} in {outcome.seconds:.1f} s",
          file=sys.stderr)


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``trial`` on the ``cgm-ray`` parser."""
    trial = sub.add_parser("trial", help="compare controllers on the same virtual patients",
                           description=cmd_trial.__doc__)
    trial.add_argument("trial", help="trial file (.yaml, .yml or .json)")
    trial.add_argument("--out", help="output directory (default: out/trial/<name>)")
    trial.add_argument("--address", help="Ray cluster address when the trial has shards "
                                         "(default: a local Ray)")
    trial.add_argument("--quiet", action="store_true", help="no line per finished shard")
    trial.set_defaults(func=cmd_trial)
