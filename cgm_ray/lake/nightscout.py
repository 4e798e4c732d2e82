"""Nightscout records as typed lake columns: treatments, devicestatus and profiles.

Each collection the lake keeps has a ``DocumentTable``: its lake table and a function from
one record (a JSON object as Nightscout stores it; ``shared/docs/nightscout-ecosystem.md``)
to that table's typed columns. A field that is absent or null gives null; a field present
with an unusable value raises ``DocumentError`` naming it, and the ETL counts the record as
rejected for that reason. Numbers may be numeric text, as Nightscout's server coerces them
(``lib/server/treatments.js``). Pure functions of plain Python values.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cgm_ray.errors import CgmRayError

FieldPath = tuple[str, ...]  # keys from the record down to a field
_NUMBER = re.compile(r"^\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*$")
_CLOCK = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)(:([0-5]\d))?$")


class DocumentError(CgmRayError, ValueError):
    """A record whose ``field`` (a dotted path) holds an unusable value; ``reason`` says how."""

    def __init__(self, field: str, reason: str) -> None:
        self.field, self.reason = field, reason
        super().__init__(f"{field}: {reason}")

    def __reduce__(self):  # keep both fields when Ray ships the error between processes
        return DocumentError, (self.field, self.reason)


def _get(doc: dict, path: FieldPath) -> Any:
    """The value at ``path`` (None when any step is missing or not an object). A list on the
    way stands for its first item: oref0 uploads ``openaps.iob`` as a list, newest first."""
    value: Any = doc
    for key in path:
        if isinstance(value, list):
            value = value[0] if value else None
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _number(doc: dict, *paths: FieldPath, low: float | None = 0.0, high: float | None = None
            ) -> float | None:
    """The first of ``paths`` present, as a finite number in [low, high]; None if none is."""
    for path in paths:
        value = _get(doc, path)
        if value is None or value == "":
            continue
        field = ".".join(path)
        if isinstance(value, str) and _NUMBER.match(value):
            value = float(value)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise DocumentError(field, "not a number")
        if not math.isfinite(value):
            raise DocumentError(field, "not finite")
        if low is not None and value < low:
            raise DocumentError(field, f"below {low:g}")
        if high is not None and value > high:
            raise DocumentError(field, f"above {high:g}")
        return float(value)
    return None


def _text(doc: dict, path: FieldPath) -> str | None:
    value = _get(doc, path)
    if value is None:
        return None
    if not isinstance(value, str):
        raise DocumentError(".".join(path), "not text")
    return value


def treatment_columns(doc: dict) -> dict[str, Any]:
    """A treatment's event type, bolus insulin, carbohydrate, duration, temp basal rate
    (``absolute``, else ``rate``, in U/h; or ``percent`` of the schedule) and author."""
    return {
        "event_type": _text(doc, ("eventType",)),
        "insulin_u": _number(doc, ("insulin",)),
        "carbs_g": _number(doc, ("carbs",)),
        "duration_min": _number(doc, ("duration",)),
        "rate_u_per_h": _number(doc, ("absolute",), ("rate",)),
        "rate_change_pct": _number(doc, ("percent",), low=-100.0),
        "entered_by": _text(doc, ("enteredBy",)),
    }


def devicestatus_columns(doc: dict) -> dict[str, Any]:
    """A device status's device, insulin and carbohydrate on board, pump reservoir and
    batteries, and the temp basal last enacted, from Loop's ``loop`` or OpenAPS/AAPS's
    ``openaps`` (their iob, else the IOB/COB of the suggestion)."""
    return {
        "device": _text(doc, ("device",)),
        "iob_u": _number(doc, ("loop", "iob", "iob"), ("openaps", "iob", "iob"),
                         ("openaps", "suggested", "IOB"), low=None),
        "cob_g": _number(doc, ("loop", "cob", "cob"), ("openaps", "suggested", "COB"),
                         ("openaps", "enacted", "COB")),
        "reservoir_u": _number(doc, ("pump", "reservoir")),
        "pump_battery_pct": _number(doc, ("pump", "battery", "percent"), high=100.0),
        "uploader_battery_pct": _number(doc, ("uploader", "battery"), ("uploaderBattery",),
                                        high=100.0),
        "enacted_rate_u_per_h": _number(doc, ("loop", "enacted", "rate"),
                                        ("openaps", "enacted", "rate")),
        "enacted_duration_min": _number(doc, ("loop", "enacted", "duration"),
                                        ("openaps", "enacted", "duration")),
    }


def profile_columns(doc: dict) -> dict[str, Any]:
    """A profile's default profile name, its time zone and its basal schedule, entries
    ``{start_s, rate_u_per_h}`` sorted by time of day (empty when it has none)."""
    name = _text(doc, ("defaultProfile",))
    if not name:
        raise DocumentError("defaultProfile", "missing")
    entry = _get(doc, ("store", name))
    if not isinstance(entry, dict):
        raise DocumentError(f"store.{name}", "missing (the default profile)")
    timezone = _text(entry, ("timezone",))
    if timezone is not None:
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise DocumentError(f"store.{name}.timezone", "unknown time zone") from None
    return {"default_profile": name, "timezone": timezone,
            "basal": _schedule(entry.get("basal"), f"store.{name}.basal")}


def _schedule(items: Any, field: str) -> list[dict[str, Any]]:
    """A schedule's entries as {start_s, rate_u_per_h}, by time of day; the time is
    ``timeAsSeconds`` when given, else ``time`` ("HH:MM")."""
    if items is None:
        return []
    if not isinstance(items, list):
        raise DocumentError(field, "not a list")
    entries = []
    for k, item in enumerate(items):
        if not isinstance(item, dict):
            raise DocumentError(f"{field}.{k}", "not an object")
        seconds = _number(item, ("timeAsSeconds",), high=86_399.0)
        if seconds is None:
            clock = _CLOCK.match(str(item.get("time", "")))
            if clock is None:
                raise DocumentError(f"{field}.{k}.time", "not a time of day (HH:MM)")
            seconds = int(clock[1]) * 3600 + int(clock[2]) * 60 + int(clock[4] or 0)
        rate = _number(item, ("value",))
        if rate is None:
            raise DocumentError(f"{field}.{k}.value", "missing")
        entries.append({"start_s": int(seconds), "rate_u_per_h": rate})
    entries.sort(key=lambda e: e["start_s"])
    if any(a["start_s"] == b["start_s"] for a, b in zip(entries, entries[1:])):
        raise DocumentError(field, "two entries at the same time of day")
    return entries


@dataclass(frozen=True)
class DocumentTable:
    """Where a collection's records go: the lake table, and how its columns are taken."""

    name: str
    columns: Callable[[dict], dict[str, Any]]


# Collections with a lake table; the others (entries other than sgv) are counted, not loaded.
TABLES = {"treatments": DocumentTable("treatments", treatment_columns),
          "devicestatus": DocumentTable("devicestatus", devicestatus_columns),
          "profile": DocumentTable("profiles", profile_columns)}

__all__ = ["TABLES", "DocumentError", "DocumentTable", "devicestatus_columns",
           "profile_columns", "treatment_columns"]
