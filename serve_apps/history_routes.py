"""History for the web app: a patient's glucose profile over a period, the doctor's report,
and a cohort's consensus panel, each over the lake's readings and then the hot ones.

A mixin of the ingress deployment. Lake reads and report rendering run in a worker thread
(Arrow and Agg release the GIL for most of it), so the readings path on the event loop keeps
going. A report opens in a new browser tab, which sends no ``Authorization`` header: its link
carries a report key (``POST /api/v2/report-keys``, 10 minutes, reports only) instead of the
credential. No ``from __future__ import annotations``: Serve rewrites each route's ``self``
parameter from its live signature.
"""

import asyncio
import math
import re
import tempfile
from pathlib import Path

import numpy as np
from fastapi import Query, Request
from fastapi.responses import Response

from cgm_ray.errors import ConfigError
from cgm_ray.glucose.profile import AGP_PERCENTILES, GlucoseProfile, glucose_profile
from cgm_ray.glucose.targets import CONSENSUS_TARGETS
from cgm_ray.glucose.units import GlucoseUnits, parse_units
from cgm_ray.lake.report import render_report
from cgm_ray.lake.store import Lake
from cgm_ray.lake.treatments import lake_treatments
from serve_apps.auth import AuthError, Principal
from serve_apps.cohort_summary import summarise, worst_first
from serve_apps.glucose_period import MAX_PERIOD_DAYS, Period, PeriodReadings, combine, lake_series
from serve_apps.http_api import HTTPProblem, api, example
from serve_apps.ingress_base import IngressBase, now_ms
from serve_apps.openapi_docs import errors

# A report is a document of its own: inline styles and embedded PNGs, no script at all.
REPORT_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
              "form-action 'none'; frame-ancestors 'none'")
REPORT_MEDIA = {"html": "text/html; charset=utf-8", "pdf": "application/pdf"}
DAYS = Query(14.0, gt=0, le=MAX_PERIOD_DAYS, openapi_examples=example(14),
             description="length of the period in days (the consensus asks for 14)")
# Every parameter has examples: without, the served document gains an ``example`` (FastAPI's
# "unset" marker does not survive the pickling that ships the routes to Serve's replicas).
END_MS = Query(None, ge=0, lt=2 ** 53, openapi_examples=example(1_796_000_000_000),
               description="end of the period, epoch ms (default: now)")
TZ = Query("UTC", max_length=64, openapi_examples=example("Europe/Berlin"),
           description="IANA time zone of the days and times of day")


def _rounded(values: np.ndarray) -> list[float | None]:
    """JSON numbers to 0.1 (NaN as null: JSON has no NaN)."""
    return [None if not math.isfinite(v) else round(float(v), 1) for v in values]


def _profile_json(profile: GlucoseProfile) -> dict:
    return {
        "readings": profile.readings, "days_with_readings": profile.days,
        "panel": {k: v if math.isfinite(v) else None for k, v in profile.panel.items()},
        "targets_missed": profile.targets_missed,
        "targets": [{"name": t.name, "label": t.label, "target": t.text,
                     "met": t.name not in profile.targets_missed} for t in CONSENSUS_TARGETS],
        "agp": {"percentiles": list(AGP_PERCENTILES),
                "minute_of_day": profile.agp_minute_of_day.tolist(),
                "mgdl": [_rounded(profile.agp_mgdl[:, k]) for k in range(len(AGP_PERCENTILES))]},
        "daily": [{"date": d.date, "ts_ms": d.ts_ms.tolist(), "minute_of_day": _rounded(d.minute_of_day),
                   "glucose_mgdl": _rounded(d.glucose_mgdl)} for d in profile.daily],
    }


def _render(lake_dir: str | None, patient_id: str, readings: PeriodReadings, fmt: str,
            units: GlucoseUnits) -> bytes:
    """The report of ``readings`` (with the lake's treatments and attributes), as ``fmt``."""
    try:
        lake = Lake(lake_dir) if lake_dir else None
    except ConfigError:
        lake = None
    treatments = lake_treatments(lake, patient_id) if lake else None
    attributes = lake.patient_attributes(patient_id) if lake else {}
    with tempfile.TemporaryDirectory(prefix="cgm-ray-report-") as out:
        files = render_report(patient_id, readings.series.ts_ms * 1_000_000,
                              readings.series.glucose_mgdl, out, attributes,
                              treatments=treatments, units=units)
        return Path(files.html if fmt == "html" else files.pdf).read_bytes()


class History(IngressBase):
    """``/api/v2/patients/{id}/profile``, ``.../report.{html|pdf}``, ``/api/v2/report-keys``
    and ``/api/v2/cohorts/{cohort}/summary``."""

    async def _period_readings(self, patient_id: str, period: Period) -> PeriodReadings:
        hot = await self._partition(patient_id).hot_series(patient_id)
        lake = await asyncio.to_thread(lake_series, self.config.lake_dir, [patient_id], period)
        readings = combine(lake.get(patient_id), hot, period)
        if len(readings.series.ts_ms) < 2:
            raise HTTPProblem(404, "Not Found", f"fewer than two readings of patient "
                              f"{patient_id!r} in the {period.days:g} days asked for")
        return readings

    @staticmethod
    def _period(days: float, end_ms: int | None) -> Period:
        try:
            return Period.ending(now_ms() if end_ms is None else end_ms, days)
        except ConfigError as exc:
            raise HTTPProblem(422, "Unprocessable Entity", str(exc)) from None

    @api.get("/api/v2/patients/{patient_id}/profile", responses=errors(401, 403, 404, 422, 429),
             summary="Glucose over a period: consensus panel, AGP and daily profiles (the lake's "
             "readings, then the hot ones)")
    async def glucose_profile(self, patient_id: str, request: Request, days: float = DAYS,
                              end_ms: int | None = END_MS, tz: str = TZ) -> dict:
        await self._read_access(request, patient_id)
        period = self._period(days, end_ms)
        readings = await self._period_readings(patient_id, period)
        try:
            profile = await asyncio.to_thread(glucose_profile, readings.series.ts_ms,
                                              readings.series.glucose_mgdl, tz)
        except ConfigError as exc:
            raise HTTPProblem(422, "Unprocessable Entity", str(exc)) from None
        return {"patient_id": patient_id, "start_ms": period.start_ms, "end_ms": period.end_ms,
                "tz": tz, "source": readings.source, "lake_readings": readings.lake_readings,
                "hot_readings": readings.hot_readings, **_profile_json(profile)}

    @api.post("/api/v2/report-keys", responses=errors(401, 429),
              summary="A key for report links (10 minutes, opens reports only)")
    async def report_key(self, request: Request) -> dict:
        key, claims = self.auth.issue_report_key(self._principal(request))
        return {"key": key, "expires_s": claims.exp}

    @api.get("/api/v2/patients/{patient_id}/report.{fmt}",
             responses=errors(401, 403, 404, 422, 429),
             summary="The doctor's report (AGP report layout) over a period, as HTML or PDF")
    async def report(self, patient_id: str, fmt: str, request: Request, days: float = DAYS,
                     end_ms: int | None = END_MS,
                     units: str = Query("mg/dL", max_length=16, openapi_examples=example("mmol/L"),
                                        description="mg/dL or mmol/L"),
                     key: str | None = Query(None, max_length=2048, openapi_examples=example(""),
                                             description="a report key, for links")) -> Response:
        if fmt not in REPORT_MEDIA:
            raise HTTPProblem(404, "Not Found", f"no report format {fmt[:20]!r}: html or pdf")
        try:
            glucose_units = parse_units(units, "units")
        except ConfigError as exc:
            raise HTTPProblem(422, "Unprocessable Entity", str(exc)) from None
        principal = self._report_principal(key) if key else self._principal(request)
        await self._check_read(principal, patient_id)
        readings = await self._period_readings(patient_id, self._period(days, end_ms))
        body = await asyncio.to_thread(_render, self.config.lake_dir, patient_id, readings, fmt,
                                       glucose_units)
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", patient_id)[:80] or "patient"
        return Response(body, media_type=REPORT_MEDIA[fmt], headers={
            "content-security-policy": REPORT_CSP, "x-content-type-options": "nosniff",
            "referrer-policy": "no-referrer", "cache-control": "no-store",
            "content-disposition": f'inline; filename="report-{stem}.{fmt}"'})

    def _report_principal(self, key: str) -> Principal:
        """Whom a report key stands for, under that principal's rate limit."""
        try:
            principal = self.auth.report_principal(key)
        except AuthError as exc:
            raise HTTPProblem(401, "Unauthorized", str(exc)) from None
        if wait_s := self.limiter.take(principal.name):
            raise self._too_many("this credential", self.config.rate_limit_per_s, wait_s)
        return principal

    @api.get("/api/v2/cohorts/{cohort}/summary", responses=errors(401, 403, 422, 429),
             summary="A cohort's patients: consensus panel over a period (clinician)")
    async def cohort_summary(self, cohort: str, request: Request, days: float = DAYS,
                             end_ms: int | None = END_MS) -> list[dict]:
        principal = self._principal(request)
        if principal.role != "admin" and not (principal.role == "clinician"
                                               and principal.subject == cohort):
            raise HTTPProblem(403, "Forbidden", f"only a clinician of cohort {cohort!r} or an "
                              "admin may read it")
        period = self._period(days, end_ms)
        parts = await asyncio.gather(*(p.cohort_series(cohort) for p in self.partitions))
        hot = {p: series for part in parts for p, series in part.items()}
        lake = await asyncio.to_thread(lake_series, self.config.lake_dir, sorted(hot), period)
        readings = {p: combine(lake.get(p), series, period) for p, series in hot.items()}
        return [r.as_json() for r in worst_first(summarise(readings))]
