"""Nightscout documents as clients send them, normalised the way Nightscout stores them.

Treatments, device statuses, profiles and non-sgv entries (meter values, calibrations)
arrive as free-form JSON objects. ``normalise`` checks the fields cgm-ray reads, coerces
numbers and times as Nightscout's ``lib/server/treatments.js`` does (``created_at`` to ISO
UTC, ``eventTime`` overriding it, numeric strings to numbers, empty values dropped), adds
``date`` (epoch ms) and a stable ``identifier``, and keeps every other field as given, so
what an app uploads is what it reads back. A field that cannot be read raises
``InvalidBody`` naming it.
"""

from __future__ import annotations

import hashlib
import math
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cgm_ray.schema import DOCUMENT_COLLECTIONS
from serve_apps.validation import SAFE_INT, InvalidBody

# API v3's identifier: UUIDv5 of "device_date[_eventType]" in this namespace
# (cgm-remote-monitor lib/api3/shared/operationTools.js), so both servers agree on it.
NIGHTSCOUT_NAMESPACE = uuid.UUID(bytes=b"NightscoutRocks!")
OBJECT_ID = re.compile(r"^[0-9a-fA-F]{24}$")
MAX_FIELDS = 200  # top-level fields of one document
LATEST_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z, the last time ISO 8601 writes

# Nightscout coerces these treatment fields to numbers and drops them when empty or zero
# (``prepareData``); duration and absolute are kept at zero (a zero temp basal is a dose).
TREATMENT_NUMBERS = ("glucose", "targetTop", "targetBottom", "carbs", "insulin", "duration",
                     "percent", "absolute", "rate", "relative", "preBolus", "protein", "fat")
DROPPED_WHEN_ZERO = {"targetTop", "targetBottom", "carbs", "insulin", "percent", "relative",
                     "preBolus", "glucose"}
# The careportal's event types (lib/plugins/careportal.js) and those AID apps add; any other
# non-empty string is stored too (Nightscout accepts free event types).
EVENT_TYPES = (
    "BG Check", "Snack Bolus", "Meal Bolus", "Correction Bolus", "Carb Correction",
    "Combo Bolus", "Announcement", "Note", "Question", "Exercise", "Site Change",
    "Sensor Start", "Sensor Change", "Sensor Stop", "Pump Battery Change", "Insulin Change",
    "Temp Basal Start", "Temp Basal End", "Profile Switch", "D.A.D. Alert", "Temp Basal",
    "Temporary Target", "Temporary Override", "OpenAPS Offline", "Suspend Pump", "Resume Pump",
    "Bolus Wizard", "<none>")
# Fields holding times, compared as instants in queries (ISO text or epoch ms).
TIME_FIELDS = {"created_at", "dateString", "startDate", "timestamp", "date", "mills",
               "srvCreated", "srvModified", "sysTime"}
PROFILE_SCHEDULES = ("basal", "carbratio", "sens", "target_low", "target_high")


@dataclass(frozen=True)
class Document:
    """One normalised document of ``collection`` and the keys it is stored under."""

    collection: str
    identifier: str
    date_ms: int
    fields: dict[str, Any]
    # Nightscout v1's other identity of a treatment: (created_at, eventType); None elsewhere.
    event_key: tuple[int, str] | None = None


def iso_ms(ts_ms: int) -> str:
    """Epoch ms as Nightscout writes times: ISO 8601, UTC, milliseconds, ``Z``."""
    return (datetime.fromtimestamp(ts_ms / 1000, tz=UTC).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"))


def parse_time(value: Any, field: str) -> tuple[int, int]:
    """A time given as ISO 8601 text or epoch ms: (epoch ms, UTC offset in minutes)."""
    if isinstance(value, bool) or value is None:
        raise InvalidBody(field, "must be an ISO 8601 time or epoch milliseconds")
    if isinstance(value, int | float) or (isinstance(value, str) and _is_number(value)):
        ms = float(value)
        if not math.isfinite(ms):
            raise InvalidBody(field, "must be finite epoch milliseconds")
        return _in_range(int(ms), field), 0
    if not isinstance(value, str):
        raise InvalidBody(field, "must be an ISO 8601 time or epoch milliseconds")
    text = value.strip().replace(" ", "T", 1) if "T" not in value else value.strip()
    text = re.sub(r"[zZ]$", "+00:00", text)
    text = re.sub(r"([+-]\d\d)(\d\d)$", r"\1:\2", text)  # +0100, as some uploaders write it
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidBody(field, f"not an ISO 8601 time: {value[:40]!r}") from None
    offset = when.utcoffset() if when.tzinfo else timedelta(0)
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    try:
        ms = int(when.timestamp() * 1000)
    except (OverflowError, OSError, ValueError):
        raise InvalidBody(field, "too old or too far in the future") from None
    return _in_range(ms, field), int(offset.total_seconds() // 60) if offset is not None else 0


def _in_range(ms: int, field: str) -> int:
    """Times from 1970 to 9999 (what ISO 8601 text and every JSON parser can hold)."""
    if ms < 0:
        raise InvalidBody(field, "too old: before 1970-01-01")
    if ms > LATEST_MS:
        raise InvalidBody(field, "too far in the future (after 9999)")
    return ms


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _number(value: Any, field: str) -> float | None:
    """A numeric field as a number (numeric text too); None for null or empty text."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise InvalidBody(field, "must be a number")
    if isinstance(value, str):
        if not _is_number(value):
            raise InvalidBody(field, f"must be a number, got {value[:40]!r}")
        value = float(value)
    if not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidBody(field, "must be a finite number")
    return int(value) if float(value).is_integer() and abs(value) <= SAFE_INT else float(value)


def identifier_for(device: Any, date_ms: int, event_type: str | None = None) -> str:
    """The identifier API v3 computes for a document without one (device_date[_eventType])."""
    key = f"{'undefined' if device is None else device}_{date_ms}"
    return str(uuid.uuid5(NIGHTSCOUT_NAMESPACE, key + (f"_{event_type}" if event_type else "")))


def object_id(identifier: str, date_ms: int) -> str:
    """A stable 24-hex ``_id`` in MongoDB's layout (seconds first), for v1 clients."""
    return f"{(date_ms // 1000) & 0xFFFFFFFF:08x}" + hashlib.sha1(identifier.encode()).hexdigest()[:16]


def normalise(collection: str, raw: Any, now_ms: int) -> Document:
    """Check and normalise one uploaded record of ``collection``."""
    if collection not in DOCUMENT_COLLECTIONS:
        raise InvalidBody("collection", f"unknown collection {collection!r}")
    if not isinstance(raw, dict):
        raise InvalidBody(collection, "each record must be a JSON object")
    if len(raw) > MAX_FIELDS:
        raise InvalidBody(collection, f"at most {MAX_FIELDS} fields per record")
    fields = {k: v for k, v in raw.items() if v is not None and k not in (
        "srvCreated", "srvModified", "isValid", "subject")}
    return {"treatments": _treatment, "devicestatus": _devicestatus, "profile": _profile,
            "entries": _entry}[collection](fields, now_ms)


def _given_identity(fields: dict) -> tuple[str | None, str | None]:
    """The client's own identifier and ``_id``: a non-ObjectId ``_id`` (Loop's UUIDs) is an
    identifier, as in Nightscout's ``normalizeTreatmentId``."""
    identifier, oid = fields.pop("identifier", None), fields.pop("_id", None)
    if oid is not None and (not isinstance(oid, str | int) or isinstance(oid, bool)
                            or not 0 < len(str(oid)) <= 128):
        raise InvalidBody("_id", "must be a string of 1-128 characters")
    if oid is not None and not (isinstance(oid, str) and OBJECT_ID.match(oid)):
        identifier = identifier or str(oid)
        oid = None
    if identifier is not None and (not isinstance(identifier, str) or not 0 < len(identifier) <= 128):
        raise InvalidBody("identifier", "must be a string of 1-128 characters")
    return identifier, oid


def _finish(collection: str, fields: dict, date_ms: int, identifier: str | None, oid: str | None,
            device: Any, event_type: str | None = None) -> Document:
    identifier = identifier or identifier_for(device, date_ms, event_type)
    fields["identifier"] = identifier
    fields["_id"] = oid or object_id(identifier, date_ms)
    fields["date"] = date_ms
    key = (date_ms, event_type) if collection == "treatments" and event_type else None
    return Document(collection, identifier, date_ms, fields, key)


def _treatment(fields: dict, now_ms: int) -> Document:
    identifier, oid = _given_identity(fields)
    event_type = fields.get("eventType")
    if not isinstance(event_type, str) or not event_type.strip():
        raise InvalidBody("eventType", "required: a careportal event type such as "
                          "'Correction Bolus', 'Carb Correction' or 'Temp Basal'")
    when = (fields.pop("eventTime", None) or fields.get("created_at") or fields.get("timestamp")
            or fields.get("date"))
    date_ms, offset = parse_time(when, "created_at") if when is not None else (now_ms, 0)
    fields.setdefault("utcOffset", offset)
    fields["created_at"] = iso_ms(date_ms)
    for name in TREATMENT_NUMBERS:
        if name in fields:
            value = _number(fields[name], name)
            if value is None or (value == 0 and name in DROPPED_WHEN_ZERO):
                del fields[name]
            else:
                fields[name] = value
    if "insulin" in fields and fields["insulin"] < 0:
        raise InvalidBody("insulin", "must not be negative")
    if "carbs" in fields and fields["carbs"] < 0:
        raise InvalidBody("carbs", "must not be negative")
    if "duration" in fields and not 0 <= fields["duration"] <= 7 * 1440:
        raise InvalidBody("duration", "must be 0-10080 minutes")
    if not fields.get("notes"):
        fields.pop("notes", None)
    if event_type == "Announcement":
        fields["isAnnouncement"] = True
    return _finish("treatments", fields, date_ms, identifier, oid, fields.get("device"),
                   event_type)


def _devicestatus(fields: dict, now_ms: int) -> Document:
    identifier, oid = _given_identity(fields)
    device = fields.get("device")
    if device is not None and not isinstance(device, str):
        raise InvalidBody("device", "must be a string such as 'loop://iPhone'")
    when = fields.get("created_at") or fields.get("date")
    date_ms = parse_time(when, "created_at")[0] if when is not None else now_ms
    fields["created_at"] = iso_ms(date_ms)
    for path in (("pump", "reservoir"), ("pump", "battery", "percent"), ("uploader", "battery"),
                 ("uploaderBattery",)):
        _check_nested_number(fields, path)
    return _finish("devicestatus", fields, date_ms, identifier, oid, device)


def _check_nested_number(fields: dict, path: tuple[str, ...]) -> None:
    node: Any = fields
    for name in path[:-1]:
        node = node.get(name) if isinstance(node, dict) else None
    if isinstance(node, dict) and path[-1] in node and not isinstance(node[path[-1]], bool | dict):
        node[path[-1]] = _number(node[path[-1]], ".".join(path))


def _profile(fields: dict, now_ms: int) -> Document:
    identifier, oid = _given_identity(fields)
    store = fields.get("store")
    if not isinstance(store, dict) or not store:
        raise InvalidBody("store", "required: an object of named profiles")
    default = fields.get("defaultProfile")
    if default is None:
        fields["defaultProfile"] = default = next(iter(store))
    if not isinstance(default, str) or default not in store:
        raise InvalidBody("defaultProfile", f"names no profile of store: {default!r}")
    for name, profile in store.items():
        if not isinstance(profile, dict):
            raise InvalidBody(f"store.{name}", "must be an object")
        if "dia" in profile:
            profile["dia"] = _number(profile["dia"], f"store.{name}.dia")
        for schedule in PROFILE_SCHEDULES:
            if schedule in profile:
                profile[schedule] = _schedule(profile[schedule], f"store.{name}.{schedule}")
    when = fields.get("startDate") or fields.get("created_at") or fields.get("date")
    date_ms = parse_time(when, "startDate")[0] if when is not None else now_ms
    fields["startDate"] = fields.get("startDate") or iso_ms(date_ms)
    fields["created_at"] = fields.get("created_at") or iso_ms(date_ms)
    fields.setdefault("units", next((p.get("units") for p in store.values() if p.get("units")),
                                    "mg/dl"))
    return _finish("profile", fields, date_ms, identifier, oid, None)


def _schedule(items: Any, field: str) -> list[dict]:
    """A profile schedule: items ``{time: "HH:MM", value}``, with ``timeAsSeconds`` added."""
    if isinstance(items, int | float | str) and not isinstance(items, bool):
        items = [{"time": "00:00", "value": items}]  # a single value, as some uploaders send
    if not isinstance(items, list) or not items:
        raise InvalidBody(field, "must be a non-empty list of {time, value}")
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise InvalidBody(f"{field}[{i}]", "must be an object {time, value}")
        value = _number(item.get("value"), f"{field}[{i}].value")
        if value is None:
            raise InvalidBody(f"{field}[{i}].value", "required")
        time = str(item.get("time", "00:00"))
        match = re.fullmatch(r"(\d{1,2}):(\d\d)", time)
        if not match or int(match[1]) > 23 or int(match[2]) > 59:
            raise InvalidBody(f"{field}[{i}].time", f"must be HH:MM, got {time[:10]!r}")
        out.append({**item, "time": f"{int(match[1]):02d}:{match[2]}", "value": value,
                    "timeAsSeconds": int(match[1]) * 3600 + int(match[2]) * 60})
    return out


def _entry(fields: dict, now_ms: int) -> Document:
    identifier, oid = _given_identity(fields)
    kind = fields.get("type")
    if not isinstance(kind, str) or not 0 < len(kind) <= 32 or kind == "sgv":
        raise InvalidBody("type", "must be 'mbg', 'cal' or another type of 1-32 characters "
                          "(sgv entries are readings)")
    when = fields.get("date") if fields.get("date") is not None else fields.get("dateString")
    if when is None:
        raise InvalidBody("date", "date (epoch ms) or dateString required")
    date_ms = parse_time(when, "date")[0]
    fields["dateString"] = iso_ms(date_ms)
    if kind == "mbg":
        mbg = _number(fields.get("mbg"), "mbg")
        if mbg is None or not 20 <= mbg <= 600:
            raise InvalidBody("mbg", "required for type mbg: 20-600 mg/dL")
        fields["mbg"] = mbg
    for name in ("slope", "intercept", "scale"):
        if name in fields:
            fields[name] = _number(fields[name], name)
    return _finish("entries", fields, date_ms, identifier, oid, fields.get("device"))
