"""Trend arrows, deltas and the AR2 forecast (shared/docs/cgm-domain.md sections 4-5).

Vectorised over readings: every function takes numpy arrays (or scalars) in mg/dL, ms.
"""

from __future__ import annotations

import numpy as np

DIRECTIONS = ("DoubleDown", "SingleDown", "FortyFiveDown", "Flat", "FortyFiveUp", "SingleUp",
              "DoubleUp")
NOT_COMPUTABLE = "NOT COMPUTABLE"
# Nightscout's and Dexcom's trend numbers (an uploaded entry's ``trend``); 0 means none given.
TREND_CODES = {"DoubleUp": 1, "SingleUp": 2, "FortyFiveUp": 3, "Flat": 4, "FortyFiveDown": 5,
               "SingleDown": 6, "DoubleDown": 7, NOT_COMPUTABLE: 8, "RATE OUT OF RANGE": 9}
TREND_NAMES = ("",) + tuple(TREND_CODES)  # code -> direction name
_EDGES_MGDL_PER_MIN = np.array([-3.5, -2.0, -1.0, 1.0, 2.0, 3.5])
MAX_TREND_GAP_MS = 15 * 60_000  # no arrow across a longer gap

AR2_PREV, AR2_CURR = -0.723, 1.716
AR2_STEPS = 6  # 5-minute steps: 30 minutes ahead
AR2_FLOOR_MGDL, AR2_CEIL_MGDL = 36.0, 400.0


def slope_mgdl_per_min(prev_mgdl, prev_ts_ms, mgdl, ts_ms) -> np.ndarray:
    """Rate of change between two readings; NaN where they are too far apart or missing."""
    dt_ms = np.asarray(ts_ms, float) - np.asarray(prev_ts_ms, float)
    ok = (dt_ms > 0) & (dt_ms <= MAX_TREND_GAP_MS)
    return np.divide(np.asarray(mgdl, float) - np.asarray(prev_mgdl, float), dt_ms / 60_000.0,
                     out=np.full(np.shape(dt_ms), np.nan), where=ok)


def direction(slope: np.ndarray) -> np.ndarray:
    """xDrip's trend arrow names (inclusive upper edges); NOT COMPUTABLE for NaN."""
    slope = np.asarray(slope, float)
    idx = np.searchsorted(_EDGES_MGDL_PER_MIN, np.nan_to_num(slope, nan=0.0), side="left")
    names = np.asarray(DIRECTIONS, dtype=object)[idx]
    return np.where(np.isnan(slope), NOT_COMPUTABLE, names)


def _ar2_coefficients(steps: int) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) with step k's log-glucose = a[k] * log-glucose 5 minutes ago + b[k] * now: the
    AR2 recursion is linear, so its steps are fixed combinations of the two readings."""
    prev, curr = (1.0, 0.0), (0.0, 1.0)
    a, b = [], []
    for _ in range(steps):
        prev, curr = curr, (AR2_PREV * prev[0] + AR2_CURR * curr[0],
                            AR2_PREV * prev[1] + AR2_CURR * curr[1])
        a.append(curr[0])
        b.append(curr[1])
    return np.array(a), np.array(b)


_AR2_A, _AR2_B = _ar2_coefficients(AR2_STEPS)


def ar2_forecast(mgdl_5min_ago, mgdl_now) -> np.ndarray:
    """Nightscout's AR2: six 5-minute-step predictions [..., 6], clamped to 36-400 mg/dL.

    The steps in closed form (``_ar2_coefficients``): one numpy pass, not one per step (an
    alert round over a few readings spent 15% of its time stepping)."""
    prev = np.log(np.asarray(mgdl_5min_ago, float) / 140.0)[..., None]
    curr = np.log(np.asarray(mgdl_now, float) / 140.0)[..., None]
    return np.clip(140.0 * np.exp(prev * _AR2_A + curr * _AR2_B), AR2_FLOOR_MGDL, AR2_CEIL_MGDL)
