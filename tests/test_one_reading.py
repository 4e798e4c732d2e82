"""The one-reading fast path: it takes only what the full check accepts, and builds the same rows."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from cgm_ray.schema import EARLIEST_TS_MS
from serve_apps.batching import coalesce
from serve_apps.one_reading import Reading, check_request, one_reading, readings_table
from serve_apps.validation import InvalidReadings, check_readings, parse_batch

NOW = 1_790_000_000_000
ONE = {"patient_id": ["p"], "sensor_id": ["s"], "ts_ms": [NOW - 300_000], "glucose_mgdl": [104.7]}


def parsed(body: dict):
    return parse_batch(json.dumps(body).encode(), "application/json")


def full_check(body: dict, now: int = NOW) -> pa.Table:
    return check_readings(parsed(body), now, 300, EARLIEST_TS_MS, 100)


def fast(body: dict, now: int = NOW) -> Reading | None:
    return one_reading(parsed(body), now, 300, EARLIEST_TS_MS)


@pytest.mark.parametrize("changes", [
    {},
    {"range_flag": [-1]},
    {"range_flag": [1], "glucose_mgdl": [600]},
    {"glucose_mgdl": [20.0]},
    {"glucose_mgdl": [123.456789]},  # rounded to float32 as the full check does
    {"ts_ms": [NOW + 300_000]},  # the latest accepted
    {"ts_ms": [EARLIEST_TS_MS]},  # the earliest accepted
    {"patient_id": ["p" * 64], "sensor_id": ["p" * 64 + "/" + "d" * 64]},
])
def test_an_accepted_reading_becomes_the_row_the_full_check_makes(changes):
    body = {**ONE, **changes}
    reading = fast(body)
    assert reading is not None
    assert readings_table([reading]).equals(full_check(body))


@pytest.mark.parametrize("changes", [
    {"glucose_mgdl": [19.99]},
    {"glucose_mgdl": [600.01]},
    {"glucose_mgdl": [float("nan")]},
    {"glucose_mgdl": [float("inf")]},
    {"ts_ms": [NOW + 300_001]},
    {"ts_ms": [EARLIEST_TS_MS - 1]},
    {"ts_ms": [1 << 63]},
    {"patient_id": [""]},
    {"patient_id": ["p" * 65]},
    {"sensor_id": ["s" * 130]},
    {"ts_ms": [NOW, NOW]},
    {"range_flag": []},
    {"range_flag": [0, 0]},
    {"patient_id": ["p", "q"], "sensor_id": ["s", "t"], "ts_ms": [NOW, NOW],
     "glucose_mgdl": [100.0, 101.0]},
])
def test_anything_else_gets_the_full_checks_answer(changes):
    body = {**ONE, **changes}
    assert fast(body) is None
    try:
        expected: pa.Table | str = full_check(body)
    except InvalidReadings as exc:
        expected = str(exc)
    try:
        got: pa.Table | Reading | str = check_request(parsed(body), NOW, 300, EARLIEST_TS_MS, 100)
    except InvalidReadings as exc:
        got = str(exc)
    assert got == expected if isinstance(expected, str) else expected.equals(got)


def test_ids_outside_ascii_take_the_full_check_and_are_stored_the_same():
    body = {**ONE, "patient_id": ["pätient"], "sensor_id": ["😀" * 129]}
    assert fast(body) is None
    table = check_request(parsed(body), NOW, 300, EARLIEST_TS_MS, 100)
    assert isinstance(table, pa.Table) and table.equals(full_check(body))


def test_arrow_bodies_take_the_full_check():
    table = full_check(ONE)
    assert check_request(table, NOW, 300, EARLIEST_TS_MS, 100).equals(full_check(ONE))


def test_coalesced_readings_and_tables_keep_request_order_and_owners():
    bodies = [{**ONE, "ts_ms": [NOW - k * 300_000], "sensor_id": [f"s{k}"]} for k in range(5)]
    pair = {"patient_id": ["q", "q"], "sensor_id": ["t", "t"], "ts_ms": [NOW - 1, NOW],
            "glucose_mgdl": [90.0, 91.0]}
    requests: list[pa.Table | Reading] = [fast(bodies[0], NOW - 5), full_check(pair),
                                          fast(bodies[1], NOW - 4), fast(bodies[2], NOW - 3),
                                          full_check(bodies[3]), fast(bodies[4], NOW - 1)]
    batch = coalesce(requests, 1)
    expected = pa.concat_tables(
        [full_check(bodies[0], NOW - 5), full_check(pair), full_check(bodies[1], NOW - 4),
         full_check(bodies[2], NOW - 3), full_check(bodies[3]), full_check(bodies[4], NOW - 1)])
    assert batch.table.equals(expected)
    assert batch.owner.tolist() == [0, 1, 1, 2, 3, 4, 5]
    assert batch.table.column("received_ms").to_pylist()[:4] == [NOW - 5, NOW, NOW, NOW - 4]
    assert np.array_equal(batch.groups[0][1], np.arange(7))
