"""One ingest partition's in-memory state: sensors, recent readings, alerts, subscribers.

Plain Python (no Ray, no HTTP), so it is tested directly; ``serve_apps.partition_core``
adds the write-ahead log and ``serve_apps.partition`` the Serve deployment. Recent
readings live in per-sensor ring buffers (``hot_readings`` per sensor) that serve the
app's reads and deduplicate on (sensor, timestamp); older history is the lake's job.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cgm_ray.glucose.alerts import AlertEngine, AlertEvent, AlertSettings, AlertType
from cgm_ray.glucose.trend import TREND_NAMES, direction, slope_mgdl_per_min
from serve_apps.glucose_period import GlucoseSeries

ALERT_HISTORY = 500  # events kept per patient
SUBSCRIBER_QUEUE = 1000


class UnknownSensors(Exception):
    """Readings name sensors that are not registered (and auto-registration is off)."""

    def __init__(self, sensors: list[str]) -> None:
        self.sensors = sensors
        super().__init__(f"unknown sensors: {', '.join(sensors[:5])}"
                         + (f" and {len(sensors) - 5} more" if len(sensors) > 5 else ""))


class SensorConflict(ValueError):
    """A sensor is already registered to another patient."""


@dataclass
class SensorInfo:
    """A registered sensor (the IoT-registry role)."""

    sensor_id: str
    patient_id: str
    slot: int
    model: str | None = None
    started_ms: int | None = None
    expires_ms: int | None = None
    warmup_min: int = 0
    registered_ms: int = field(default_factory=lambda: int(time.time() * 1000))

    def as_json(self) -> dict:
        """The record as the API shows it (without the internal ring-buffer slot)."""
        return {k: v for k, v in asdict(self).items() if k != "slot"}


@dataclass
class PatientInfo:
    settings: AlertSettings = field(default_factory=AlertSettings)
    sensors: list[str] = field(default_factory=list)
    history: deque = field(default_factory=lambda: deque(maxlen=ALERT_HISTORY))
    subscribers: list[asyncio.Queue] = field(default_factory=list)


class PartitionState:
    """Sensors of the patients hashed to one partition."""

    def __init__(self, hot_readings: int = 288, auto_register: bool = True) -> None:
        self.hot, self.auto_register = hot_readings, auto_register
        self.sensors: dict[str, SensorInfo] = {}
        self.patients: dict[str, PatientInfo] = {}
        self.alerts = AlertEngine()
        self.patients_cohort: dict[str, str] = {}
        self._slot_sensor: list[str] = []
        self._watched: set[str] = set()  # patients with a subscriber
        self._alloc(1024)

    def _alloc(self, capacity: int) -> None:
        old = getattr(self, "ring_ts", None)
        ts = np.full((capacity, self.hot), -1, np.int64)
        g = np.zeros((capacity, self.hot), np.float32)
        flag = np.zeros((capacity, self.hot), np.int8)
        trend = np.zeros((capacity, self.hot), np.int8)  # the uploader's arrow, 0: compute one
        count = np.zeros(capacity, np.int64)
        max_ts = np.full(capacity, -1, np.int64)
        if old is not None:
            n = len(old)
            ts[:n], g[:n], flag[:n], trend[:n] = self.ring_ts, self.ring_g, self.ring_flag, self.ring_trend
            count[:n], max_ts[:n] = self.count, self.max_ts
        self.ring_ts, self.ring_g, self.ring_flag, self.ring_trend = ts, g, flag, trend
        self.count, self.max_ts = count, max_ts

    # -- registry ----------------------------------------------------------------------
    def register_sensor(self, sensor_id: str, patient_id: str, **attrs) -> SensorInfo:
        """Register (or update) a sensor of a patient; returns its record."""
        info = self.sensors.get(sensor_id)
        if info is not None and info.patient_id != patient_id:
            raise SensorConflict(f"sensor {sensor_id!r} belongs to another patient")
        patient = self.patients.setdefault(patient_id, PatientInfo())
        if info is None:
            slot = self.alerts.add_slot(patient.settings)
            if slot >= len(self.ring_ts):
                self._alloc(2 * len(self.ring_ts))
            info = SensorInfo(sensor_id, patient_id, slot)
            self.sensors[sensor_id] = info
            self._slot_sensor.append(sensor_id)
            patient.sensors.append(sensor_id)
        for k, v in attrs.items():
            if v is not None:
                setattr(info, k, v)
        self.alerts.configure(info.slot, patient.settings, expires_ms=info.expires_ms)
        return info

    def set_settings(self, patient_id: str, settings: AlertSettings) -> None:
        patient = self.patients.setdefault(patient_id, PatientInfo())
        patient.settings = settings
        for sensor in patient.sensors:
            self.alerts.configure(self.sensors[sensor].slot, settings)

    # -- ingest ------------------------------------------------------------------------
    def slots_of(self, table: pa.Table) -> np.ndarray:
        """Each reading's sensor slot, registering unknown sensors if allowed."""
        sensors = table.column("sensor_id").to_pylist()
        patients = table.column("patient_id").to_pylist()
        unknown = sorted({s for s in sensors if s not in self.sensors})
        if unknown and not self.auto_register:
            raise UnknownSensors(unknown)
        for s, p in zip(sensors, patients):
            if s not in self.sensors:
                self.register_sensor(s, p)
            elif self.sensors[s].patient_id != p:
                raise SensorConflict(f"sensor {s!r} belongs to another patient")
        return np.fromiter((self.sensors[s].slot for s in sensors), np.int64, len(sensors))

    def admit(self, table: pa.Table) -> tuple[pa.Table, np.ndarray, tuple, np.ndarray]:
        """Drop readings already stored (or repeated in the batch) and reserve the rest.

        The new readings go into the ring buffers at once, so a concurrent duplicate is seen;
        the returned undo token lets ``rollback`` take them out if they never become durable.
        Returns (new readings, their slots, undo token, their row numbers in ``table``).
        """
        slots = self.slots_of(table)
        ts = table.column("ts_ms").to_numpy()
        order = np.lexsort((ts, slots))
        s, t = slots[order], ts[order]
        first = np.concatenate(([True], (s[1:] != s[:-1]) | (t[1:] != t[:-1])))
        known = t <= self.max_ts[s]
        if known.any():
            rows = np.flatnonzero(known)
            first[rows] &= ~(self.ring_ts[s[rows]] == t[rows, None]).any(axis=1)
        keep = np.sort(order[first])
        new = table if len(keep) == table.num_rows else table.take(keep)  # all new: no copy
        s_new = slots[keep]
        undo = self._write_rings(s_new, new)
        return new, s_new, undo, keep

    def _write_rings(self, slots: np.ndarray, table: pa.Table) -> tuple:
        ts = table.column("ts_ms").to_numpy()
        order = np.argsort(slots, kind="stable")
        s = slots[order]
        first = np.concatenate(([True], s[1:] != s[:-1]))
        starts = np.maximum.accumulate(np.where(first, np.arange(len(s)), 0))
        pos = (self.count[s] + np.arange(len(s)) - starts) % self.hot
        self.ring_ts[s, pos] = ts[order]
        self.ring_g[s, pos] = table.column("glucose_mgdl").to_numpy()[order]
        self.ring_flag[s, pos] = table.column("range_flag").to_numpy()[order]
        self.ring_trend[s, pos] = (table.column("trend").to_numpy()[order]
                                   if "trend" in table.column_names else 0)
        np.add.at(self.count, s, 1)
        np.maximum.at(self.max_ts, s, ts[order])
        return s, pos, ts[order]

    def rollback(self, undo: tuple) -> None:
        """Forget reserved readings whose write-ahead-log append failed."""
        s, pos, ts = undo
        same = self.ring_ts[s, pos] == ts
        self.ring_ts[s[same], pos[same]] = -1
        for slot in np.unique(s):
            self.max_ts[slot] = self.ring_ts[slot].max()

    def evaluate(self, slots: np.ndarray, ts_ms: np.ndarray, glucose_mgdl: np.ndarray
                 ) -> list[dict]:
        """Alerts raised by durable new readings: recorded and pushed to subscribers."""
        return self.publish(self.alerts.evaluate(slots, ts_ms, glucose_mgdl))

    def check_time(self, now_ms: int) -> list[dict]:
        return self.publish(self.alerts.check_time(now_ms))

    def publish(self, events: list[AlertEvent]) -> list[dict]:
        out = []
        for e in events:
            sensor = self.sensors[self._slot_sensor[e.slot]]
            record = {"patient_id": sensor.patient_id, "sensor_id": sensor.sensor_id,
                      "type": e.type.label, "state": e.state, "ts_ms": e.ts_ms,
                      "glucose_mgdl": e.glucose_mgdl, "detail": e.detail,
                      "urgent": e.type in (AlertType.URGENT_LOW, AlertType.URGENT_HIGH,
                                           AlertType.URGENT_LOW_SOON, AlertType.STALE_URGENT)}
            patient = self.patients[sensor.patient_id]
            patient.history.append(record)
            _push(patient.subscribers, ("alert", record))
            out.append(record)
        return out

    def publish_readings(self, table: pa.Table) -> None:
        """Durable new readings, as Nightscout entries, to their patients' subscribers."""
        if not self._watched:
            return
        for patient_id in self._watched.intersection(table.column("patient_id").to_pylist()):
            ts = pc.filter(table.column("ts_ms"), pc.equal(table.column("patient_id"), patient_id))
            since_ms = pc.min(ts).as_py()
            for record in reversed(self.entries(patient_id, len(ts), since_ms)):  # oldest first
                _push(self.patients[patient_id].subscribers, ("reading", record))

    def snooze(self, patient_id: str, alert: str, minutes: int, now_ms: int) -> None:
        kind = AlertType[alert.upper()]
        for sensor in self.patients[patient_id].sensors:
            self.alerts.snooze(self.sensors[sensor].slot, kind, now_ms + minutes * 60_000)

    def subscribe(self, patient_id: str) -> asyncio.Queue:
        q: asyncio.Queue = asyncio.Queue(maxsize=SUBSCRIBER_QUEUE)
        self.patients.setdefault(patient_id, PatientInfo()).subscribers.append(q)
        self._watched.add(patient_id)
        return q

    def unsubscribe(self, patient_id: str, q: asyncio.Queue) -> None:
        subs = self.patients[patient_id].subscribers
        if q in subs:
            subs.remove(q)
        if not subs:
            self._watched.discard(patient_id)

    # -- reads -------------------------------------------------------------------------
    def entries(self, patient_id: str, count: int = 10, since_ms: int | None = None,
                until_ms: int | None = None) -> list[dict]:
        """Nightscout sgv entries of a patient, newest first, with delta and direction."""
        patient = self.patients.get(patient_id)
        if patient is None or count <= 0:
            return []
        rows = []
        for sensor_id in patient.sensors:
            slot = self.sensors[sensor_id].slot
            ts, g, flag = self.ring_ts[slot], self.ring_g[slot], self.ring_flag[slot]
            trend = self.ring_trend[slot]
            valid = ts >= 0
            order = np.argsort(ts[valid])
            ts, g, flag, trend = ts[valid][order], g[valid][order], flag[valid][order], trend[valid][order]
            prev_ts = np.r_[-1, ts[:-1]]
            prev_g = np.r_[np.nan, g[:-1]]
            slope = slope_mgdl_per_min(prev_g, prev_ts, g, ts)
            sel = np.ones(len(ts), bool)
            if since_ms is not None:
                sel &= ts >= since_ms
            if until_ms is not None:
                sel &= ts <= until_ms
            arrows = np.where(trend[sel] > 0, np.asarray(TREND_NAMES, object)[trend[sel]],
                              direction(slope[sel]))  # as uploaded, else from the readings
            device = sensor_id.removeprefix(f"{patient_id}/")  # a Nightscout upload's label
            for t, v, f, s, a in zip(ts[sel], g[sel], flag[sel], slope[sel], arrows):
                rows.append((int(t), float(v), int(f), float(s), str(a), sensor_id, device))
        rows.sort(key=lambda r: r[0], reverse=True)
        return [_entry(*r) for r in rows[:count]]

    def cohort_patients(self, cohort: str) -> list[str]:
        """The patients of ``cohort`` this partition holds."""
        return [p for p, c in self.patients_cohort.items() if c == cohort and p in self.patients]

    def hot_series(self, patient_id: str) -> GlucoseSeries:
        """The readings the rings hold for a patient, all its sensors together, unsorted."""
        patient = self.patients.get(patient_id)
        if patient is None:
            return GlucoseSeries.empty()
        slots = [self.sensors[s].slot for s in patient.sensors]
        ts = self.ring_ts[slots].ravel()
        valid = ts >= 0
        return GlucoseSeries(ts[valid], self.ring_g[slots].ravel()[valid].astype(np.float64))

    def sensor_status(self, patient_id: str, now_ms: int) -> list[dict]:
        """Each sensor of a patient: session, last seen, signal-loss diagnostics."""
        out = []
        for sensor_id in self.patients.get(patient_id, PatientInfo()).sensors:
            info = self.sensors[sensor_id]
            last = int(self.max_ts[info.slot])
            stale_min = None if last < 0 else (now_ms - last) / 60_000
            expected = 5.0
            if last >= 0:
                ts = np.sort(self.ring_ts[info.slot][self.ring_ts[info.slot] >= 0])
                if len(ts) > 1:
                    expected = float(np.median(np.diff(ts))) / 60_000
                gaps = np.diff(ts) / 60_000 if len(ts) > 1 else np.array([])
            else:
                gaps = np.array([])
            out.append({
                **info.as_json(),
                "last_seen_ms": None if last < 0 else last,
                "minutes_since_last": stale_min,
                "signal": ("never seen" if last < 0 else "ok" if stale_min < 15
                           else "lost" if stale_min >= 30 else "stale"),
                "readings_held": int(min(self.count[info.slot], self.hot)),
                "sample_interval_min": expected,
                "gaps_over_15_min": int((gaps > 15).sum()),
                "active_alerts": [t.label for t in AlertType if (self.alerts.active[info.slot] >> t) & 1],
            })
        return out


def _push(subscribers: list[asyncio.Queue], event: tuple[str, dict]) -> None:
    for q in subscribers:
        if q.full():
            q.get_nowait()  # a slow client loses its oldest event, not the stream
        q.put_nowait(event)


def _entry(ts_ms: int, glucose: float, flag: int, slope: float, arrow: str, sensor_id: str,
           device: str) -> dict:
    delta = None if np.isnan(slope) else round(slope * 5.0, 2)
    return {
        "_id": f"{sensor_id}:{ts_ms}", "type": "sgv", "sgv": int(round(glucose)), "date": ts_ms,
        "dateString": datetime.fromtimestamp(ts_ms / 1000, tz=UTC)
        .isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "direction": arrow, "delta": 0.0 if delta is None else delta, "device": device,
        "noise": 1, "rangeFlag": {-1: "LOW", 0: "", 1: "HIGH"}[flag],
    }

