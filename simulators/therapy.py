"""Open-loop insulin therapy: a basal rate and carb-ratio meal boluses.

The bolus for a meal is CHO/CR units, plus a correction (G - target)/CF when the patient's
glucose is above ``correct_above_mgdl`` at the time of the bolus (simglucose's
basal-bolus controller, with the interstitial glucose a CGM shows). Boluses can be missed
or given late, with per-meal randomness keyed by (seed, patient, meal).

``BolusHabits`` (drawn per patient by ``simulators.behaviour``) adds each patient's carb
counting error, own missed and late bolus chances, and correction checks after meals.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulators import integrator as kernel
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


# Random streams of the bolus habits (simulators.rng uses 1-10, simulators.behaviour 40/45).


@dataclass(frozen=True, eq=False)
class BolusHabits:
    """Per-patient bolus habits, row i for cohort row i (``simulators.behaviour``).

    The patient boluses for ``estimate = grams * exp(bias + slope * ln(grams / reference)
    + meal_sd * z)`` grams; forgets a meal's bolus with ``missed_prob`` (a snack's, below
    ``snack_below_g``, with ``1 - (1 - missed_prob)^snack_miss_factor``); boluses
    ``late_delay_min`` after the meal starts with ``late_prob``; and with ``check_prob``
    checks glucose ``check_delay_min`` after a main meal, correcting by the therapy's
    (G - target)/CF rule if above its threshold (a zero-unit bolus with ``correct``).
    """

    carb_bias_log: np.ndarray
    carb_meal_sd_log: np.ndarray
    carb_size_slope: np.ndarray
    reference_meal_g: float
    missed_prob: np.ndarray
    late_prob: np.ndarray
    late_delay_min: tuple[int, int]
    snack_below_g: float
    snack_miss_factor: float
    check_prob: np.ndarray
    check_delay_min: tuple[int, int]

    @property
    def max_delay_min(self) -> int:
        """How far back a meal can be and still have a bolus or check ahead."""
        return max(self.late_delay_min[1], self.check_delay_min[1])

    def estimated_grams(self, meals: MealEvents, k: np.ndarray, seed: int) -> np.ndarray:
        """The carbohydrate each meal is counted as."""
        row = meals.patient
        z = rng.normal(seed, k, rng.CARB_COUNT, meals.meal_id)
        log_ratio = (self.carb_bias_log[row] + self.carb_meal_sd_log[row] * z
                     + self.carb_size_slope[row] * np.log(np.maximum(meals.grams, 1.0)
                                                          / self.reference_meal_g))
        return meals.grams * np.exp(log_ratio)


def _delay(seed: int, k: np.ndarray, stream: int, meal_id: np.ndarray,
           lo_hi: tuple[int, int]) -> np.ndarray:
    """A whole number of minutes uniform in [lo, hi], keyed by meal."""
    lo, hi = lo_hi
    u = rng.uniform(seed, k, stream, 2 * meal_id + 1)
    return lo + np.floor(u * (hi - lo + 1)).astype(np.int64)


@dataclass(frozen=True)
class BolusEvents:
    """Boluses sorted by (patient, minute): carb units, plus a correction flag."""

    patient: np.ndarray
    minute: np.ndarray
    units: np.ndarray
    correct: np.ndarray


def _therapy_schedule(therapy: Therapy, meals: MealEvents, k: np.ndarray, seed: int
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Which meals the therapy boluses for (its own miss chance) and when (its own delays)."""
    take = meals.bolus.copy() if therapy.bolus == "carb_ratio" else np.zeros(len(meals.minute), bool)
    if therapy.missed_bolus_prob > 0:
        take &= rng.uniform(seed, k, rng.BOLUS_MISS, meals.meal_id) >= therapy.missed_bolus_prob
    minute = meals.minute.copy()
    if therapy.late_bolus_prob > 0:
        late = rng.uniform(seed, k, rng.BOLUS_DELAY, 2 * meals.meal_id) < therapy.late_bolus_prob
        lo, hi = therapy.late_bolus_delay_min
        delay = lo + np.floor(rng.uniform(seed, k, rng.BOLUS_DELAY, 2 * meals.meal_id + 1)
                              * (hi - lo + 1)).astype(np.int64)
        minute = np.where(late, minute + delay, minute)
    return take, minute


def meal_boluses(therapy: Therapy, meals: MealEvents, keys: np.ndarray,
                 cr_g_per_u: np.ndarray, seed: int, habits: BolusHabits | None = None
                 ) -> BolusEvents:
    """The boluses these meals call for (all of them, wherever they fall in time)."""
    k = keys[meals.patient]
    take, minute = _therapy_schedule(therapy, meals, k, seed)
    if habits is not None:
        return _habitual_boluses(therapy, meals, k, cr_g_per_u, seed, habits, take, minute)
    order = np.lexsort((minute[take], meals.patient[take]))
    return BolusEvents(
        patient=meals.patient[take][order], minute=minute[take][order],
        units=(meals.grams / cr_g_per_u[meals.patient])[take][order],
        correct=np.full(int(take.sum()), therapy.correction, dtype=bool),
    )


@dataclass(frozen=True)
class HypoTreatment:
    """How patients treat a low: the ADA 15-15 rule, with a sleeper's delay and over-treating.

    Below ``below_mgdl`` (interstitial glucose, what the CGM shows) the patient takes
    ``rescue_g`` of fast carbohydrate, re-checks after ``recheck_min`` and repeats (ADA
    Standards of Care; ReplayBG's default handler: 15 g when G < 70 and no treatment in the
    last 15 min). With probability ``overtreat_prob`` a rescue is ``overtreat_g`` instead, a
    GUESS: over-treatment is common but no rate is given in shared/docs. Between
    ``night_min`` (clock minutes, 0 = midnight; 23:00-07:00) the patient is asleep and acts
    a per-patient delay later, drawn once uniformly from ``night_delay_min`` (a GUESS, the
    brief's 0-60 min); they stay awake ``awake_after_rescue_min`` after a rescue. The
    default ``below_mgdl = 0`` turns it off (bit-identical to a run without it); the ADA rule
    is ``HypoTreatment(below_mgdl=70)``. ``rows`` gives the per-patient behaviour rows the
    kernel reads (columns in ``simulators.integrator``), which a behaviour config may edit
    per patient before the simulation starts.
    """

    below_mgdl: float = 0.0
    rescue_g: float = 15.0
    recheck_min: int = 15
    overtreat_prob: float = 0.3
    overtreat_g: float = 30.0
    night_min: tuple[int, int] = (23 * 60, 7 * 60)
    night_delay_min: tuple[int, int] = (0, 60)
    awake_after_rescue_min: int = 60

    def rows(self, keys: np.ndarray, seed: int, clock0_min: int = 0) -> np.ndarray:
        """Behaviour rows [N, N_BEHAVIOUR]; ``clock0_min`` is the clock minute of minute 0."""
        n = len(keys)
        rows = np.zeros((n, kernel.N_BEHAVIOUR))
        lo, hi = self.night_delay_min
        draw = rng.uniform(seed, keys, rng.RESCUE_NIGHT_DELAY, 0)
        rows[:, kernel.HYPO_BELOW_MGDL] = self.below_mgdl
        rows[:, kernel.RESCUE_G] = self.rescue_g
        rows[:, kernel.RECHECK_MIN] = self.recheck_min
        rows[:, kernel.OVERTREAT_PROB] = self.overtreat_prob
        rows[:, kernel.OVERTREAT_G] = self.overtreat_g
        rows[:, kernel.NIGHT_DELAY_MIN] = lo + np.floor(draw * (hi - lo + 1))
        rows[:, kernel.NIGHT_START_MIN], rows[:, kernel.NIGHT_END_MIN] = self.night_min
        rows[:, kernel.AWAKE_AFTER_RESCUE_MIN] = self.awake_after_rescue_min
        rows[:, kernel.CLOCK0_MIN] = clock0_min % kernel.MINUTES_PER_DAY
        return rows


def _habitual_boluses(therapy: Therapy, meals: MealEvents, k: np.ndarray,
                      cr_g_per_u: np.ndarray, seed: int, habits: BolusHabits,
                      take: np.ndarray, minute: np.ndarray) -> BolusEvents:
    """``meal_boluses`` with each patient's habits on top of the therapy's own schedule."""
    row = meals.patient
    snack = meals.grams < habits.snack_below_g
    p_miss = habits.missed_prob[row]
    p_miss = np.where(snack, 1.0 - (1.0 - p_miss) ** habits.snack_miss_factor, p_miss)
    take = take & (rng.uniform(seed, k, rng.HABIT_MISS, meals.meal_id) >= p_miss)
    late = rng.uniform(seed, k, rng.HABIT_LATE, 2 * meals.meal_id) < habits.late_prob[row]
    minute = np.where(late, minute + _delay(seed, k, rng.HABIT_LATE, meals.meal_id,
                                            habits.late_delay_min), minute)
    units = habits.estimated_grams(meals, k, seed) / cr_g_per_u[row]
    # Correction checks after main meals, whether or not the meal was bolused.
    check = (~snack) & (therapy.bolus == "carb_ratio") & (
        rng.uniform(seed, k, rng.CORRECTION_CHECK, 2 * meals.meal_id) < habits.check_prob[row])
    check_minute = meals.minute + _delay(seed, k, rng.CORRECTION_CHECK, meals.meal_id,
                                         habits.check_delay_min)
    if therapy.correction:  # a bolus that corrects anyway makes a check in its minute moot
        def at(rows: np.ndarray, minutes: np.ndarray) -> np.ndarray:
            return rows.astype(np.int64) * (1 << 40) + (minutes - meals.minute.min(initial=0))
        check &= ~np.isin(at(row, check_minute), at(row[take], minute[take]))
    patient = np.concatenate([row[take], row[check]])
    minute = np.concatenate([minute[take], check_minute[check]])
    units = np.concatenate([units[take], np.zeros(int(check.sum()))])
    correct = np.concatenate([np.full(int(take.sum()), therapy.correction, dtype=bool),
                              np.ones(int(check.sum()), dtype=bool)])
    order = np.lexsort((minute, patient))
    return BolusEvents(patient=patient[order], minute=minute[order], units=units[order],
                       correct=correct[order])
