"""The cgm-ray v2 API: reading batches, sensors, patients' readings, alerts and settings.

A mixin of the ingress deployment (``serve_apps.ingress``). The hot path,
``POST /api/v2/readings``, is declared here (its documentation) and reaches its handler
directly (``serve_apps.direct_routes``), so that handler takes only the ``Request``. No
``from __future__ import annotations``: Serve rewrites each route's ``self`` parameter from
its live signature.
"""

import asyncio
import json
import time

from fastapi import Query, Request
from fastapi.responses import StreamingResponse

from cgm_ray.glucose.alerts import AlertSettings
from serve_apps.http_api import HTTPProblem, api, example, parse_model
from serve_apps.ingress_base import IngressBase
from serve_apps.openapi_docs import READINGS_BODY, SETTINGS_DISABLED, errors, json_body
from serve_apps.replies import Rejection
from serve_apps.validation import (
    InvalidBody,
    InvalidReadings,
    SensorRegistration,
    Snooze,
    check_disabled,
    parse_batch,
)


class CgmRayV2(IngressBase):
    """The ``/api/v2/...`` routes and ``/health``."""

    # -- cgm-ray v2 --------------------------------------------------------------------
    @api.post("/api/v2/readings",
              summary="Store a batch of readings (columnar JSON or Arrow IPC)",
              responses=errors(401, 403, 409, 413, 422, 429, 503),
              openapi_extra={"requestBody": READINGS_BODY})
    async def post_readings(self, request: Request) -> dict:
        principal = self._principal(request)
        body = await self._body(request)
        try:
            data = parse_batch(body, request.headers.get("content-type", ""))
        except InvalidReadings as exc:
            raise HTTPProblem(422, "Unprocessable Entity", str(exc)) from None
        return (await self._store(data, principal)).as_json()

    @api.post("/api/v2/sensors",
              responses=errors(400, 401, 403, 409, 413, 422, 429), summary="Register a sensor to a patient",
              openapi_extra={"requestBody": json_body(SensorRegistration)})
    async def register_sensor(self, request: Request) -> dict:
        principal = self._principal(request)
        reg = parse_model(SensorRegistration, await self._body(request))
        self._check_write(principal, reg.patient_id)
        attrs = reg.model_dump(exclude={"sensor_id", "patient_id"})
        result = await self._partition(reg.patient_id).register(
            reg.sensor_id, reg.patient_id, attrs)
        if isinstance(result, Rejection):
            raise self._refuse(result)
        return result.as_json()

    @api.get("/api/v2/patients/{patient_id}/latest",
             responses=errors(401, 403, 404, 429), summary="Latest reading with trend arrow")
    async def latest(self, patient_id: str, request: Request) -> dict:
        await self._read_access(request, patient_id)
        rows = await self._partition(patient_id).entries(patient_id, 1, None, None)
        if not rows:
            raise HTTPProblem(404, "Not Found", f"no readings for patient {patient_id!r}")
        return rows[0]

    @api.get("/api/v2/patients/{patient_id}/history",
             responses=errors(401, 403, 422, 429), summary="Recent readings, newest first")
    async def history(self, patient_id: str, request: Request,
                      minutes: int = Query(180, ge=1, le=7 * 1440,
                                           openapi_examples=example(180))) -> list[dict]:
        await self._read_access(request, patient_id)
        since = int(time.time() * 1000) - minutes * 60_000
        return await self._partition(patient_id).entries(patient_id, 100_000, since, None)

    @api.get("/api/v2/patients/{patient_id}/sensors",
             responses=errors(401, 403, 429), summary="Sensor sessions and signal")
    async def sensors(self, patient_id: str, request: Request) -> list[dict]:
        await self._read_access(request, patient_id)
        return await self._partition(patient_id).sensors(patient_id)

    @api.get("/api/v2/patients/{patient_id}/alerts",
             responses=errors(401, 403, 422, 429), summary="Alert history, newest first")
    async def alerts(self, patient_id: str, request: Request,
                     limit: int = Query(100, ge=1, le=500, openapi_examples=example(100))) -> list[dict]:
        await self._read_access(request, patient_id)
        return await self._partition(patient_id).alert_history(patient_id, limit)

    @api.get("/api/v2/patients/{patient_id}/alerts/stream",
             responses=errors(401, 403, 429),
             summary="Server-Sent Events: alerts as they fire and resolve")
    async def alert_stream(self, patient_id: str, request: Request) -> StreamingResponse:
        return await self._events(request, patient_id, ("alert",))

    @api.get("/api/v2/patients/{patient_id}/stream",
             responses=errors(401, 403, 429),
             summary="Server-Sent Events: readings (as Nightscout entries) once durable, and alerts")
    async def patient_stream(self, patient_id: str, request: Request) -> StreamingResponse:
        return await self._events(request, patient_id, ("reading", "alert"))

    async def _events(self, request: Request, patient_id: str,
                      kinds: tuple[str, ...]) -> StreamingResponse:
        """A patient's events of ``kinds`` as Server-Sent Events (``event: <kind>``), with a
        comment line as keep-alive every 15 s."""
        await self._read_access(request, patient_id)
        gen = self._partition(patient_id).stream(patient_id)

        async def events():
            yield ": connected\n\n"
            async for event in gen:
                if await request.is_disconnected():
                    break
                if event is None:
                    yield ": keep-alive\n\n"
                elif event[0] in kinds:
                    yield f"event: {event[0]}\ndata: {json.dumps(event[1])}\n\n"

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})

    @api.post("/api/v2/patients/{patient_id}/alerts/snooze",
              responses=errors(400, 401, 403, 404, 413, 422, 429), summary="Snooze an alert type",
              openapi_extra={"requestBody": json_body(Snooze)})
    async def snooze(self, patient_id: str, request: Request) -> dict:
        await self._read_access(request, patient_id)
        body = parse_model(Snooze, await self._body(request))
        try:
            body.alert_type()
        except InvalidBody as exc:
            raise HTTPProblem(422, "Unprocessable Entity", str(exc)) from None
        refused = await self._partition(patient_id).snooze(patient_id, body.type,
                                                           body.minutes)
        if refused is not None:
            raise self._refuse(refused)
        return {"snoozed": body.type, "minutes": body.minutes}

    @api.put("/api/v2/patients/{patient_id}/settings",
             responses=errors(400, 401, 403, 413, 422, 429), summary="Set a patient's alert settings",
             openapi_extra={"requestBody": json_body(AlertSettings,
                                                      disabled=SETTINGS_DISABLED)})
    async def settings(self, patient_id: str, request: Request) -> dict:
        principal = self._principal(request)
        if principal.role not in ("admin", "patient", "uploader") or (
                principal.role != "admin" and principal.subject != patient_id):
            raise HTTPProblem(403, "Forbidden", "only the patient or an admin may change settings")
        settings = parse_model(AlertSettings, await self._body(request))
        try:
            check_disabled(settings.disabled)
        except InvalidBody as exc:
            raise HTTPProblem(422, "Unprocessable Entity", str(exc)) from None
        await self._partition(patient_id).set_settings(patient_id, settings.model_dump())
        return settings.model_dump()

    @api.get("/health", summary="Liveness: the ingress answers")
    async def health(self) -> dict:
        return {"status": "ok", "partitions": len(self.partitions)}

    @api.get("/api/v2/stats",
             responses=errors(401, 403, 429), summary="Per-partition counts (admin)")
    async def stats(self, request: Request) -> list[dict]:
        self._require_admin(request)
        stats = await asyncio.gather(*(p.stats() for p in self.partitions))
        return [s.as_json() for s in stats]

    @api.post("/api/v2/admin/flush",
              responses=errors(401, 403, 429),
              summary="Land every open log segment now, for an ETL run right after (admin)")
    async def flush(self, request: Request) -> dict:
        self._require_admin(request)
        await asyncio.gather(*(p.flush() for p in self.partitions))
        return {"flushed": len(self.partitions)}
