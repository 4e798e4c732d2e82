"""Nightscout documents as two real uploaders write them, built from a fleet window.

``xdrip`` follows xDrip+'s NightscoutUploader (v1 REST): entries with ``device``
``xDrip-DexcomG5``, ``sgv``, ``delta``, ``direction``, ``filtered``/``unfiltered``, ``rssi``,
``noise``, ``sysTime``; treatments with ``eventType: "<none>"``, ``enteredBy: xdrip``,
``carbs`` and ``insulin`` together in one record per moment (xDrip's own model; Nightscout v1
upserts treatments on (created_at, eventType), so two records of one moment would overwrite
each other), a ``uuid`` and the 24-hex ``_id`` xDrip derives from it; and a devicestatus
``{device, uploader: {battery, type: PHONE}}`` with each upload.

``loop`` follows Loop (NightscoutKit): entries labelled with the CGM's name, with ``trend``;
treatments ``Carb Correction`` (``carbs``, ``absorptionTime``), ``Correction Bolus``
(``insulin``, ``automatic``) and ``Temp Basal`` (``temp: absolute``, ``rate``, ``absolute``,
``duration`` in minutes, ``automatic``) with a ``syncIdentifier``; and a devicestatus per loop
cycle with ``pump`` (clock, reservoir, battery, status), ``uploader`` and ``loop`` (iob, cob,
predicted, enacted; ``failureReason`` when the controller failed). ``predicted`` is
Nightscout's AR2 forecast from the cycle's and the previous cycle's CGM values: the
controller's own prediction does not leave the engine.

Every document is a pure function of the window, and every identity is deterministic: entries
are keyed by (device, date), one device label for all of a patient's readings (a Nightscout
site is one person's; a cgm-ray server reads the label within the patient); treatments, device
status and profiles carry an ``identifier`` (UUID 5 of patient, collection and moment) and
``created_at`` of the simulated moment. So a window sent again after a retry or a shard
restart is recognised as the same documents.

The phone's and pump's batteries and the reservoir are not simulated: they are plausible
figures from the clock (a phone charged overnight, a 200 U reservoir and pump battery renewed
with a site change every 3 days, the reservoir emptied at twice the scheduled basal).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from cgm_ray.glucose.trend import TREND_CODES, ar2_forecast
from simulators.controllers.interface import PERIOD_MIN

Style = Literal["xdrip", "loop"]

NAMESPACE = uuid.UUID("6f1c2b1e-2d57-5b0e-9a55-2f1f6c0e4a21")  # of every cgm-ray fleet document
XDRIP_DEVICE = "xDrip-DexcomG5"
XDRIP_PHONE = "Google Pixel 7"  # xDrip names the phone by maker and model
XDRIP_ENTERED_BY = "xdrip"
LOOP_DEVICE = "loop://iPhone"
LOOP_CGM_DEVICE = "CGMBLEKit Dexcom G6 21.0"  # Loop labels entries with its CGM's name
LOOP_VERSION = "3.4.1"
CARB_ABSORPTION_MIN = 180  # Loop's default absorption time of a carb entry
MS_PER_MIN = 60_000
SITE_CHANGE_MIN = 3 * 1440
RESERVOIR_FULL_U = 200.0


def iso(ts_ms: int) -> str:
    """``2026-01-01T00:05:00.000Z``: ISO 8601 UTC with milliseconds, as Nightscout writes it."""
    return datetime.fromtimestamp(ts_ms // 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.") + \
        f"{ts_ms % 1000:03d}Z"


def document_id(patient_id: str, collection: str, key: str) -> uuid.UUID:
    """The stable identity of a patient's document of ``collection`` at ``key`` (a moment)."""
    return uuid.uuid5(NAMESPACE, f"{patient_id}/{collection}/{key}")


def phone_battery_pct(ts_ms: int) -> int:
    """A phone charged overnight: 100 % at 07:00 UTC, 4 %/h down to 36 % at 23:00, recharged by 07:00."""
    minute = (ts_ms // MS_PER_MIN) % 1440
    if 7 * 60 <= minute < 23 * 60:
        return round(100 - (minute - 7 * 60) * 4 / 60)
    return round(36 + ((minute - 23 * 60) % 1440) * 64 / (8 * 60))


# -- entries -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Reading:
    """One CGM reading with its trend (from the reading before it)."""

    patient_id: str
    ts_ms: int
    glucose_mgdl: float
    delta_mgdl: float | None  # change over 5 min at the current rate; None: not computable
    direction: str


def entry(style: Style, r: Reading) -> dict:
    """An sgv entry, keyed by (device, date)."""
    when = iso(r.ts_ms)
    doc: dict = {"type": "sgv", "sgv": round(r.glucose_mgdl), "date": r.ts_ms, "dateString": when,
                 "direction": r.direction}
    if style == "loop":
        return doc | {"device": LOOP_CGM_DEVICE, "trend": TREND_CODES[r.direction]}
    doc |= {"device": XDRIP_DEVICE, "sysTime": when,
            "filtered": round(r.glucose_mgdl * 1000), "unfiltered": round(r.glucose_mgdl * 1000),
            "rssi": 100, "noise": 1}
    if r.delta_mgdl is not None:
        doc["delta"] = round(r.delta_mgdl, 3)
    return doc


# -- treatments ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Treatment:
    """The treatments of one patient at one moment under one event type, summed."""

    patient_id: str
    ts_ms: int
    event_type: str
    carbs_g: float
    insulin_u: float
    automatic: bool  # every part was a closed loop's automatic bolus


def event_type(style: Style, kind: str) -> str:
    """The Nightscout eventType of a treatment row's ``kind`` (``actors.window_events``)."""
    if style == "xdrip":
        return "<none>"
    return "Carb Correction" if kind in ("meal", "hypo_carbs") else "Correction Bolus"


def summed_treatments(style: Style, rows: Iterable[dict]) -> list[Treatment]:
    """Treatment rows (``TREATMENT_SCHEMA`` dicts) summed per (patient, moment, event type):
    one record per upsert key of Nightscout v1, so none overwrites another."""
    sums: dict[tuple[str, int, str], list] = {}
    for row in rows:
        key = (row["patient_id"], row["ts_ms"], event_type(style, row["kind"]))
        acc = sums.setdefault(key, [0.0, 0.0, True])
        acc[0] += row["carbs_g"] or 0.0
        acc[1] += row["insulin_u"] or 0.0
        acc[2] &= row["kind"] == "auto_bolus"
    return [Treatment(patient, ts, kind, carbs, insulin, auto)
            for (patient, ts, kind), (carbs, insulin, auto) in sums.items()]


def treatment(style: Style, t: Treatment) -> dict:
    """A treatment document with its stable identity."""
    uid = document_id(t.patient_id, "treatments", f"{t.ts_ms}/{t.event_type}")
    when = iso(t.ts_ms)
    doc = {"eventType": t.event_type, "created_at": when, "identifier": str(uid)}
    if style == "xdrip":
        return doc | {"_id": uid.hex[:24], "uuid": str(uid), "enteredBy": XDRIP_ENTERED_BY,
                      "timestamp": t.ts_ms, "sysTime": when, "carbs": round(t.carbs_g, 1),
                      "insulin": round(t.insulin_u, 2)}
    doc |= {"timestamp": when, "enteredBy": LOOP_DEVICE, "syncIdentifier": uid.hex}
    if t.event_type == "Carb Correction":
        return doc | {"carbs": round(t.carbs_g, 1), "absorptionTime": CARB_ABSORPTION_MIN}
    insulin = round(t.insulin_u, 2)
    return doc | {"insulin": insulin, "programmed": insulin, "type": "normal", "duration": 0,
                  "automatic": t.automatic}


# -- the loop's cycles ---------------------------------------------------------------------
@dataclass(frozen=True)
class LoopCycle:
    """One patient's 5-min decision period (a ``LOOP_PERIOD_SCHEMA`` row)."""

    patient_id: str
    ts_ms: int
    glucose_mgdl: float | None
    previous_glucose_mgdl: float | None  # of the cycle 5 min before
    basal_u_per_h: float
    scheduled_basal_u_per_h: float
    iob_u: float
    cob_g: float
    fallback: bool
    start_ms: int  # the scenario's minute 0 (site changes count from it)

    @property
    def temp_running(self) -> bool:
        return abs(self.basal_u_per_h - self.scheduled_basal_u_per_h) > 1e-9


def temp_basal(c: LoopCycle) -> dict:
    """Loop's record of the temp basal that ran in a cycle."""
    uid = document_id(c.patient_id, "treatments", f"{c.ts_ms}/Temp Basal")
    when = iso(c.ts_ms)
    rate = round(c.basal_u_per_h, 3)
    return {"eventType": "Temp Basal", "created_at": when, "timestamp": when, "identifier": str(uid),
            "syncIdentifier": uid.hex, "enteredBy": LOOP_DEVICE, "temp": "absolute", "rate": rate,
            "absolute": rate, "duration": PERIOD_MIN, "automatic": True}


def _pump(c: LoopCycle, when: str) -> dict:
    site_days = ((c.ts_ms - c.start_ms) // MS_PER_MIN % SITE_CHANGE_MIN) / 1440
    reservoir_u = max(0.0, RESERVOIR_FULL_U - 2 * 24 * c.scheduled_basal_u_per_h * site_days)
    return {"clock": when, "reservoir": round(reservoir_u, 1),
            "battery": {"percent": round(100 - 10 * site_days)},
            "status": {"bolusing": False, "suspended": c.basal_u_per_h == 0, "timestamp": when}}


def loop_devicestatus(c: LoopCycle) -> dict:
    """Loop's devicestatus after one cycle."""
    when = iso(c.ts_ms)
    loop: dict = {"name": "Loop", "version": LOOP_VERSION, "timestamp": when,
                  "iob": {"timestamp": when, "iob": round(c.iob_u, 2)}, "cob": {"cob": round(c.cob_g, 1)}}
    if c.glucose_mgdl is not None and c.previous_glucose_mgdl is not None:
        forecast = ar2_forecast(c.previous_glucose_mgdl, c.glucose_mgdl)
        loop["predicted"] = {"startDate": when,
                             "values": [round(c.glucose_mgdl)] + [round(float(v)) for v in forecast]}
    if c.temp_running:
        loop["enacted"] = {"timestamp": when, "rate": round(c.basal_u_per_h, 3), "duration": PERIOD_MIN,
                           "received": True}
    if c.fallback:
        loop["failureReason"] = "the dosing algorithm failed: scheduled basal"
    uid = document_id(c.patient_id, "devicestatus", str(c.ts_ms))
    return {"device": LOOP_DEVICE, "created_at": when, "identifier": str(uid), "pump": _pump(c, when),
            "uploader": {"battery": phone_battery_pct(c.ts_ms)}, "loop": loop}


def xdrip_devicestatus(patient_id: str, ts_ms: int) -> dict:
    """xDrip's phone battery report, sent with an upload of readings (the newest at ``ts_ms``)."""
    uid = document_id(patient_id, "devicestatus", str(ts_ms))
    return {"device": XDRIP_PHONE, "created_at": iso(ts_ms), "identifier": str(uid),
            "uploader": {"battery": phone_battery_pct(ts_ms), "type": "PHONE"}}


def profile_document(profile: dict, patient_id: str) -> dict:
    """A Nightscout profile (``simulators.nightscout_profile``) as Loop uploads it, with its identity."""
    uid = document_id(patient_id, "profile", str(profile["mills"]))
    return profile | {"enteredBy": LOOP_DEVICE, "created_at": profile["startDate"],
                      "identifier": str(uid)}

