"""Meal schedules: fixed lists and seeded random daily meals, as flat event arrays.

A plan answers "which meals start in minutes [t0, t1)?" for any window, so the engine can
run indefinitely (a fleet) in chunks. Random meals are a pure function of
(seed, patient key, day), hence independent of chunking and sharding.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Protocol, TypeVar

import numpy as np
from scipy.special import ndtr, ndtri

from simulators import rng

MINUTES_PER_DAY = 1440


@dataclass(frozen=True)
class MealEvents:
    """Meal starts sorted by (patient row, minute); ``meal_id`` keys per-meal randomness."""

    patient: np.ndarray  # int64 row in the cohort
    minute: np.ndarray  # int64 simulation minute the meal starts
    grams: np.ndarray  # float64 carbohydrate, eaten at 5 g/min
    bolus: np.ndarray  # bool: the patient boluses for it
    meal_id: np.ndarray  # int64 unique per patient

    @staticmethod
    def concat(parts: list[MealEvents]) -> MealEvents:
        """Merge event sets and sort by (patient, minute)."""
        cols = {f: np.concatenate([getattr(p, f) for p in parts]) for f in
                ("patient", "minute", "grams", "bolus", "meal_id")}
        order = np.lexsort((cols["minute"], cols["patient"]))
        return MealEvents(**{k: v[order] for k, v in cols.items()})


E = TypeVar("E")


def window(events: E, t0: int, t1: int) -> E:
    """The events (arrays sorted by patient, then minute) whose minute is in [t0, t1)."""
    sel = (events.minute >= t0) & (events.minute < t1)
    return type(events)(**{k: v[sel] for k, v in vars(events).items()})


class MealPlan(Protocol):
    """Anything that lists the meals starting in a window."""

    def events(self, keys: np.ndarray, t0: int, t1: int) -> MealEvents: ...


@dataclass(frozen=True)
class FixedMeals:
    """The same meals for every patient, at minute offsets from the start."""

    minute: tuple[int, ...]
    grams: tuple[float, ...]
    bolus: tuple[bool, ...]

    def events(self, keys: np.ndarray, t0: int, t1: int) -> MealEvents:
        minute = np.asarray(self.minute, dtype=np.int64)
        sel = np.flatnonzero((minute >= t0) & (minute < t1))  # meal list order
        n = len(keys)
        return MealEvents(
            patient=np.repeat(np.arange(n, dtype=np.int64), len(sel)),
            minute=np.tile(minute[sel], n), grams=np.tile(np.asarray(self.grams)[sel], n),
            bolus=np.tile(np.asarray(self.bolus, dtype=bool)[sel], n),
            meal_id=np.tile(sel.astype(np.int64), n),
        )


@dataclass(frozen=True, eq=False)
class MealHabits:
    """Per-patient eating habits layered on random daily meals (``simulators.behaviour``).

    Row i belongs to the patient with key ``keys[i]``; the plan answers for any of these
    keys (a patient's meals do not depend on who else is asked about). A patient eats
    every meal ``time_shift_min`` later (earlier if negative) than simglucose's times,
    portions scaled by ``portion_scale``, takes the optional snacks (slots with
    probability < 0.5) ``snack_rate_scale`` times as often, and meal amounts vary
    ``grams_sd_scale`` times as much as simglucose's SDs.
    """

    keys: np.ndarray
    time_shift_min: np.ndarray  # int-valued, bounded to +-120 min
    portion_scale: np.ndarray
    snack_rate_scale: np.ndarray
    grams_sd_scale: float = 1.0

    def of(self, keys: np.ndarray) -> MealHabits:
        """The habits of the patients ``keys`` (any of ours, in any order)."""
        if np.array_equal(keys, self.keys):
            return self
        order = np.argsort(self.keys, kind="stable")
        pos = np.minimum(np.searchsorted(self.keys[order], keys), len(order) - 1)
        rows = order[pos]
        if len(rows) and not np.array_equal(self.keys[rows], keys):
            raise ValueError("meal habits asked for patients they do not describe")
        return MealHabits(keys=self.keys[rows], time_shift_min=self.time_shift_min[rows],
                          portion_scale=self.portion_scale[rows],
                          snack_rate_scale=self.snack_rate_scale[rows],
                          grams_sd_scale=self.grams_sd_scale)


@dataclass(frozen=True)
class RandomDailyMeals:
    """simglucose's RandomScenario: six candidate meals a day (shared/docs/cgm-domain.md).

    With ``habits`` each patient's meals follow its own habits; a shifted meal may fall
    into the neighbouring day, so the neighbouring days are drawn too.
    """

    seed: int
    start_minute_of_day: int = 0  # time of day at simulation minute 0
    probability: tuple[float, ...] = (0.95, 0.3, 0.95, 0.3, 0.95, 0.3)
    time_mean_h: tuple[float, ...] = (7, 9.5, 12, 15, 18, 21.5)
    time_sd_min: tuple[float, ...] = (60, 30, 60, 30, 60, 30)
    time_lo_h: tuple[float, ...] = (5, 9, 10, 14, 16, 20)
    time_hi_h: tuple[float, ...] = (9, 10, 14, 16, 20, 23)
    grams_mean: tuple[float, ...] = (45, 10, 70, 10, 80, 10)
    grams_sd: tuple[float, ...] = (10, 5, 10, 5, 10, 5)
    habits: MealHabits | None = None

    def with_habits(self, habits: MealHabits) -> RandomDailyMeals:
        return replace(self, habits=habits)

    def events(self, keys: np.ndarray, t0: int, t1: int) -> MealEvents:
        first_day = (t0 + self.start_minute_of_day) // MINUTES_PER_DAY
        last_day = (t1 - 1 + self.start_minute_of_day) // MINUTES_PER_DAY
        habits = None
        if self.habits is not None:
            habits = self.habits.of(keys)
            first_day, last_day = first_day - 1, last_day + 1
        parts = [self._day(keys, day, habits) for day in range(first_day, last_day + 1)]
        return window(MealEvents.concat(parts), t0, t1)

    def _day(self, keys: np.ndarray, day: int, habits: MealHabits | None = None) -> MealEvents:
        n, slots = len(keys), len(self.probability)
        counter = (day * 8 + np.arange(slots))[None, :]
        k = keys[:, None]
        probability = np.asarray(self.probability)
        if habits is not None:
            snack = probability < 0.5
            scaled = np.minimum(probability * habits.snack_rate_scale[:, None], 1.0)
            probability = np.where(snack, scaled, probability)
        present = rng.uniform(self.seed, k, rng.MEAL_PRESENT, counter) < probability
        mean = np.asarray(self.time_mean_h) * 60
        sd = np.asarray(self.time_sd_min)
        lo = ndtr((np.asarray(self.time_lo_h) * 60 - mean) / sd)
        hi = ndtr((np.asarray(self.time_hi_h) * 60 - mean) / sd)
        u = rng.uniform(self.seed, k, rng.MEAL_TIME, counter)
        minute_of_day = np.round(mean + sd * ndtri(lo + u * (hi - lo))).astype(np.int64)
        z = rng.normal(self.seed, k, rng.MEAL_AMOUNT, counter)
        if habits is None:
            grams = np.maximum(np.round(np.asarray(self.grams_mean)
                                        + np.asarray(self.grams_sd) * z), 0)
        else:
            minute_of_day = minute_of_day + habits.time_shift_min[:, None].astype(np.int64)
            sd = habits.grams_sd_scale * np.asarray(self.grams_sd)
            grams = np.maximum(np.round(habits.portion_scale[:, None]
                                        * (np.asarray(self.grams_mean) + sd * z)), 0)
        present &= grams > 0
        minute = day * MINUTES_PER_DAY - self.start_minute_of_day + minute_of_day
        rows = np.broadcast_to(np.arange(n, dtype=np.int64)[:, None], (n, slots))
        return MealEvents(patient=rows[present], minute=minute[present], grams=grams[present],
                          bolus=np.ones(int(present.sum()), dtype=bool),
                          meal_id=np.broadcast_to(counter, (n, slots))[present].astype(np.int64))
