"""Per-sensor exports of lake rows: one JSON or Avro file per sensor, readings in time order.

Rows are grouped by sorting once and slicing runs of equal sensor ids. JSON documents are
assembled with Arrow string kernels (float32 glucose printed in its shortest exact form),
so no Python object is made per reading; Avro needs one dict per reading (fastavro's API).
Every file is written under a temporary name and moved into place, so readers never see a
half-written export. ``cgm_ray.lake.sources.read_source`` reads both shapes back.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import date
from typing import Literal
from urllib.parse import quote

import fastavro
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs

from cgm_ray.errors import ConfigError
from cgm_ray.fs import open_filesystem, write_bytes_atomic
from cgm_ray.lake.store import Lake
from cgm_ray.lake.tasks import run_tasks

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
        write_bytes_atomic(filesystem, path, payload)
        paths.append(path)
    return paths


def export_lake(lake: Lake, out_uri: str, fmt: Literal["json", "avro"],
                start: date | None = None, end: date | None = None) -> int:
    """Export every sensor's readings dated in [start, end], one task per bucket (Ray must be
    initialised); return the number of files written."""
    by_bucket = lake.files_by_bucket(start, end)
    if not by_bucket:
        raise ConfigError("lake", f"{lake.uri} has no readings in that window")
    out_fs, out_root = open_filesystem(out_uri)
    out_fs.create_dir(out_root, recursive=True)

    def export_bucket(paths: list[str]) -> int:
        return len(write_sensor_exports(lake.read(paths), out_root, fmt, out_fs))

    return sum(run_tasks(export_bucket, list(by_bucket.values())))


__all__ = ["AVRO_SCHEMA", "export_file_name", "export_lake", "write_sensor_exports"]
