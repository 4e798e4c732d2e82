"""``/api/v2/properties``: the values Nightscout's plugins compute, as followers read them.

Pure functions of the newest readings, device status, profile and temp basal, shaped as
cgm-remote-monitor's ``bgnow``, ``delta``, ``direction``, ``iob``, ``cob`` and ``basal``
plugins publish them (Nightguard and watch faces read these). A property whose inputs are
missing is left out rather than shown as zero.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cgm_ray.glucose.units import GlucoseUnits, to_units
from serve_apps.nightscout.query import lookup

BUCKET_MS = 5 * 60_000
ARROWS = {"DoubleUp": "⇈", "SingleUp": "↑", "FortyFiveUp": "↗", "Flat": "→",
          "FortyFiveDown": "↘", "SingleDown": "↓", "DoubleDown": "⇊", "NOT COMPUTABLE": "-",
          "RATE OUT OF RANGE": "⇕", "NONE": "⇼"}


def _scaled(glucose_mgdl: float, units: GlucoseUnits) -> float:
    return to_units(glucose_mgdl, units)


def properties(entries: list[dict], devicestatus: dict | None, profile: dict | None,
               temp_basal: dict | None, units: GlucoseUnits, now_ms: int) -> dict[str, Any]:
    """Nightscout's properties from the newest sgv ``entries`` (newest first) and the rest."""
    out: dict[str, Any] = {}
    if entries:
        last = entries[0]
        recent = [e for e in entries if e["date"] > last["date"] - BUCKET_MS]
        out["bgnow"] = {
            "mean": sum(e["sgv"] for e in recent) / len(recent), "last": last["sgv"],
            "mills": last["date"],
            "sgvs": [{"_id": e["_id"], "mgdl": e["sgv"], "mills": e["date"],
                      "device": e.get("device"), "direction": e.get("direction"),
                      "scaled": _scaled(e["sgv"], units)} for e in recent]}
        previous = [e for e in entries if last["date"] - 2 * BUCKET_MS < e["date"]
                    <= last["date"] - BUCKET_MS]
        if previous:
            before = previous[0]
            elapsed_min = (last["date"] - before["date"]) / 60_000
            mgdl = round(last["sgv"] - before["sgv"])
            scaled = (mgdl if units == "mg/dl" else
                      round(_scaled(last["sgv"], units) - _scaled(before["sgv"], units), 1))
            out["delta"] = {"absolute": last["sgv"] - before["sgv"], "elapsedMins": elapsed_min,
                            "interpolated": False, "mean5MinsAgo": before["sgv"], "mgdl": mgdl,
                            "scaled": scaled, "display": f"{'+' if scaled >= 0 else ''}{scaled}",
                            "times": {"recent": last["date"], "previous": before["date"]}}
        arrow = last.get("direction") or "NONE"
        out["direction"] = {"value": arrow, "label": ARROWS.get(arrow, arrow),
                            "entity": ARROWS.get(arrow, arrow)}
    if devicestatus is not None:
        iob = _first(devicestatus, "loop.iob.iob", "openaps.iob.iob", "openaps.suggested.IOB")
        if isinstance(iob, int | float):
            out["iob"] = {"iob": iob, "display": f"{iob:.2f}", "displayLine": f"IOB: {iob:.2f}U",
                          "source": devicestatus.get("device"), "mills": devicestatus["date"]}
        cob = _first(devicestatus, "loop.cob.cob", "openaps.suggested.COB",
                     "openaps.enacted.COB")
        if isinstance(cob, int | float):
            out["cob"] = {"cob": cob, "display": round(cob), "displayLine": f"COB: {round(cob)}g",
                          "source": devicestatus.get("device")}
    scheduled = scheduled_basal_u_per_h(profile, now_ms) if profile else None
    if scheduled is not None:
        current: dict[str, Any] = {"basal": scheduled, "treatment": None, "tempbasal": scheduled,
                   "totalbasal": scheduled}
        if temp_basal is not None and _running(temp_basal, now_ms):
            rate = temp_basal.get("absolute", temp_basal.get("rate"))
            if isinstance(rate, int | float):
                current.update(treatment=temp_basal, tempbasal=rate, totalbasal=rate)
        rate = current["totalbasal"]
        out["basal"] = {"display": f"{'T: ' if current['treatment'] else ''}{rate:.3f}U",
                        "current": current}
    return out


def _first(doc: dict, *paths: str) -> Any:
    for path in paths:
        value = lookup(doc, path)
        if value is not None:
            return value
    return None


def _running(treatment: dict, now_ms: int) -> bool:
    duration_min = treatment.get("duration", 0)
    return treatment["date"] <= now_ms < treatment["date"] + duration_min * 60_000


def scheduled_basal_u_per_h(profile: dict, now_ms: int) -> float | None:
    """The basal rate a profile schedules at ``now_ms`` (in the profile's time zone if it
    names one that this machine knows, else UTC)."""
    store = profile.get("store", {}).get(profile.get("defaultProfile"), {})
    schedule = store.get("basal")
    if not schedule:
        return None
    seconds = _seconds_of_day(now_ms, store.get("timezone"))
    value = schedule[0]["value"]
    for item in schedule:
        if item.get("timeAsSeconds", 0) <= seconds:
            value = item["value"]
    return float(value)


def _seconds_of_day(now_ms: int, timezone: str | None) -> int:
    try:
        zone = ZoneInfo(timezone) if timezone else ZoneInfo("UTC")
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    local = datetime.fromtimestamp(now_ms / 1000, tz=zone)
    return local.hour * 3600 + local.minute * 60 + local.second
