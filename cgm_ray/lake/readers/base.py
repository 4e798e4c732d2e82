"""What every vendor export reader shares: its options, its result, its error, and a builder.

A reader is a pure function ``read(data, file_name, options) -> ExportRows``: the file's bytes
in, Arrow tables out. Readings come out in cgm-ray's own columns (``READINGS_SCHEMA``: glucose
already in mg/dL, times in UTC epoch milliseconds), so the lake's one validation
(``cgm_ray.lake.sources``) checks them like any other input; treatments come out as Nightscout
treatment documents in ``DOCUMENT_SCHEMA`` rows, the shape the ingest lands, so they join the
lake's ``treatments`` table by the same path (``cgm_ray.lake.documents.parse_documents``).

Rows a reader cannot use are counted in ``rejections`` by a reason naming the column or field;
rows it keeps but changes (a time moved at a daylight-saving change) or deliberately leaves out
(an alert, a ketone reading) are counted in ``notes``. Nothing is dropped without a count.

Treatment documents get a stable ``identifier`` (a UUID5 of the patient and the document), and
their ``srv_modified_ms`` is their own time: importing the same file again, or an overlapping
export, yields the same versions, which the lake keeps once.
"""

from __future__ import annotations

import csv
import io
import json
import re
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import PurePosixPath
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pyarrow as pa

from cgm_ray.errors import CgmRayError, ConfigError
from cgm_ray.schema import DOCUMENT_SCHEMA

# The readings a reader gives: the cgm-ray column convention, before the lake's validation.
READINGS_SCHEMA = pa.schema([
    pa.field("patient_id", pa.string()),
    pa.field("sensor_id", pa.string()),
    pa.field("ts_ms", pa.int64()),  # epoch milliseconds, UTC
    pa.field("glucose_mgdl", pa.float64()),
    pa.field("range_flag", pa.int8()),  # -1 below the sensor's range, 1 above, 0 within
])
_IDENTIFIER_NAMESPACE = uuid.UUID("0b6f3c9e-64f5-4f1e-9a57-2f4e6c1d8a11")  # cgm-ray imports
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")
_COMMA_DECIMAL = re.compile(r"^[+-]?\d+,\d+$")
_EPOCH_UTC = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


class ExportError(CgmRayError, ValueError):
    """A file that cannot be read as its format at all: ``where`` names the column, field or row."""

    def __init__(self, where: str, reason: str) -> None:
        self.where, self.reason = where, reason
        super().__init__(f"{where}: {reason}")

    def __reduce__(self):  # keep both fields when Ray ships the error between processes
        return ExportError, (self.where, self.reason)


@dataclass(frozen=True)
class ImportOptions:
    """How to read an import: the IANA zone of device-local times (``--tz``) and the patient
    its data belongs to (``--patient``, which wins over any id the file carries)."""

    tz: str | None = None
    patient_id: str | None = None

    def __post_init__(self) -> None:  # fail on construction, not in the middle of a load
        if self.tz is not None:
            try:
                zone_of(self.tz)
            except ValueError as exc:
                raise ConfigError("tz", str(exc)) from None
        if self.patient_id is not None and not self.patient_id.strip():
            raise ConfigError("patient", "empty")

    def zone(self, where: str) -> ZoneInfo:
        """The zone of device-local times; ExportError naming ``where`` when none was given."""
        if self.tz is None:
            raise ExportError(where, "device-local times without an offset: give --tz "
                                     "(the device's IANA time zone, e.g. Europe/Berlin)")
        return zone_of(self.tz)


def zone_of(name: str) -> ZoneInfo:
    """The IANA time zone ``name``; ValueError when there is none of that name."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (an IANA name such as Europe/Berlin)") from None


@dataclass(frozen=True)
class ExportRows:
    """What a reader made of one export file."""

    format: str  # e.g. "Dexcom Clarity", "LibreView (German)"
    units_found: str  # the glucose units the file gave values in: "mg/dL" or "mmol/L"
    readings: pa.Table  # READINGS_SCHEMA
    treatments: pa.Table  # DOCUMENT_SCHEMA rows of collection "treatments"
    rejections: dict[str, int]  # rows the reader could not use, by reason
    notes: dict[str, int]  # rows kept but adjusted, or left out on purpose, by reason


@dataclass(frozen=True)
class ExportFormat:
    """One vendor format of the registry (``cgm_ray.lake.readers.detect``)."""

    name: str
    expected: str  # the columns or fields it is recognised by, for refusals
    suffixes: tuple[str, ...]  # file name endings it comes as (".csv", ...), before any ".gz"
    sniff: Callable[[str], bool]  # the file's first characters, decoded: is it one?
    file_name: re.Pattern[str] | None  # how the vendor names its exports, if it does
    read: Callable[[bytes, str, ImportOptions], ExportRows]  # (data, file name, options)


class ExportBuilder:
    """The rows of one export as its reader finds them, and the counts by reason."""

    def __init__(self, format_name: str) -> None:
        self.format_name = format_name
        self._readings: dict[str, list[Any]] = {name: [] for name in READINGS_SCHEMA.names}
        self._documents: list[dict[str, Any]] = []
        self.rejections: Counter[str] = Counter()
        self.notes: Counter[str] = Counter()

    def reading(self, patient_id: str, sensor_id: str, ts_ms: int, glucose_mgdl: float,
                range_flag: int = 0) -> None:
        for name, value in zip(READINGS_SCHEMA.names,
                               (patient_id, sensor_id, ts_ms, glucose_mgdl, range_flag)):
            self._readings[name].append(value)

    def treatment(self, patient_id: str, ts_ms: int, event_type: str, **fields: Any) -> None:
        """A treatment made here: ``eventType``, ``created_at`` and ``date`` from ``ts_ms``,
        ``enteredBy`` naming the import, then ``fields`` (Nightscout names; None ones left out)."""
        doc = {"eventType": event_type, "created_at": iso_utc(ts_ms), "date": ts_ms,
               "enteredBy": f"cgm-ray import: {self.format_name}",
               **{k: v for k, v in fields.items() if v is not None}}
        self.document(patient_id, ts_ms, doc)

    def document(self, patient_id: str, ts_ms: int, doc: dict[str, Any], identifier: str | None = None,
                 srv_modified_ms: int | None = None, is_valid: bool = True) -> None:
        """A treatment document as given (a Nightscout dump's), keyed by ``identifier`` (default:
        a UUID5 of the patient and the document, so the same treatment gets the same key)."""
        if identifier is None:
            identifier = str(uuid.uuid5(_IDENTIFIER_NAMESPACE,
                                        json.dumps([patient_id, doc], sort_keys=True, default=str)))
        doc = {**doc, "identifier": identifier}
        self._documents.append({
            "patient_id": patient_id, "collection": "treatments", "identifier": identifier,
            "date_ms": ts_ms, "srv_modified_ms": ts_ms if srv_modified_ms is None else srv_modified_ms,
            "is_valid": is_valid, "document": json.dumps(doc, sort_keys=True, default=str)})

    def number(self, text: str, column: str, what: str = "a number") -> float | None:
        """``text`` of ``column`` as a number; None, with the row counted as rejected, when it
        is blank or not one."""
        try:
            value = parse_number(text)
        except ValueError:
            self.reject(f"{column}: not {what}")
            return None
        if value is None:
            self.reject(f"{column}: missing")
        return value

    def reject(self, reason: str) -> None:
        self.rejections[reason] += 1

    def note(self, reason: str) -> None:
        self.notes[reason] += 1

    def rows(self, units_found: str) -> ExportRows:
        return ExportRows(self.format_name, units_found,
                          pa.table(self._readings, schema=READINGS_SCHEMA),
                          pa.Table.from_pylist(self._documents, schema=DOCUMENT_SCHEMA),
                          dict(self.rejections), dict(self.notes))


# -- small parsers every reader uses ---------------------------------------------------------
def iso_utc(ts_ms: int) -> str:
    """Epoch milliseconds as ISO-8601 UTC with milliseconds (Nightscout's ``created_at``)."""
    return from_epoch_ms(ts_ms).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def from_epoch_ms(ts_ms: int) -> datetime:
    """Epoch milliseconds as an aware UTC datetime, exactly."""
    return _EPOCH_UTC + ts_ms * _MS


def parse_number(text: str) -> float | None:
    """A decimal number as exports write it ("5.6", "5,6" where comma is the decimal mark);
    None when blank; ValueError when it is not a number."""
    text = text.strip()
    if not text:
        return None
    if _COMMA_DECIMAL.match(text):
        text = text.replace(",", ".")
    if not _NUMBER.match(text):
        raise ValueError(text)
    return float(text)


def file_stem(file_name: str) -> str:
    """A file's name without folders and extensions (``a/b.csv.gz`` -> ``b``)."""
    name = PurePosixPath(file_name.replace("\\", "/")).name
    return name.split(".", 1)[0] or name


def csv_records(text: str, header_line: int, rejected: Counter[str]
                ) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The header (on 1-based line ``header_line``) and the rows after it, each with its line
    number, of CSV ``text`` (comma, semicolon or tab, whichever the header line has most of).

    A last row with fewer fields than the header is a cut file: ExportError, so no part of it
    loads. Other rows of the wrong width are counted in ``rejected``; blank lines are skipped.
    """
    lines = text.splitlines(keepends=True)
    head = lines[header_line - 1] if len(lines) >= header_line else ""
    delimiter = max((",", ";", "\t"), key=head.count)
    reader = csv.reader(io.StringIO("".join(lines[header_line - 1:])), delimiter=delimiter, strict=True)
    records: list[tuple[int, list[str]]] = []
    try:
        for cells in reader:
            if any(cell.strip() for cell in cells):
                records.append((header_line - 1 + reader.line_num, cells))
    except csv.Error as exc:
        raise ExportError(f"line {header_line - 1 + reader.line_num}",
                          f"{exc}: the file is truncated or not CSV") from None
    if not records:
        raise ExportError(f"line {header_line}", "no header row")
    (_, header), rows = records[0], records[1:]
    width = len(header)
    if rows and len(rows[-1][1]) < width:
        line, cells = rows[-1]
        raise ExportError(f"line {line}", f"{len(cells)} of the header's {width} fields: "
                                          "the file is truncated")
    kept = []
    for line, cells in rows:
        if len(cells) != width:
            rejected[f"row of {len(cells)} fields (the header has {width})"] += 1
        else:
            kept.append((line, cells))
    return [cell.strip() for cell in header], kept


def decode_text(data: bytes) -> str:
    """An export's text: UTF-8 (a byte-order mark dropped) or UTF-16 with its mark."""
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return data.decode("utf-16")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ExportError("encoding", f"not UTF-8 text (byte {exc.start})") from None


__all__ = ["READINGS_SCHEMA", "ExportBuilder", "ExportError", "ExportFormat", "ExportRows",
           "ImportOptions", "csv_records", "decode_text", "file_stem", "from_epoch_ms", "iso_utc",
           "parse_number", "zone_of"]
