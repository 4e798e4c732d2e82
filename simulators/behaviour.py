"""How virtual patients behave: carb counting, bolus habits, meal habits, insulin sensitivity.

The UVA/Padova patients of the 2008 simulator count every carb exactly, bolus on time, eat
on schedule and keep one insulin sensitivity all day, so a titrated cohort spends ~85-95 %
of its time in range where real open-loop type 1 diabetes reaches 45-65 % (adults) with a
CV of 33-45 % (shared/docs/realism-and-control.md). This module gives each patient habits
drawn from published distributions:

- carb counting: a per-patient bias plus per-meal noise on log(estimate/true), larger
  meals underestimated more (adults; Roversi et al., DTT 2020, doi:10.1089/dia.2019.0502;
  median -28 %, IQR -50 to 0 %, doi:10.1055/a-1493-2324) and youth within +-20 % for 67 %
  of meals (Deeb et al., JDST 2017, doi:10.1177/1932296816679850);
- missed and late meal boluses by age group (Chase et al., Diabetes Care 2006;29:1012 --
  cited as Burdick 2006 in realism-and-control.md; Olinder et al., Pediatr Diabetes 2009;
  smart-pen data of 22,964 adults, Diabetes 2024;73(Suppl 1):843-P);
- meal habits: a personal meal-time shift, portion size and snacking propensity
  (``simulators.meals.MealHabits``);
- programmed basal rates that miss the patient's need (``basal_scale``);
- occasional correction boluses when high, 2-3 h after a meal (the kernel's correction
  bolus, ``simulators.therapy.BolusHabits``);
- insulin sensitivity that varies within the day (a dawn dip and three personal
  meal-window levels; Hinshaw et al., Diabetes 2013; Visentin et al., JDST 2018, S2017)
  and from day to day.

Everything is a pure function of (seed, patient key[, meal, day]) through
``simulators.rng``, so a patient behaves the same alone, in a shard, in any chunking and
after a checkpoint. ``preset: ideal`` switches all of it off and reproduces the
deterministic simulator bit for bit (the engine then takes exactly its old path).

Measured with the scenario defaults (S2013 counter-regulation, lows treated, exercise;
600 sampled patients x 14 days, CGM readings; population/scenario seeds 2026/7 and 99/3;
``notebooks/04_population_validation.ipynb``), medians by age group:

    group        TIR 70-180   TBR<70     TBR<54     TAR>250      CV
    adults       58.1 / 57.2  2.5 / 2.5  0.9 / 1.1   9.3 / 9.6   33.4 / 33.9
    adolescents  46.6 / 43.3  1.6 / 1.5  0.5 / 0.5  23.7 / 25.4  37.0 / 37.4
    children     48.6 / 49.8  2.9 / 2.8  1.0 / 1.0  25.5 / 21.8  42.9 / 43.6

against 97.6 / 80.1 / 79.5 % TIR with ``ideal`` (targets, realism-and-control.md: adults
45-65 %, adolescents lower, children 49-61 %, CV 33-45 %); no patient-day has a run of 4 h
below 54 mg/dL. The carb-counting and
bolus draws match their sources (``tests/test_behaviour.py``): adults median -27 %, IQR
-48..+4 %, meals >= 70 g -33 %; youth 68 % of meals within +-20 %; adolescents 4.4
missed boluses a week, 41 % of them missing > 15 %.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import Field, field_validator
from scipy.special import betaincinv

from cgm_ray.config import Strict
from simulators import rng
from simulators.meals import MealHabits, MealPlan, RandomDailyMeals
from simulators.therapy import BolusHabits

# Random streams of this module (simulators.rng uses 1-10; bolus streams 41-44 live in
# simulators.therapy). Counters: a parameter index for per-patient draws, the day for
# day-to-day sensitivity.

SENSITIVITY_STEP_MIN = 60  # insulin sensitivity is constant over each simulated hour
MINUTES_PER_DAY = 1440

# Columns of each model's parameter row that insulin sensitivity scales: insulin-dependent
# glucose utilisation (Vmx) and insulin suppression of endogenous glucose production (kp3)
# for UVA/Padova; the insulin action gain p3 for Bergman.
SENSITIVITY_PARAMS = {"uva_padova": ("Vmx", "kp3"), "uva_padova_s2013": ("Vmx", "kp3"),
                      "bergman": ("p3",)}


class ByAge(Strict):
    """One value per age group (``simulators.population.AGE_GROUPS``)."""

    child: float
    adolescent: float
    adult: float

    def of(self, groups: tuple[str, ...]) -> np.ndarray:
        return np.array([getattr(self, g) for g in groups], dtype=np.float64)


class _AgeOverride(Strict):
    """Some age groups' values; the others keep the preset's."""

    child: float | None = None
    adolescent: float | None = None
    adult: float | None = None


class _AgeProbOverride(_AgeOverride):
    child: float | None = Field(None, ge=0, lt=1)
    adolescent: float | None = Field(None, ge=0, lt=1)
    adult: float | None = Field(None, ge=0, lt=1)


class Behaviour(Strict):
    """The ``behaviour`` section of a scenario: a preset plus any of its fields overridden.

    Every field left out takes the preset's value; ``ByAge`` fields may override single
    age groups (``missed_bolus_mean: {adolescent: 0.25}``). Field meanings, units and
    sources are in ``REALISTIC``'s comments.
    """

    preset: Literal["realistic", "ideal"] = "realistic"
    carb_error_median_pct: _AgeOverride | None = None
    carb_error_patient_sd_log: _AgeOverride | None = None
    carb_error_meal_sd_log: _AgeOverride | None = None
    carb_error_size_slope: _AgeOverride | None = None
    missed_bolus_mean: _AgeProbOverride | None = None
    late_bolus_mean: _AgeProbOverride | None = None
    correction_check_mean: _AgeProbOverride | None = None
    basal_error_median_pct: _AgeOverride | None = None
    basal_error_sd_log: float | None = Field(None, ge=0, le=1)
    habit_concentration: float | None = Field(None, gt=0)
    snack_miss_factor: float | None = Field(None, ge=1)
    late_bolus_delay_min: tuple[int, int] | None = None
    correction_check_delay_min: tuple[int, int] | None = None
    meal_time_shift_sd_min: float | None = Field(None, ge=0, le=120)
    portion_sd_log: float | None = Field(None, ge=0, le=1)
    meal_grams_sd_scale: float | None = Field(None, ge=0, le=5)
    snack_rate_sd_log: float | None = Field(None, ge=0, le=2)
    dawn_sensitivity_drop_log: float | None = Field(None, ge=0, le=1)
    dawn_sensitivity_sd_log: float | None = Field(None, ge=0, le=1)
    window_sensitivity_sd_log: float | None = Field(None, ge=0, le=1)
    day_sensitivity_sd_log: float | None = Field(None, ge=0, le=1)
    exercise_per_week: _AgeOverride | None = None
    hypo_below_mgdl: float | None = Field(None, ge=0, le=120, description="0: lows untreated")
    hypo_overtreat_prob: float | None = Field(None, ge=0, le=1)

    @field_validator("late_bolus_delay_min", "correction_check_delay_min")
    @classmethod
    def _ordered(cls, v: tuple[int, int] | None) -> tuple[int, int] | None:
        if v is not None and not 0 <= v[0] <= v[1] <= 1440:
            raise ValueError("must be [low, high] with 0 <= low <= high <= 1440")
        return v

    @field_validator("carb_error_median_pct", "basal_error_median_pct")
    @classmethod
    def _above_minus_100(cls, v: _AgeOverride | None) -> _AgeOverride | None:
        if v is not None and any(x is not None and x <= -100 for x in v.model_dump().values()):
            raise ValueError("a median error must be above -100 %")
        return v

    def params(self) -> BehaviourParams:
        """The preset with this section's overrides applied."""
        base = IDEAL if self.preset == "ideal" else REALISTIC
        changes = {}
        for name in BehaviourParams.__dataclass_fields__:
            value = getattr(self, name, None)
            if value is None:
                continue
            current = getattr(base, name)
            if isinstance(current, ByAge):
                value = current.model_copy(update=value.model_dump(exclude_none=True))
            changes[name] = value
        return _replace(base, **changes)


@dataclass(frozen=True)
class BehaviourParams:
    """Population-level behaviour: the distributions each patient's habits are drawn from."""

    carb_error_median_pct: ByAge  # median of estimate/true - 1 for a REFERENCE_MEAL_G meal
    carb_error_patient_sd_log: ByAge  # SD of the per-patient bias of log(estimate/true)
    carb_error_meal_sd_log: ByAge  # SD of the per-meal noise of log(estimate/true)
    carb_error_size_slope: ByAge  # d log(estimate/true) / d log(grams)
    missed_bolus_mean: ByAge  # mean per-patient chance a main meal's bolus is forgotten
    late_bolus_mean: ByAge  # mean per-patient chance a bolus comes after the meal
    correction_check_mean: ByAge  # mean per-patient chance of a check 2-3 h after a meal
    basal_error_median_pct: ByAge  # programmed / needed basal rate - 1, median
    basal_error_sd_log: float  # its between-patient SD, log scale
    habit_concentration: float  # a + b of the per-patient Beta distributions above
    snack_miss_factor: float  # snack miss chance = 1 - (1 - p)^factor
    late_bolus_delay_min: tuple[int, int]
    correction_check_delay_min: tuple[int, int]
    meal_time_shift_sd_min: float  # SD of a patient's shift of all meal times
    portion_sd_log: float  # SD of a patient's log portion size (meals and snacks)
    meal_grams_sd_scale: float  # multiplies the meal plan's per-meal gram SD
    snack_rate_sd_log: float  # SD of a patient's log snacking propensity
    dawn_sensitivity_drop_log: float  # mean dip of log insulin sensitivity at 06:00
    dawn_sensitivity_sd_log: float  # its between-patient SD
    window_sensitivity_sd_log: float  # SD of personal breakfast / lunch / dinner levels
    day_sensitivity_sd_log: float  # SD of the day-to-day log sensitivity
    exercise_per_week: ByAge  # mean sessions a week (per-patient rate log-normal, SD 0.5)
    hypo_below_mgdl: float  # 15-15 rule below this CGM glucose (0: lows go untreated)
    hypo_overtreat_prob: float  # chance a rescue is doubled

    @property
    def ideal(self) -> bool:
        return self == IDEAL


def _replace(p: BehaviourParams, **changes) -> BehaviourParams:
    return BehaviourParams(**{**p.__dict__, **changes})


def _by_age(child: float, adolescent: float, adult: float) -> ByAge:
    return ByAge(child=child, adolescent=adolescent, adult=adult)


REFERENCE_MEAL_G = 50.0  # the meal size the carb-error median refers to
SNACK_BELOW_G = 20.0  # meals smaller than this count as snacks (bolus habits)

IDEAL = BehaviourParams(
    carb_error_median_pct=_by_age(0, 0, 0), carb_error_patient_sd_log=_by_age(0, 0, 0),
    carb_error_meal_sd_log=_by_age(0, 0, 0), carb_error_size_slope=_by_age(0, 0, 0),
    missed_bolus_mean=_by_age(0, 0, 0), late_bolus_mean=_by_age(0, 0, 0),
    correction_check_mean=_by_age(0, 0, 0), basal_error_median_pct=_by_age(0, 0, 0),
    basal_error_sd_log=0.0, habit_concentration=4.8, snack_miss_factor=1.0,
    late_bolus_delay_min=(15, 60), correction_check_delay_min=(120, 180),
    meal_time_shift_sd_min=0.0, portion_sd_log=0.0, meal_grams_sd_scale=1.0,
    snack_rate_sd_log=0.0, dawn_sensitivity_drop_log=0.0, dawn_sensitivity_sd_log=0.0,
    window_sensitivity_sd_log=0.0, day_sensitivity_sd_log=0.0,
    exercise_per_week=_by_age(0, 0, 0), hypo_below_mgdl=0.0, hypo_overtreat_prob=0.0,
)

REALISTIC = BehaviourParams(
    # Carb counting. Adults: log(estimate/true) ~ N(ln 0.72, 0.51^2) pooled over meals
    # gives the median -28 % and IQR -50..0 % of doi:10.1055/a-1493-2324 (74 adults);
    # the variance is split about evenly between a patient's habitual bias and the meal
    # (Roversi 2020 explain a third of it by meal factors). Large meals are
    # underestimated more: -34 % for high-carb meals, i.e. a slope of ~-0.12 in log-log
    # (Roversi 2020). Youth (Deeb 2017, 247 meals of 30 pump users aged 8-18): 67 % of
    # meals within +-20 %, 25.5 % under, 7.7 % over -> N(-0.095, 0.19^2), no size effect
    # (Spearman rho 0.019).
    carb_error_median_pct=_by_age(-9.0, -9.0, -28.0),
    carb_error_patient_sd_log=_by_age(0.10, 0.10, 0.35),
    carb_error_meal_sd_log=_by_age(0.16, 0.16, 0.37),
    carb_error_size_slope=_by_age(0.0, 0.0, -0.12),
    # Missed meal boluses, per-patient chance ~ Beta(mean, concentration 4.8). Adolescents
    # mean 0.15 so that 38 % miss more than 15 % (Olinder 2009) and, with snacks missed
    # more, ~4.7 missed boluses a week on six candidate meals a day (Chase 2006: 4.3-4.9
    # in youth on pumps). Adults 0.10 at meals, 0.19 at snacks (843-P: breakfast 7.5 %,
    # lunch 12.2 %, dinner 11.1 %, snack 19.4 %). Children 0.08: parents give the
    # boluses (assumption: between adults and adolescents was not measured; adherence
    # rises with age in 843-P except where carers dose).
    missed_bolus_mean=_by_age(0.08, 0.15, 0.10),
    # Late boluses (after the meal started, 15-60 min): common in youth, and deliberate in
    # young children whose intake is unpredictable (ISPAD 2022 allows post-meal dosing);
    # 67 % of adults would prefer dosing at or after the meal (Clinical Diabetes
    # 2021;39(4):347). Assumed means: children 0.35, adolescents 0.30, adults 0.20.
    late_bolus_mean=_by_age(0.35, 0.30, 0.20),
    # Chance of checking glucose 2-3 h after a main meal and correcting when above the
    # therapy's correction threshold (simglucose's (G - target)/CF rule, no insulin on
    # board). Assumed means, tuned with the cohort medians in the module docstring; rescue
    # corrections above 250 mg/dL belong to the model's hypo/hyper handling.
    correction_check_mean=_by_age(0.15, 0.10, 0.15),
    # Programmed basal rates: the steady-state rate u2ss (what titration assumes) times a
    # log-normal error. Under-dosing is assumed for adults (fear of hypoglycaemia) and
    # more so for adolescents (doses lagging pubertal insulin resistance: T1D Exchange
    # mean HbA1c 9.3 % at 15-18 years against 7.5-7.9 % after 30, Foster DTT 2019);
    # children's carers are assumed on target. A calibration choice, not a measured
    # distribution: medians -5 % adults, -20 % adolescents, 0 % children, SD 12 %, set
    # with the cohort medians in the module docstring.
    basal_error_median_pct=_by_age(0.0, -20.0, -5.0), basal_error_sd_log=0.12,
    habit_concentration=4.8,
    snack_miss_factor=1.9,  # 843-P: 19.4 % of snacks vs 10.3 % of meals missed
    late_bolus_delay_min=(15, 60),
    correction_check_delay_min=(120, 180),
    # Meal habits: personal meal times within +-1 h of simglucose's means, portions
    # +-15 %, and snacking 0.5-2x as often. Per-meal amounts vary 3x simglucose's SD
    # (10 g on a 45-80 g meal, 12-22 %): a 30 g SD is ~40 % of a meal, as in diet records.
    meal_time_shift_sd_min=30.0, portion_sd_log=0.15, meal_grams_sd_scale=3.0,
    snack_rate_sd_log=0.5,
    # Insulin sensitivity: a dawn dip of ~25 % around 06:00 (dawn phenomenon: basal needs
    # rise 20-30 % in the early morning; S2017 and Hinshaw 2013 find lower sensitivity at
    # breakfast on average but individual patterns), personal breakfast/lunch/dinner
    # levels (SD 20 %) and day-to-day variation (SD 25 %), all log-normal. The SDs are at
    # the upper end of the 15-30 % within-subject variability reported for T1D and were
    # chosen with the cohort medians (module docstring).
    # Day to day, log SD 0.5 (a day's sensitivity within about x0.6-x1.6 of the patient's
    # usual two times in three): with exercise, the adults' median CV reaches the 33 %
    # of real-world data only from about 0.5 (0.25 gave 29 %, measured with the bars of
    # cgm_ray.glucose.outcomes on 600 patients x 14 days).
    dawn_sensitivity_drop_log=0.30, dawn_sensitivity_sd_log=0.15,
    window_sensitivity_sd_log=0.30, day_sensitivity_sd_log=0.50,
    # Hypo treatment: the ADA 15-15 rule (simulators.therapy.HypoTreatment, run inside
    # the kernel on noise-free interstitial glucose) at 68 mg/dL, standing for a CGM low
    # alarm at 70 that sounds a little late; a rescue doubled 30 % of the time (an
    # assumption: over-treatment is common, no published rate), 0-60 min late when asleep.
    hypo_below_mgdl=68.0, hypo_overtreat_prob=0.3,
    # Exercise: sessions a week, an assumption (about three sessions make the 150 min a week
    # that guidelines ask of adults; youth assumed as active), each starting at 16-19 h; see
    # EXERCISE_LOG_SENSITIVITY for the effect.
    exercise_per_week=_by_age(3.0, 3.0, 2.5),
)

# Per-patient draw counters on rng.BEHAVIOUR_PATIENT (fixed: adding a parameter appends one).
(_C_CARB_BIAS, _C_MISSED, _C_LATE, _C_CHECK, _C_SHIFT, _C_PORTION, _C_SNACK, _C_DAWN,
 _C_BREAKFAST, _C_LUNCH, _C_DINNER, _C_BASAL, _C_EXERCISE) = range(13)

# Exercise raises insulin sensitivity in the session's hour and for hours after (log
# factors by hour from the start: x2.0, x1.5, x1.3, then x1.15 for 5 h). An approximation
# of the Breton 2008 model's effect at the hourly resolution of the sensitivity profile,
# not its heart-rate dynamics. Measured (909 sessions, 300 patients x 7 days, plasma
# glucose): -25 mg/dL (SD 86) over the session's hour, -35 (SD 33) against the same
# patient-day without exercise; T1DEXI reports -18 +- 39 mg/dL per aerobic session.
EXERCISE_LOG_SENSITIVITY = np.log(np.array([2.0, 1.5, 1.3, 1.15, 1.15, 1.15, 1.15, 1.15]))
EXERCISE_START_H = (16, 20)  # sessions start at one of these clock hours [lo, hi)

# Centres (h) of the personal sensitivity windows, and the dawn dip's centre and width.
_WINDOW_CENTRES_H = np.array([8.0, 13.0, 19.5])
_DAWN_CENTRE_H, _DAWN_WIDTH_H = 6.0, 1.5


@dataclass(frozen=True)
class PatientBehaviour:
    """Each patient's habits, one row per cohort row (units in the names)."""

    keys: np.ndarray
    carb_bias_log: np.ndarray  # log(estimate/true) of a REFERENCE_MEAL_G meal, median
    carb_meal_sd_log: np.ndarray
    carb_size_slope: np.ndarray
    missed_bolus_prob: np.ndarray  # main meals; snacks 1 - (1 - p)^snack_miss_factor
    late_bolus_prob: np.ndarray
    correction_check_prob: np.ndarray
    meal_time_shift_min: np.ndarray
    portion_scale: np.ndarray
    snack_rate_scale: np.ndarray
    basal_scale: np.ndarray  # programmed / steady-state basal rate
    sensitivity_log_by_hour: np.ndarray  # [N, 24] log insulin-sensitivity factor by hour
    exercise_day_prob: np.ndarray  # chance of a session on a given day
    params: BehaviourParams
    seed: int
    start_minute_of_day: int

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def varies_sensitivity(self) -> bool:
        return bool(np.any(self.sensitivity_log_by_hour != 0)
                    or self.params.day_sensitivity_sd_log > 0 or np.any(self.exercise_day_prob > 0))

    def bolus_habits(self) -> BolusHabits:
        p = self.params
        return BolusHabits(
            carb_bias_log=self.carb_bias_log, carb_meal_sd_log=self.carb_meal_sd_log,
            carb_size_slope=self.carb_size_slope, reference_meal_g=REFERENCE_MEAL_G,
            missed_prob=self.missed_bolus_prob, late_prob=self.late_bolus_prob,
            late_delay_min=p.late_bolus_delay_min, snack_below_g=SNACK_BELOW_G,
            snack_miss_factor=p.snack_miss_factor, check_prob=self.correction_check_prob,
            check_delay_min=p.correction_check_delay_min)

    def meal_plan(self, plan: MealPlan) -> MealPlan:
        """``plan`` with these patients' meal habits (random daily meals only)."""
        if not isinstance(plan, RandomDailyMeals):
            return plan
        return plan.with_habits(MealHabits(
            keys=self.keys, time_shift_min=self.meal_time_shift_min,
            portion_scale=self.portion_scale, snack_rate_scale=self.snack_rate_scale,
            grams_sd_scale=self.params.meal_grams_sd_scale))

    def sensitivity(self, minute: int) -> np.ndarray:
        """Insulin-sensitivity factor [N] of the hour containing simulation ``minute``.

        Constant over each hour [60k, 60k + 60) of simulation time, taken at the hour's
        midpoint: the time-of-day profile interpolated between hours, times a day-to-day
        factor interpolated between the middles of consecutive days.
        """
        mid = (minute // SENSITIVITY_STEP_MIN) * SENSITIVITY_STEP_MIN + SENSITIVITY_STEP_MIN // 2
        clock_min = self.start_minute_of_day + mid
        hour = (clock_min % MINUTES_PER_DAY) / 60.0
        h0 = int(hour) % 24
        frac = hour - int(hour)
        prof = self.sensitivity_log_by_hour
        log_s = (1 - frac) * prof[:, h0] + frac * prof[:, (h0 + 1) % 24]
        sd = self.params.day_sensitivity_sd_log
        if sd > 0:
            pos = clock_min / MINUTES_PER_DAY - 0.5
            d0 = int(np.floor(pos))
            w = pos - d0
            z0 = rng.normal(self.seed, self.keys, rng.SENSITIVITY_DAY, d0)
            z1 = rng.normal(self.seed, self.keys, rng.SENSITIVITY_DAY, d0 + 1)
            log_s = log_s + sd * ((1 - w) * z0 + w * z1)
        return np.exp(log_s + self._exercise_log(clock_min // 60))

    def _exercise_log(self, clock_hour: int) -> np.ndarray:
        """Log sensitivity added by sessions of today and yesterday at absolute clock hour."""
        out = np.zeros(len(self.keys))
        if not np.any(self.exercise_day_prob > 0):
            return out
        lo, hi = EXERCISE_START_H
        for day in (clock_hour // 24 - 1, clock_hour // 24):
            held = rng.uniform(self.seed, self.keys, rng.EXERCISE_DAY, 2 * day) \
                < self.exercise_day_prob
            start = 24 * day + lo + np.floor(
                rng.uniform(self.seed, self.keys, rng.EXERCISE_DAY, 2 * day + 1) * (hi - lo))
            offset = (clock_hour - start).astype(np.int64)
            on = held & (offset >= 0) & (offset < len(EXERCISE_LOG_SENSITIVITY))
            out[on] += EXERCISE_LOG_SENSITIVITY[offset[on]]
        return out

    def table(self) -> dict[str, np.ndarray]:
        """The sampled habits as columns for the patients table."""
        prof = np.exp(self.sensitivity_log_by_hour)
        return {
            "carb_error_median_pct": 100 * (np.exp(self.carb_bias_log) - 1),
            "carb_error_meal_sd_log": self.carb_meal_sd_log,
            "missed_bolus_pct": 100 * self.missed_bolus_prob,
            "late_bolus_pct": 100 * self.late_bolus_prob,
            "correction_check_pct": 100 * self.correction_check_prob,
            "meal_time_shift_min": self.meal_time_shift_min,
            "portion_scale": self.portion_scale,
            "snack_rate_scale": self.snack_rate_scale,
            "basal_error_pct": 100 * (self.basal_scale - 1),
            "insulin_sensitivity_min_pct": 100 * prof.min(axis=1),
            "insulin_sensitivity_max_pct": 100 * prof.max(axis=1),
            "insulin_sensitivity_6h_pct": 100 * prof[:, 6],
            "exercise_per_week": 7 * self.exercise_day_prob,
        }


def _beta(mean: np.ndarray, concentration: float, u: np.ndarray) -> np.ndarray:
    """Beta(mean * c, (1 - mean) * c) quantile ``u``; 0 where the mean is 0."""
    m = np.clip(mean, 1e-9, 1 - 1e-9)
    return np.where(mean > 0, betaincinv(m * concentration, (1 - m) * concentration, u), 0.0)


def draw(params: BehaviourParams, keys: np.ndarray, age_group: tuple[str, ...], seed: int,
         start_minute_of_day: int = 0) -> PatientBehaviour:
    """Each patient's habits; patient j depends only on (seed, keys[j], age_group[j])."""
    keys = np.asarray(keys, dtype=np.int64)
    n = len(keys)
    def u(c: int) -> np.ndarray:
        return rng.uniform(seed, keys, rng.BEHAVIOUR_PATIENT, c)

    def z(c: int) -> np.ndarray:
        return rng.normal(seed, keys, rng.BEHAVIOUR_PATIENT, c)

    g = tuple(age_group)
    p = params
    bias = np.log1p(p.carb_error_median_pct.of(g) / 100.0) \
        + p.carb_error_patient_sd_log.of(g) * z(_C_CARB_BIAS)
    c = p.habit_concentration
    missed = _beta(p.missed_bolus_mean.of(g), c, u(_C_MISSED))
    late = _beta(p.late_bolus_mean.of(g), c, u(_C_LATE))
    check = _beta(p.correction_check_mean.of(g), c, u(_C_CHECK))
    shift = np.clip(p.meal_time_shift_sd_min * z(_C_SHIFT), -120, 120).round()
    portion = np.exp(p.portion_sd_log * z(_C_PORTION))
    snack = np.exp(p.snack_rate_sd_log * z(_C_SNACK))
    basal = np.exp(np.log1p(p.basal_error_median_pct.of(g) / 100.0)
                   + p.basal_error_sd_log * z(_C_BASAL))
    exercise = np.clip(p.exercise_per_week.of(g) / 7.0 * np.exp(0.5 * z(_C_EXERCISE)), 0, 1)
    hours = np.arange(24.0)
    dawn = np.maximum(p.dawn_sensitivity_drop_log + p.dawn_sensitivity_sd_log * z(_C_DAWN), 0.0)
    dist = np.abs((hours - _DAWN_CENTRE_H + 12) % 24 - 12)
    profile = -dawn[:, None] * np.exp(-0.5 * (dist / _DAWN_WIDTH_H) ** 2)[None, :]
    if p.window_sensitivity_sd_log > 0:
        levels = p.window_sensitivity_sd_log * np.stack(
            [z(_C_BREAKFAST), z(_C_LUNCH), z(_C_DINNER)], axis=1)  # [N, 3]
        profile = profile + levels @ _window_weights(hours)
    return PatientBehaviour(
        keys=keys, carb_bias_log=bias, carb_meal_sd_log=p.carb_error_meal_sd_log.of(g),
        carb_size_slope=p.carb_error_size_slope.of(g), missed_bolus_prob=missed,
        late_bolus_prob=late, correction_check_prob=check, meal_time_shift_min=shift,
        portion_scale=portion, snack_rate_scale=snack, basal_scale=basal,
        sensitivity_log_by_hour=np.ascontiguousarray(profile) if n else np.zeros((0, 24)),
        exercise_day_prob=exercise, params=p, seed=seed, start_minute_of_day=start_minute_of_day)


def _window_weights(hours: np.ndarray) -> np.ndarray:
    """[3, 24] weights blending the breakfast, lunch and dinner levels around the clock.

    Each hour belongs to the windows whose centres bracket it, linearly by distance on the
    24-h circle (dinner's level carries through the night to breakfast).
    """
    c = _WINDOW_CENTRES_H
    w = np.zeros((3, len(hours)))
    for k in range(3):
        a, b = c[k], c[(k + 1) % 3]
        span = (b - a) % 24
        t = (hours - a) % 24
        inside = t < span
        w[k, inside] += 1 - t[inside] / span
        w[(k + 1) % 3, inside] += t[inside] / span
    return w
