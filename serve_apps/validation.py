"""Request validation: reading batches (columnar JSON or Arrow IPC), Nightscout entries,
sensor registrations and snoozes.

Every check names the field and, for batches, the first offending row, so a client can
fix its data; nothing invalid reaches the write-ahead log. The models' JSON schemas (the
API's OpenAPI document) state the same limits as the checks, so a client generating
bodies from the schema gets them accepted; what JSON Schema cannot say (equal-length
columns, the clock) is in the descriptions.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cgm_ray.glucose.alerts import AlertType
from cgm_ray.glucose.trend import TREND_CODES, TREND_NAMES
from cgm_ray.schema import ARROW_STREAM, EARLIEST_TS_MS, LANDING_SCHEMA

GLUCOSE_RANGE_MGDL = (20.0, 600.0)
MAX_ID_LEN = 64
# A Nightscout upload's sensor is its patient's device label ("patient/device"): labels such
# as "xDrip-DexcomG6" are shared by every user of an app, so alone they name no sensor.
MAX_SENSOR_ID_LEN = 2 * MAX_ID_LEN + 1
INT64 = (-(1 << 63), (1 << 63) - 1)
SAFE_INT = (1 << 53) - 1  # the largest integer every JSON parser reads exactly
ALERT_TYPES = [t.label for t in AlertType]

# JSON Schema fragments of the checks below (documentation only: the checks enforce them).
_ID = {"type": "string", "minLength": 1, "maxLength": MAX_ID_LEN}
_SENSOR_ID = {"type": "string", "minLength": 1, "maxLength": MAX_SENSOR_ID_LEN}
_TS = {"type": "integer", "minimum": EARLIEST_TS_MS, "maximum": SAFE_INT,
       "description": "epoch milliseconds, UTC; at least the server's min_ts_ms "
       "(2000-01-01 by default) and at most max_future_skew_s (300 s) ahead of its clock"}
_GLUCOSE = {"type": "number", "minimum": GLUCOSE_RANGE_MGDL[0], "maximum": GLUCOSE_RANGE_MGDL[1]}


def _column(items: dict) -> dict:
    return {"json_schema_extra": {"type": "array", "items": items, "minItems": 1}}


class InvalidBody(ValueError):
    """A request body failed validation; ``field`` and ``row`` say where (HTTP 422)."""

    def __init__(self, field: str, message: str, row: int | None = None) -> None:
        self.field, self.row, self.message = field, row, message
        where = f" (row {row})" if row is not None else ""
        super().__init__(f"{field}{where}: {message}")


class InvalidReadings(InvalidBody):
    """A batch of readings failed validation."""


class ReadingBatch(BaseModel):
    """Columnar JSON batch: equal-length arrays, one element per reading (at most the
    server's max_batch, 50,000 by default); ``range_flag`` is -1 (LOW), 0 or 1 (HIGH)."""

    model_config = ConfigDict(extra="forbid")
    patient_id: list[str] = Field(**_column(_ID))
    sensor_id: list[str] = Field(**_column(_SENSOR_ID))
    ts_ms: list[int] = Field(**_column(_TS))
    glucose_mgdl: list[float] = Field(**_column(_GLUCOSE))
    range_flag: list[Literal[-1, 0, 1]] | None = None


# An entry's time: ``date`` (epoch ms) or ``dateString`` (ISO 8601).
_TIMED = {"anyOf": [{"required": ["date"], "properties": {"date": _TS}},
                    {"required": ["dateString"], "properties": {"dateString": {
                        "type": "string", "format": "date-time"}}}]}


class NightscoutEntry(BaseModel):
    """A Nightscout v1 entry. ``sgv`` entries are CGM readings; the others (``mbg`` meter
    values, ``cal`` calibrations, ...) are stored as documents (serve_apps.nightscout).

    Every entry needs its time as ``date`` or ``dateString``; an sgv entry needs ``sgv``
    and an mbg entry ``mbg``; ``device`` names the sensor (1-64 characters, "nightscout"
    if absent or empty).
    """

    model_config = ConfigDict(extra="allow", json_schema_extra={"allOf": [
        {"if": {"properties": {"type": {"const": "sgv"}}},  # also when "type" is absent
         "then": {"required": ["sgv"], "properties": {"sgv": _GLUCOSE}, **_TIMED}},
        {"if": {"required": ["type"], "properties": {"type": {"const": "mbg"}}},
         "then": {"required": ["mbg"], "properties": {"mbg": _GLUCOSE}}},
        {"if": {"required": ["type"], "properties": {"type": {"not": {"const": "sgv"}}}},
         "then": {"properties": {"type": {"minLength": 1, "maxLength": 32}}, **_TIMED}}]})
    type: str = "sgv"
    sgv: float | None = Field(None, json_schema_extra={"anyOf": [_GLUCOSE, {"type": "null"}]})
    # Loop sends ``timeIntervalSince1970 * 1000``, a float: its whole milliseconds are kept.
    date: int | float | None = Field(None, json_schema_extra={"anyOf": [_TS, {"type": "null"}]})
    dateString: str | None = Field(None, json_schema_extra={
        "anyOf": [{"type": "string", "format": "date-time"}, {"type": "null"}]})
    device: str | None = Field(None, json_schema_extra={
        "anyOf": [{"type": "string", "maxLength": MAX_ID_LEN}, {"type": "null"}]})
    direction: str | None = None
    noise: int | None = None


class SensorRegistration(BaseModel):
    """A sensor registered to a patient (``POST /api/v2/sensors``)."""

    sensor_id: str = Field(min_length=1, max_length=MAX_SENSOR_ID_LEN)
    patient_id: str = Field(min_length=1, max_length=MAX_ID_LEN)
    model: str | None = None
    started_ms: int | None = Field(None, ge=-SAFE_INT, le=SAFE_INT, description="epoch ms")
    expires_ms: int | None = Field(None, ge=-SAFE_INT, le=SAFE_INT, description="epoch ms")
    warmup_min: int = Field(0, ge=0, le=24 * 60)
    cohort: str | None = Field(None, max_length=MAX_ID_LEN)


class Snooze(BaseModel):
    """Silence one alert type of a patient for ``minutes``."""

    type: str = Field(json_schema_extra={"enum": ALERT_TYPES})
    minutes: int = Field(30, ge=1, le=24 * 60)

    def alert_type(self) -> AlertType:
        """The alert type named (any case); InvalidBody names the known ones."""
        try:
            return AlertType[self.type.upper()]
        except KeyError:
            raise InvalidBody("type", f"unknown alert type {self.type!r}; "
                                  f"known: {ALERT_TYPES}") from None


def check_disabled(names: list[str]) -> None:
    """Alert settings' ``disabled`` list names known alert types (any case)."""
    for i, name in enumerate(names):
        if name.upper() not in AlertType.__members__:
            raise InvalidBody("disabled", f"unknown alert type {name!r}; "
                                  f"known: {ALERT_TYPES}", i)


def _check_ids(values: pa.Array, field: str, max_len: int = MAX_ID_LEN) -> None:
    lengths = pc.utf8_length(values).to_numpy(zero_copy_only=False)
    bad = np.flatnonzero((lengths == 0) | (lengths > max_len))
    if len(bad):
        raise InvalidReadings(field, f"must be 1-{max_len} characters", int(bad[0]))


def _check_count(n: int, max_batch: int) -> None:
    if n == 0:
        raise InvalidReadings("readings", "the batch is empty")
    if n > max_batch:
        raise InvalidReadings("readings", f"at most {max_batch} readings per request, got {n}")


def check_table(table: pa.Table, now_ms: int, max_future_skew_s: int, min_ts_ms: int,
                max_batch: int) -> pa.Table:
    """Validate and normalise an Arrow batch to ``LANDING_SCHEMA`` (received_ms = now)."""
    _check_count(table.num_rows, max_batch)
    for name in ("patient_id", "sensor_id", "ts_ms", "glucose_mgdl", "range_flag"):
        found = len(table.schema.get_all_field_indices(name))
        if found > 1:
            raise InvalidReadings(name, "column given twice")
        if not found:
            if name == "range_flag":
                break
            raise InvalidReadings(name, "field required")
        if table.column(name).null_count:
            raise InvalidReadings(name, "must not be null",
                                  int(np.flatnonzero(table.column(name).is_null().to_numpy(zero_copy_only=False))[0]))
    try:
        ts = table.column("ts_ms").cast(pa.int64()).to_numpy()
        g = table.column("glucose_mgdl").cast(pa.float64()).to_numpy()
        flag = (table.column("range_flag").cast(pa.int8()).to_numpy()
                if "range_flag" in table.column_names else None)
        patients = table.column("patient_id").cast(pa.string()).combine_chunks()
        sensors = table.column("sensor_id").cast(pa.string()).combine_chunks()
        trend = (table.column("trend").fill_null(0).cast(pa.int8()).to_numpy()
                 if "trend" in table.column_names else None)
    except pa.ArrowException as exc:
        raise InvalidReadings("readings", f"wrong column type: {exc}") from None
    if trend is not None and len(bad := np.flatnonzero((trend < 0) | (trend >= len(TREND_NAMES)))):
        raise InvalidReadings("trend", f"must be 0-{len(TREND_NAMES) - 1}", int(bad[0]))
    return _landing(patients, sensors, ts, g, flag, now_ms, max_future_skew_s, min_ts_ms, trend)


def check_batch(batch: ReadingBatch, now_ms: int, max_future_skew_s: int, min_ts_ms: int,
                max_batch: int) -> pa.Table:
    """Validate and normalise a parsed JSON batch to ``LANDING_SCHEMA`` (received_ms = now).

    Works on the parsed lists directly: a single-reading request costs a few Arrow calls,
    not the dozens a generic table check makes (validation was ~20% of the ingress's CPU).
    """
    columns = [batch.patient_id, batch.sensor_id, batch.ts_ms, batch.glucose_mgdl]
    if batch.range_flag is not None:
        columns.append(batch.range_flag)
    if len({len(c) for c in columns}) > 1:
        raise InvalidReadings("readings", "all columns must have the same length")
    _check_count(len(batch.ts_ms), max_batch)
    flag = np.asarray(batch.range_flag, np.int8) if batch.range_flag is not None else None
    try:
        ts = np.asarray(batch.ts_ms, np.int64)
    except OverflowError:
        raise InvalidReadings("ts_ms", "must be epoch milliseconds (a 64-bit integer)") from None
    return _landing(pa.array(batch.patient_id, pa.string()), pa.array(batch.sensor_id, pa.string()),
                    ts, np.asarray(batch.glucose_mgdl, np.float64), flag, now_ms,
                    max_future_skew_s, min_ts_ms)


def _landing(patients: pa.Array, sensors: pa.Array, ts: np.ndarray, g: np.ndarray,
             flag: np.ndarray | None, now_ms: int, max_future_skew_s: int,
             min_ts_ms: int, trend: np.ndarray | None = None) -> pa.Table:
    """Range checks shared by every input form, then the write-ahead log's row layout."""
    n = len(ts)
    flag = np.zeros(n, np.int8) if flag is None else flag
    bad = np.flatnonzero(~np.isfinite(g) | (g < GLUCOSE_RANGE_MGDL[0]) | (g > GLUCOSE_RANGE_MGDL[1]))
    if len(bad):
        raise InvalidReadings("glucose_mgdl", f"must be within {GLUCOSE_RANGE_MGDL[0]:g}-"
                              f"{GLUCOSE_RANGE_MGDL[1]:g} mg/dL, got {g[bad[0]]:g}", int(bad[0]))
    bad = np.flatnonzero(ts > now_ms + max_future_skew_s * 1000)
    if len(bad):
        raise InvalidReadings("ts_ms", f"more than {max_future_skew_s} s in the future", int(bad[0]))
    bad = np.flatnonzero(ts < min_ts_ms)
    if len(bad):
        raise InvalidReadings("ts_ms", "too old (epoch milliseconds expected)", int(bad[0]))
    bad = np.flatnonzero((flag < -1) | (flag > 1))
    if len(bad):
        raise InvalidReadings("range_flag", "must be -1 (LOW), 0 or 1 (HIGH)", int(bad[0]))
    _check_ids(patients, "patient_id")
    _check_ids(sensors, "sensor_id", MAX_SENSOR_ID_LEN)
    return landing_table(patients, sensors, ts, g, flag, np.full(n, now_ms, np.int64),
                         np.zeros(n, np.int8) if trend is None else trend)


def landing_table(patients: pa.Array, sensors: pa.Array, ts: np.ndarray, g: np.ndarray,
                  flag: np.ndarray, received_ms: np.ndarray, trend: np.ndarray) -> pa.Table:
    """Checked readings in the write-ahead log's row layout (``LANDING_SCHEMA``)."""
    return pa.table([patients, sensors, pa.array(ts), pa.array(g, pa.float32()),
                     pa.array(flag, pa.int8()), pa.array(received_ms), pa.array(trend, pa.int8())],
                    schema=LANDING_SCHEMA)


def parse_batch(body: bytes, content_type: str) -> pa.Table | ReadingBatch:
    """A request body: an Arrow IPC stream as a table, columnar JSON as a ``ReadingBatch``."""
    if content_type.startswith(ARROW_STREAM):
        try:
            return ipc.open_stream(pa.py_buffer(body)).read_all()
        except (pa.ArrowException, OSError) as exc:
            raise InvalidReadings("body", f"not an Arrow IPC stream: {exc}") from None
    try:
        return ReadingBatch.model_validate_json(body)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = [str(p) for p in err["loc"]]
        row = int(loc[1]) if len(loc) > 1 and loc[1].isdigit() else None
        raise InvalidReadings(loc[0] if loc else "body", err["msg"], row) from None


def check_readings(data: pa.Table | ReadingBatch, now_ms: int, max_future_skew_s: int,
                   min_ts_ms: int, max_batch: int) -> pa.Table:
    """``check_batch`` or ``check_table``, whichever ``data`` is."""
    check = check_batch if isinstance(data, ReadingBatch) else check_table
    return check(data, now_ms, max_future_skew_s, min_ts_ms, max_batch)


def nightscout_sensor(patient_id: str, device: str | None) -> str:
    """The sensor id of a Nightscout upload: its device label within the patient."""
    return f"{patient_id}/{device or 'nightscout'}"


def entries_table(rows: list[NightscoutEntry], patient_id: str) -> pa.Table:
    """Sgv entries as a batch of readings for ``patient_id`` (the caller keeps the other
    types apart: they are documents)."""
    for i, e in enumerate(rows):
        if e.sgv is None:
            raise InvalidReadings("sgv", "required for type sgv", i)
        if e.date is None:
            if not e.dateString:
                raise InvalidReadings("date", "date (epoch ms) or dateString required", i)
            try:
                e.date = int(datetime.fromisoformat(e.dateString.upper().replace("Z", "+00:00"))
                             .timestamp() * 1000)
            except (ValueError, OverflowError, OSError):
                raise InvalidReadings("dateString", "not an ISO 8601 time", i) from None
        if not (math.isfinite(e.date) and INT64[0] <= e.date <= INT64[1]):
            raise InvalidReadings("date", "must be epoch milliseconds (a 64-bit integer)", i)
    table = pa.table({
        "patient_id": [patient_id] * len(rows),
        "sensor_id": [nightscout_sensor(patient_id, e.device) for e in rows],
        "ts_ms": pa.array([int(e.date) for e in rows], pa.int64()),
        "glucose_mgdl": pa.array([e.sgv for e in rows], pa.float64()),
        "trend": pa.array([_trend_code(e) for e in rows], pa.int8()),
    })
    return table


def _trend_code(entry: NightscoutEntry) -> int:
    """The uploader's arrow as a trend code: its ``direction`` name, else its ``trend``
    number (Dexcom Share sends only that), else 0."""
    if entry.direction in TREND_CODES:
        return TREND_CODES[entry.direction]
    number = (entry.model_extra or {}).get("trend")
    return number if isinstance(number, int) and 0 < number < len(TREND_NAMES) else 0
