"""A cohort's patients summarised over a period, for the clinician view.

Pure (numpy): each patient's readings of the period (the lake's, then the partitions' newer
hot ones: ``serve_apps.glucose_period``) give the consensus panel and the targets missed.
Each row says how many hours its readings span and where they came from, since the consensus
asks for 14 days and the rings alone hold about one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from cgm_ray.glucose.metrics import basic_metrics
from cgm_ray.glucose.targets import CONSENSUS_TARGETS
from serve_apps.glucose_period import PeriodReadings


@dataclass(frozen=True)
class PatientSummary:
    """One patient's row of the clinician's table (percentages of readings, mg/dL, %)."""

    patient_id: str
    readings: int
    hours: float
    mean_mgdl: float
    in_range_70_180: float
    below_70: float
    below_54: float
    above_180: float
    above_250: float
    cv: float
    gmi: float
    targets_missed: list[str]
    source: str  # "lake", "hot" or "lake+hot"

    def as_json(self) -> dict:
        return asdict(self)


def summarise(readings: dict[str, PeriodReadings]) -> list[PatientSummary]:
    """The panel of each patient with readings."""
    patients = [p for p, r in readings.items() if len(r.series.ts_ms)]
    if not patients:
        return []
    subject = np.concatenate([np.full(len(readings[p].series.ts_ms), k)
                              for k, p in enumerate(patients)])
    values = np.concatenate([readings[p].series.glucose_mgdl for p in patients]).astype(float)
    m = basic_metrics(subject, values, len(patients))
    rows = []
    for k, p in enumerate(patients):
        ts = readings[p].series.ts_ms
        missed = [t.name for t in CONSENSUS_TARGETS if not t.met(m[t.column][k:k + 1])[0]]
        panel = {c: round(float(m[c][k]), 1) for c in ("in_range_70_180", "below_70", "below_54",
                                                        "above_180", "above_250", "cv", "gmi")}
        rows.append(PatientSummary(p, len(ts), round(float(ts.max() - ts.min()) / 3.6e6, 1),
                                   round(float(m["mean"][k]), 1), targets_missed=missed,
                                   source=readings[p].source, **panel))
    return rows


def worst_first(rows: list[PatientSummary]) -> list[PatientSummary]:
    """Who needs attention first: most time below 54 mg/dL, then least time in range."""
    return sorted(rows, key=lambda r: (-r.below_54, r.in_range_70_180))
