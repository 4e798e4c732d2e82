"""Request validation without a server: every refusal names its field (and row)."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.ipc as ipc
import pytest

from cgm_ray.schema import ARROW_STREAM, EARLIEST_TS_MS, LANDING_SCHEMA
from serve_apps.validation import (
    InvalidBody,
    InvalidReadings,
    NightscoutEntry,
    ReadingBatch,
    Snooze,
    check_disabled,
    check_readings,
    check_table,
    entries_table,
    parse_batch,
)

NOW = 1_790_000_000_000
OK = {"patient_id": ["p", "p"], "sensor_id": ["s", "s"], "ts_ms": [NOW - 300_000, NOW],
      "glucose_mgdl": [100.0, 104.5]}


def check_json(body: dict | bytes, max_batch: int = 100) -> pa.Table:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return check_readings(parse_batch(raw, "application/json"), NOW, 300, EARLIEST_TS_MS, max_batch)


def arrow(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, table.schema) as out:
        out.write_table(table)
    return sink.getvalue().to_pybytes()


def check_arrow(body: bytes | pa.Table) -> pa.Table:
    raw = body if isinstance(body, bytes) else arrow(body)
    return check_readings(parse_batch(raw, f"{ARROW_STREAM}; charset=binary"), NOW, 300,
                          EARLIEST_TS_MS, 100)


def with_(**changes) -> dict:
    return {**OK, **changes}


def test_valid_json_and_arrow_batches_become_landing_rows():
    table = check_json({**OK, "range_flag": [0, 1]})
    assert table.schema == LANDING_SCHEMA
    assert table.column("glucose_mgdl").to_pylist() == [100.0, 104.5]
    assert table.column("range_flag").to_pylist() == [0, 1]
    assert table.column("received_ms").to_pylist() == [NOW, NOW]
    same = check_arrow(pa.table({k: v for k, v in OK.items()}))
    assert same.drop_columns(["range_flag"]).equals(table.drop_columns(["range_flag"]))


@pytest.mark.parametrize("body, expected", [
    (b"{not json", "body: Invalid JSON: key must be a string at line 1 column 2"),
    (with_(patient_id=["p"]), "readings: all columns must have the same length"),
    (with_(range_flag=[0]), "readings: all columns must have the same length"),
    ({k: [] for k in OK}, "readings: the batch is empty"),
    (with_(ts_ms=["yesterday", NOW]),
     "ts_ms (row 0): Input should be a valid integer, unable to parse string as an integer"),
    (with_(ts_ms=[NOW, 10 ** 20]), "ts_ms: must be epoch milliseconds (a 64-bit integer)"),
    (with_(ts_ms=[NOW, NOW + 301_000]), "ts_ms (row 1): more than 300 s in the future"),
    (with_(ts_ms=[EARLIEST_TS_MS - 1, NOW]), "ts_ms (row 0): too old (epoch milliseconds expected)"),
    (with_(glucose_mgdl=[100, 1500]), "glucose_mgdl (row 1): must be within 20-600 mg/dL, got 1500"),
    (with_(glucose_mgdl=[19.9, 100]), "glucose_mgdl (row 0): must be within 20-600 mg/dL, got 19.9"),
    (with_(range_flag=[0, 2]), "range_flag (row 1): Input should be -1, 0 or 1"),
    (with_(patient_id=["p", ""]), "patient_id (row 1): must be 1-64 characters"),
    (with_(sensor_id=["s" * 130, "s"]), "sensor_id (row 0): must be 1-129 characters"),
    (with_(extra=[1, 2]), "extra: Extra inputs are not permitted"),
    ({k: v for k, v in OK.items() if k != "ts_ms"}, "ts_ms: Field required"),
])
def test_json_batch_refusals_name_the_field_and_row(body, expected):
    with pytest.raises(InvalidReadings) as exc:
        check_json(body)
    assert str(exc.value) == expected


def test_a_batch_over_the_limit_says_the_limit():
    with pytest.raises(InvalidReadings, match="readings: at most 1 readings per request, got 2"):
        check_json(OK, max_batch=1)


@pytest.mark.parametrize("body, expected", [
    (b"not arrow", "body: not an Arrow IPC stream"),
    (pa.table({k: v for k, v in OK.items() if k != "sensor_id"}), "sensor_id: field required"),
    (pa.table({**OK, "ts_ms": pa.array([NOW, None], pa.int64())}), "ts_ms (row 1): must not be null"),
    (pa.table({**OK, "ts_ms": pa.array([1.5, 2.5])}), "readings: wrong column type"),
    (pa.table({**OK, "glucose_mgdl": ["high", "low"]}), "readings: wrong column type"),
    (pa.table({**OK, "range_flag": pa.array([0, 5], pa.int8())}),
     "range_flag (row 1): must be -1 (LOW), 0 or 1 (HIGH)"),
    (pa.table({**OK, "glucose_mgdl": [100.0, float("nan")]}), "glucose_mgdl (row 1): must be within"),
    (pa.table({**OK, "patient_id": ["p", "x" * 65]}), "patient_id (row 1): must be 1-64 characters"),
    (pa.table({k: pa.array([], pa.int64()) for k in OK}), "readings: the batch is empty"),
])
def test_arrow_batch_refusals_name_the_field_and_row(body, expected):
    with pytest.raises(InvalidReadings) as exc:
        check_arrow(body)
    assert str(exc.value).startswith(expected)


def test_a_column_named_twice_is_refused_not_a_crash():
    table = pa.table([pa.array(["p"]), pa.array(["s"]), pa.array([NOW]), pa.array([NOW]),
                      pa.array([100.0])], names=["patient_id", "sensor_id", "ts_ms", "ts_ms",
                                                 "glucose_mgdl"])
    with pytest.raises(InvalidReadings, match="^ts_ms: column given twice"):
        check_arrow(table)


def entries(*items: dict) -> list[NightscoutEntry]:
    return [NightscoutEntry.model_validate(x) for x in items]


def test_nightscout_sgv_entries_become_readings():
    table = entries_table(entries(
        {"type": "sgv", "sgv": 120, "date": NOW, "device": "xDrip"},
        {"sgv": 118, "dateString": "2026-09-21T12:00:00.000z"}), "pat")
    assert table.column("sensor_id").to_pylist() == ["pat/xDrip", "pat/nightscout"]
    assert table.column("ts_ms").to_pylist() == [NOW, 1_789_992_000_000]
    assert table.column("patient_id").to_pylist() == ["pat", "pat"]


@pytest.mark.parametrize("item, expected", [
    ({"type": "sgv", "date": NOW}, "sgv (row 0): required for type sgv"),
    ({"sgv": 120}, "date (row 0): date (epoch ms) or dateString required"),
    ({"sgv": 120, "dateString": "yesterday"}, "dateString (row 0): not an ISO 8601 time"),
    ({"sgv": 120, "date": 10 ** 20}, "date (row 0): must be epoch milliseconds (a 64-bit integer)"),
])
def test_nightscout_refusals_name_the_field(item, expected):
    with pytest.raises(InvalidReadings) as exc:
        entries_table(entries(item), "pat")
    assert str(exc.value) == expected


def test_snooze_and_settings_name_unknown_alert_types():
    assert Snooze(type="HIGH").alert_type().label == "high"
    with pytest.raises(InvalidBody, match=r"^type: unknown alert type 'nope'; known: \['urgent_low'"):
        Snooze(type="nope").alert_type()
    check_disabled(["low", "Stale"])
    with pytest.raises(InvalidBody, match=r"^disabled \(row 1\): unknown alert type 'lo'"):
        check_disabled(["high", "lo"])


def test_the_documented_schema_states_the_checked_limits():
    schema = ReadingBatch.model_json_schema()["properties"]
    assert schema["ts_ms"]["items"]["minimum"] == EARLIEST_TS_MS
    assert (schema["glucose_mgdl"]["items"]["minimum"],
            schema["glucose_mgdl"]["items"]["maximum"]) == (20, 600)
    assert schema["patient_id"]["items"] == {"type": "string", "minLength": 1, "maxLength": 64}
    assert Snooze.model_json_schema()["properties"]["type"]["enum"][0] == "urgent_low"


def test_nightscout_arrows_are_kept_as_trend_codes():
    table = entries_table(entries(
        {"sgv": 120, "date": NOW, "direction": "SingleUp"},
        {"sgv": 121, "date": NOW + 1, "trend": 7},
        {"sgv": 122, "date": NOW + 2, "direction": "sideways"}), "pat")
    assert table.column("trend").to_pylist() == [2, 7, 0]
    landed = check_table(table, NOW, 300, 0, 10)
    assert landed.column("trend").to_pylist() == [2, 7, 0]
    with pytest.raises(InvalidReadings, match="trend"):
        check_table(table.set_column(4, "trend", pa.array([1, 2, 10], pa.int8())), NOW, 300, 0, 10)
