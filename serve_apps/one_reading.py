"""The commonest upload, one valid reading as columnar JSON, checked without Arrow.

A phone or a CGM bridge sends each reading as it comes (one every 5 minutes), so most
requests carry one. ``check_batch`` makes a one-row Arrow table of each: ~45 us of CPU a
request, 12% of the single-reading ingress's. ``one_reading`` checks such a request in
plain Python instead (~1 us) and keeps it as a ``Reading``; the coalesced requests'
readings become one table per write (``readings_table``: ~25 us for one row, ~50 us for
24, since Arrow's cost is mostly per call, not per row).

Only a request that ``check_batch`` would accept unchanged is taken: one reading, every
value in range, ASCII ids (whose length in characters is their length in bytes). Anything
else, refusals included, goes through ``check_readings``, so every 4xx and its reason is
the same. Those conditions also make ``readings_table`` unable to fail: a reading it could
not convert would fail every request of its write.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pyarrow as pa

from serve_apps.validation import (
    GLUCOSE_RANGE_MGDL,
    INT64,
    MAX_ID_LEN,
    MAX_SENSOR_ID_LEN,
    ReadingBatch,
    check_readings,
    landing_table,
)

__all__ = ["Reading", "check_request", "one_reading", "readings_table"]


class Reading(NamedTuple):
    """One checked reading, received at ``received_ms`` (a row of ``LANDING_SCHEMA``)."""

    patient_id: str
    sensor_id: str
    ts_ms: int
    glucose_mgdl: float
    range_flag: int
    received_ms: int


def one_reading(batch: ReadingBatch, now_ms: int, max_future_skew_s: int,
                min_ts_ms: int) -> Reading | None:
    """``batch`` as a ``Reading`` if it is one reading ``check_batch`` accepts as is; else
    None (the full check then decides)."""
    try:
        (patient,), (sensor,), (ts,), (glucose,) = (batch.patient_id, batch.sensor_id,
                                                    batch.ts_ms, batch.glucose_mgdl)
        (flag,) = (0,) if batch.range_flag is None else batch.range_flag
    except ValueError:  # not one value in every column
        return None
    if (max(min_ts_ms, INT64[0]) <= ts <= now_ms + max_future_skew_s * 1000
            and GLUCOSE_RANGE_MGDL[0] <= glucose <= GLUCOSE_RANGE_MGDL[1]  # False for NaN
            and 0 < len(patient) <= MAX_ID_LEN and 0 < len(sensor) <= MAX_SENSOR_ID_LEN
            and patient.isascii() and sensor.isascii()):
        return Reading(patient, sensor, ts, glucose, flag, now_ms)
    return None


def check_request(data: pa.Table | ReadingBatch, now_ms: int, max_future_skew_s: int,
                  min_ts_ms: int, max_batch: int) -> Reading | pa.Table:
    """A request's readings checked: a ``Reading`` if ``one_reading`` takes it, else the
    table of ``check_readings`` (which raises ``InvalidReadings`` for a refusal)."""
    if isinstance(data, ReadingBatch):
        reading = one_reading(data, now_ms, max_future_skew_s, min_ts_ms)
        if reading is not None:
            return reading
    return check_readings(data, now_ms, max_future_skew_s, min_ts_ms, max_batch)


def readings_table(readings: list[Reading]) -> pa.Table:
    """Readings as one table, in order, exactly as ``check_batch`` would have made each."""
    patients, sensors, ts, glucose, flags, received = zip(*readings)
    return landing_table(pa.array(patients, pa.string()), pa.array(sensors, pa.string()),
                         np.array(ts, np.int64), np.array(glucose, np.float32),
                         np.array(flags, np.int8), np.array(received, np.int64),
                         np.zeros(len(readings), np.int8))
