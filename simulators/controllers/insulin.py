"""Insulin on board as a loop computes it: oref0's exponential insulin curve over delivered doses.

`exponential_curve` is ``lib/iob/calculate.js`` ``iobCalcExponential`` (oref0 0.7.1; Loop uses the
same curve family). `InsulinTracker` keeps, per patient, the insulin on board and activity that
the doses given so far leave now and every 5 min for the next hours: a buffer shifted one slot
per decision period, to which each period's net insulin is added as one pulse at the middle of
its slot. That costs O(DIA / 5 min) per patient and period, where summing the pump history at
every decision (``oref0.insulin_on_board``) costs O(history x ticks); oref0 itself splits temp
basals into 0.05 U pulses, so the two differ by the timing of insulin within a 5-min slot.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numba import njit, prange

from simulators.controllers.interface import PERIOD_MIN, InsulinOnBoard

TICKS = 48  # 4 h of 5-min ticks: what oref0's and Loop's predictions need
MIN_DIA_H = 5.0  # oref0 raises a shorter DIA to 5 h for exponential curves


@njit(cache=True, inline="always", error_model="numpy")
def exponential_curve(units, mins_ago, end, peak):
    """lib/iob/calculate.js iobCalcExponential: (iob, activity) of one pulse ``mins_ago`` old."""
    if mins_ago >= end:
        return 0.0, 0.0
    tau = peak * (1 - peak / end) / (1 - 2 * peak / end)
    a = 2 * tau / end
    big_s = 1 / (1 - a + (1 + a) * math.exp(-end / tau))
    activity = units * (big_s / tau ** 2) * mins_ago * (1 - mins_ago / end) * math.exp(-mins_ago / tau)
    iob = units * (1 - big_s * (1 - a) * ((mins_ago ** 2 / (tau * end * (1 - a)) - mins_ago / tau - 1)
                                          * math.exp(-mins_ago / tau) + 1))
    return iob, activity


@dataclass(frozen=True)
class InsulinModel:
    """An exponential insulin curve: duration of action and peak (rapid-acting: 5 h, 75 min)."""

    dia_h: float = MIN_DIA_H
    peak_min: float = 75.0

    @property
    def slots(self) -> int:
        """Future ticks a dose can still act in (at least the 4 h the predictions need)."""
        return max(TICKS, math.ceil(max(self.dia_h, MIN_DIA_H) * 60 / PERIOD_MIN) + 1)

    def pulse_curves(self) -> tuple[np.ndarray, np.ndarray]:
        """IOB and activity of 1 U given mid-slot, at each future tick: (slots,) each."""
        end = max(self.dia_h, MIN_DIA_H) * 60.0
        ages = PERIOD_MIN / 2 + PERIOD_MIN * np.arange(self.slots)
        pairs = [exponential_curve(1.0, float(a), end, self.peak_min) for a in ages]
        return np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])

    def zero_temp_curves(self) -> tuple[np.ndarray, np.ndarray]:
        """IOB and activity at each tick of a 1 U/h temp from now on, one pulse per slot: (TICKS,)."""
        iob, act = self.pulse_curves()
        per_slot_u = PERIOD_MIN / 60.0  # tick j counts the pulses of slots 0..j-1

        def given_by_tick(curve: np.ndarray) -> np.ndarray:
            return per_slot_u * np.concatenate([[0.0], np.cumsum(curve)[:TICKS - 1]])

        return given_by_tick(iob), given_by_tick(act)


@njit(cache=True, parallel=True, error_model="numpy")
def _add_period(future_iob, future_act, net_u, curves, basal, out, shift):
    """Shift every patient's future one slot, add the last period's net insulin, write the ticks.

    ``curves`` rows: pulse IOB, pulse activity, zero-temp IOB, zero-temp activity; ``out`` (4, N,
    TICKS) gets IOB, activity and their zero-temp versions (one pass, no temporaries). Without
    ``shift`` only the ticks are written.
    """
    slots = future_iob.shape[1]
    for i in prange(future_iob.shape[0]):
        d = net_u[i]
        for j in range(slots - 1 if shift else 0):
            future_iob[i, j] = future_iob[i, j + 1] + d * curves[0, j]
            future_act[i, j] = future_act[i, j + 1] + d * curves[1, j]
        if shift:
            future_iob[i, slots - 1] = d * curves[0, slots - 1]
            future_act[i, slots - 1] = d * curves[1, slots - 1]
        for j in range(TICKS):
            out[0, i, j] = future_iob[i, j]
            out[1, i, j] = future_act[i, j]
            out[2, i, j] = future_iob[i, j] - basal[i] * curves[2, j]
            out[3, i, j] = future_act[i, j] - basal[i] * curves[3, j]


@dataclass
class InsulinTracker:
    """Future net IOB and activity of N patients' delivered doses (checkpointable state).

    ``on_board`` is what the doses up to the last `add_period` leave; the zero-temp ticks stop
    the scheduled basal (``scheduled_basal_u_per_h``) from now on.
    """

    model: InsulinModel
    scheduled_basal_u_per_h: np.ndarray
    future_iob_u: np.ndarray  # (N, slots) IOB at now + 5 j min
    future_activity_u_per_min: np.ndarray  # (N, slots)
    _curves: np.ndarray = field(init=False, repr=False)
    _ticks: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        slots = self.model.slots
        self._curves = np.zeros((4, slots))
        self._curves[0], self._curves[1] = self.model.pulse_curves()
        self._curves[2, :TICKS], self._curves[3, :TICKS] = self.model.zero_temp_curves()
        self._ticks = np.empty((4, len(self.scheduled_basal_u_per_h), TICKS))
        self.refresh()

    @staticmethod
    def new(model: InsulinModel, scheduled_basal_u_per_h: np.ndarray) -> InsulinTracker:
        """Patients with no insulin on board beyond their scheduled basal."""
        n = len(scheduled_basal_u_per_h)
        return InsulinTracker(model, np.asarray(scheduled_basal_u_per_h, dtype=np.float64),
                              np.zeros((n, model.slots)), np.zeros((n, model.slots)))

    def add_period(self, net_u: np.ndarray, shift: bool = True) -> None:
        """Advance one period in which each patient got ``net_u`` units beyond the schedule."""
        self._ticks = np.empty_like(self._ticks)  # a new buffer: the last InsulinOnBoard stays valid
        _add_period(self.future_iob_u, self.future_activity_u_per_min,
                    np.ascontiguousarray(net_u, dtype=np.float64), self._curves,
                    self.scheduled_basal_u_per_h, self._ticks, shift)

    def refresh(self) -> None:
        """Recompute the ticks from the future buffers (after they were restored)."""
        self.add_period(np.zeros(len(self.scheduled_basal_u_per_h)), shift=False)

    def on_board(self) -> InsulinOnBoard:
        """Now and the next 4 h (contiguous (N, TICKS) arrays)."""
        return InsulinOnBoard(*self._ticks)
