"""The international-consensus glycaemic targets (Battelino 2019) as data, for reports and cohorts."""

from __future__ import annotations

import operator
from dataclasses import dataclass

import numpy as np

from cgm_ray.glucose.metrics import RANGE_BOUNDS_MGDL, range_text
from cgm_ray.glucose.units import GlucoseUnits

MIN_DAYS = 14  # data sufficiency: 14 days ...
MIN_ACTIVE_PERCENT = 70.0  # ... with at least 70% of the possible readings


@dataclass(frozen=True)
class Target:
    """A target on one metric column, e.g. time in range 70-180 above 70%.

    ``title`` names a measure that is not a time in a glucose range; a time in range is
    named by its range (``label_in``), so the label follows the units it is shown in.
    """

    name: str
    column: str
    op: str  # "<", "<=", ">" or ">="
    value: float
    title: str = ""

    def label_in(self, units: GlucoseUnits) -> str:
        """The measure as a report names it: "Time 70-180 mg/dL", "Time 3.9-10.0 mmol/L",
        "Coefficient of variation"."""
        return f"Time {range_text(self.column, units)}" if self.column in RANGE_BOUNDS_MGDL else self.title

    @property
    def label(self) -> str:
        """The measure's name in mg/dL, e.g. "Time 70-180 mg/dL"."""
        return self.label_in("mg/dl")

    def met(self, values: np.ndarray) -> np.ndarray:
        """Whether each value meets the target (NaN never does)."""
        with np.errstate(invalid="ignore"):
            return _OPS[self.op](np.asarray(values, dtype=float), self.value)

    @property
    def text(self) -> str:
        """The target as people write it, e.g. "≤ 36 %"."""
        return f"{self.op.replace('<=', '≤').replace('>=', '≥')} {self.value:g} %"


_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}

# Type 1 and type 2 diabetes targets (older or high-risk people have looser ones).
CONSENSUS_TARGETS = (
    Target("tir", "in_range_70_180", ">", 70),
    Target("tbr70", "below_70", "<", 4),
    Target("tbr54", "below_54", "<", 1),
    Target("tar180", "above_180", "<", 25),
    Target("tar250", "above_250", "<", 5),
    Target("cv", "cv", "<=", 36, "Coefficient of variation"),
)


def data_sufficient(days: np.ndarray, active_percent: np.ndarray) -> np.ndarray:
    """The consensus minimum for a reliable profile: >= 14 days with >= 70% of readings."""
    with np.errstate(invalid="ignore"):
        return (np.asarray(days) >= MIN_DAYS) & (np.asarray(active_percent) >= MIN_ACTIVE_PERCENT)
