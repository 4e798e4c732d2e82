"""What a window carries besides readings: the treatments and the loop's periods, as Arrow tables.

A shard fills these for sinks that want them (``Sink.wants_treatments``) from the engine's
``Step`` and the scenario's meal plan:

- treatments (``cgm_ray.schema.TREATMENT_SCHEMA``), one row per event, by ``kind``:
  ``meal`` (the carbohydrate eaten, ``carbs_g``, at the meal's start), ``hypo_carbs`` (a hypo
  rescue, ``carbs_g``), ``bolus`` (what the patient dosed, ``insulin_u``; ``correction`` as the
  engine flags it) and ``auto_bolus`` (a closed loop's automatic bolus, ``insulin_u``).
  In open loop a bolus's units are its carb units: the correction the kernel may add is decided
  inside it and not known here, so a correction check with no carb units is not a row. In a
  closed loop the engine's boluses are what the pump delivered, automatic ones included; the
  automatic part of each (patient, minute) is subtracted, and what is left is the patient's.
- loop periods (``LOOP_PERIOD_SCHEMA``, closed loop only), one row per patient and 5-min
  decision period: the CGM value the decision saw, the basal rate the pump ran and the
  scheduled one, the automatic bolus, insulin and carbs on board, and whether the controller
  failed (the scheduled basal ran instead).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from cgm_ray.schema import TREATMENT_SCHEMA
from simulators.closed_loop import Decisions
from simulators.engine import Simulation, Step
from simulators.meals import MealEvents
from simulators.therapy import BolusEvents

TREATMENT_KINDS = ("meal", "hypo_carbs", "bolus", "auto_bolus")
MIN_BOLUS_U = 1e-6  # below this a (patient, minute)'s bolus after subtracting the automatic one is none
_MINUTE_SPAN = 1 << 32  # (patient, minute) keys: patient * span + minute

LOOP_PERIOD_SCHEMA = pa.schema([
    pa.field("patient_id", pa.string(), nullable=False),
    pa.field("ts_ms", pa.int64(), nullable=False),  # the period's start, epoch ms UTC
    pa.field("glucose_mgdl", pa.float64()),  # the CGM value the decision saw (null: none)
    pa.field("basal_u_per_h", pa.float64(), nullable=False),  # the rate the pump ran
    pa.field("scheduled_basal_u_per_h", pa.float64(), nullable=False),
    pa.field("auto_bolus_u", pa.float64(), nullable=False),
    pa.field("iob_u", pa.float64(), nullable=False),  # net of the scheduled basal
    pa.field("cob_g", pa.float64(), nullable=False),
    pa.field("fallback", pa.bool_(), nullable=False),  # the controller failed: scheduled basal
])


def _rows(names: np.ndarray, patient: np.ndarray, minute: np.ndarray, start_ms: int, kind: str,
          carbs_g: np.ndarray | None = None, insulin_u: np.ndarray | None = None,
          correction: np.ndarray | None = None) -> pa.Table:
    n = len(patient)
    return pa.table({
        "patient_id": pa.array(names[patient], pa.string()),
        "ts_ms": pa.array(start_ms + minute * 60_000, pa.int64()), "kind": pa.array([kind] * n),
        "carbs_g": pa.nulls(n, pa.float64()) if carbs_g is None else pa.array(carbs_g, pa.float64()),
        "insulin_u": (pa.nulls(n, pa.float64()) if insulin_u is None
                      else pa.array(insulin_u, pa.float64())),
        "correction": pa.nulls(n, pa.bool_()) if correction is None else pa.array(correction, pa.bool_()),
    }, schema=TREATMENT_SCHEMA)


def split_automatic(delivered: BolusEvents, decisions: Decisions) -> tuple[BolusEvents, BolusEvents]:
    """A closed loop's delivered boluses as (the patients' own, the automatic ones), summed per
    (patient, minute); the automatic ones are given at the start of their period."""
    key = delivered.patient * _MINUTE_SPAN + delivered.minute
    uniq, inverse = np.unique(key, return_inverse=True)
    own_u = np.bincount(inverse, delivered.units, minlength=len(uniq)).astype(np.float64)
    patient, period = np.nonzero(decisions.auto_bolus_u > 0)
    auto_u = decisions.auto_bolus_u[patient, period]
    auto_minute = decisions.minute[period].astype(np.int64)
    at = np.searchsorted(uniq, patient * _MINUTE_SPAN + auto_minute)
    own_u[at] -= auto_u  # every automatic bolus is among the delivered ones
    keep = own_u > MIN_BOLUS_U
    own = BolusEvents(uniq[keep] // _MINUTE_SPAN, uniq[keep] % _MINUTE_SPAN, own_u[keep],
                      np.zeros(int(keep.sum()), bool))
    auto = BolusEvents(patient.astype(np.int64), auto_minute, auto_u, np.zeros(len(auto_u), bool))
    return own, auto


def window_treatments(step: Step, meals: MealEvents, names: tuple[str, ...], start_ms: int) -> pa.Table:
    """The treatments of one window: ``meals`` eaten in it, the step's rescues and boluses."""
    names_arr = np.asarray(names, dtype=object)
    parts = [_rows(names_arr, meals.patient, meals.minute, start_ms, "meal", carbs_g=meals.grams)]
    if step.rescues is not None:
        r = step.rescues
        parts.append(_rows(names_arr, r.patient, r.minute, start_ms, "hypo_carbs", carbs_g=r.grams))
    if step.boluses is not None:
        own = step.boluses
        if step.decisions is not None:
            own, auto = split_automatic(step.boluses, step.decisions)
            parts.append(_rows(names_arr, auto.patient, auto.minute, start_ms, "auto_bolus",
                               insulin_u=auto.units))
        dosed = own.units > 0
        parts.append(_rows(names_arr, own.patient[dosed], own.minute[dosed], start_ms, "bolus",
                           insulin_u=own.units[dosed], correction=own.correct[dosed]))
    return pa.concat_tables(parts)


def loop_periods(decisions: Decisions, names: tuple[str, ...], scheduled_basal_u_per_h: np.ndarray,
                 start_ms: int) -> pa.Table:
    """A closed loop's decision periods of one window, one row per patient and period."""
    n, periods = decisions.basal_u_per_h.shape
    patient = np.repeat(np.arange(n), periods)
    return pa.table({
        "patient_id": pa.array(np.asarray(names, dtype=object)[patient], pa.string()),
        "ts_ms": pa.array(start_ms + np.tile(decisions.minute, n).astype(np.int64) * 60_000),
        "glucose_mgdl": pa.array(decisions.glucose_mgdl.ravel(), pa.float64(), from_pandas=True),
        "basal_u_per_h": decisions.basal_u_per_h.ravel(),
        "scheduled_basal_u_per_h": scheduled_basal_u_per_h[patient],
        "auto_bolus_u": decisions.auto_bolus_u.ravel(), "iob_u": decisions.iob_u.ravel(),
        "cob_g": decisions.cob_g.ravel(), "fallback": decisions.fallback.ravel(),
    }, schema=LOOP_PERIOD_SCHEMA)


def window_events(step: Step, sim: Simulation, start_ms: int) -> tuple[pa.Table, pa.Table | None]:
    """The treatments and (closed loop) loop periods of the window ``sim`` just advanced through."""
    names = sim.cohort.names
    meals = sim.meals.events(sim.cohort.keys, step.t0, sim.minute)
    loop = (loop_periods(step.decisions, names, sim.loop.schedules.basal_u_per_h, start_ms)
            if step.decisions is not None and sim.loop is not None else None)
    return window_treatments(step, meals, names, start_ms), loop
