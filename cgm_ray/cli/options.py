"""Options that several ``cgm-ray`` commands share, declared once so they read the same."""

from __future__ import annotations

import argparse


def add_units_option(p: argparse.ArgumentParser, shown: str) -> None:
    """``--units``: the glucose units of what the command shows (``shown``, for the help).

    Checked by ``cgm_ray.glucose.units.parse_units`` in the command, so a bad value is a
    one-line ``ConfigError`` naming ``--units`` rather than argparse's usage text.
    """
    p.add_argument("--units", default="mg/dL", metavar="UNITS",
                   help=f"mg/dL (default) or mmol/L: the units of the {shown}; percentages and "
                        "risk indices are the same in both (the lake stays in mg/dL)")
