"""An insulin pump for N patients: temp basals and boluses in pump increments, within limits.

Whatever a controller asks for, the pump delivers what a real pump would: rates rounded down to
0.05 U/h and capped at the max basal, boluses rounded down to 0.05 U and capped at the max bolus,
a temp basal that runs until its duration ends and then falls back to the scheduled rate.
Requests it had to cut are counted, so a controller that asks for too much shows up.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulators.controllers.interface import CANCEL_TEMP

NO_TEMP = -1  # temp_end_minute when no temp basal runs
MAX_TEMP_MIN = 24 * 60  # the longest temp basal pumps accept


@dataclass(frozen=True)
class PumpSpec:
    """Delivery increments (Medtronic/Omnipod-like: 0.05 U/h basal, 0.05 U bolus)."""

    basal_increment_u_per_h: float = 0.05
    bolus_increment_u: float = 0.05


def _floor_to(x: np.ndarray, step: float) -> np.ndarray:
    """Round down to a multiple of ``step`` (a hair of tolerance for 0.1 + 0.2-style floats)."""
    return np.floor(x / step + 1e-9) * step


@dataclass
class Pump:
    """The running temp basal of each patient, and counts of requests the limits cut."""

    spec: PumpSpec
    temp_rate_u_per_h: np.ndarray
    temp_end_minute: np.ndarray  # int64, NO_TEMP when none runs
    capped_temps: int = 0
    capped_boluses: int = 0

    @staticmethod
    def new(spec: PumpSpec, n: int) -> Pump:
        return Pump(spec, np.zeros(n), np.full(n, NO_TEMP, np.int64))

    def rate_u_per_h(self, minute: int, scheduled_u_per_h: np.ndarray) -> np.ndarray:
        """The basal rate running at ``minute``: the temp while it lasts, else the schedule."""
        return np.where(self.temp_end_minute > minute, self.temp_rate_u_per_h, scheduled_u_per_h)

    def remaining_min(self, minute: int) -> np.ndarray:
        return np.maximum(self.temp_end_minute - minute, 0)

    def set_temps(self, minute: int, rate_u_per_h: np.ndarray, duration_min: np.ndarray,
                  max_basal_u_per_h: np.ndarray) -> None:
        """Start a temp where ``duration_min > 0``, cancel it where ``CANCEL_TEMP``, else keep it."""
        self.cancel_temps(duration_min == CANCEL_TEMP)
        start = duration_min > 0
        if not start.any():
            return
        asked = np.maximum(rate_u_per_h[start], 0.0)
        cap = max_basal_u_per_h[start]
        self.capped_temps += int((asked > cap + 1e-9).sum())
        self.temp_rate_u_per_h[start] = _floor_to(np.minimum(asked, cap), self.spec.basal_increment_u_per_h)
        minutes = np.minimum(np.round(duration_min[start]), MAX_TEMP_MIN).astype(np.int64)
        self.temp_end_minute[start] = minute + minutes

    def cancel_temps(self, which: np.ndarray) -> None:
        """Back to the scheduled basal where ``which``."""
        self.temp_end_minute[which] = NO_TEMP

    def bolus_u(self, asked_u: np.ndarray, max_bolus_u: np.ndarray) -> np.ndarray:
        """The boluses delivered for these requests (rounded down, capped; caps counted)."""
        self.capped_boluses += int((np.maximum(asked_u, 0.0) > max_bolus_u + 1e-9).sum())
        return self.deliverable_u(asked_u, max_bolus_u)

    def deliverable_u(self, units: np.ndarray, max_bolus_u: np.ndarray) -> np.ndarray:
        """The most of ``units`` one bolus can deliver (rounded down, capped; nothing counted)."""
        return _floor_to(np.minimum(np.maximum(units, 0.0), max_bolus_u), self.spec.bolus_increment_u)

    def state_dict(self) -> dict[str, np.ndarray]:
        return {"temp_rate_u_per_h": self.temp_rate_u_per_h.copy(),
                "temp_end_minute": self.temp_end_minute.copy(),
                "capped": np.array([self.capped_temps, self.capped_boluses])}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        self.temp_rate_u_per_h = np.array(state["temp_rate_u_per_h"], dtype=np.float64)
        self.temp_end_minute = np.array(state["temp_end_minute"], dtype=np.int64)
        self.capped_temps, self.capped_boluses = (int(v) for v in state["capped"])
