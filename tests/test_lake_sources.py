"""Lake input readers (every format x column convention, strictness) and per-sensor exports."""

from __future__ import annotations

import asyncio
import gzip
import json
import pickle
import time
from collections.abc import Callable
from pathlib import Path

import fastavro
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.feather as feather
import pyarrow.fs as pafs
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest

from cgm_ray.errors import ConfigError
from cgm_ray.lake.exports import write_sensor_exports
from cgm_ray.lake.sources import TABLE_SUFFIXES, SourceError, SourceRows, read_source
from cgm_ray.schema import LAKE_SCHEMA, LANDING_SCHEMA, READING_SCHEMA
from serve_apps.wal import WriteAheadLog

FS = pafs.LocalFileSystem()
T0_MS = 1_709_280_000_000  # 2024-03-01T08:00:00Z
MIN_MS = 60_000


def lake(rows: list[tuple], source: str = "import") -> pa.Table:
    """Expected lake rows from (patient, sensor, ts_ms, glucose, range_flag) tuples."""
    patient, sensor, ts_ms, glucose, flag = zip(*rows) if rows else ([],) * 5
    return pa.Table.from_arrays([
        pa.array(patient, pa.string()), pa.array(sensor, pa.string()),
        pa.array(ts_ms, pa.int64()).cast(LAKE_SCHEMA.field("ts").type),
        pa.array(glucose, pa.float32()), pa.array(flag, pa.int8()),
        pa.array([source] * len(ts_ms), pa.string())], schema=LAKE_SCHEMA)


# -- the three column conventions, and what each must become ------------------------------
NATIVE = pa.table({
    "patient_id": ["p1", "p1", "p2"], "sensor_id": ["s1", "s1", "s2"],
    "ts_ms": pa.array([T0_MS, T0_MS + 5 * MIN_MS, T0_MS + MIN_MS], pa.int64()),
    "glucose_mgdl": pa.array([120.5, 55.25, 401.0], pa.float32()),
    "range_flag": pa.array([0, -1, 1], pa.int8()),
})
NATIVE_ROWS = [("p1", "s1", T0_MS, 120.5, 0), ("p1", "s1", T0_MS + 5 * MIN_MS, 55.25, -1),
               ("p2", "s2", T0_MS + MIN_MS, 401.0, 1)]
NATIVE_LAKE = lake(NATIVE_ROWS)

IGLU = pa.table({
    "id": ["007", "007", "007", "8"],
    "time": ["2024-03-01 08:00:00", "2024-03-01T09:05:00+01:00", "2024-03-01T08:10:00.250Z",
             "2024-03-01 08:15:00.123456"],
    "gl": [100.0, 150.5, 200.0, 75.75],
})
IGLU_LAKE = lake([("007", "007", T0_MS, 100.0, 0), ("007", "007", T0_MS + 5 * MIN_MS, 150.5, 0),
                  ("007", "007", T0_MS + 10 * MIN_MS + 250, 200.0, 0),
                  ("8", "8", T0_MS + 15 * MIN_MS + 123, 75.75, 0)])

NIGHTSCOUT = pa.table({
    "sgv": pa.array([110, 115, 250], pa.int64()),
    "date": pa.array([T0_MS, None, T0_MS + MIN_MS], pa.int64()),
    "dateString": ["2024-03-01T08:00:00.000Z", "2024-03-01T08:05:00.000Z", None],
    "device": ["xdrip-A", "xdrip-A", "dexcom-B"],
    "patient_id": [None, None, "alice"],
    "type": ["sgv", "sgv", "sgv"],
    "direction": ["Flat", "FortyFiveUp", None],
})
NIGHTSCOUT_LAKE = lake([("xdrip-A", "xdrip-A", T0_MS, 110.0, 0),
                        ("xdrip-A", "xdrip-A", T0_MS + 5 * MIN_MS, 115.0, 0),
                        ("alice", "dexcom-B", T0_MS + MIN_MS, 250.0, 0)])

CONVENTIONS = {"native": (NATIVE, NATIVE_LAKE), "iglu": (IGLU, IGLU_LAKE),
               "nightscout": (NIGHTSCOUT, NIGHTSCOUT_LAKE)}


# -- writers of every format ------------------------------------------------------------
def _gzipped(data: bytes, path: Path) -> None:
    path.write_bytes(gzip.compress(data) if path.name.lower().endswith(".gz") else data)


def write_arrow_stream(table: pa.Table, path: Path) -> None:
    with pa.OSFile(str(path), "wb") as fh, ipc.new_stream(fh, table.schema) as out:
        for batch in table.to_batches(max_chunksize=2):  # several batches
            out.write_batch(batch)


def write_arrow_file(table: pa.Table, path: Path) -> None:
    with pa.OSFile(str(path), "wb") as fh, ipc.new_file(fh, table.schema) as out:
        out.write_table(table)


def write_csv(table: pa.Table, path: Path) -> None:
    sink = pa.BufferOutputStream()
    pacsv.write_csv(table, sink)
    _gzipped(sink.getvalue().to_pybytes(), path)


def write_json(table: pa.Table, path: Path) -> None:
    _gzipped(json.dumps(table.to_pylist()).encode(), path)


def write_json_entries(table: pa.Table, path: Path) -> None:
    _gzipped(json.dumps({"status": "ok", "entries": table.to_pylist()}).encode(), path)


def write_ndjson(table: pa.Table, path: Path) -> None:
    lines = "".join(json.dumps(row) + "\n\n" for row in table.to_pylist())  # blank lines too
    _gzipped(lines.encode(), path)


AVRO_TYPES = {pa.string(): "string", pa.int64(): "long", pa.int8(): "int", pa.float32(): "float",
              pa.float64(): "double"}


def write_avro(table: pa.Table, path: Path) -> None:
    def avro_type(kind: pa.DataType):
        if pa.types.is_timestamp(kind):
            return {"type": "long", "logicalType": "timestamp-millis"}
        return AVRO_TYPES[kind]

    schema = {"type": "record", "name": "Row", "fields": [
        {"name": f.name, "type": ["null", avro_type(f.type)]} for f in table.schema]}
    with open(path, "wb") as fh:
        fastavro.writer(fh, fastavro.parse_schema(schema), table.to_pylist(), codec="deflate")


WRITERS: dict[str, Callable[[pa.Table, Path], None]] = {
    "data.arrows": write_arrow_stream,
    "data.arrow": write_arrow_file,
    "data.feather": lambda table, path: feather.write_feather(table, str(path)),
    "data.parquet": lambda table, path: pq.write_table(table, str(path)),
    "data.csv": write_csv,
    "data.csv.gz": write_csv,
    "data.json": write_json,
    "entries.json": write_json_entries,
    "data.json.gz": write_json,
    "data.ndjson": write_ndjson,
    "data.ndjson.gz": write_ndjson,
    "data.jsonl": write_ndjson,
    "data.jsonl.gz": write_ndjson,
    "data.avro": write_avro,
}


def read(path: Path, source: str = "import") -> SourceRows:
    return read_source(str(path), FS, source)


def test_every_table_suffix_has_a_round_trip_writer():
    assert {"." + name.split(".", 1)[1].lower() for name in WRITERS} == set(TABLE_SUFFIXES)


@pytest.mark.parametrize("convention", sorted(CONVENTIONS))
@pytest.mark.parametrize("file_name", sorted(WRITERS))
def test_every_format_and_convention_round_trips(tmp_path, file_name, convention):
    table, expected = CONVENTIONS[convention]
    path = tmp_path / file_name
    WRITERS[file_name](table, path)
    got = read(path)
    assert got.rejected_rows == 0 and got.rejections == {}
    assert got.table.equals(expected), got.table.to_pylist()


@pytest.mark.parametrize("file_name", ["data.parquet", "data.feather", "data.avro"])
def test_native_timestamp_column(tmp_path, file_name):
    table = NATIVE.drop_columns(["ts_ms"]).append_column(
        "ts", NATIVE.column("ts_ms").cast(pa.timestamp("ms")).cast(pa.timestamp("us")))
    WRITERS[file_name](table, tmp_path / file_name)
    assert read(tmp_path / file_name).table.equals(NATIVE_LAKE)


def test_a_landed_wal_segment_reads_with_the_ingest_source(tmp_path):
    wal = WriteAheadLog(tmp_path / "wal", tmp_path / "landing", "p0", LANDING_SCHEMA)
    landing = NATIVE.append_column("received_ms", pa.array([T0_MS + 9 * MIN_MS] * 3, pa.int64())) \
        .append_column("trend", pa.array([4, 0, 2], pa.int8()))
    batches = landing.cast(LANDING_SCHEMA).to_batches(max_chunksize=1)

    async def main():
        for batch in batches:
            await wal.append(batch)
        wal.request_roll()
        await asyncio.sleep(0.05)

    asyncio.run(main())
    (segment,) = (tmp_path / "landing").iterdir()
    got = read(segment, source="ingest")
    assert got.table.equals(lake(NATIVE_ROWS, source="ingest"))


def test_dictionary_typed_fleet_parquet(tmp_path):
    fleet = NATIVE.cast(READING_SCHEMA)
    assert pa.types.is_dictionary(fleet.schema.field("patient_id").type)
    pq.write_table(fleet, tmp_path / "fleet-s00000-m0000000000.parquet")
    assert pq.read_schema(tmp_path / "fleet-s00000-m0000000000.parquet") == READING_SCHEMA
    got = read(tmp_path / "fleet-s00000-m0000000000.parquet", source="fleet")
    assert got.table.equals(lake(NATIVE_ROWS, source="fleet"))


# -- bad rows: counted by the first reason that applies --------------------------------
def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms / 1000))


def test_bad_rows_are_counted_by_reason(tmp_path):
    now_ms = int(time.time() * 1000)
    soon_ms = now_ms - now_ms % 1000 + 3_600_000  # an hour ahead: within the allowed slack
    rows = [
        ("a", "2024-03-01 08:00:00", "10"),  # ok (range is inclusive)
        ("a", _iso(soon_ms), "1000"),  # ok
        ("", "2024-03-01 08:00:00", "100"),
        ("a", "", "100"),
        ("a", "yesterday", "100"),
        ("a", "2023-02-30 08:00:00", "100"),
        ("a", "2024-03-01 08:00:00", ""),
        ("a", "2024-03-01 08:00:00", "high"),
        ("a", "2024-03-01 08:00:00", "9.9"),
        ("a", "2024-03-01 08:00:00", "1e4"),
        ("a", "1999-12-31 23:59:59", "100"),
        ("a", _iso(now_ms + 2 * 86_400_000), "100"),
    ]
    path = tmp_path / "iglu.csv"
    path.write_text("id,time,gl\n" + "".join(f"{i},{t},{g}\n" for i, t, g in rows))
    got = read(path)
    assert got.rejections == {
        "missing patient_id": 1, "missing time": 1, "unparsable time": 2, "missing glucose": 1,
        "unparsable glucose": 1, "glucose outside [10, 1000] mg/dL": 2,
        "time before 2000-01-01": 1, "time more than 1 day in the future": 1}
    assert got.rejected_rows == 10
    assert got.table.equals(lake([("a", "a", T0_MS, 10.0, 0), ("a", "a", soon_ms, 1000.0, 0)]))


def test_non_finite_glucose_and_invalid_range_flags(tmp_path):
    table = pa.table({
        "patient_id": ["p"] * 5, "sensor_id": ["s"] * 5,
        "ts_ms": pa.array([T0_MS + k * MIN_MS for k in range(5)], pa.int64()),
        "glucose_mgdl": [100.0, float("nan"), float("inf"), 120.0, 130.0],
        "range_flag": pa.array([0, 0, 0, 3, None], pa.int64()),
    })
    pq.write_table(table, tmp_path / "x.parquet")
    got = read(tmp_path / "x.parquet")
    assert got.rejections == {"glucose not finite": 2, "invalid range_flag": 1}
    assert got.table.equals(lake([("p", "s", T0_MS, 100.0, 0),
                                  ("p", "s", T0_MS + 4 * MIN_MS, 130.0, 0)]))


def test_nightscout_entries_other_than_sgv_are_rejected(tmp_path):
    entries = [
        {"type": "sgv", "sgv": 120, "date": T0_MS, "device": "d"},
        {"type": "mbg", "mbg": 130, "date": T0_MS, "device": "d"},
        {"type": "cal", "slope": 900, "date": T0_MS, "device": "d"},
        {"sgv": "140", "dateString": "2024-03-01T08:05:00Z", "device": "d"},  # no type: fine
        {"type": "sgv", "sgv": 150, "device": "d"},
    ]
    path = tmp_path / "entries.jsonl"
    path.write_text("\n".join(json.dumps(e) for e in entries))
    got = read(path)
    assert got.rejections == {"not an sgv entry": 2, "missing time": 1}
    assert got.table.equals(lake([("d", "d", T0_MS, 120.0, 0),
                                  ("d", "d", T0_MS + 5 * MIN_MS, 140.0, 0)]))


# -- files that cannot be loaded --------------------------------------------------------
def _write_cut(tmp_path: Path, name: str, cut: Callable[[bytes], bytes]) -> Path:
    path = tmp_path / name
    WRITERS[f"data.{name.split('.', 1)[1]}"](NATIVE, path)
    path.write_bytes(cut(path.read_bytes()))
    return path


@pytest.mark.parametrize(("name", "cut"), [
    ("torn.arrows", lambda b: b[:-100]),
    ("no-end-marker.arrows", lambda b: b[:-8]),  # complete batches, but no end of stream
    ("trailing.arrows", lambda b: b + b"\x00" * 16),
    ("two-streams.arrows", lambda b: b + b),  # rows after an end-of-stream marker
    ("torn.arrow", lambda b: b[:-100]),
    ("torn.parquet", lambda b: b[:-100]),
    ("scrambled.parquet", lambda b: b[:4] + bytes(len(b) - 8) + b[-4:]),
    ("torn.avro", lambda b: b[:-30]),
    ("garbage.avro", lambda b: b"not avro" * 20),
    ("torn.json", lambda b: b[:-10]),
    ("torn.csv.gz", lambda b: b[:-12]),
    ("torn.ndjson", lambda b: b + b'{"sgv": 1, \n'),
])
def test_corrupt_or_truncated_files_raise_source_error(tmp_path, name, cut):
    path = _write_cut(tmp_path, name, cut)
    with pytest.raises(SourceError) as err:
        read(path)
    assert err.value.path == str(path) and str(path) in str(err.value)


@pytest.mark.parametrize(("file_name", "columns", "message"), [
    ("iglu.csv", {"id": ["a"], "time": ["2024-03-01 08:00:00"]},
     "missing column(s) ['gl'] (iglu convention); found ['id', 'time']"),
    ("native.parquet", {"patient_id": ["a"], "sensor_id": ["s"], "glucose_mgdl": [1.0]},
     "missing column(s) ['ts_ms|ts'] (cgm-ray convention)"),
    ("other.csv", {"x": [1], "y": [2]}, "no known glucose columns"),
    ("nested.json", {"id": ["a"], "time": ["2024-03-01 08:00:00"], "gl": [{"v": 1}]},
     "column 'gl' holds struct<v: int64>, expected numbers"),
])
def test_unusable_columns_raise_source_error(tmp_path, file_name, columns, message):
    path = tmp_path / file_name
    WRITERS[f"data.{file_name.split('.', 1)[1]}"](pa.table(columns), path)
    with pytest.raises(SourceError) as err:
        read(path)
    assert message in err.value.reason


def test_unknown_extension_and_non_object_entries(tmp_path):
    (tmp_path / "x.txt").write_text("id,time,gl\n")
    with pytest.raises(SourceError, match="unknown extension"):
        read(tmp_path / "x.txt")
    (tmp_path / "x.json").write_text("[1, 2]")
    with pytest.raises(SourceError, match="every entry must be an object"):
        read(tmp_path / "x.json")


def test_extensions_are_case_insensitive(tmp_path):
    write_csv(IGLU, tmp_path / "EXPORT.CSV.GZ")
    assert read(tmp_path / "EXPORT.CSV.GZ").table.equals(IGLU_LAKE)


def test_source_error_survives_pickling():
    err = pickle.loads(pickle.dumps(SourceError("a/b.avro", "torn")))
    assert (err.path, err.reason, str(err)) == ("a/b.avro", "torn", "a/b.avro: torn")


@pytest.mark.parametrize("file_name", ["data.arrows", "data.arrow", "data.parquet", "data.csv",
                                       "data.avro"])
def test_empty_files_with_valid_structure_give_no_rows(tmp_path, file_name):
    WRITERS[file_name](NATIVE.slice(0, 0), tmp_path / file_name)
    got = read(tmp_path / file_name)
    assert got == SourceRows(LAKE_SCHEMA.empty_table(), 0, {}, "cgm-ray", "mg/dL")


@pytest.mark.parametrize("text", ["[]", '{"entries": []}', ""])
def test_json_without_entries_gives_no_rows(tmp_path, text):
    path = tmp_path / ("x.ndjson" if text == "" else "x.json")
    path.write_text(text)
    assert read(path) == SourceRows(LAKE_SCHEMA.empty_table(), 0, {})


# -- exports ----------------------------------------------------------------------------
EXPORT_INPUT = lake([
    ("p2", "a/b c", T0_MS + 2 * MIN_MS, 90.5, 0),
    ("p1", "s1", T0_MS + 5 * MIN_MS, 39.0, -1),
    ("p2", "a/b c", T0_MS, 101.25, 0),
    ("p3", ".hidden", T0_MS, 401.0, 1),
    ("p1", "s1", T0_MS, 123.4, 0),
    ("p2", "a/b c", T0_MS + MIN_MS, 95.0, 0),
], source="fleet")


@pytest.mark.parametrize("fmt", ["json", "avro"])
def test_exports_round_trip_per_sensor(tmp_path, fmt):
    paths = write_sensor_exports(EXPORT_INPUT, str(tmp_path / "out"), fmt, FS)
    names = [Path(p).name for p in paths]
    assert names == [f"%2Ehidden.{fmt}", f"a%2Fb%20c.{fmt}", f"s1.{fmt}"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == names  # no temporary files
    for path in paths:
        got = read_source(path, FS, "fleet")
        sensor = got.table.column("sensor_id")[0].as_py()
        expected = EXPORT_INPUT.filter(pc.equal(EXPORT_INPUT.column("sensor_id"), sensor))
        assert got.rejected_rows == 0
        assert got.table.equals(expected.sort_by("ts")), sensor


def test_json_export_document_shape(tmp_path):
    s1 = EXPORT_INPUT.filter(pc.equal(EXPORT_INPUT.column("sensor_id"), "s1"))
    (path,) = write_sensor_exports(s1, str(tmp_path), "json", FS)
    assert json.loads(Path(path).read_text()) == {
        "sensor_id": "s1", "patient_id": "p1", "readings": [
            {"ts_ms": T0_MS, "glucose_mgdl": 123.4, "range_flag": 0},
            {"ts_ms": T0_MS + 5 * MIN_MS, "glucose_mgdl": 39.0, "range_flag": -1}]}
    assert '"glucose_mgdl":123.4,' in Path(path).read_text()  # shortest exact float32 text


def test_avro_export_schema_and_codec(tmp_path):
    (path, *_) = write_sensor_exports(EXPORT_INPUT, str(tmp_path), "avro", FS)
    with open(path, "rb") as fh:
        reader = fastavro.reader(fh)
        fields = {f["name"]: f["type"] for f in reader.writer_schema["fields"]}
        assert reader.codec == "deflate"
    assert fields == {"sensor_id": "string", "patient_id": "string",
                      "ts_ms": {"type": "long", "logicalType": "timestamp-millis"},
                      "glucose_mgdl": "float", "range_flag": "int"}


def test_exports_refuse_a_sensor_of_two_patients_and_unknown_formats(tmp_path):
    mixed = lake([("p1", "s", T0_MS, 100.0, 0), ("p2", "s", T0_MS + MIN_MS, 100.0, 0)])
    with pytest.raises(ValueError, match="several patients"):
        write_sensor_exports(mixed, str(tmp_path), "json", FS)
    with pytest.raises(ConfigError):
        write_sensor_exports(mixed, str(tmp_path), "xml", FS)
    assert write_sensor_exports(LAKE_SCHEMA.empty_table(), str(tmp_path), "avro", FS) == []
