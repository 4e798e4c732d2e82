"""A simulated population measured as a clinic measures real people: CGM metrics per patient,
medians by age group, and the hypoglycaemia tail.

``population_outcomes`` runs a scenario in process (no Ray) and returns every patient's
consensus metrics from the readings their sensors reported, which is what the published
cohorts in ``cgm_ray.glucose.outcomes`` were measured on. The validation notebook
(``notebooks/04_population_validation.ipynb``) and ``tests/test_realism.py`` use it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cgm_ray.glucose.episodes import long_low_days
from cgm_ray.glucose.grid import NS_PER_MIN, group_readings
from cgm_ray.glucose.metrics import glucose_metrics
from cgm_ray.glucose.outcomes import LONG_LOW_MGDL, LONG_LOW_MIN
from simulators.scenario import Scenario

SUMMARY_METRICS = ("in_range_70_180", "below_70", "below_54", "above_180", "above_250", "cv",
                   "mean", "gmi", "episodes_hypo_l1_per_day", "episodes_hypo_l2_per_day",
                   "episodes_hypo_l1_duration_min", "episodes_hypo_l2_duration_min")


@dataclass(frozen=True)
class PopulationOutcomes:
    """Per-patient metrics (row i is patient i of the scenario) and the long-low tail."""

    patient_id: tuple[str, ...]
    age_group: np.ndarray  # str
    metrics: dict[str, np.ndarray]  # glucose-metrics column -> [N]
    patient_days: np.ndarray  # [N] calendar days with readings
    long_low_days: np.ndarray  # [N] days on which a run >= 4 h below 54 mg/dL starts

    def medians(self) -> dict[tuple[str, str], float]:
        """{(age group, metric): median over that group's patients} for SUMMARY_METRICS."""
        out = {}
        for group in sorted(set(self.age_group.tolist())):
            rows = self.age_group == group
            for name in SUMMARY_METRICS:
                out[(group, name)] = float(np.nanmedian(self.metrics[name][rows]))
        return out

    def quartiles(self, group: str, metric: str) -> tuple[float, float, float]:
        """(25th, 50th, 75th percentile) of ``metric`` in ``group``."""
        values = self.metrics[metric][self.age_group == group]
        q25, q50, q75 = np.nanpercentile(values, [25, 50, 75])
        return float(q25), float(q50), float(q75)

    @property
    def long_low_day_percent(self) -> float:
        """Share of patient-days with a run >= 4 h below 54 mg/dL, in percent."""
        return 100.0 * float(self.long_low_days.sum()) / max(1, int(self.patient_days.sum()))


def population_outcomes(scenario: Scenario, chunk_min: int = 1440) -> PopulationOutcomes:
    """Simulate ``scenario`` and measure every patient from their sensor readings."""
    sim = scenario.build()
    patient, minute, glucose = [], [], []
    for step in sim.run(scenario.duration_min, chunk_min=chunk_min):
        patient.append(step.readings.patient)
        minute.append(step.readings.minute)
        glucose.append(step.readings.glucose_mgdl)
    order_patient = np.concatenate(patient)
    order = np.lexsort((np.concatenate(minute), order_patient))
    time_ns = scenario.start_ms * 1_000_000 + np.concatenate(minute)[order] * NS_PER_MIN
    readings = group_readings(order_patient[order], time_ns,
                              np.concatenate(glucose)[order].astype(np.float64))
    metrics = glucose_metrics(readings)
    days, long_low = long_low_days(readings, LONG_LOW_MGDL, LONG_LOW_MIN)
    rows = np.asarray(readings.ids, dtype=np.int64)  # patients with readings, in cohort order
    n = len(sim)

    def by_patient(values: np.ndarray, fill: float) -> np.ndarray:
        out = np.full(n, fill, dtype=float)
        out[rows] = values
        return out

    return PopulationOutcomes(
        patient_id=sim.cohort.names, age_group=np.asarray(sim.cohort.age_group),
        metrics={k: by_patient(np.asarray(v, dtype=float), np.nan) for k, v in metrics.items()
                 if k != "gri_zone"},
        patient_days=by_patient(days, 0).astype(np.int64),
        long_low_days=by_patient(long_low, 0).astype(np.int64))
