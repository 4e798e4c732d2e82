"""Input readers of the lake ETL: any supported file becomes ``LAKE_SCHEMA`` rows, strictly.

A file that cannot be loaded at all (corrupt, truncated, unknown extension, required
columns missing) raises ``SourceError``; a loadable file's bad rows are dropped and counted
by reason, never silently. Three column conventions are understood, whatever the format:
cgm-ray's own (``patient_id, sensor_id, ts_ms|ts, glucose_mgdl[, range_flag]``), iglu's
export (``id, time, gl``) and Nightscout entries (``sgv, date|dateString, device
[, patient_id, type]``). Columnar formats are converted and validated with Arrow kernels
only; JSON and Avro records are columnarised once, then take the same path.

Vendor exports (Dexcom Clarity and LibreView CSV, Tidepool JSON, OhioT1DM XML, Nightscout
dumps) are recognised from their content by ``cgm_ray.lake.readers`` and read by its readers,
whose readings then pass the same validation; their treatments come back beside the rows.
``read_source`` is the one entry: it tries the vendor formats first, then the conventions.
"""

from __future__ import annotations

import io
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import fastavro
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.fs as pafs
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from cgm_ray.errors import CgmRayError
from cgm_ray.lake.readers import (
    EXPORT_SUFFIXES,
    HEAD_CHARS,
    ExportError,
    ExportFormat,
    ImportOptions,
    detect,
    expected_formats,
    export_suffix,
)
from cgm_ray.schema import DOCUMENT_SCHEMA, EARLIEST_TS_MS, LAKE_SCHEMA

TS_TYPE = LAKE_SCHEMA.field("ts").type
GLUCOSE_MIN_MGDL, GLUCOSE_MAX_MGDL = 10.0, 1000.0
FUTURE_SLACK_MS = 86_400_000  # readings stamped more than a day ahead are clock errors
RANGE_FLAGS = (-1, 0, 1)
Columns = frozenset[str] | None  # the fields a record reader converts; None: all
_STREAM_END = b"\xff\xff\xff\xff\x00\x00\x00\x00"  # IPC end-of-stream marker

# ISO-8601 shapes Arrow's string-to-timestamp cast accepts (fractions cut to milliseconds).
_ISO_DATE = r"[1-9]\d{3}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])"
_ISO_CLOCK = r"[T ]([01]\d|2[0-3])(:[0-5]\d(:[0-5]\d(\.\d{1,3})?)?)?"
_ISO_ZONE = r"(Z|[+-]([01]\d|2[0-3])(:?[0-5]\d)?)"
_ISO_TIME = rf"^{_ISO_DATE}({_ISO_CLOCK}{_ISO_ZONE}?)?$"
_ISO_AWARE = rf"{_ISO_CLOCK}{_ISO_ZONE}$"
_NUMBER = r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$"


class SourceError(CgmRayError):
    """An input file that cannot be loaded at all; ``path`` says which, ``reason`` why."""

    def __init__(self, path: str, reason: str) -> None:
        self.path, self.reason = path, reason
        super().__init__(f"{path}: {reason}")

    def __reduce__(self):  # keep both fields when Ray ships the error between processes
        return SourceError, (self.path, self.reason)


@dataclass(frozen=True)
class SourceRows:
    """A file's valid rows (exactly ``LAKE_SCHEMA``) and how many were rejected, by reason;
    the format or column convention found and the glucose units it gave; for vendor exports,
    their treatment documents (``DOCUMENT_SCHEMA`` rows) and notes (rows adjusted, such as
    times at a daylight-saving change, or left out on purpose), by reason."""

    table: pa.Table
    rejected_rows: int
    rejections: dict[str, int]
    format: str = ""  # "cgm-ray", "iglu", "Nightscout", "Dexcom Clarity", ... ("": no columns)
    units_found: str = ""  # "mg/dL" or "mmol/L" as the file gave them (the lake holds mg/dL)
    treatments: pa.Table = field(default_factory=DOCUMENT_SCHEMA.empty_table)
    notes: dict[str, int] = field(default_factory=dict)


class _ColumnProblem(ValueError):
    """A loaded file's columns cannot give lake rows (missing or of an unusable type)."""


# -- conventions -------------------------------------------------------------------------
@dataclass(frozen=True)
class _Convention:
    """Where one export convention keeps each lake column; of several, the first non-null wins."""

    name: str
    patient_id: tuple[str, ...]
    sensor_id: tuple[str, ...]
    ts: tuple[str, ...]
    glucose_mgdl: tuple[str, ...]
    range_flag: tuple[str, ...] = ()
    entry_type: tuple[str, ...] = ()  # rows whose type is set and not "sgv" are rejected

    @property
    def required(self) -> tuple[tuple[str, ...], ...]:
        return self.patient_id, self.sensor_id, self.ts, self.glucose_mgdl

    def missing(self, names: set[str]) -> list[str]:
        """Required columns absent from ``names`` (alternatives joined by '|')."""
        return ["|".join(alts) for alts in self.required if not names.intersection(alts)]


_CONVENTIONS = (
    _Convention("cgm-ray", ("patient_id",), ("sensor_id",), ("ts_ms", "ts"), ("glucose_mgdl",),
                range_flag=("range_flag",)),
    _Convention("Nightscout", ("patient_id", "device"), ("device",), ("date", "dateString"),
                ("sgv",), entry_type=("type",)),
    _Convention("iglu", ("id",), ("id",), ("time",), ("gl",)),
)
_KNOWN_COLUMNS = frozenset(name for conv in _CONVENTIONS
                           for alts in (*conv.required, conv.range_flag, conv.entry_type)
                           for name in alts)
# CSV columns read as text, so ids keep leading zeros and times take the ISO parser below.
_TEXT_COLUMNS = ("patient_id", "sensor_id", "id", "device", "type", "ts", "time", "dateString")


def _convention(names: list[str]) -> _Convention:
    """The convention the columns fit best; _ColumnProblem if required columns are missing."""
    present = set(names)
    best = max(_CONVENTIONS, key=lambda c: -len(c.missing(present)))  # the first wins ties
    missing = best.missing(present)
    if len(missing) == len(best.required):
        expected = "; ".join(f"{c.name} {c.missing(set())}" for c in _CONVENTIONS)
        raise _ColumnProblem(f"no known glucose columns (expected {expected}; or an export of "
                             f"{expected_formats()}); found {names}")
    if missing:
        raise _ColumnProblem(f"missing column(s) {missing} ({best.name} convention); "
                             f"found {names}")
    return best


# -- column conversions ------------------------------------------------------------------
def _plain(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Dictionary columns (fleet Parquet files) decoded, and large strings as strings."""
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    return column.cast(pa.string()) if pa.types.is_large_string(column.type) else column


def _to_text(column: pa.ChunkedArray, name: str) -> pa.ChunkedArray:
    column = _plain(column)
    kind = column.type
    if not (pa.types.is_string(kind) or pa.types.is_integer(kind) or pa.types.is_null(kind)):
        raise _ColumnProblem(f"column {name!r} holds {kind}, expected text")
    return column.cast(pa.string())


def _to_float64(column: pa.ChunkedArray, name: str) -> pa.ChunkedArray:
    """Numbers as float64; text that is not a number becomes null."""
    column = _plain(column)
    kind = column.type
    if pa.types.is_string(kind):
        text = pc.utf8_trim_whitespace(column)
        return pc.if_else(pc.match_substring_regex(text, _NUMBER), text, None).cast(pa.float64())
    if not (pa.types.is_integer(kind) or pa.types.is_floating(kind)
            or pa.types.is_decimal(kind) or pa.types.is_null(kind)):
        raise _ColumnProblem(f"column {name!r} holds {kind}, expected numbers")
    return column.cast(pa.float64())


def _to_ts(column: pa.ChunkedArray, name: str) -> pa.ChunkedArray:
    """Timestamps (naive = UTC), integer or float epoch milliseconds, or ISO-8601 text."""
    column = _plain(column)
    kind = column.type
    if pa.types.is_timestamp(kind) or pa.types.is_null(kind):
        return column.cast(TS_TYPE, safe=False)  # sub-millisecond digits are cut
    if pa.types.is_integer(kind):
        return column.cast(pa.int64()).cast(TS_TYPE)
    if pa.types.is_floating(kind):
        usable = pc.and_(pc.is_finite(column), pc.less(pc.abs(column), 2.0 ** 62))
        return pc.if_else(usable, pc.floor(column), None).cast(pa.int64()).cast(TS_TYPE)
    if pa.types.is_string(kind):
        return _iso_ts(column)
    raise _ColumnProblem(f"column {name!r} holds {kind}, expected times")


def _iso_ts(text: pa.ChunkedArray) -> pa.ChunkedArray:
    """ISO-8601 strings as UTC timestamps (naive ones are UTC); malformed ones become null."""
    text = pc.replace_substring_regex(pc.utf8_trim_whitespace(text), r"(\.\d{3})\d+", r"\1")
    text = pc.if_else(pc.match_substring_regex(text, _ISO_TIME), text, None)
    day = pc.strptime(pc.utf8_slice_codeunits(text, 0, 10), "%Y-%m-%d", "s", error_is_null=True)
    real_date = pc.equal(pc.day(day), pc.utf8_slice_codeunits(text, 8, 10).cast(pa.int64()))
    text = pc.if_else(real_date, text, None)  # 2015-02-30 has the right shape but no day
    aware = pc.match_substring_regex(text, _ISO_AWARE)
    return pc.coalesce(pc.if_else(aware, text, None).cast(TS_TYPE),
                       pc.if_else(aware, None, text).cast(pa.timestamp("ms")).cast(TS_TYPE))


@dataclass(frozen=True)
class _Field:
    """One lake column taken from a file: values (null where unusable) and where it was absent."""

    values: pa.ChunkedArray
    absent: pa.ChunkedArray  # boolean: every source column was null or blank text

    @property
    def unusable(self) -> pa.ChunkedArray:
        return pc.and_not(pc.is_null(self.values), self.absent)


def _field(table: pa.Table, alternatives: tuple[str, ...],
           convert: Callable[[pa.ChunkedArray, str], pa.ChunkedArray]) -> _Field:
    """Coalesce the converted ``alternatives`` present in ``table`` (first non-null wins);
    all null when none is present."""
    raw = ({n: _blank_as_null(table.column(n)) for n in alternatives if n in table.column_names}
           or {"(absent)": pa.chunked_array([pa.nulls(table.num_rows)])})
    values = [convert(column, name) for name, column in raw.items()]
    columns = list(raw.values())
    absent = pc.is_null(columns[0])
    for column in columns[1:]:
        absent = pc.and_(absent, pc.is_null(column))
    return _Field(values[0] if len(values) == 1 else pc.coalesce(*values), absent)


def _blank_as_null(column: pa.ChunkedArray) -> pa.ChunkedArray:
    column = _plain(column)
    if pa.types.is_string(column.type):
        return pc.if_else(pc.equal(pc.utf8_trim_whitespace(column), ""), None, column)
    return column


# -- validation --------------------------------------------------------------------------
def _normalise(table: pa.Table, source: str) -> SourceRows:
    """Map ``table``'s columns to the lake's, reject invalid rows by reason, keep the rest."""
    if table.num_columns == 0:  # JSON without a single entry
        return SourceRows(LAKE_SCHEMA.empty_table(), 0, {})
    conv = _convention(table.column_names)
    patient = _field(table, conv.patient_id, _to_text)
    sensor = _field(table, conv.sensor_id, _to_text)
    ts = _field(table, conv.ts, _to_ts)
    glucose = _field(table, conv.glucose_mgdl, _to_float64)
    flag = _field(table, conv.range_flag, _to_float64)  # absent means 0, in range
    entry_type = _field(table, conv.entry_type, _to_text).values
    latest_ts_ms = int(time.time() * 1000) + FUTURE_SLACK_MS
    keep, rejections = _reject([
        ("not an sgv entry", pc.not_equal(entry_type, "sgv")),
        ("missing patient_id", patient.absent),
        ("missing sensor_id", sensor.absent),
        ("missing time", ts.absent),
        ("unparsable time", ts.unusable),
        ("missing glucose", glucose.absent),
        ("unparsable glucose", glucose.unusable),
        ("glucose not finite", pc.invert(pc.is_finite(glucose.values))),
        (f"glucose outside [{GLUCOSE_MIN_MGDL:g}, {GLUCOSE_MAX_MGDL:g}] mg/dL",
         pc.or_(pc.less(glucose.values, GLUCOSE_MIN_MGDL),
                pc.greater(glucose.values, GLUCOSE_MAX_MGDL))),
        ("time before 2000-01-01", pc.less(ts.values, pa.scalar(EARLIEST_TS_MS, TS_TYPE))),
        ("time more than 1 day in the future",
         pc.greater(ts.values, pa.scalar(latest_ts_ms, TS_TYPE))),
        ("invalid range_flag", pc.invert(pc.or_(
            flag.absent, pc.is_in(flag.values, pa.array(RANGE_FLAGS, pa.float64()))))),
    ], table.num_rows)
    kept = [pc.filter(column, keep) for column in (
        patient.values, sensor.values, ts.values, glucose.values.cast(pa.float32()),
        flag.values.fill_null(0).cast(pa.int8(), safe=False))]
    kept.append(pa.chunked_array([pa.repeat(pa.scalar(source, pa.string()), len(kept[0]))]))
    return SourceRows(pa.Table.from_arrays(kept, schema=LAKE_SCHEMA),
                      table.num_rows - len(kept[0]), rejections, conv.name, "mg/dL")


def _reject(checks: list[tuple[str, pa.ChunkedArray]],
            n_rows: int) -> tuple[pa.Array, dict[str, int]]:
    """The rows no check flags, and how many rows each reason rejected first (non-zero only)."""
    rejected = pa.repeat(pa.scalar(False), n_rows)
    rejections: dict[str, int] = {}
    for reason, flagged in checks:
        new = pc.and_not(flagged.fill_null(False), rejected)
        count = pc.sum(new).as_py() or 0
        if count:
            rejections[reason] = count
            rejected = pc.or_(rejected, new)
    return pc.invert(rejected), rejections


def distinct_readings(table: pa.Table) -> pa.Table:
    """Lake rows with one reading per (sensor_id, ts), the first in input order, sorted by
    (sensor_id, ts): what the lake keeps of readings delivered more than once."""
    order = pc.sort_indices(table, [("sensor_id", "ascending"), ("ts", "ascending")])
    table = table.take(order)
    if table.num_rows < 2:
        return table
    sensor, ts = table.column("sensor_id"), table.column("ts")
    same = pc.and_(pc.equal(sensor[1:], sensor[:-1]), pc.equal(ts[1:], ts[:-1]))
    return table.filter(pa.concat_arrays([pa.array([True]), pc.invert(same).combine_chunks()]))


# -- formats -----------------------------------------------------------------------------
def _read_arrow_stream(path: str, filesystem: pafs.FileSystem, compression: str | None,
                       columns: Columns) -> pa.Table:
    """A whole IPC stream: it must end with the end-of-stream marker after complete messages."""
    with filesystem.open_input_file(path) as fh:
        data = fh.read_buffer()
    if data.size < len(_STREAM_END) or data[-len(_STREAM_END):].to_pybytes() != _STREAM_END:
        raise ValueError("no end-of-stream marker: the stream is truncated")
    body = pa.BufferReader(data[:-len(_STREAM_END)])
    table = ipc.open_stream(body).read_all()
    if body.tell() != body.size():
        raise ValueError(f"{body.size() - body.tell()} byte(s) after an early end-of-stream")
    table.validate(full=True)
    return table


def _read_arrow_file(path: str, filesystem: pafs.FileSystem, compression: str | None,
                     columns: Columns) -> pa.Table:
    with filesystem.open_input_file(path) as fh:
        table = ipc.open_file(fh).read_all()
    table.validate(full=True)
    return table


def _read_parquet(path: str, filesystem: pafs.FileSystem, compression: str | None,
                  columns: Columns) -> pa.Table:
    with filesystem.open_input_file(path) as fh:
        return pq.ParquetFile(fh).read()


def _read_csv(path: str, filesystem: pafs.FileSystem, compression: str | None,
              columns: Columns) -> pa.Table:
    options = pacsv.ConvertOptions(column_types={name: pa.string() for name in _TEXT_COLUMNS},
                                   strings_can_be_null=True)
    with filesystem.open_input_stream(path, compression=compression) as fh:
        return pacsv.read_csv(fh, convert_options=options)


def _read_json(path: str, filesystem: pafs.FileSystem, compression: str | None,
               columns: Columns) -> pa.Table:
    """A JSON array of entries, or an object with them under "entries" or "readings" whose
    other scalar fields apply to every entry (the shape of cgm-ray's JSON exports)."""
    document = json.loads(_read_bytes(path, filesystem, compression))
    if isinstance(document, list):
        return _records_table(document, columns)
    if isinstance(document, dict):
        key = next((k for k in ("entries", "readings") if isinstance(document.get(k), list)), None)
        if key is not None:
            shared = {k: v for k, v in document.items() if isinstance(v, (str, int, float))}
            return _records_table(document[key], columns, shared)
    raise ValueError('expected a JSON array of entries or an object with an "entries" or '
                     '"readings" list')


def _read_ndjson(path: str, filesystem: pafs.FileSystem, compression: str | None,
                 columns: Columns) -> pa.Table:
    lines = _read_bytes(path, filesystem, compression).decode("utf-8").splitlines()
    records = []
    for number, line in enumerate(lines, start=1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except ValueError as exc:
                raise ValueError(f"line {number}: {exc}") from exc
    return _records_table(records, columns)


def _read_avro(path: str, filesystem: pafs.FileSystem, compression: str | None,
               columns: Columns) -> pa.Table:
    reader = fastavro.reader(io.BytesIO(_read_bytes(path, filesystem, compression)))
    schema = reader.writer_schema
    if not (isinstance(schema, dict) and schema.get("type") == "record"):
        raise ValueError(f"expected Avro records, the schema is {schema}")
    return _records_table(list(reader), columns, names=[f["name"] for f in schema["fields"]])


def _read_bytes(path: str, filesystem: pafs.FileSystem, compression: str | None) -> bytes:
    with filesystem.open_input_stream(path, compression=compression) as fh:
        return fh.read()


def _records_table(records: list, columns: Columns, shared: dict | None = None,
                   names: list[str] | None = None) -> pa.Table:
    """Columns ``names`` (default: every field seen) of ``records``, which must be dicts;
    ``shared`` fills fields a record lacks. Fields outside ``columns`` (when given) become
    null placeholders, as only their names matter (in error messages)."""
    if not all(isinstance(r, dict) for r in records):
        raise ValueError("every entry must be an object")
    shared = shared or {}
    if names is None:
        names = sorted(set(shared).union(*records)) if records else []
    return pa.table({name: _python_column([r.get(name, shared.get(name)) for r in records])
                     if columns is None or name in columns else pa.nulls(len(records))
                     for name in names})


def _python_column(values: list) -> pa.Array:
    """Python values as an Arrow array; a field of mixed types becomes text."""
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([None if v is None else str(v) for v in values], pa.string())


_Reader = Callable[[str, pafs.FileSystem, str | None, Columns], pa.Table]
_FORMATS: dict[str, tuple[_Reader, str | None]] = {
    ".arrows": (_read_arrow_stream, None),
    ".arrow": (_read_arrow_file, None),
    ".feather": (_read_arrow_file, None),
    ".parquet": (_read_parquet, None),
    ".csv": (_read_csv, None),
    ".csv.gz": (_read_csv, "gzip"),
    ".json": (_read_json, None),
    ".json.gz": (_read_json, "gzip"),
    ".ndjson": (_read_ndjson, None),
    ".ndjson.gz": (_read_ndjson, "gzip"),
    ".jsonl": (_read_ndjson, None),
    ".jsonl.gz": (_read_ndjson, "gzip"),
    ".avro": (_read_avro, None),
}
TABLE_SUFFIXES: tuple[str, ...] = tuple(_FORMATS)  # what ``read_table`` reads
# ... and ``read_source`` besides: files that only a vendor reader reads (OhioT1DM's XML).
SOURCE_SUFFIXES: tuple[str, ...] = (*TABLE_SUFFIXES, ".xml", ".xml.gz")
# Everything a malformed file makes the readers raise (fastavro reports corruption as ValueError).
_UNREADABLE = (pa.ArrowException, OSError, ValueError, EOFError)


def suffix_of(path: str) -> str | None:
    """The registered format suffix ``path`` ends with (case-insensitive), if any."""
    return next((s for s in SOURCE_SUFFIXES if path.lower().endswith(s)), None)


def read_table(path: str, filesystem: pafs.FileSystem, columns: Columns = None) -> pa.Table:
    """A file of any table format as the Arrow table it holds, columns as stored.

    The one place a table reader is chosen by extension: the ETL's readings and patient
    attributes and ``cgm-ray metrics`` all read through it. Record formats (JSON, Avro)
    convert only the fields in ``columns`` (default all), keeping the others' names.
    SourceError when the file cannot be read.
    """
    suffix = suffix_of(path)
    if suffix not in _FORMATS:
        raise SourceError(path, f"unknown extension: expected one of {list(TABLE_SUFFIXES)}")
    reader, compression = _FORMATS[suffix]
    try:
        return reader(path, filesystem, compression, columns)
    except _UNREADABLE as exc:
        raise SourceError(path, f"cannot read {suffix[1:]} file: {exc}") from exc


def detect_export(path: str, filesystem: pafs.FileSystem) -> ExportFormat | None:
    """The vendor export format of ``path`` by its content (``cgm_ray.lake.readers.detect``),
    None for other files; SourceError when it cannot be read or is named as an export it is not."""
    suffix = suffix_of(path)
    if suffix is None or export_suffix(path) not in EXPORT_SUFFIXES:
        return None
    try:
        with filesystem.open_input_stream(path, compression=_compression(suffix)) as fh:
            head = _head_text(fh.read(HEAD_CHARS))
        return detect(path, head)
    except _UNREADABLE as exc:
        raise SourceError(path, f"cannot read {suffix[1:]} file: {exc}") from None
    except ExportError as exc:
        raise SourceError(path, str(exc)) from None


def read_source(path: str, filesystem: pafs.FileSystem, source: str,
                options: ImportOptions | None = None) -> SourceRows:
    """The lake rows of one input file, its ``source`` column set to ``source``; a vendor
    export's treatments and notes beside them. ``options`` give the time zone of device-local
    times and the patient the rows belong to (which replaces any patient id in the file).

    Raises SourceError when the file cannot be loaded at all; bad rows are counted instead.
    """
    options = options or ImportOptions()
    suffix = suffix_of(path)
    if suffix is None:
        raise SourceError(path, f"unknown extension: expected one of {list(SOURCE_SUFFIXES)}")
    export = detect_export(path, filesystem)
    if export is not None:
        return _read_export(path, filesystem, export, source, options)
    if suffix not in _FORMATS:
        raise SourceError(path, f"not a known export: expected {expected_formats(export_suffix(path))}")
    table = read_table(path, filesystem, _KNOWN_COLUMNS)
    try:
        rows = _normalise(table, source)
    except _ColumnProblem as exc:
        raise SourceError(path, str(exc)) from None
    if options.patient_id is not None:
        patients = pa.repeat(pa.scalar(options.patient_id), rows.table.num_rows)
        rows = replace(rows, table=rows.table.set_column(0, LAKE_SCHEMA.field("patient_id"), patients))
    return rows


def _read_export(path: str, filesystem: pafs.FileSystem, export: ExportFormat, source: str,
                 options: ImportOptions) -> SourceRows:
    """A vendor export read by its reader, its readings validated like any other rows."""
    try:
        data = _read_bytes(path, filesystem, _compression(suffix_of(path) or ""))
    except _UNREADABLE as exc:
        raise SourceError(path, f"cannot read {export.name} export: {exc}") from None
    try:
        found = export.read(data, path, options)
    except ExportError as exc:
        raise SourceError(path, f"{export.name} export: {exc}") from None
    rows = _normalise(found.readings, source)
    rejections = dict(Counter(found.rejections) + Counter(rows.rejections))
    return SourceRows(rows.table, rows.rejected_rows + sum(found.rejections.values()), rejections,
                      found.format, found.units_found, found.treatments, found.notes)


def _compression(suffix: str) -> str | None:
    return "gzip" if suffix.endswith(".gz") else None


def _head_text(head: bytes) -> str:
    """The first bytes of a file as text, for recognising it (a character cut at the end is replaced)."""
    if head[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return head[:len(head) // 2 * 2].decode("utf-16", errors="replace")
    return head.decode("utf-8-sig", errors="replace")


__all__ = ["SOURCE_SUFFIXES", "TABLE_SUFFIXES", "ImportOptions", "SourceError", "SourceRows",
           "detect_export", "distinct_readings", "read_source", "read_table", "suffix_of"]
