"""Alert rules over CGM readings, vectorised across sensors (pure numpy, no Ray or HTTP).

Types and defaults follow shared/docs/cgm-domain.md section 5: urgent low < 55, low < 80,
high > 180, urgent high > 260 mg/dL; fall/rise at 2 mg/dL/min; "urgent low soon" when the
AR2 forecast reaches 55 within 20 minutes; signal loss after 15 (warn) and 30 (urgent)
minutes without a reading; sensor expiring within 24 h. An alert fires once when its
condition starts and is "resolved" when it ends (glucose levels with 5 mg/dL hysteresis,
so a reading wobbling at a threshold does not flap); a snoozed alert type stays silent
until the snooze ends. State lives in arrays indexed by a sensor slot, so a partition of
many sensors evaluates a batch with a few numpy passes.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np
from pydantic import Field

from cgm_ray.config import Strict
from cgm_ray.glucose.trend import AR2_STEPS, ar2_forecast, slope_mgdl_per_min

MINUTE_MS = 60_000


class AlertType(IntEnum):
    """Alert types; the value is the bit in a sensor's active mask."""

    URGENT_LOW = 0
    LOW = 1
    HIGH = 2
    URGENT_HIGH = 3
    FALL = 4
    RISE = 5
    URGENT_LOW_SOON = 6
    STALE = 7
    STALE_URGENT = 8
    SENSOR_EXPIRING = 9

    @property
    def label(self) -> str:
        return self.name.lower()


N_TYPES = len(AlertType)
_READING_TYPES = [t for t in AlertType if t <= AlertType.URGENT_LOW_SOON]
_TIME_TYPES = [AlertType.STALE, AlertType.STALE_URGENT, AlertType.SENSOR_EXPIRING]
# What a reading can change: its own types, and signal loss, which it ends.
_ROUND_TYPES = [*_READING_TYPES, AlertType.STALE, AlertType.STALE_URGENT]
_READING_WEIGHTS = np.array([1 << t for t in _READING_TYPES], np.int64)
_LEVEL_BITS = np.array([AlertType.URGENT_LOW, AlertType.LOW, AlertType.HIGH,
                        AlertType.URGENT_HIGH], np.int64)
_LEVEL_SIGNS = np.array([1.0, 1.0, -1.0, -1.0])  # lows end above, highs below
# Forecast step k (5 minutes each) is within a horizon of H minutes when k < max(H // 5, 1),
# that is when this many minutes <= H (for whole H >= 0).
_STEP_REACHED_MIN = np.array([0.0, *(5.0 * k for k in range(2, AR2_STEPS + 1))])


class AlertSettings(Strict):
    """One patient's alert settings (Nightscout/Dexcom defaults)."""

    urgent_low_mgdl: float = Field(55.0, ge=40, le=100)
    low_mgdl: float = Field(80.0, ge=40, le=150)
    high_mgdl: float = Field(180.0, ge=100, le=400)
    urgent_high_mgdl: float = Field(260.0, ge=120, le=400)
    rate_mgdl_per_min: float = Field(2.0, ge=1, le=5)
    urgent_low_soon_min: int = Field(20, ge=5, le=30)
    stale_min: int = Field(15, ge=5, le=120)
    stale_urgent_min: int = Field(30, ge=10, le=240)
    expiring_h: float = Field(24.0, ge=0, le=72)
    hysteresis_mgdl: float = Field(5.0, ge=0, le=30)
    snooze_min: int = Field(30, ge=1, le=24 * 60)
    disabled: list[str] = Field(default_factory=list, description="alert types not to raise")
    webhook_url: str | None = Field(None, pattern=r"^https?://", max_length=2048,
                                    description="POST each alert event here (JSON list)")

    def as_row(self) -> np.ndarray:
        return np.array([getattr(self, name) for name in _SETTING_COLUMNS], dtype=np.float64)


_SETTING_COLUMNS = ("urgent_low_mgdl", "low_mgdl", "high_mgdl", "urgent_high_mgdl",
                    "rate_mgdl_per_min", "urgent_low_soon_min", "stale_min", "stale_urgent_min",
                    "expiring_h", "hysteresis_mgdl")
(S_UL, S_LOW, S_HIGH, S_UH, S_RATE, S_ULS, S_STALE, S_STALE_U, S_EXP, S_HYST) = range(
    len(_SETTING_COLUMNS))
_LEVEL_SETTINGS = [S_UL, S_LOW, S_HIGH, S_UH]  # in the order of _LEVEL_BITS


@dataclass(frozen=True)
class AlertEvent:
    """An alert starting ("fired") or ending ("resolved") for one sensor slot."""

    slot: int
    type: AlertType
    state: str  # "fired" or "resolved"
    ts_ms: int
    glucose_mgdl: float | None = None
    detail: float | None = None  # rate (mg/dL/min), forecast (mg/dL) or minutes, by type


# Per-slot state arrays: name -> (dtype, initial value, trailing shape).
_STATE_FIELDS = {
    "last_ts": (np.int64, 0, ()), "last_g": (np.float64, np.nan, ()),
    "prev_ts": (np.int64, 0, ()), "prev_g": (np.float64, np.nan, ()),
    "active": (np.int64, 0, ()),  # bitmask of alert types currently on
    "muted": (np.int64, 0, ()),  # bitmask of disabled alert types
    "expires_ms": (np.int64, 0, ()),  # sensor expiry, 0 = unknown
    "snoozed_until": (np.int64, 0, (N_TYPES,)),
    "settings": (np.float64, 0.0, (len(_SETTING_COLUMNS),)),
}


class AlertEngine:
    """Alert state of many sensor slots; grows as slots are added."""

    # One row per slot, allocated from ``_STATE_FIELDS``.
    last_ts: np.ndarray
    last_g: np.ndarray
    prev_ts: np.ndarray
    prev_g: np.ndarray
    active: np.ndarray
    muted: np.ndarray
    expires_ms: np.ndarray
    snoozed_until: np.ndarray
    settings: np.ndarray

    def __init__(self, capacity: int = 1024) -> None:
        self._n = 0
        self._alloc(capacity)

    def _alloc(self, capacity: int) -> None:
        """(Re)allocate the per-slot arrays with room for ``capacity`` slots."""
        for name, (dtype, fill, shape) in _STATE_FIELDS.items():
            new = np.full((capacity, *shape), fill, dtype)
            old = getattr(self, name, None)
            if old is not None:
                new[: len(old)] = old
            setattr(self, name, new)

    def add_slot(self, settings: AlertSettings) -> int:
        """A new sensor slot with these settings; returns its index."""
        if self._n == len(self.last_ts):
            self._alloc(2 * len(self.last_ts))
        slot = self._n
        self._n += 1
        self.configure(slot, settings)
        return slot

    def configure(self, slot: int, settings: AlertSettings,
                  expires_ms: int | None = None) -> None:
        """Set a slot's settings (and, when known, its sensor's expiry time)."""
        self.settings[slot] = settings.as_row()
        self.muted[slot] = sum(1 << AlertType[name.upper()] for name in settings.disabled)
        if expires_ms is not None:
            self.expires_ms[slot] = expires_ms

    def snooze(self, slot: int, alert: AlertType, until_ms: int) -> None:
        self.snoozed_until[slot, alert] = until_ms

    def evaluate(self, slots: np.ndarray, ts_ms: np.ndarray, glucose_mgdl: np.ndarray
                 ) -> list[AlertEvent]:
        """Run the reading rules over new readings (any order); return what fired or ended."""
        order = np.lexsort((ts_ms, slots))
        slots, ts_ms, glucose = slots[order], ts_ms[order], glucose_mgdl[order].astype(float)
        # Round r holds each sensor's r-th reading of this batch, so one pass per round.
        first = np.concatenate(([True], slots[1:] != slots[:-1]))
        if first.all():  # one reading a sensor, as a write of live uploads is: one round
            return self._round(slots, ts_ms, glucose)
        rank = np.arange(len(slots)) - np.maximum.accumulate(np.where(first, np.arange(len(slots)), 0))
        events: list[AlertEvent] = []
        for r in range(int(rank.max()) + 1 if len(rank) else 0):
            sel = rank == r
            events += self._round(slots[sel], ts_ms[sel], glucose[sel])
        return events

    def _round(self, s: np.ndarray, ts: np.ndarray, g: np.ndarray) -> list[AlertEvent]:
        """One reading per slot in ``s``. Few numpy calls: each costs ~1 us on a dozen rows,
        about what the arithmetic itself does on thousands."""
        last_ts = self.last_ts[s]
        newer = ts > last_ts  # late or repeated readings do not drive alerts
        if not newer.all():
            s, ts, g, last_ts = s[newer], ts[newer], g[newer], last_ts[newer]
        last_g = self.last_g[s]
        st = self.settings[s]
        slope = slope_mgdl_per_min(last_g, last_ts, g, ts)
        g5 = np.where(np.isnan(slope), g, g - 5.0 * slope)
        forecast = ar2_forecast(np.clip(g5, 1.0, None), np.clip(g, 1.0, None))
        # The lowest forecast within the urgent-low-soon horizon (at least the first step).
        reach = np.where(_STEP_REACHED_MIN <= st[:, S_ULS, None], forecast, np.inf).min(axis=1)
        was = self.active[s]
        # A level alert that is on holds until glucose is past its threshold by the
        # hysteresis: its threshold moves by that much (urgent low, low, high, urgent high).
        held = (was[:, None] >> _LEVEL_BITS) & 1
        moved = st[:, _LEVEL_SETTINGS] + held * _LEVEL_SIGNS * st[:, S_HYST, None]
        below, above = g[:, None] < moved, g[:, None] > moved
        urgent_low, urgent_high = below[:, 0], above[:, 3]
        not_urgent_low = ~urgent_low
        on = np.stack([urgent_low, below[:, 1] & not_urgent_low, above[:, 2] & ~urgent_high,
                       urgent_high, slope <= -st[:, S_RATE], slope >= st[:, S_RATE],
                       (reach <= st[:, S_UL]) & not_urgent_low], axis=1)
        now_mask = on @ _READING_WEIGHTS  # the reading types' bits; signal loss ends
        events = self._transitions(s, ts, g, was, now_mask, _ROUND_TYPES, {
            AlertType.FALL: slope, AlertType.RISE: slope, AlertType.URGENT_LOW_SOON: reach})
        self.active[s] = now_mask | (was & (1 << AlertType.SENSOR_EXPIRING))
        self.prev_ts[s], self.prev_g[s] = last_ts, last_g
        self.last_ts[s], self.last_g[s] = ts, g
        return events

    def _transitions(self, s: np.ndarray, ts: np.ndarray, g: np.ndarray, was: np.ndarray,
                     now_mask: np.ndarray, types: list[AlertType],
                     detail: dict[AlertType, np.ndarray]) -> list[AlertEvent]:
        """The events of rows whose bit of a type in ``types`` differs between ``was`` and
        ``now_mask``: "fired" (unless muted or snoozed) or "resolved"; by type, then fired
        before resolved, then by row. Only rows that changed are visited (few in a batch),
        in plain Python: a numpy pass per type cost ~10 us each on a batch of ten."""
        watched = sum(1 << t for t in types)
        rows = np.flatnonzero((was ^ now_mask) & watched)
        if not len(rows):
            return []
        slots, on, before = s[rows], now_mask[rows].tolist(), was[rows].tolist()
        muted = self.muted[slots].tolist()
        snoozed = (self.snoozed_until[slots] > ts[rows, None]).tolist()
        slot_l, ts_l, g_l = slots.tolist(), ts[rows].tolist(), g[rows].tolist()
        events = []
        for t in types:
            bit = 1 << t
            values = detail[t][rows].tolist() if t in detail else None
            changed = [i for i in range(len(rows)) if (on[i] ^ before[i]) & bit]
            events += [AlertEvent(slot_l[i], t, "fired", ts_l[i], g_l[i],
                                  None if values is None else values[i])
                       for i in changed if on[i] & bit and not (muted[i] & bit or snoozed[i][t])]
            events += [AlertEvent(slot_l[i], t, "resolved", ts_l[i], g_l[i])
                       for i in changed if before[i] & bit]
        return events

    def check_time(self, now_ms: int) -> list[AlertEvent]:
        """Time-driven rules for every slot: signal loss and sensor expiry."""
        n = self._n
        s = np.arange(n)
        seen = self.last_ts[:n] > 0
        age_min = (now_ms - self.last_ts[:n]) / MINUTE_MS
        st = self.settings[:n]
        urgent = seen & (age_min >= st[:, S_STALE_U])
        cond = {
            AlertType.STALE_URGENT: urgent,
            AlertType.STALE: seen & (age_min >= st[:, S_STALE]) & ~urgent,
            AlertType.SENSOR_EXPIRING: (self.expires_ms[:n] > 0)
            & (now_ms >= self.expires_ms[:n] - st[:, S_EXP] * 60 * MINUTE_MS),
        }
        was = self.active[:n].copy()
        now_mask = was.copy()
        for t in _TIME_TYPES:
            now_mask = (now_mask & ~(np.int64(1) << t)) | (cond[t].astype(np.int64) << t)
        ts = np.full(n, now_ms, np.int64)
        detail = {AlertType.STALE: age_min, AlertType.STALE_URGENT: age_min}
        events = self._transitions(s, ts, self.last_g[:n], was, now_mask, _TIME_TYPES, detail)
        self.active[:n] = now_mask
        return [e if e.type != AlertType.SENSOR_EXPIRING else
                AlertEvent(e.slot, e.type, e.state, e.ts_ms, None, float(self.expires_ms[e.slot]))
                for e in events]
