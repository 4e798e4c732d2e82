"""Glucose units: mg/dL inside cgm-ray, mmol/L only at the edges that ask for it.

The lake, the metrics and every array named ``*_mgdl`` hold mg/dL. Outputs that a person
reads (``cgm-ray metrics``, ``cohort`` and ``report`` with ``--units``, the Nightscout routes)
convert at the last step with ``from_mgdl``, and write thresholds with ``glucose_text``: whole
mg/dL, or mmol/L to 0.1 as meters and the AGP report print them.
"""

from __future__ import annotations

from typing import Literal, TypeVar

import numpy as np

from cgm_ray.errors import ConfigError

# mg/dL per mmol/L: 18.0182 = the molar mass of glucose (180.182 g/mol) / 10, the factor
# Nightscout and the CGM makers use.
MGDL_PER_MMOL = 18.0182
# Tidepool stores glucose in mmol/L converted with 18.01559 (its data model), so values it made
# from whole mg/dL come back whole only with this factor: its imports use it.
MGDL_PER_MMOL_TIDEPOOL = 18.01559

GlucoseUnits = Literal["mg/dl", "mmol"]  # Nightscout's spelling of the two
UNITS_LABEL: dict[GlucoseUnits, str] = {"mg/dl": "mg/dL", "mmol": "mmol/L"}  # as people write them
GLUCOSE_DECIMALS: dict[GlucoseUnits, int] = {"mg/dl": 0, "mmol": 1}  # as thresholds are printed
# What ``parse_units`` accepts (after lower-casing), and the units each spelling means.
UNITS_SPELLINGS: dict[str, GlucoseUnits] = {"mg/dl": "mg/dl", "mmol/l": "mmol", "mmol": "mmol"}

Glucose = TypeVar("Glucose", float, np.ndarray)


def parse_units(text: str, field: str = "--units") -> GlucoseUnits:
    """The units a person asked for: ``mg/dL``, ``mg/dl``, ``mmol/L`` or ``mmol``, any case;
    ConfigError naming ``field`` for anything else, before any work is done."""
    units = UNITS_SPELLINGS.get(str(text).strip().lower())
    if units is None:
        raise ConfigError(field, f"unknown glucose units {str(text)[:40]!r}: use mg/dL or mmol/L")
    return units


def from_mgdl(glucose_mgdl: Glucose, units: GlucoseUnits) -> Glucose:
    """Glucose values (a number or an array) in ``units``, unrounded: mg/dL unchanged, mmol/L
    divided by 18.0182. Differences and SDs of glucose scale the same way."""
    return glucose_mgdl if units == "mg/dl" else glucose_mgdl / MGDL_PER_MMOL


def to_units(glucose_mgdl: float, units: GlucoseUnits) -> float:
    """A glucose value in ``units``: mg/dL unchanged, mmol/L to one decimal as displayed."""
    return glucose_mgdl if units == "mg/dl" else round(from_mgdl(glucose_mgdl, units), 1)


def to_mgdl(glucose: float, units: GlucoseUnits) -> float:
    """A glucose value given in ``units``, in mg/dL."""
    return glucose if units == "mg/dl" else glucose * MGDL_PER_MMOL


def glucose_text(glucose_mgdl: float, units: GlucoseUnits, steps: int = 0) -> str:
    """A glucose threshold as printed in ``units`` (no unit): 70 -> "70" or "3.9".

    ``steps`` moves it by whole printed steps (1 mg/dL, 0.1 mmol/L) after rounding, for the
    first value inside a range whose bound is exclusive: above 180 starts at "181" or "10.1",
    and below 70 ends at "69" or "3.8", as the AGP report labels its ranges.
    """
    decimals = GLUCOSE_DECIMALS[units]
    shown = round(float(from_mgdl(glucose_mgdl, units)), decimals) + steps * 10.0 ** -decimals
    return f"{shown:.{decimals}f}"
