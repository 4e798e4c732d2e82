"""Glucose units: mg/dL inside cgm-ray, mmol/L only at the edges that ask for it."""

from __future__ import annotations

from typing import Literal

# mg/dL per mmol/L: 18.0182 = the molar mass of glucose (180.182 g/mol) / 10, the factor
# Nightscout and the CGM makers use.
MGDL_PER_MMOL = 18.0182
# Tidepool stores glucose in mmol/L converted with 18.01559 (its data model), so values it made
# from whole mg/dL come back whole only with this factor: its imports use it.
MGDL_PER_MMOL_TIDEPOOL = 18.01559

GlucoseUnits = Literal["mg/dl", "mmol"]  # Nightscout's spelling of the two


def to_units(glucose_mgdl: float, units: GlucoseUnits) -> float:
    """A glucose value in ``units``: mg/dL unchanged, mmol/L to one decimal as displayed."""
    return glucose_mgdl if units == "mg/dl" else round(glucose_mgdl / MGDL_PER_MMOL, 1)


def to_mgdl(glucose: float, units: GlucoseUnits) -> float:
    """A glucose value given in ``units``, in mg/dL."""
    return glucose if units == "mg/dl" else glucose * MGDL_PER_MMOL
