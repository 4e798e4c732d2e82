"""Nightscout dumps: entries and treatments as ``mongoexport`` or the API give them.

Example (``mongoexport`` writes one document a line, each with MongoDB's Extended JSON wrappers;
with ``--jsonArray``, or from the API, the same documents come as one JSON array)::

    {"_id":{"$oid":"65e18b0c2f1d4a0001c0ffee"},"device":"xDrip-DexcomG6","sgv":120,"type":"sgv",
     "date":{"$numberLong":"1709280000000"},"dateString":"2024-03-01T08:00:00.000Z","direction":"Flat"}
    {"_id":{"$oid":"65e18b0c2f1d4a0001c0fff0"},"eventType":"Meal Bolus","insulin":4.5,"carbs":45,
     "created_at":"2024-03-01T08:00:00.000Z","enteredBy":"loop://iPhone"}

Recognised by the Extended JSON wrappers (``$oid``, ``$date``, ``$numberLong`` ...), which are
unwrapped to plain values, or by records with an ``eventType``. Plain API entries without either
are read by the Nightscout column convention (``cgm_ray.lake.sources``), to the same rows.

* Entries (records without ``eventType``): ``sgv`` entries are readings (mg/dL) of the sensor
  ``device``, for the patient ``--patient``, else the record's ``patient_id``, else the device;
  other types (``mbg``, ``cal``) are rejected as not sgv entries, as by the convention.
* Treatments (records with ``eventType``): loaded into the lake's treatments table as they are,
  keyed by their ``identifier`` (else ``_id``); ``srvModified`` orders versions and ``isValid:
  false`` deletes, as for the ingest's documents. Treatments carry no patient of their own:
  ``--patient`` (or a ``patient_id`` field) is needed.

Times: ``date`` (epoch ms) is UTC; ISO strings (``dateString``, ``created_at``) with an offset
are exact; a naive one is device-local (``--tz``).
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from cgm_ray.lake.readers.base import (
    ExportBuilder,
    ExportError,
    ExportFormat,
    ExportRows,
    ImportOptions,
    decode_text,
    from_epoch_ms,
)
from cgm_ray.lake.readers.local_times import to_utc_ms

FORMAT_NAME = "Nightscout dump"
_SNIFF = re.compile(r'"\$(oid|date|numberLong)"|"eventType"\s*:')
_WRAPPERS = {"$oid": str, "$numberLong": int, "$numberInt": int, "$numberDouble": float,
             "$numberDecimal": float}
_TREATMENT_TIMES = ("date", "created_at", "timestamp", "eventTime", "mills")
_ENTRY_TIMES = ("date", "dateString", "sysTime")


def sniff(head: str) -> bool:
    """Whether the first documents carry Extended JSON wrappers or treatment event types."""
    return bool(_SNIFF.search(head))


def read(data: bytes, file_name: str, options: ImportOptions) -> ExportRows:
    """The readings and treatments of a Nightscout dump (see the module's description)."""
    out = ExportBuilder(FORMAT_NAME)
    timed: list[tuple[datetime, dict[str, Any], str]] = []  # (time, record, entry|treatment)
    for record in _records(data):
        if not isinstance(record, dict):
            out.reject("record: not a JSON object")
            continue
        record = _unwrap(record)
        kind = "treatment" if "eventType" in record else "entry"
        if kind == "entry" and record.get("type", "sgv") != "sgv":
            out.reject("not an sgv entry")
            continue
        names = _TREATMENT_TIMES if kind == "treatment" else _ENTRY_TIMES
        moment = next((m for m in (_moment(record.get(name)) for name in names) if m), None)
        if moment is None:
            out.reject(f"{kind} time ({'|'.join(names)}): missing or not a time")
            continue
        timed.append((moment, record, kind))
    streams = [(kind, record.get("device")) for _, record, kind in timed]
    times = to_utc_ms([m for m, _, _ in timed], streams, options, "dateString|created_at", out.notes)
    for (_, record, kind), ts_ms in zip(timed, times):
        if kind == "entry":
            _entry(out, record, ts_ms, options)
            continue
        patient = options.patient_id or record.get("patient_id")
        if not patient:
            raise ExportError("patient_id", "Nightscout treatments carry no patient: give --patient")
        srv_modified = record.get("srvModified")
        identifier = record.get("identifier") or record.get("_id")
        record.setdefault("date", ts_ms)  # its time in UTC, where only a local created_at gave it
        out.document(str(patient), ts_ms, record, identifier=str(identifier) if identifier else None,
                     srv_modified_ms=int(srv_modified) if isinstance(srv_modified, int | float) else None,
                     is_valid=record.get("isValid") is not False)
    return out.rows("mg/dL")


def _entry(out: ExportBuilder, record: dict[str, Any], ts_ms: int, options: ImportOptions) -> None:
    device = record.get("device")
    if not device:
        out.reject("device: missing")
        return
    sgv = record.get("sgv")
    if isinstance(sgv, str):
        try:
            sgv = float(sgv)
        except ValueError:
            pass
    if sgv is None:
        out.reject("sgv: missing")
    elif isinstance(sgv, bool) or not isinstance(sgv, int | float):
        out.reject("sgv: not a number")
    else:
        patient = options.patient_id or record.get("patient_id") or device
        out.reading(str(patient), str(device), ts_ms, float(sgv))


def _records(data: bytes) -> list[Any]:
    """The dump's documents: a JSON array (or one object with ``entries``/``treatments`` lists),
    or one document a line."""
    text = decode_text(data)
    try:
        document = json.loads(text)
    except ValueError as exc:
        if text.lstrip().startswith("["):
            raise ExportError("JSON", f"{exc}: the file is truncated or not JSON") from None
        records = []
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except ValueError as line_exc:
                    raise ExportError(f"line {number}", f"not JSON ({line_exc}): the file is "
                                                        "truncated or not a dump") from None
        return records
    if isinstance(document, list):
        return document
    if isinstance(document, dict):
        lists = [document[k] for k in ("entries", "treatments") if isinstance(document.get(k), list)]
        return [r for part in lists for r in part] if lists else [document]
    raise ExportError("JSON", "expected documents (an array, or one object a line)")


def _unwrap(value: Any) -> Any:
    """Extended JSON's type wrappers as plain values: ``{"$oid": "x"}`` -> "x", ``{"$date":
    ...}`` -> its ISO text or epoch ms, ``{"$numberLong": "5"}`` -> 5, recursively."""
    if isinstance(value, dict):
        if len(value) == 1:
            (key, inner), = value.items()
            if key in _WRAPPERS:
                try:
                    return _WRAPPERS[key](inner)
                except (TypeError, ValueError):
                    return inner
            if key == "$date":
                return _unwrap(inner)
        return {k: _unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unwrap(v) for v in value]
    return value


def _moment(value: Any) -> datetime | None:
    """A time as Nightscout writes one: epoch ms (UTC) or ISO-8601 text; None if neither."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return from_epoch_ms(int(value))
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


FORMAT = ExportFormat(
    name=FORMAT_NAME,
    expected="JSON documents with Extended JSON wrappers ($oid, $date) or 'eventType', and "
             "'sgv', 'date|dateString', 'device' (entries) or 'created_at' (treatments)",
    suffixes=(".json", ".ndjson", ".jsonl"),
    sniff=sniff,
    file_name=None,
    read=read,
)

__all__ = ["FORMAT", "read", "sniff"]
