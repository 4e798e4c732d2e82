"""A cohort's patients summarised from the partitions' recent readings, for the clinician view.

Pure (numpy): each partition hands over the glucose its ring buffers hold for the cohort's
patients (the last ``hot_readings`` per sensor, a day at 5-minute readings), and this computes
the consensus panel per patient and the targets each misses. A day is far short of the
consensus's 14 days: the answer says how many hours each row covers, and the lake's cohort job
is the reliable view.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from cgm_ray.glucose.metrics import basic_metrics
from cgm_ray.glucose.targets import CONSENSUS_TARGETS


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

    def as_json(self) -> dict:
        return asdict(self)


def summarise(glucose_mgdl: dict[str, np.ndarray], span_ms: dict[str, int]) -> list[PatientSummary]:
    """The panel of each patient with readings."""
    patients = [p for p, g in glucose_mgdl.items() if len(g)]
    if not patients:
        return []
    subject = np.concatenate([np.full(len(glucose_mgdl[p]), k) for k, p in enumerate(patients)])
    values = np.concatenate([glucose_mgdl[p] for p in patients]).astype(float)
    m = basic_metrics(subject, values, len(patients))
    rows = []
    for k, p in enumerate(patients):
        missed = [t.name for t in CONSENSUS_TARGETS if not t.met(m[t.column][k:k + 1])[0]]
        panel = {c: round(float(m[c][k]), 1) for c in ("in_range_70_180", "below_70", "below_54",
                                                        "above_180", "above_250", "cv", "gmi")}
        rows.append(PatientSummary(p, int(len(glucose_mgdl[p])), round(span_ms[p] / 3.6e6, 1),
                                   round(float(m["mean"][k]), 1), targets_missed=missed, **panel))
    return rows


def worst_first(rows: list[PatientSummary]) -> list[PatientSummary]:
    """Who needs attention first: most time below 54 mg/dL, then least time in range."""
    return sorted(rows, key=lambda r: (-r.below_54, r.in_range_70_180))
