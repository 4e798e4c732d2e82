"""Open-loop insulin therapy: a basal rate and carb-ratio meal boluses.

The bolus for a meal is CHO/CR units, plus a correction (G - target)/CF when the patient's
glucose is above ``correct_above_mgdl`` at the time of the bolus (simglucose's
basal-bolus controller, with the interstitial glucose a CGM shows). Boluses can be missed
or given late, with per-meal randomness keyed by (seed, patient, meal).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulators import rng
from simulators.meals import MealEvents


@dataclass(frozen=True)
class Therapy:
    """How every patient of a run doses insulin."""

    basal: str = "steady_state"  # or "none"
    bolus: str = "carb_ratio"  # or "none"
    correction: bool = False
    target_mgdl: float = 140.0
    correct_above_mgdl: float = 150.0
    missed_bolus_prob: float = 0.0
    late_bolus_prob: float = 0.0
    late_bolus_delay_min: tuple[int, int] = (15, 60)

    @property
    def max_delay_min(self) -> int:
        """How far back a meal can be and still have its bolus ahead."""
        return self.late_bolus_delay_min[1] if self.late_bolus_prob > 0 else 0


@dataclass(frozen=True)
class BolusEvents:
    """Boluses sorted by (patient, minute): carb units, plus a correction flag."""

    patient: np.ndarray
    minute: np.ndarray
    units: np.ndarray
    correct: np.ndarray


def meal_boluses(therapy: Therapy, meals: MealEvents, keys: np.ndarray,
                 cr_g_per_u: np.ndarray, seed: int) -> BolusEvents:
    """The boluses these meals call for (all of them, wherever they fall in time)."""
    take = meals.bolus.copy() if therapy.bolus == "carb_ratio" else np.zeros(len(meals.minute), bool)
    k = keys[meals.patient]
    if therapy.missed_bolus_prob > 0:
        take &= rng.uniform(seed, k, rng.BOLUS_MISS, meals.meal_id) >= therapy.missed_bolus_prob
    minute = meals.minute.copy()
    if therapy.late_bolus_prob > 0:
        late = rng.uniform(seed, k, rng.BOLUS_DELAY, 2 * meals.meal_id) < therapy.late_bolus_prob
        lo, hi = therapy.late_bolus_delay_min
        delay = lo + np.floor(rng.uniform(seed, k, rng.BOLUS_DELAY, 2 * meals.meal_id + 1)
                              * (hi - lo + 1)).astype(np.int64)
        minute = np.where(late, minute + delay, minute)
    order = np.lexsort((minute[take], meals.patient[take]))
    return BolusEvents(
        patient=meals.patient[take][order], minute=minute[take][order],
        units=(meals.grams / cr_g_per_u[meals.patient])[take][order],
        correct=np.full(int(take.sum()), therapy.correction, dtype=bool),
    )
