"""Options that several ``cgm-ray`` commands share, declared once so they read the same."""

from __future__ import annotations

import argparse


def add_import_options(p: argparse.ArgumentParser, without_tz: str) -> None:
    """``--tz`` and ``--patient``: how vendor exports are read (``without_tz``: what the
    command does with device-local times when no zone is given, for the help)."""
    p.add_argument("--tz", metavar="ZONE",
                   help="IANA time zone of an export's device-local times (Clarity, LibreView, "
                        f"OhioT1DM), e.g. Europe/Berlin; an offset in the file wins ({without_tz})")
    p.add_argument("--patient", metavar="ID",
                   help="patient id of an export's readings and treatments (replaces ids in the "
                        "file)")


def add_units_option(p: argparse.ArgumentParser, shown: str) -> None:
    """``--units``: the glucose units of what the command shows (``shown``, for the help).

    Checked by ``cgm_ray.glucose.units.parse_units`` in the command, so a bad value is a
    one-line ``ConfigError`` naming ``--units`` rather than argparse's usage text.
    """
    p.add_argument("--units", default="mg/dL", metavar="UNITS",
                   help=f"mg/dL (default) or mmol/L: the units of the {shown}; percentages and "
                        "risk indices are the same in both (the lake stays in mg/dL)")
