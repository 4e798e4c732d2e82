"""Per-sensor exports of lake rows: one JSON or Avro file per sensor, readings in time order.

Rows are grouped by sorting once and slicing runs of equal sensor ids. JSON documents are
assembled with Arrow string kernels (float32 glucose printed in its shortest exact form),
so no Python object is made per reading; Avro needs one dict per reading (fastavro's API).
Every file is written under a temporary name and moved into place, so readers never see a
half-written export. ``cgm_ray.lake_sources.read_source`` reads both shapes back.
"""

from __future__ import annotations

import contextlib
import io
import json
import uuid
from collections.abc import Iterator
from typing import Literal
from urllib.parse import quote

import fastavro
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs

from cgm_ray.errors import ConfigError

AVRO_SCHEMA = fastavro.parse_schema({
    "type": "record", "name": "Reading", "namespace": "cgm_ray",
    "fields": [
        {"name": "sensor_id", "type": "string"},
        {"name": "patient_id", "type": "string"},
        {"name": "ts_ms", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "glucose_mgdl", "type": "float"},
        {"name": "range_flag", "type": "int"},
    ],
})


def export_file_name(sensor_id: str, fmt: str) -> str:
    """A file name safe everywhere and distinct per sensor: percent-encoding, no leading dot."""
    name = quote(sensor_id, safe="")
    return f"%2E{name[1:]}.{fmt}" if name.startswith(".") else f"{name}.{fmt}"


def _sensor_runs(rows: pa.Table) -> tuple[list[int], list[int]]:
    """[start, end) row ranges of each sensor in ``rows`` sorted by (sensor, patient); a
    sensor must belong to one patient, because its export names a single patient."""
    run_ends = pc.run_end_encode(rows.column("sensor_id").combine_chunks()).run_ends
    ends = run_ends.cast(pa.int64()).to_pylist()
    starts = [0, *ends[:-1]]
    patients = rows.column("patient_id")
    mixed = pc.not_equal(patients.take(starts), patients.take([end - 1 for end in ends]))
    if pc.any(mixed).as_py():
        sensors = pc.filter(rows.column("sensor_id").take(starts), mixed).to_pylist()
        raise ValueError(f"sensor(s) {sensors[:5]} hold readings of several patients")
    return starts, ends


def _json_payloads(rows: pa.Table, starts: list[int], ends: list[int]) -> Iterator[bytes]:
    """One export document per sensor run, from per-reading JSON strings joined in Arrow."""
    glucose = rows.column("glucose_mgdl")
    readings = pc.binary_join_element_wise(
        '{"ts_ms":', rows.column("ts").cast(pa.int64()).cast(pa.string()),
        ',"glucose_mgdl":', pc.if_else(pc.is_finite(glucose), glucose.cast(pa.string()), "null"),
        ',"range_flag":', rows.column("range_flag").cast(pa.string()), "}", "")
    per_sensor = pa.ListArray.from_arrays(pa.array([*starts, ends[-1]], pa.int32()),
                                          readings.combine_chunks())
    bodies = pc.binary_join(per_sensor, ",").to_pylist()
    for sensor, patient, body in zip(*_run_ids(rows, starts), bodies):
        head = f'{{"sensor_id":{json.dumps(sensor)},"patient_id":{json.dumps(patient)}'
        yield f'{head},"readings":[{body}]}}\n'.encode()


def _avro_payloads(rows: pa.Table, starts: list[int], ends: list[int]) -> Iterator[bytes]:
    """One deflated Avro container per sensor run (fastavro takes a dict per reading)."""
    ts_ms = rows.column("ts").cast(pa.int64()).to_pylist()
    glucose = rows.column("glucose_mgdl").to_pylist()
    flags = rows.column("range_flag").to_pylist()
    for sensor, patient, start, end in zip(*_run_ids(rows, starts), starts, ends):
        records = ({"sensor_id": sensor, "patient_id": patient, "ts_ms": ts_ms[i],
                    "glucose_mgdl": glucose[i], "range_flag": flags[i]} for i in range(start, end))
        out = io.BytesIO()
        fastavro.writer(out, AVRO_SCHEMA, records, codec="deflate")
        yield out.getvalue()


def _run_ids(rows: pa.Table, starts: list[int]) -> tuple[list[str], list[str]]:
    """The sensor and patient id of each run."""
    return (rows.column("sensor_id").take(starts).to_pylist(),
            rows.column("patient_id").take(starts).to_pylist())


_PAYLOADS = {"json": _json_payloads, "avro": _avro_payloads}


def _write_atomically(filesystem: pafs.FileSystem, path: str, payload: bytes) -> None:
    """Write under a hidden temporary name next to ``path``, then move it into place."""
    folder, name = path.rsplit("/", 1)
    tmp = f"{folder}/.{name}.{uuid.uuid4().hex}.tmp"
    try:
        with filesystem.open_output_stream(tmp, compression=None) as out:
            out.write(payload)
        filesystem.move(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            filesystem.delete_file(tmp)
        raise


def write_sensor_exports(table: pa.Table, out_dir: str, fmt: Literal["json", "avro"],
                         filesystem: pafs.FileSystem) -> list[str]:
    """Write ``out_dir/<sensor>.<fmt>`` per sensor of ``table`` (LAKE_SCHEMA rows, any order),
    each with that sensor's readings sorted by time; return the paths written, by sensor."""
    if fmt not in _PAYLOADS:
        raise ConfigError("fmt", f"unknown export format {fmt!r}: use one of {list(_PAYLOADS)}")
    if table.num_rows == 0:
        return []
    rows = table.sort_by([("sensor_id", "ascending"), ("patient_id", "ascending"),
                          ("ts", "ascending")])
    starts, ends = _sensor_runs(rows)
    filesystem.create_dir(out_dir, recursive=True)
    paths = []
    sensors, _ = _run_ids(rows, starts)
    for sensor, payload in zip(sensors, _PAYLOADS[fmt](rows, starts, ends)):
        path = f"{out_dir.rstrip('/')}/{export_file_name(sensor, fmt)}"
        _write_atomically(filesystem, path, payload)
        paths.append(path)
    return paths


__all__ = ["AVRO_SCHEMA", "export_file_name", "write_sensor_exports"]
