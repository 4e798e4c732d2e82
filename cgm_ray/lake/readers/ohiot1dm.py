"""OhioT1DM XML (the research data set's per-patient files): readings and treatments.

Example (``559-ws-training.xml``; one element per stream, each holding ``<event>``s)::

    <?xml version="1.0" encoding="UTF-8"?>
    <patient id="559" weight="99" insulin_type="Novalog">
      <glucose_level><event ts="07-12-2021 01:17:00" value="101"/></glucose_level>
      <finger_stick><event ts="07-12-2021 07:47:00" value="129"/></finger_stick>
      <basal><event ts="07-12-2021 00:00:00" value="0.7"/></basal>
      <temp_basal><event ts_begin="07-12-2021 14:00:00" ts_end="07-12-2021 15:00:00" value="0"/></temp_basal>
      <bolus><event ts_begin="07-12-2021 08:02:00" ts_end="07-12-2021 08:02:00" type="normal"
                    dose="6.2" bwz_carb_input="60"/></bolus>
      <meal><event ts="07-12-2021 08:00:00" type="Breakfast" carbs="60"/></meal>
    </patient>

Recognised by its ``<patient>`` root. ``ts`` is ``DD-MM-YYYY HH:MM:SS``, device-local without an
offset (``--tz``); glucose is in mg/dL. The patient is ``--patient``, else the root's ``id``.

* ``glucose_level``: readings of the sensor ``ohiot1dm:<id>``.
* ``finger_stick``: meter values, not CGM readings: kept out of the readings, as ``BG Check``
  treatments (``glucose``, ``glucoseType: Finger``), where Nightscout records finger sticks.
* ``basal``: the pump's programmed rate from ``ts`` on, as a ``Temp Basal`` with ``absolute``
  U/h lasting until the next ``basal`` event (the last one has no duration), which is how the
  lake records delivered basal without a profile; ``temp_basal``: a ``Temp Basal`` from
  ``ts_begin`` to ``ts_end``.
* ``bolus``: ``dose`` units as ``insulin``, a ``Meal Bolus`` when the bolus wizard was given
  carbohydrate (``bwz_carb_input``, kept as ``bwzCarbInput``, not as ``carbs``: the meal is its
  own event) else a ``Correction Bolus``; a square or dual bolus has the ``duration`` to ``ts_end``.
* ``meal``: a ``Carb Correction`` of ``carbs`` grams, its ``type`` in ``notes``.
* The other streams (``sleep``, ``work``, ``exercise``, ``basis_*`` ...) are counted, not loaded;
  ``weight`` and ``insulin_type`` are patient attributes (``cgm-ray etl --patients``), not read.

The file is parsed with the standard library's expat (``xml.etree.ElementTree.iterparse``),
safely: at most ``MAX_XML_BYTES``, and any DTD or entity declaration is refused, so no entity
is ever expanded or fetched.
"""

from __future__ import annotations

import bisect
import io
import re
import xml.etree.ElementTree as ET
from datetime import datetime
from typing import Any

from cgm_ray.lake.readers.base import (
    ExportBuilder,
    ExportError,
    ExportFormat,
    ExportRows,
    ImportOptions,
    file_stem,
)
from cgm_ray.lake.readers.local_times import to_utc_ms

FORMAT_NAME = "OhioT1DM"
MAX_XML_BYTES = 256 << 20  # the data set's files are a few MB each
TIME_FORMAT = "%d-%m-%Y %H:%M:%S"
_DECLARATION = re.compile(rb"<!(DOCTYPE|ENTITY)", re.IGNORECASE)
_LOADED = ("glucose_level", "finger_stick", "basal", "temp_basal", "bolus", "meal")


def sniff(head: str) -> bool:
    """Whether the document's root element is ``<patient``."""
    text = re.sub(r"<\?.*?\?>|<!--.*?-->|<!DOCTYPE[^\[>]*(\[.*?\])?\s*>", "", head.lstrip("\ufeff"),
                  flags=re.DOTALL).lstrip()
    return text.startswith("<patient") and text[8:9] in (" ", ">", "\t", "\n", "\r", "/")


def read(data: bytes, file_name: str, options: ImportOptions) -> ExportRows:
    """The readings and treatments of an OhioT1DM file (see the module's description)."""
    patient_attrs, events = _parse(data)
    out = ExportBuilder(FORMAT_NAME)
    xml_id = patient_attrs.get("id") or file_stem(file_name).split("-ws-", 1)[0]
    patient = options.patient_id or xml_id
    sensor = f"ohiot1dm:{xml_id}"
    # each event's begin and, where it has one, end time, converted together (stream by stream)
    timed: list[tuple[str, dict[str, str], datetime, datetime | None]] = []
    for stream, attrs in events:
        if stream not in _LOADED:
            out.note(f"{stream}: not loaded")
            continue
        ends = stream in ("temp_basal", "bolus")
        begin = _time(out, stream, attrs, "ts_begin" if ends else "ts")
        end = _time(out, stream, attrs, "ts_end") if ends and begin is not None else None
        if begin is None or (ends and end is None):
            continue
        timed.append((stream, attrs, begin, end))
    moments = [t[2] for t in timed] + [t[3] for t in timed if t[3] is not None]
    streams = [t[0] for t in timed] + [(t[0], "end") for t in timed if t[3] is not None]
    utc = iter(to_utc_ms(moments, streams, options, "ts", out.notes))
    begins = [next(utc) for _ in timed]
    ends_ms = {k: next(utc) for k, t in enumerate(timed) if t[3] is not None}

    basal_starts = sorted(ts for (stream, *_), ts in zip(timed, begins) if stream == "basal")
    for k, ((stream, attrs, _, _), ts_ms) in enumerate(zip(timed, begins)):
        if stream == "glucose_level":
            value = _number(out, stream, attrs, "value")
            if value is not None:
                out.reading(patient, sensor, ts_ms, value)
        elif stream == "finger_stick":
            value = _number(out, stream, attrs, "value")
            if value is not None:
                out.treatment(patient, ts_ms, "BG Check", glucose=value, glucoseType="Finger",
                              units="mg/dl")
        elif stream == "basal":
            rate = _number(out, stream, attrs, "value")
            after = bisect.bisect_right(basal_starts, ts_ms)
            if rate is not None:
                out.treatment(patient, ts_ms, "Temp Basal", absolute=rate,
                              duration=(basal_starts[after] - ts_ms) / 60_000
                              if after < len(basal_starts) else None)
        elif stream == "temp_basal":
            rate = _number(out, stream, attrs, "value")
            if rate is not None:
                out.treatment(patient, ts_ms, "Temp Basal", absolute=rate,
                              duration=(ends_ms[k] - ts_ms) / 60_000)
        elif stream == "bolus":
            dose = _number(out, stream, attrs, "dose")
            wizard_carbs = _number(out, stream, attrs, "bwz_carb_input", required=False)
            if dose is not None:
                out.treatment(patient, ts_ms, "Meal Bolus" if wizard_carbs else "Correction Bolus",
                              insulin=dose, bwzCarbInput=wizard_carbs, bolusType=attrs.get("type"),
                              duration=(ends_ms[k] - ts_ms) / 60_000 if ends_ms[k] > ts_ms else None)
        else:  # meal
            carbs = _number(out, stream, attrs, "carbs")
            if carbs is not None:
                out.treatment(patient, ts_ms, "Carb Correction", carbs=carbs, notes=attrs.get("type"))
    return out.rows("mg/dL")


def _parse(data: bytes) -> tuple[dict[str, str], list[tuple[str, dict[str, str]]]]:
    """The root's attributes and every (stream, event attributes), in file order."""
    if len(data) > MAX_XML_BYTES:
        raise ExportError("file", f"{len(data):,} bytes, over the {MAX_XML_BYTES:,} an OhioT1DM "
                                  "file is read up to")
    if _DECLARATION.search(data):
        raise ExportError("XML", "holds a DTD or entity declaration, which is refused (OhioT1DM "
                                 "files have none; entities could expand without bound)")
    root: dict[str, str] | None = None
    path: list[str] = []
    events: list[tuple[str, dict[str, str]]] = []
    try:
        for kind, element in ET.iterparse(io.BytesIO(data), events=("start", "end")):
            if kind == "start":
                path.append(element.tag)
                if len(path) == 1:
                    if element.tag != "patient":
                        raise ExportError("XML", f"the root is <{element.tag}>, expected <patient>")
                    root = dict(element.attrib)
                continue
            if len(path) == 3 and element.tag == "event":
                events.append((path[1], dict(element.attrib)))
            path.pop()
            if len(path) <= 2:
                element.clear()  # stream by stream: memory stays bounded by the largest stream
    except ET.ParseError as exc:
        raise ExportError("XML", f"not well-formed ({exc}): the file is truncated or not XML") from None
    if root is None:
        raise ExportError("XML", "no <patient> element")
    return root, events


def _time(out: ExportBuilder, stream: str, attrs: dict[str, str], name: str) -> datetime | None:
    text = attrs.get(name)
    try:
        return datetime.strptime(text or "", TIME_FORMAT)
    except ValueError:
        out.reject(f"{stream}.{name}: {'missing' if not text else 'not DD-MM-YYYY HH:MM:SS'}")
        return None


def _number(out: ExportBuilder, stream: str, attrs: dict[str, Any], name: str,
            required: bool = True) -> float | None:
    text = attrs.get(name)
    if not text and not required:
        return None
    return out.number(text or "", f"{stream}.{name}")


FORMAT = ExportFormat(
    name=FORMAT_NAME,
    expected="an XML <patient id=...> root holding <glucose_level> <event ts=... value=...> elements",
    suffixes=(".xml",),
    sniff=sniff,
    file_name=re.compile(r"-ws-(training|testing)\.xml", re.IGNORECASE),
    read=read,
)

__all__ = ["FORMAT", "MAX_XML_BYTES", "read", "sniff"]
