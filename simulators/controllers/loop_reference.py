"""Loop's dosing algorithm in the closed loop, run by Tidepool's PyLoopKit, one patient at a time.

PyLoopKit (https://github.com/tidepool-org/PyLoopKit, BSD-2-Clause, (c) 2019 Tidepool Project) is Tidepool's
Python port of Loop's ``LoopDataManager`` and LoopKit's effects and dose maths, as of Loop
8c1dfdba / LoopKit 57a9f2ba (2019). It is installed as the PyPI sdist ``pyloopkit-test`` 0.0.15 by
``make loop-deps``, with ``--no-deps``: the sdist pins ``numpy==1.16.4``, which does not build on
Python 3.11. PyLoopKit's only numpy use is ``numpy.array``/``argsort`` on lists while sorting
doses, which numpy 2 runs unchanged; ``tests/test_loop_reference.py`` runs ``update()`` end to end
on numpy 2 with warnings as errors. Its other dependency, ``backports-datetime-fromisoformat``, is
imported by ``pyloopkit.loop_math`` for a monkey-patch that version 2.x makes a no-op on 3.11+.

`LoopReference.decide` builds PyLoopKit's input dict from a `LoopInput` (`pyloopkit_inputs`),
calls ``pyloopkit.loop_data_manager.update`` and maps its recommendation to a `LoopOutput`.
The translation, and where it departs from a phone running Loop:

- Time: slot ``k`` of the history is the 5 min ending at minute ``loop.minute - 5 * (71 - k)``.
  Its CGM reading is dated at the slot's end, its bolus and announced carbs at its start (a bolus
  the controller asked for at the previous decision is delivered in the slot that follows it).
  Datetimes are naive, counted from `EPOCH`: PyLoopKit compares naive datetimes, and the pump's
  schedules are flat, so the day and the time zone do not matter.
- Doses: the basal part of each slot (``delivered_u - bolus_u``) is a TempBasal dose at
  ``12 * units`` U/h over the slot; runs of slots at the same rate become one dose, as a pump's
  temp-basal history would have them. PyLoopKit rounds each dose's net units to 0.05 U
  (``net_basal_units``), so a history of 5-min doses at changing rates would lose up to 0.025 U
  per slot. Insulin before the 6-h window counts as the scheduled basal (net zero), as Loop counts
  a gap in pump history; with Loop's 6-h insulin action little of it still acts.
- The running temp (``temp_rate_u_per_h``, ``temp_remaining_min``) is PyLoopKit's
  ``last_temporary_basal``, ending ``temp_remaining_min`` from now: Loop keeps it when it would
  recommend the same rate and more than 11 min remain, and counts its undelivered net insulin as
  pending when it recommends a bolus. Its start is not in the seam; Loop reads only rate and end.
- Stale data: Loop refuses to dose when the newest glucose is older than 15 min (its input-data
  recency interval); PyLoopKit's ``update`` has no such check, so this adapter makes it.
- A cancel (PyLoopKit's ``[0, 0]``: the scheduled rate is right, stop the running temp) is
  ``CANCEL_TEMP``.
- Loop's default dosing strategy is temp basal only. ``LoopSettings.automatic_bolus`` models
  Loop 3's automatic-bolus strategy on top of this (older) algorithm: temps capped at the
  scheduled rate, and ``partial_application_factor`` of the recommended bolus given at once,
  capped by the headroom below ``limits.max_iob_u``. PyLoopKit itself has no maximum IOB.

It is per-patient Python: ~11 ms a decision when the history is one scheduled-basal run, ~45 ms
with a dose of its own in every slot (measured on one core: ~90 and ~22 patient-decisions/s), so
the vectorised controllers suit cohorts and this one suits checking them on a few patients.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from enum import IntEnum
from importlib import metadata
from typing import Any

import numpy as np

from cgm_ray.errors import ConfigError
from simulators.controllers.interface import CANCEL_TEMP, HISTORY_SLOTS, PERIOD_MIN, LoopInput, LoopOutput

__all__ = ["EPOCH", "N_PREDICTED", "PYLOOPKIT_VERSION", "LoopReason", "LoopReference", "LoopReferenceError",
           "LoopSettings", "pyloopkit_inputs"]

PYLOOPKIT_VERSION = "0.0.15"  # the PyPI sdist `pyloopkit-test`, which `make loop-deps` installs
EPOCH = datetime(2020, 1, 1)  # minute 0 of the simulation, as the naive datetimes PyLoopKit compares
N_PREDICTED = 48  # predicted glucose for 4 h in 5-min ticks (tick 0 is now), as oref0's predBGs
TEMP_DURATION_MIN = 30  # every temp Loop sets runs 30 min (``update``'s ``duration``)
RATE_TOLERANCE_U_PER_H = 1e-6  # slots whose basal rates differ by less form one dose (float noise)

# Loop's fixed defaults (LoopDataManager / LoopSettings), as PyLoopKit's settings dictionary names them
_LOOP_DEFAULTS = {
    "momentum_data_interval": 15,
    "dynamic_carb_absorption_enabled": True,
    "retrospective_correction_integration_interval": 30,
    "recency_interval": 15,
    "retrospective_correction_grouping_interval": 30,
    "insulin_delay": 10,
    "carb_delay": 10,
    "default_absorption_times": [120.0, 180.0, 240.0],  # fast, medium, slow
}
_MIDNIGHT = time(0, 0)


class LoopReferenceError(RuntimeError):
    """PyLoopKit is missing or not the reference version, or it rejected a patient's inputs."""


class LoopReason(IntEnum):
    """What Loop decided for a patient."""

    NO_GLUCOSE = 0  # no CGM reading in the history: leave the pump alone
    STALE_GLUCOSE = 1  # the newest reading is older than the recency interval: leave the pump alone
    KEEP = 2  # the running temp (or the scheduled basal) is what Loop would set
    CANCEL_TEMP = 3  # back to the scheduled rate
    SUSPEND = 4  # a zero temp
    TEMP_BASAL = 5  # a temp at another rate
    BOLUS = 6  # an automatic bolus (with the temp, if Loop set one)


@dataclass(frozen=True)
class LoopSettings:
    """The algorithm's settings that are not the pump's schedules or limits (Loop's defaults).

    ``peak_min``/``dia_h``: Loop's exponential insulin model (rapid-acting adult: 75 min, 6 h;
    child: 65 min). ``carb_absorption_min``: the absorption time of every announced meal
    (Loop's medium, the "taco"). ``dose_increment_u``: PyLoopKit's ``rate_rounder``, the pump's
    step (temp rates round to it in U/h, boluses in U); without it a rate never equals the
    scheduled one exactly and Loop would set a new temp every time. ``recency_min``: how old the
    newest glucose may be for Loop to dose.
    """

    peak_min: float = 75.0
    dia_h: float = 6.0
    carb_absorption_min: float = 180.0
    retrospective_correction: bool = True
    dose_increment_u: float = 0.05
    recency_min: float = 15.0
    automatic_bolus: bool = False
    partial_application_factor: float = 0.4

    def __post_init__(self) -> None:
        # PyLoopKit's own bounds (input_validation_tools.are_settings_valid)
        if not 0 < self.dia_h <= 24:
            raise ConfigError("loop.dia_h", f"must be in (0, 24] hours, got {self.dia_h}")
        if not 0 < self.peak_min <= 120 or self.peak_min >= self.dia_h * 60:
            raise ConfigError("loop.peak_min",
                              f"must be in (0, 120] min and below dia_h, got {self.peak_min}")
        if not 0 < self.carb_absorption_min <= 1440:
            raise ConfigError("loop.carb_absorption_min",
                              f"must be in (0, 1440] min, got {self.carb_absorption_min}")
        if not 0 < self.dose_increment_u <= 1:
            raise ConfigError("loop.dose_increment_u", f"must be in (0, 1] U, got {self.dose_increment_u}")
        if not self.recency_min >= PERIOD_MIN:
            raise ConfigError("loop.recency_min", f"must be >= {PERIOD_MIN} min, got {self.recency_min}")
        if not 0 < self.partial_application_factor <= 1:
            raise ConfigError("loop.partial_application_factor",
                              f"must be in (0, 1], got {self.partial_application_factor}")


def _pyloopkit() -> tuple[Callable[[dict], Any], Any]:
    """PyLoopKit's ``update`` and ``DoseType``, or a `LoopReferenceError` saying how to install them."""
    try:
        from pyloopkit.dose import DoseType
        from pyloopkit.loop_data_manager import update
    except ImportError as e:
        raise LoopReferenceError(
            f"PyLoopKit cannot be imported ({e}): run `make loop-deps` (pip install --no-deps "
            f"pyloopkit-test=={PYLOOPKIT_VERSION} backports-datetime-fromisoformat)") from e
    return update, DoseType


def pyloopkit_inputs(loop: LoopInput, i: int, settings: LoopSettings) -> dict:
    """Patient ``i``'s decision as PyLoopKit's ``update`` input dict (see the module docstring).

    Patient ``i`` must have at least one CGM reading (`LoopReference.decide` checks).
    """
    _, dose_type = _pyloopkit()
    now = EPOCH + timedelta(minutes=loop.minute)
    slot_end = [now - timedelta(minutes=PERIOD_MIN * (HISTORY_SLOTS - 1 - k)) for k in range(HISTORY_SLOTS)]
    slot_start = [t - timedelta(minutes=PERIOD_MIN) for t in slot_end]

    cgm = loop.cgm_mgdl[i]
    readings = np.flatnonzero(np.isfinite(cgm))

    bolus_u = loop.bolus_u[i]
    rate_u_per_h = np.maximum(loop.delivered_u[i] - bolus_u, 0.0) * (60 / PERIOD_MIN)
    firsts = np.flatnonzero(np.r_[True, np.abs(np.diff(rate_u_per_h)) > RATE_TOLERANCE_U_PER_H])
    lasts = np.r_[firsts[1:], HISTORY_SLOTS] - 1
    run_rates = np.add.reduceat(rate_u_per_h, firsts) / (lasts - firsts + 1)
    boluses = np.flatnonzero(bolus_u > 0)
    n_runs = len(firsts)
    dose_types = [dose_type.tempbasal] * n_runs + [dose_type.bolus] * len(boluses)
    dose_starts = [slot_start[k] for k in firsts] + [slot_start[k] for k in boluses]
    dose_ends = [slot_end[k] for k in lasts] + [slot_start[k] for k in boluses]
    dose_values = run_rates.tolist() + bolus_u[boluses].tolist()

    carbs_g = loop.announced_carbs_g[i]
    meals = np.flatnonzero(carbs_g > 0)

    last_temp = None
    if loop.temp_remaining_min[i] > 0:
        last_temp = [dose_type.tempbasal, now, now + timedelta(minutes=float(loop.temp_remaining_min[i])),
                     float(loop.temp_rate_u_per_h[i])]

    schedules, limits = loop.schedules, loop.limits
    basal_u_per_h = float(schedules.basal_u_per_h[i])
    max_basal_u_per_h = float(limits.max_basal_u_per_h[i])
    if settings.automatic_bolus:  # Loop 3's automatic bolus: temps only lower the scheduled rate
        max_basal_u_per_h = min(max_basal_u_per_h, basal_u_per_h)
    return {
        "time_to_calculate_at": now,
        "glucose_dates": [slot_end[k] for k in readings],
        "glucose_values": cgm[readings].tolist(),
        "dose_types": dose_types,
        "dose_start_times": dose_starts,
        "dose_end_times": dose_ends,
        "dose_values": dose_values,
        "carb_dates": [slot_start[k] for k in meals],
        "carb_values": carbs_g[meals].tolist(),
        "carb_absorption_times": [settings.carb_absorption_min] * len(meals),
        "settings_dictionary": _LOOP_DEFAULTS | {
            "model": [settings.dia_h * 60, settings.peak_min],
            "suspend_threshold": float(limits.suspend_below_mgdl[i]),
            "max_basal_rate": max_basal_u_per_h,
            "max_bolus": float(limits.max_bolus_u[i]),
            "rate_rounder": settings.dose_increment_u,
            "retrospective_correction_enabled": settings.retrospective_correction,
        },
        "sensitivity_ratio_start_times": [_MIDNIGHT],
        "sensitivity_ratio_end_times": [_MIDNIGHT],
        "sensitivity_ratio_values": [float(schedules.isf_mgdl_per_u[i])],
        "carb_ratio_start_times": [_MIDNIGHT],
        "carb_ratio_values": [float(schedules.cr_g_per_u[i])],
        "basal_rate_start_times": [_MIDNIGHT],
        "basal_rate_values": [basal_u_per_h],
        "basal_rate_minutes": [1440],
        "target_range_start_times": [_MIDNIGHT],
        "target_range_end_times": [_MIDNIGHT],
        "target_range_minimum_values": [float(schedules.target_low_mgdl[i])],
        "target_range_maximum_values": [float(schedules.target_high_mgdl[i])],
        "last_temporary_basal": last_temp,
    }


class LoopReference:
    """Loop (PyLoopKit ``update``) as a `Controller`, one patient after another.

    Raises `LoopReferenceError` when constructed without PyLoopKit ``pyloopkit-test``
    `PYLOOPKIT_VERSION`, and from `decide` when PyLoopKit rejects a patient's inputs (its warnings
    say why; the warnings of accepted inputs, such as glucose above 400 mg/dL, are dropped).
    """

    name = "loop_reference"
    closes_loop = True
    reasons = LoopReason

    def __init__(self, settings: LoopSettings | None = None) -> None:
        self.settings = settings if settings is not None else LoopSettings()
        self.dia_h = self.settings.dia_h
        self.peak_min = self.settings.peak_min
        self._update, _ = _pyloopkit()
        try:
            version = metadata.version("pyloopkit-test")
        except metadata.PackageNotFoundError:
            version = None
        if version != PYLOOPKIT_VERSION:
            raise LoopReferenceError(f"pyloopkit-test {version} is installed, the reference is "
                                     f"{PYLOOPKIT_VERSION}: run `make loop-deps`")

    def decide(self, loop: LoopInput) -> LoopOutput:
        """Loop's temp basal (and automatic bolus, if enabled) for every patient, and its prediction."""
        n = loop.cgm_mgdl.shape[0]
        out = LoopOutput(temp_rate_u_per_h=np.zeros(n), temp_duration_min=np.zeros(n), bolus_u=np.zeros(n),
                         reason=np.full(n, LoopReason.NO_GLUCOSE, np.int8),
                         predicted_mgdl=np.full((n, N_PREDICTED), np.nan))
        valid = np.isfinite(loop.cgm_mgdl)
        newest_age_min = PERIOD_MIN * np.argmax(valid[:, ::-1], axis=1)  # slots since the newest reading
        for i in range(n):
            if not valid[i].any():
                continue
            if newest_age_min[i] > self.settings.recency_min:
                out.reason[i] = LoopReason.STALE_GLUCOSE
                continue
            self._decide_one(loop, i, out)
        return out

    def _decide_one(self, loop: LoopInput, i: int, out: LoopOutput) -> None:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = self._update(pyloopkit_inputs(loop, i, self.settings))
        if not isinstance(result, dict):
            raise LoopReferenceError(f"PyLoopKit rejected patient {i}'s inputs: "
                                     + "; ".join(str(w.message) for w in caught))
        now = EPOCH + timedelta(minutes=loop.minute)
        minutes = [(d - now).total_seconds() / 60 for d in result["predicted_glucose_dates"]]
        out.predicted_mgdl[i] = np.interp(PERIOD_MIN * np.arange(N_PREDICTED), minutes,
                                          result["predicted_glucose_values"], left=np.nan, right=np.nan)

        temp = result["recommended_temp_basal"]
        if temp is None:
            out.reason[i] = LoopReason.KEEP
        elif temp[1] == 0:  # a cancel
            out.temp_duration_min[i] = CANCEL_TEMP
            out.reason[i] = LoopReason.CANCEL_TEMP
        else:
            out.temp_rate_u_per_h[i], out.temp_duration_min[i] = temp
            out.reason[i] = LoopReason.SUSPEND if temp[0] == 0 else LoopReason.TEMP_BASAL

        if self.settings.automatic_bolus:
            headroom_u = max(0.0, float(loop.limits.max_iob_u[i] - loop.insulin.iob_u[i, 0]))
            units = min(self.settings.partial_application_factor * result["recommended_bolus"][0], headroom_u)
            step = self.settings.dose_increment_u
            units = round(math.floor(units / step + 1e-9) * step, 6)  # whole pump steps, rounded down
            if units > 0:
                out.bolus_u[i] = units
                out.reason[i] = LoopReason.BOLUS

    def state_dict(self) -> dict[str, np.ndarray]:
        return {}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Stateless (Loop recomputes everything from the history): nothing to restore."""
