"""Tidepool JSON (its data API, ``GET /data/{userId}``, or a JSON export): readings and treatments.

Example (a JSON array of records; ``{"data": [...]}`` is read too)::

    [{"type": "cbg", "units": "mmol/L", "value": 5.55075, "time": "2024-03-01T07:00:00.000Z",
      "deviceTime": "2024-03-01T08:00:00", "timezoneOffset": 60, "deviceId": "DexG6_SM12345678",
      "uploadId": "upid_0f2b", "id": "4d9c1a", "_userId": "a1b2c3"}, ...]

Recognised by records whose ``type`` is one of Tidepool's data types (``cbg``, ``smbg``,
``bolus``, ``basal``, ``food``, ``wizard``, ...).

* ``cbg``: a reading of the sensor named by ``deviceId``. Tidepool stores glucose in mmol/L
  (``units``; mg/dL = mmol/L x 18.01559, the factor Tidepool converts with, so values it made
  from whole mg/dL come back whole); ``mg/dL`` records are taken as they are.
* ``smbg``: a meter value, so a ``BG Check`` treatment, not a reading.
* ``bolus``: ``normal`` plus ``extended`` units as ``insulin``; a ``Correction Bolus``, or a
  ``Combo Bolus`` with the extended part's ``duration`` (minutes) when there is one.
* ``basal``: a ``Temp Basal`` at ``rate`` U/h (``absolute``; 0 while suspended) for its
  ``duration``: the basal actually delivered, whether scheduled, temporary or automated.
* ``food``: a ``Carb Correction`` of ``nutrition.carbohydrate.net`` grams.
* Other types (``wizard``, whose bolus is a record of its own, ``upload``, settings ...) are
  counted, not loaded.

Times: ``time`` is UTC with its offset and wins; without it, ``deviceTime`` shifted by
``timezoneOffset`` (minutes east of UTC); only a ``deviceTime`` without an offset is read in
``--tz``. The patient is ``--patient``, else the record's ``_userId`` (or ``userId``), else the
file's name.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from typing import Any

from cgm_ray.glucose.units import MGDL_PER_MMOL_TIDEPOOL
from cgm_ray.lake.readers.base import (
    ExportBuilder,
    ExportError,
    ExportFormat,
    ExportRows,
    ImportOptions,
    file_stem,
)
from cgm_ray.lake.readers.local_times import to_utc_ms

FORMAT_NAME = "Tidepool"
DATA_TYPES = ("cbg", "smbg", "bolus", "basal", "food", "wizard", "upload", "deviceEvent",
              "pumpSettings", "cgmSettings", "physicalActivity", "reportedState", "insulin")
_SNIFF = re.compile(r'"type"\s*:\s*"(' + "|".join(DATA_TYPES) + r')"')
UNITS_ASSUMED_NOTE = "glucose units missing: mmol/L assumed (Tidepool's unit)"


def sniff(head: str) -> bool:
    """Whether the file's first records are of Tidepool's data types."""
    return bool(_SNIFF.search(head))


def read(data: bytes, file_name: str, options: ImportOptions) -> ExportRows:
    """The readings and treatments of Tidepool records (see the module's description)."""
    records = _records(data)
    out = ExportBuilder(FORMAT_NAME)
    units_seen: list[str] = []
    timed: list[tuple[datetime, dict[str, Any]]] = []
    for record in records:
        if not isinstance(record, dict):
            out.reject("record: not a JSON object")
            continue
        kind = record.get("type")
        if kind not in ("cbg", "smbg", "bolus", "basal", "food"):
            if kind is None:
                out.reject("type: missing")
            else:
                out.note(f"type {kind}: not loaded")
            continue
        moment = _moment(record)
        if moment is None:
            out.reject(f"{kind}.time: missing or not a time")
            continue
        timed.append((moment, record))
    streams = [(r["type"], r.get("deviceId")) for _, r in timed]
    times = to_utc_ms([m for m, _ in timed], streams, options, "deviceTime", out.notes)
    default_patient = file_stem(file_name)
    for (_, record), ts_ms in zip(timed, times):
        kind = record["type"]
        patient = options.patient_id or _user(record) or default_patient
        if kind in ("cbg", "smbg"):
            value = _number(out, record, "value")
            mgdl_per_unit = _units(out, record, units_seen)
            if value is None or mgdl_per_unit is None:
                continue
            if kind == "cbg":
                sensor = record.get("deviceId") or f"tidepool:{patient}"
                out.reading(patient, str(sensor), ts_ms, value * mgdl_per_unit)
            else:
                out.treatment(patient, ts_ms, "BG Check", glucose=value * mgdl_per_unit,
                              glucoseType="Finger", units="mg/dl")
        elif kind == "bolus":
            _bolus(out, patient, ts_ms, record)
        elif kind == "basal":
            rate = _number(out, record, "rate", required=record.get("deliveryType") != "suspend")
            duration_ms = _number(out, record, "duration", required=False)
            if rate is not None or record.get("deliveryType") == "suspend":
                out.treatment(patient, ts_ms, "Temp Basal", absolute=rate or 0.0,
                              duration=None if duration_ms is None else duration_ms / 60_000,
                              deliveryType=record.get("deliveryType"))
        else:  # food
            nutrition = record.get("nutrition")
            carbohydrate = nutrition.get("carbohydrate") if isinstance(nutrition, dict) else None
            carbs_g = _number(out, carbohydrate if isinstance(carbohydrate, dict) else {}, "net",
                              field_name="food.nutrition.carbohydrate.net")
            if carbs_g is not None:
                out.treatment(patient, ts_ms, "Carb Correction", carbs=carbs_g)
    return out.rows(" and ".join(dict.fromkeys(units_seen)) or "mmol/L")


def _records(data: bytes) -> list[Any]:
    """The file's records: a JSON array, or an object holding them under ``data``."""
    try:
        document = json.loads(data)
    except ValueError as exc:
        raise ExportError("JSON", f"{exc} (the file is truncated or not JSON)") from None
    if isinstance(document, dict) and isinstance(document.get("data"), list):
        document = document["data"]
    if not isinstance(document, list):
        raise ExportError("JSON", 'expected an array of Tidepool records (or {"data": [...]})')
    return document


def _moment(record: dict[str, Any]) -> datetime | None:
    """The record's time: ``time`` with its offset; else ``deviceTime`` with ``timezoneOffset``
    (or ``time`` without an offset, with it); else the naive ``deviceTime`` (read in ``--tz``)."""
    parsed = {name: _iso(record.get(name)) for name in ("time", "deviceTime")}
    if parsed["time"] is not None and parsed["time"].tzinfo is not None:
        return parsed["time"]
    local = parsed["deviceTime"] or parsed["time"]
    if local is None:
        return None
    offset_min = record.get("timezoneOffset")
    if isinstance(offset_min, int | float) and not isinstance(offset_min, bool) and local.tzinfo is None:
        return local.replace(tzinfo=timezone(timedelta(minutes=offset_min)))
    return local


def _iso(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _number(out: ExportBuilder, record: dict[str, Any], name: str, required: bool = True,
            field_name: str | None = None) -> float | None:
    """A numeric field; None when absent (counted as rejected when ``required``) or not a number."""
    value = record.get(name)
    where = field_name or f"{record.get('type')}.{name}"
    if value is None:
        if required:
            out.reject(f"{where}: missing")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        out.reject(f"{where}: not a number")
        return None
    return float(value)


def _units(out: ExportBuilder, record: dict[str, Any], seen: list[str]) -> float | None:
    """mg/dL per unit of the record's glucose (its ``units``); None when unknown (rejected)."""
    units = record.get("units")
    if units is None:
        out.note(UNITS_ASSUMED_NOTE)
        units = "mmol/L"
    if not isinstance(units, str) or units.casefold() not in ("mmol/l", "mg/dl"):
        out.reject(f"{record.get('type')}.units: not mmol/L or mg/dL")
        return None
    seen.append("mmol/L" if units.casefold() == "mmol/l" else "mg/dL")
    return MGDL_PER_MMOL_TIDEPOOL if seen[-1] == "mmol/L" else 1.0


def _bolus(out: ExportBuilder, patient: str, ts_ms: int, record: dict[str, Any]) -> None:
    normal_u = _number(out, record, "normal", required=False)
    extended_u = _number(out, record, "extended", required=False)
    if normal_u is None and extended_u is None:
        out.reject("bolus.normal: missing (and no extended part)")
        return
    duration_ms = _number(out, record, "duration", required=False) if extended_u else None
    out.treatment(patient, ts_ms, "Combo Bolus" if extended_u else "Correction Bolus",
                  insulin=(normal_u or 0.0) + (extended_u or 0.0),
                  duration=None if duration_ms is None else duration_ms / 60_000,
                  bolusType=record.get("subType"))


def _user(record: dict[str, Any]) -> str | None:
    user = record.get("_userId") or record.get("userId")
    return str(user) if user else None


FORMAT = ExportFormat(
    name=FORMAT_NAME,
    expected="a JSON array of records with 'type' (cbg, smbg, bolus, basal, food), 'value', "
             "'time' or 'deviceTime'",
    suffixes=(".json",),
    sniff=sniff,
    file_name=re.compile(r"tidepool", re.IGNORECASE),
    read=read,
)

__all__ = ["FORMAT", "read", "sniff"]
