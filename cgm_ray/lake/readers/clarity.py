"""Dexcom Clarity CSV exports: sensor readings, calibrations, insulin and carbohydrate.

Example header (one line in the file; current exports have these 14 columns, older ones 12)::

    Index,Timestamp (YYYY-MM-DDThh:mm:ss),Event Type,Event Subtype,Patient Info,Device Info,
    Source Device ID,Glucose Value (mg/dL),Insulin Value (u),Carb Value (grams),Duration (hh:mm:ss),
    Glucose Rate of Change (mg/dL/min),Transmitter Time (Long Integer),Transmitter ID

Recognised by that header (``Timestamp (...)``, ``Event Type`` and ``Glucose Value (...)`` on the
first line) and named ``Clarity_Export_<name>_<date>_<time>.csv`` by Clarity. The rows after it:

* metadata first (``FirstName``, ``LastName``, ``Device``, ``Alert`` ...): no timestamp; counted
  in the notes, and the patient's names taken as the patient id when ``--patient`` is not given
  (else the name in the file name);
* ``EGV``: a reading of the sensor named by ``Transmitter ID`` (else ``Source Device ID``).
  ``High`` and ``Low`` are beyond the sensor's range and stored as its limits, 400 and 40 mg/dL,
  with the lake's ``range_flag`` +1 and -1;
* ``Calibration``: a finger-stick value, so not a reading: a ``BG Check`` treatment;
* ``Insulin``: ``Fast-Acting`` a ``Correction Bolus`` (``insulin``); ``Long-Acting`` a
  ``Basal Injection`` with ``longActingInsulin``, kept out of ``insulin``, which the lake's
  reports total as bolus insulin;
* ``Carbs``: a ``Carb Correction`` (``carbs``, grams);
* any other event type (``Exercise``, ``Health``, ``Alert`` with a time): counted, not loaded.

Exports set to mmol/L say so in the column (``Glucose Value (mmol/L)``); values are converted
with 18.0182 mg/dL per mmol/L. Timestamps are device-local without an offset: ``--tz``.
"""

from __future__ import annotations

import re
from datetime import datetime

from cgm_ray.glucose.units import MGDL_PER_MMOL
from cgm_ray.lake.readers.base import (
    ExportBuilder,
    ExportError,
    ExportFormat,
    ExportRows,
    ImportOptions,
    csv_records,
    decode_text,
    file_stem,
)
from cgm_ray.lake.readers.local_times import to_utc_ms

FORMAT_NAME = "Dexcom Clarity"
TIMESTAMP = "Timestamp (YYYY-MM-DDThh:mm:ss)"
EVENT_TYPE, EVENT_SUBTYPE, PATIENT_INFO = "Event Type", "Event Subtype", "Patient Info"
SOURCE_DEVICE, TRANSMITTER_ID = "Source Device ID", "Transmitter ID"
INSULIN, CARBS = "Insulin Value (u)", "Carb Value (grams)"
SENSOR_LOW_MGDL, SENSOR_HIGH_MGDL = 40.0, 400.0  # what "Low" and "High" stand for
_GLUCOSE = re.compile(r"^Glucose Value \((mg/dL|mmol/L)\)$", re.IGNORECASE)
_TIMED = ("EGV", "Calibration", "Insulin", "Carbs")
_FILE_NAME = re.compile(r"^Clarity_Export_(.+?)_\d{4}-\d{2}-\d{2}_\d{6}$")
METADATA_NOTE = "metadata row (no timestamp)"


def sniff(head: str) -> bool:
    """Whether the first line is a Clarity header."""
    first = head.lstrip("\ufeff").split("\n", 1)[0]
    return EVENT_TYPE in first and "Timestamp (" in first and "Glucose Value (" in first


def read(data: bytes, file_name: str, options: ImportOptions) -> ExportRows:
    """The readings and treatments of a Clarity export (see the module's description)."""
    out = ExportBuilder(FORMAT_NAME)
    header, rows = csv_records(decode_text(data), 1, out.rejections)
    index = {name.casefold(): k for k, name in enumerate(header)}
    glucose_column = next((name for name in header if _GLUCOSE.match(name)), "")
    missing = [name for name in (TIMESTAMP, EVENT_TYPE) if name.casefold() not in index]
    if not glucose_column:
        missing.append("Glucose Value (mg/dL|mmol/L)")
    if missing:
        raise ExportError("header", f"missing column(s) {missing} of a Clarity export; found {header}")
    units = "mg/dL" if glucose_column.lower().endswith("(mg/dl)") else "mmol/L"
    mgdl_per_unit = 1.0 if units == "mg/dL" else MGDL_PER_MMOL

    def cell(cells: list[str], name: str) -> str:
        k = index.get(name.casefold())
        return cells[k].strip() if k is not None else ""

    names: dict[str, str] = {}
    events: list[tuple[datetime, str, list[str]]] = []
    for _, cells in rows:
        stamp, event = cell(cells, TIMESTAMP), cell(cells, EVENT_TYPE)
        if not stamp:
            if event in _TIMED:
                out.reject(f"{TIMESTAMP}: missing")
                continue
            if event in ("FirstName", "LastName") and cell(cells, PATIENT_INFO):
                names[event] = cell(cells, PATIENT_INFO)
            out.note(METADATA_NOTE)
            continue
        try:
            moment = datetime.fromisoformat(stamp)
        except ValueError:
            out.reject(f"{TIMESTAMP}: not a time")
            continue
        if event not in _TIMED:
            out.note(f"{EVENT_TYPE} {event or '(empty)'}: not loaded")
            continue
        events.append((moment, event, cells))

    patient = (options.patient_id or " ".join(names[k] for k in ("FirstName", "LastName") if k in names)
               or _name_in(file_name))
    sensors = [cell(cells, TRANSMITTER_ID) or cell(cells, SOURCE_DEVICE) or f"clarity:{patient}"
               for _, _, cells in events]
    streams = [(event, sensor) for (_, event, _), sensor in zip(events, sensors)]
    times = to_utc_ms([moment for moment, _, _ in events], streams, options, TIMESTAMP, out.notes)
    for (_, event, cells), sensor, ts_ms in zip(events, sensors, times):
        if event == "EGV":
            _reading(out, patient, sensor, ts_ms, cell(cells, glucose_column), glucose_column,
                     mgdl_per_unit)
        elif event == "Calibration":
            value = out.number(cell(cells, glucose_column), glucose_column)
            if value is not None:
                out.treatment(patient, ts_ms, "BG Check", glucose=value * mgdl_per_unit,
                              glucoseType="Finger", units="mg/dl")
        elif event == "Insulin":
            dose_u = out.number(cell(cells, INSULIN), INSULIN)
            subtype = cell(cells, EVENT_SUBTYPE)
            if dose_u is None:
                pass
            elif subtype.casefold() == "long-acting":
                out.treatment(patient, ts_ms, "Basal Injection", longActingInsulin=dose_u,
                              insulinType=subtype)
            else:
                out.treatment(patient, ts_ms, "Correction Bolus", insulin=dose_u,
                              insulinType=subtype or None)
        else:  # Carbs
            carbs_g = out.number(cell(cells, CARBS), CARBS)
            if carbs_g is not None:
                out.treatment(patient, ts_ms, "Carb Correction", carbs=carbs_g)
    return out.rows(units)


def _reading(out: ExportBuilder, patient: str, sensor: str, ts_ms: int, text: str, column: str,
             mgdl_per_unit: float) -> None:
    """An EGV row's reading: a number, or High/Low at the sensor's limits."""
    word = text.casefold()
    if word == "high":
        out.reading(patient, sensor, ts_ms, SENSOR_HIGH_MGDL, 1)
    elif word == "low":
        out.reading(patient, sensor, ts_ms, SENSOR_LOW_MGDL, -1)
    else:
        value = out.number(text, column, "a number, High or Low")
        if value is not None:
            out.reading(patient, sensor, ts_ms, value * mgdl_per_unit)


def _name_in(file_name: str) -> str:
    """The patient's name in Clarity's file name (``Clarity_Export_<name>_<date>_<time>``),
    else the file's name."""
    stem = file_stem(file_name)
    found = _FILE_NAME.match(stem)
    return found[1] if found else stem


FORMAT = ExportFormat(
    name=FORMAT_NAME,
    expected=f"header with {TIMESTAMP!r}, {EVENT_TYPE!r}, 'Glucose Value (mg/dL)' or "
             "'Glucose Value (mmol/L)'",
    suffixes=(".csv",),
    sniff=sniff,
    file_name=re.compile(r"^Clarity_Export", re.IGNORECASE),
    read=read,
)

__all__ = ["FORMAT", "SENSOR_HIGH_MGDL", "SENSOR_LOW_MGDL", "read", "sniff"]
