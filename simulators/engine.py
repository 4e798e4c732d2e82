"""The simulation engine: a cohort, its meals, therapy and sensors, advanced in chunks.

``Simulation.advance(n_min)`` integrates every patient over the next ``n_min`` minutes
and returns the sensor readings (and, on request, the per-minute true glucose). State is
a handful of arrays (``state_dict``), so a fleet shard can checkpoint and resume it and
get exactly the readings an uninterrupted run would have produced.

With patient behaviour (``simulators.behaviour``), boluses follow each patient's habits
and insulin sensitivity changes every simulated hour: the kernel's insulin-action
parameters are rescaled at each hour boundary (an ``advance`` across one is split
there). The factor is a pure function of (seed, patient, hour), so chunking, sharding
and checkpoints leave the results unchanged; without behaviour nothing is rescaled.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulators import sensor as sensors
from simulators.behaviour import SENSITIVITY_PARAMS, SENSITIVITY_STEP_MIN, PatientBehaviour
from simulators.closed_loop import ClosedLoop, Decisions
from simulators.controllers.interface import PERIOD_MIN, AidSettings, Controller
from simulators.integrator import (
    CF_MGDL_PER_U,
    CORRECT_ABOVE_MGDL,
    HYPO_BELOW_MGDL,
    LAST_RESCUE_MIN,
    N_HYPO_STATE,
    N_MEAL_STATE,
    NEVER,
    NOT_DUE,
    RESCUE_DUE_MIN,
    TARGET_MGDL,
)
from simulators.meals import MealEvents, MealPlan, window
from simulators.models import PhysiologyModel
from simulators.population import Cohort
from simulators.therapy import BolusEvents, HypoTreatment, Therapy, meal_boluses

DEFAULT_CHUNK_MIN = 60
EVENT_BUFFER_MIN = 1440  # meals and boluses are drawn a simulated day at a time


@dataclass(frozen=True)
class Rescues:
    """Hypo rescues taken (``HypoTreatment``), sorted by (patient row, minute)."""

    patient: np.ndarray  # int64 row in the cohort
    minute: np.ndarray  # int64 simulation minute the carbohydrate was taken
    grams: np.ndarray  # float64 fast carbohydrate

    def __len__(self) -> int:
        return len(self.minute)


@dataclass(frozen=True)
class Step:
    """What one ``advance`` produced: readings, rescues, and the true glucose when traced."""

    t0: int
    readings: sensors.Readings
    gsub_mgdl: np.ndarray | None = None  # [N, n_min] interstitial, start of each minute
    bg_mgdl: np.ndarray | None = None  # [N, n_min] plasma
    rescues: Rescues | None = None  # None when no patient treats lows
    boluses: BolusEvents | None = None  # boluses due in the chunk (carb units; corrections flagged)
    decisions: Decisions | None = None  # the loop's decisions, one per period (closed loop only)


def _csr(patient: np.ndarray, n: int) -> np.ndarray:
    """Row pointers of events sorted by patient."""
    ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(patient, minlength=n), out=ptr[1:])
    return ptr


def _concat(steps: list[Step]) -> Step:
    """Consecutive steps as one (readings and rescues stay sorted by patient, then minute)."""
    parts = [s.readings for s in steps]
    cols = {k: np.concatenate([getattr(r, k) for r in parts]) for k in vars(parts[0])}
    order = np.argsort(cols["patient"], kind="stable")  # merges the time-ordered runs
    readings = type(parts[0])(**{k: v[order] for k, v in cols.items()})
    trace = steps[0].gsub_mgdl is not None
    rescues = None
    if steps[0].rescues is not None:
        found = [s.rescues for s in steps]
        patient = np.concatenate([r.patient for r in found])
        by_patient = np.argsort(patient, kind="stable")
        rescues = Rescues(patient[by_patient],
                          np.concatenate([r.minute for r in found])[by_patient],
                          np.concatenate([r.grams for r in found])[by_patient])
    parts_b = [s.boluses for s in steps]
    cols_b = {k: np.concatenate([getattr(b, k) for b in parts_b]) for k in vars(parts_b[0])}
    by_patient = np.argsort(cols_b["patient"], kind="stable")
    boluses = BolusEvents(**{k: v[by_patient] for k, v in cols_b.items()})
    decisions = Decisions.concat([s.decisions for s in steps]) if steps[0].decisions else None
    return Step(steps[0].t0, readings,
                np.concatenate([s.gsub_mgdl for s in steps], axis=1) if trace else None,
                np.concatenate([s.bg_mgdl for s in steps], axis=1) if trace else None,
                rescues, boluses, decisions)


def _fresh_hypo_state(n: int) -> np.ndarray:
    """Hypo-treatment state [N, N_HYPO_STATE] before any rescue: none taken, none due."""
    state = np.empty((n, N_HYPO_STATE))
    state[:, LAST_RESCUE_MIN] = NEVER
    state[:, RESCUE_DUE_MIN] = NOT_DUE
    return state


class Simulation:
    """N virtual patients wearing CGMs, advanced minute by minute in compiled chunks."""

    def __init__(self, model: PhysiologyModel, cohort: Cohort, meals: MealPlan,
                 therapy: Therapy, sensor: sensors.SensorSpec, seed: int = 0,
                 staggered_sensors: bool = False, substeps: int = 1,
                 hypo_treatment: HypoTreatment = HypoTreatment(),
                 behaviour: PatientBehaviour | None = None, controller: Controller | None = None,
                 aid: AidSettings = AidSettings()) -> None:
        self.model, self.cohort, self.meals = model, cohort, meals
        self.therapy, self.sensor, self.seed, self.substeps = therapy, sensor, seed, substeps
        params = model.build_params(cohort)
        self.params = model.param_matrix(cohort)
        n = len(cohort)
        basal = model.basal_u_per_min(params)
        self.basal_u_per_min = basal if therapy.basal == "steady_state" else np.zeros(n)
        if behaviour is not None:  # the rate the patient has programmed, not the ideal one
            self.basal_u_per_min = self.basal_u_per_min * behaviour.basal_scale
        self.therapy_rows = np.zeros((n, 3))
        self.therapy_rows[:, CF_MGDL_PER_U] = cohort.cf_mgdl_per_u
        self.therapy_rows[:, TARGET_MGDL] = therapy.target_mgdl
        self.therapy_rows[:, CORRECT_ABOVE_MGDL] = therapy.correct_above_mgdl
        # Per-patient hypo-treatment behaviour (simulators.integrator columns); clock minute
        # 0 is midnight unless the meal plan says when the simulation starts.
        clock0 = getattr(meals, "start_minute_of_day", 0)
        self.behaviour_rows = hypo_treatment.rows(cohort.keys, seed, clock0)
        self.hypo_state = _fresh_hypo_state(n)
        self.minute = 0
        self.x = np.array(model.initial_state(cohort), dtype=np.float64, order="C")  # a copy
        self.meal_state = np.zeros((n, N_MEAL_STATE))
        self.sensor_state = sensors.SensorState.new(sensor, cohort.keys, seed, staggered_sensors)
        self._drift = sensors.DriftCache.new(n)  # not state: drawn again after a restore
        self._buffer_lo = self._buffer_hi = 0
        self.behaviour = behaviour
        self._habits = behaviour.bolus_habits() if behaviour is not None else None
        self._sensitivity_cols: list[int] = []
        if behaviour is not None and behaviour.varies_sensitivity:
            names = SENSITIVITY_PARAMS.get(model.name, ())
            self._sensitivity_cols = [model.param_names.index(k) for k in names]
            self._base_params = self.params[:, self._sensitivity_cols].copy()
        self._sensitivity_hour: int | None = None
        self.loop: ClosedLoop | None = None
        if controller is not None and controller.closes_loop:
            self.loop = ClosedLoop(controller, *aid.therapy(
                self.basal_u_per_min * 60.0, cohort.cf_mgdl_per_u, cohort.cr_g_per_u))

    def __len__(self) -> int:
        return len(self.cohort)

    def _events(self, t0: int, t1: int) -> tuple[MealEvents, BolusEvents]:
        """Meals and boluses starting in [t0, t1), from a buffer refilled a day at a time."""
        if not (self._buffer_lo <= t0 and t1 <= self._buffer_hi):
            lo, hi = t0, max(t1, t0 + EVENT_BUFFER_MIN)
            keys, back = self.cohort.keys, self.therapy.max_delay_min
            if self._habits is not None:
                back = max(back, self._habits.max_delay_min) + self.therapy.max_delay_min
            meals = self.meals.events(keys, lo - back, hi)
            boluses = meal_boluses(self.therapy, meals, keys, self.cohort.cr_g_per_u, self.seed,
                                   self._habits)
            self._meal_buffer = window(meals, lo, hi)
            self._bolus_buffer = window(boluses, lo, hi)
            self._buffer_lo, self._buffer_hi = lo, hi
        return window(self._meal_buffer, t0, t1), window(self._bolus_buffer, t0, t1)

    def _next_boundary(self) -> int | None:
        """The next minute a step must stop at: an hour (sensitivity), a decision period (loop)."""
        ends = []
        if self._sensitivity_cols:
            ends.append((self.minute // SENSITIVITY_STEP_MIN + 1) * SENSITIVITY_STEP_MIN)
        if self.loop is not None:
            ends.append((self.minute // PERIOD_MIN + 1) * PERIOD_MIN)
        return min(ends) if ends else None

    def advance(self, n_min: int, trace: bool = False) -> Step:
        """Simulate the next ``n_min`` minutes; return the readings emitted in them."""
        if n_min < 1:
            raise ValueError(f"n_min: must be at least 1, got {n_min}")
        if self.loop is not None and (n_min % PERIOD_MIN or self.minute % PERIOD_MIN):
            raise ValueError(f"n_min: a closed loop advances whole {PERIOD_MIN}-min decision periods "
                             f"(at minute {self.minute}, asked for {n_min})")
        end = self.minute + n_min
        boundary = self._next_boundary()
        if boundary is not None and end > boundary:
            steps = []
            while self.minute < end:
                steps.append(self._advance_piece(min(end, self._next_boundary()) - self.minute, trace))
            return _concat(steps)
        return self._advance_piece(n_min, trace)

    def _advance_piece(self, n_min: int, trace: bool) -> Step:
        """Advance within one hour of sensitivity and (closed loop) one decision period."""
        if self._sensitivity_cols:
            self._scale_sensitivity()
        t0, n = self.minute, len(self)
        meals, bol = self._events(t0, t0 + n_min)
        basal_u_per_min = self.basal_u_per_min
        if self.loop is not None:
            basal_u_per_min, bol = self.loop.start_period(t0, bol, self.therapy_rows)
        gsub = np.empty((n, n_min))
        bg = np.empty((n, n_min))
        treats = bool((self.behaviour_rows[:, HYPO_BELOW_MGDL] > 0).any())
        rescue_g = np.zeros((n, n_min) if treats else (n, 0))  # written only on a rescue
        self.model.advance(
            self.x, self.params, self.meal_state, self.therapy_rows, basal_u_per_min,
            t0, n_min, self.substeps, _csr(meals.patient, n), meals.minute, meals.grams,
            _csr(bol.patient, n), bol.minute, bol.units, bol.correct, self.behaviour_rows,
            self.hypo_state, self.cohort.keys, self.seed, gsub, bg, rescue_g)
        readings = sensors.sample(self.sensor, self.sensor_state, gsub, t0, self.cohort.keys,
                                  self.seed, self._drift)
        rescues = None
        if treats:
            patient, minute = np.nonzero(rescue_g)
            rescues = Rescues(patient, t0 + minute, rescue_g[patient, minute])
        decisions = self.loop.end_period(readings, bol) if self.loop is not None else None
        self.minute += n_min
        return Step(t0, readings, gsub if trace else None, bg if trace else None, rescues, bol,
                    decisions)

    def _scale_sensitivity(self) -> None:
        """Set the insulin-action parameters to this hour's sensitivity of each patient."""
        hour = self.minute // SENSITIVITY_STEP_MIN
        if hour != self._sensitivity_hour:
            factor = self.behaviour.sensitivity(self.minute)
            self.params[:, self._sensitivity_cols] = self._base_params * factor[:, None]
            self._sensitivity_hour = hour

    def run(self, n_min: int, chunk_min: int = DEFAULT_CHUNK_MIN, trace: bool = False):
        """Advance ``n_min`` minutes in chunks, yielding each chunk's ``Step``."""
        end = self.minute + n_min
        while self.minute < end:
            yield self.advance(min(chunk_min, end - self.minute), trace=trace)

    def state_dict(self) -> dict[str, np.ndarray | int]:
        """Everything that changes as the simulation runs (for checkpoints)."""
        s = self.sensor_state
        loop = self.loop.state_dict() if self.loop is not None else {}
        return {"minute": self.minute, "x": self.x.copy(), "meal_state": self.meal_state.copy(),
                "hypo_state": self.hypo_state.copy(),
                **{f"sensor_{k}": v.copy() for k, v in vars(s).items()},
                **{f"loop_{k}": v for k, v in loop.items()}}

    def load_state_dict(self, state: dict[str, np.ndarray | int]) -> None:
        """Resume from ``state_dict()``'s output."""
        self.minute = int(state["minute"])
        self.x = np.array(state["x"], dtype=np.float64)
        self.meal_state = np.array(state["meal_state"], dtype=np.float64)
        # Checkpoints from before hypo treatment existed carry no hypo state: none pending.
        self.hypo_state = (np.array(state["hypo_state"], dtype=np.float64)
                           if "hypo_state" in state else _fresh_hypo_state(len(self)))
        self.sensor_state = sensors.SensorState(
            **{k: np.array(state[f"sensor_{k}"]) for k in vars(self.sensor_state)})
        if self.loop is not None:
            self.loop.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("loop_")})
