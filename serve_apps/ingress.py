"""The HTTP front door: validation, auth, Nightscout v1 and the cgm-ray v2 API.

Stateless, so it scales to several replicas; each request is routed to the partition that
owns the patient (``cgm_ray.sharding.shard_of``), and an ingest request is answered only
after every partition it touched has made its readings durable (``serve_apps.batching``).
Handlers read the body themselves (no per-request model binding on the readings path);
``serve_apps.openapi_docs`` documents the bodies and error answers in the OpenAPI schema.
"""


import asyncio
import json
import os
import time

import pyarrow as pa
import pyarrow.compute as pc
from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ValidationError
from ray import serve
from ray.serve.handle import DeploymentHandle

from cgm_ray import __version__
from cgm_ray.glucose.alerts import AlertSettings
from cgm_ray.sharding import shard_of
from serve_apps.auth import Authenticator, AuthError, Forbidden, Principal
from serve_apps.batching import write_coalesced
from serve_apps.config import IngestConfig
from serve_apps.openapi_docs import (
    ENTRIES_BODY,
    READINGS_BODY,
    SETTINGS_DISABLED,
    errors,
    json_body,
)
from serve_apps.rate_limit import TokenBucket
from serve_apps.replies import PartitionWrite, Rejection, WriteCounts
from serve_apps.telemetry import IngressTelemetry
from serve_apps.validation import (
    InvalidBody,
    InvalidReadings,
    NightscoutEntry,
    ReadingBatch,
    SensorRegistration,
    Snooze,
    check_disabled,
    check_readings,
    entries_table,
    parse_batch,
)

api = FastAPI(title="cgm-ray ingest", version=__version__,
              description="CGM readings in, alerts and history out; Nightscout v1 compatible. "
              "Every request needs a credential: the header `api-secret: sha1hex(secret)`, "
              "`?token=` or `Authorization: Bearer <token>`.")


class HTTPProblem(Exception):
    """An error answered as JSON with a reason (never a 500)."""

    def __init__(self, status: int, message: str, description: str) -> None:
        self.status, self.message, self.description = status, message, description


@api.exception_handler(HTTPProblem)
async def _problem(request: Request, exc: HTTPProblem) -> JSONResponse:
    return JSONResponse({"status": exc.status, "message": exc.message,
                         "description": exc.description}, status_code=exc.status)


def _example(value: int) -> dict:
    """A query parameter's documented example. Without one, the document Serve serves says
    ``"example": {}``: FastAPI marks "no example" with a sentinel object, which Serve's copy
    of the app (pickled) no longer recognises."""
    return {"default": {"value": value}}


def _bearer(request: Request) -> str | None:
    value = request.headers.get("authorization", "")
    return value[7:] if value.lower().startswith("bearer ") else None


def _model(model: type[BaseModel], body: bytes) -> BaseModel:
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(map(str, err["loc"])) or "body"
        status = 400 if err["type"] == "json_invalid" else 422
        raise HTTPProblem(status, "Bad Request" if status == 400 else "Unprocessable Entity",
                          f"{field}: {err['msg']}") from None


def _int_param(q, *names: str) -> int | None:
    for name in names:
        value = q.get(name)
        if value is not None:
            try:
                return max(-(1 << 62), min(1 << 62, int(float(value))))
            except (ValueError, OverflowError):  # OverflowError: "inf"
                raise HTTPProblem(400, "Bad Request", f"{name}: not a number") from None
    return None


# No per-request access log lines: ~3% of the ingress's CPU at a thousand requests a second;
# the request counters and latency histograms carry the same information.
@serve.deployment(max_ongoing_requests=256, ray_actor_options={"num_cpus": 0},
                  logging_config={"enable_access_log": False})
@serve.ingress(api)
class Ingress:
    """Routes requests to partitions by patient."""

    def __init__(self, partitions: list[DeploymentHandle], config: dict) -> None:
        self.partitions = partitions
        self.config = IngestConfig(**config)
        self.auth = Authenticator(os.environ.get(self.config.api_secret_env) or None)
        self.limiter = TokenBucket(self.config.rate_limit_per_s)
        self.telemetry = IngressTelemetry()

    # -- helpers -----------------------------------------------------------------------
    def _partition(self, patient_id: str) -> DeploymentHandle:
        return self.partitions[shard_of(patient_id, len(self.partitions))]

    def _principal(self, request: Request) -> Principal:
        try:
            principal = self.auth.authenticate(request.headers.get("api-secret"),
                                               request.query_params.get("token")
                                               or _bearer(request))
        except AuthError as exc:
            self.telemetry.rejected.inc(1, {"status": "401"})
            raise HTTPProblem(401, "Unauthorized", str(exc)) from None
        if not self.limiter.take(f"{principal.role}:{principal.subject}"):
            self.telemetry.rejected.inc(1, {"status": "429"})
            raise HTTPProblem(429, "Too Many Requests",
                              f"more than {self.config.rate_limit_per_s:g} requests/s")
        return principal

    async def _body(self, request: Request) -> bytes:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.config.max_body_bytes:
            self.telemetry.rejected.inc(1, {"status": "413"})
            raise HTTPProblem(413, "Payload Too Large",
                              f"body over {self.config.max_body_bytes} bytes")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > self.config.max_body_bytes:
                raise HTTPProblem(413, "Payload Too Large",
                                  f"body over {self.config.max_body_bytes} bytes")
        return bytes(body)

    async def _read_access(self, request: Request, patient_id: str) -> None:
        await self._check_read(self._principal(request), patient_id)

    async def _check_read(self, principal: Principal, patient_id: str) -> None:
        """403 unless ``principal`` may read ``patient_id`` (clinicians: by cohort)."""
        cohort = (await self._partition(patient_id).cohort.remote(patient_id)
                  if principal.role == "clinician" else None)
        try:
            principal.require_read(patient_id, cohort)
        except Forbidden as exc:
            raise HTTPProblem(403, "Forbidden", str(exc)) from None

    def _ns_patient(self, request: Request, principal: Principal) -> str:
        """The patient a Nightscout route is about: the token's, or ``?patient=`` for admin."""
        asked = request.query_params.get("patient")
        if principal.role in ("admin", "clinician"):
            return asked or self.config.default_patient
        if asked and asked != principal.subject:
            raise HTTPProblem(403, "Forbidden", f"this credential is for patient {principal.subject!r}")
        return principal.subject

    def _refuse(self, rejection: Rejection) -> HTTPProblem:
        self.telemetry.rejected.inc(1, {"status": str(rejection.status)})
        return HTTPProblem(rejection.status, rejection.phrase, rejection.reason)

    async def _store(self, data: pa.Table | ReadingBatch, principal: Principal) -> WriteCounts:
        """Validate and authorise one request's readings, then write them (coalesced)."""
        now = int(time.time() * 1000)
        try:
            table = check_readings(data, now, self.config.max_future_skew_s,
                                   self.config.min_ts_ms, self.config.max_batch)
        except InvalidReadings as exc:
            self.telemetry.rejected.inc(1, {"status": "422"})
            raise HTTPProblem(422, "Unprocessable Entity", str(exc)) from None
        for pid in pc.unique(table.column("patient_id")).to_pylist():
            try:
                principal.require_write(pid)
            except Forbidden as exc:
                raise HTTPProblem(403, "Forbidden", str(exc)) from None
        started = time.perf_counter()
        result = await self._write(table)
        self.telemetry.latency.observe((time.perf_counter() - started) * 1000, {"route": "write"})
        if isinstance(result, Rejection):
            raise self._refuse(result)
        return result

    @serve.batch(max_batch_size=256, batch_wait_timeout_s=0.005, max_concurrent_batches=2)
    async def _write(self, tables: list[pa.Table]) -> list[WriteCounts | Rejection]:
        """Write concurrent requests' readings with one call per partition, not per request.

        A partition call costs far more CPU than a request's own work, so requests wait up
        to 5 ms to share one (2 ms gave ~2 requests a call and 25% fewer requests/s); two
        batches may be in flight, so a request never waits a whole round trip to be sent.
        """
        return await write_coalesced(tables, len(self.partitions), self._send)

    async def _send(self, partition: int, table: pa.Table) -> PartitionWrite | Rejection:
        return await self.partitions[partition].ingest.remote(table)

    async def write_readings(self, table: pa.Table) -> WriteCounts | Rejection:
        """In-cluster writes through a deployment handle (the fleet's Serve sink).

        Only code inside the Ray cluster holds handles, so this is the admin path without
        HTTP; validation, coalescing and durability are those of ``POST /api/v2/readings``.
        A refusal comes back as a ``Rejection`` value rather than an exception (which would
        reach the caller wrapped in Ray's error types).
        """
        try:
            return await self._store(table, Principal("admin", "*"))
        except HTTPProblem as exc:
            return Rejection(exc.status, exc.description)

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
        reg = _model(SensorRegistration, await self._body(request))
        try:
            principal.require_write(reg.patient_id)
        except Forbidden as exc:
            raise HTTPProblem(403, "Forbidden", str(exc)) from None
        attrs = reg.model_dump(exclude={"sensor_id", "patient_id"})
        result = await self._partition(reg.patient_id).register.remote(
            reg.sensor_id, reg.patient_id, attrs)
        if isinstance(result, Rejection):
            raise self._refuse(result)
        return result.as_json()

    @api.get("/api/v2/patients/{patient_id}/latest",
             responses=errors(401, 403, 404, 429), summary="Latest reading with trend arrow")
    async def latest(self, patient_id: str, request: Request) -> dict:
        await self._read_access(request, patient_id)
        rows = await self._partition(patient_id).entries.remote(patient_id, 1, None, None)
        if not rows:
            raise HTTPProblem(404, "Not Found", f"no readings for patient {patient_id!r}")
        return rows[0]

    @api.get("/api/v2/patients/{patient_id}/history",
             responses=errors(401, 403, 422, 429), summary="Recent readings, newest first")
    async def history(self, patient_id: str, request: Request,
                      minutes: int = Query(180, ge=1, le=7 * 1440,
                                           openapi_examples=_example(180))) -> list[dict]:
        await self._read_access(request, patient_id)
        since = int(time.time() * 1000) - minutes * 60_000
        return await self._partition(patient_id).entries.remote(patient_id, 100_000, since, None)

    @api.get("/api/v2/patients/{patient_id}/sensors",
             responses=errors(401, 403, 429), summary="Sensor sessions and signal")
    async def sensors(self, patient_id: str, request: Request) -> list[dict]:
        await self._read_access(request, patient_id)
        return await self._partition(patient_id).sensors.remote(patient_id)

    @api.get("/api/v2/patients/{patient_id}/alerts",
             responses=errors(401, 403, 422, 429), summary="Alert history, newest first")
    async def alerts(self, patient_id: str, request: Request,
                     limit: int = Query(100, ge=1, le=500, openapi_examples=_example(100))) -> list[dict]:
        await self._read_access(request, patient_id)
        return await self._partition(patient_id).alert_history.remote(patient_id, limit)

    @api.get("/api/v2/patients/{patient_id}/alerts/stream",
             responses=errors(401, 403, 429),
             summary="Server-Sent Events: alerts as they fire and resolve")
    async def alert_stream(self, patient_id: str, request: Request) -> StreamingResponse:
        await self._read_access(request, patient_id)
        gen = self._partition(patient_id).options(stream=True).stream.remote(patient_id)

        async def events():
            yield ": connected\n\n"
            async for event in gen:
                if await request.is_disconnected():
                    break
                yield ": keep-alive\n\n" if event is None else (
                    f"event: alert\ndata: {json.dumps(event)}\n\n")

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})

    @api.post("/api/v2/patients/{patient_id}/alerts/snooze",
              responses=errors(400, 401, 403, 404, 413, 422, 429), summary="Snooze an alert type",
              openapi_extra={"requestBody": json_body(Snooze)})
    async def snooze(self, patient_id: str, request: Request) -> dict:
        await self._read_access(request, patient_id)
        body = _model(Snooze, await self._body(request))
        try:
            body.alert_type()
        except InvalidBody as exc:
            raise HTTPProblem(422, "Unprocessable Entity", str(exc)) from None
        refused = await self._partition(patient_id).snooze.remote(patient_id, body.type,
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
        settings = _model(AlertSettings, await self._body(request))
        try:
            check_disabled(settings.disabled)
        except InvalidBody as exc:
            raise HTTPProblem(422, "Unprocessable Entity", str(exc)) from None
        await self._partition(patient_id).set_settings.remote(patient_id, settings.model_dump())
        return settings.model_dump()

    # -- Nightscout v1 -----------------------------------------------------------------
    @api.post("/api/v1/entries", summary="Nightscout: upload entries (object or array)",
              responses=errors(400, 401, 403, 409, 413, 422, 429, 503),
              openapi_extra={"requestBody": ENTRIES_BODY})
    @api.post("/api/v1/entries.json", include_in_schema=False)
    async def ns_post_entries(self, request: Request) -> list[dict]:
        principal = self._principal(request)
        patient_id = self._ns_patient(request, principal)
        try:
            data = json.loads(await self._body(request))
            items = data if isinstance(data, list) else [data]
            entries = [NightscoutEntry.model_validate(x) for x in items]
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
            raise HTTPProblem(400, "Bad Request", f"malformed JSON: {exc}") from None
        except ValidationError as exc:
            err = exc.errors()[0]
            raise HTTPProblem(422, "Unprocessable Entity",
                              f"{'.'.join(map(str, err['loc']))}: {err['msg']}") from None
        try:
            table, _skipped = entries_table(entries, patient_id)
        except InvalidReadings as exc:
            raise HTTPProblem(422, "Unprocessable Entity", str(exc)) from None
        if table.num_rows:
            await self._store(table, principal)
        return [e.model_dump(exclude_none=True) for e in entries]

    async def _ns_entries(self, request: Request, count: int) -> list[dict]:
        principal = self._principal(request)
        patient_id = self._ns_patient(request, principal)
        await self._check_read(principal, patient_id)
        q = request.query_params
        since = _int_param(q, "find[date][$gte]", "find[date][$gt]")
        until = _int_param(q, "find[date][$lte]", "find[date][$lt]")
        if q.get("find[date][$gt]") is not None:
            since += 1
        if q.get("find[date][$lt]") is not None:
            until -= 1
        return await self._partition(patient_id).entries.remote(patient_id, count, since, until)

    @api.get("/api/v1/entries",
             responses=errors(400, 401, 403, 422, 429), summary="Nightscout: entries, newest first")
    @api.get("/api/v1/entries.json", include_in_schema=False)
    @api.get("/api/v1/entries/sgv.json", include_in_schema=False)
    @api.get("/api/v1/entries/sgv", include_in_schema=False)
    async def ns_entries(self, request: Request,
                         count: int = Query(10, ge=1, le=100_000, openapi_examples=_example(10))
                         ) -> list[dict]:
        return await self._ns_entries(request, count)

    @api.get("/api/v1/entries/current.json",
             responses=errors(400, 401, 403, 429), summary="Nightscout: the latest entry")
    @api.get("/api/v1/entries/current", include_in_schema=False)
    async def ns_current(self, request: Request) -> list[dict]:
        return await self._ns_entries(request, 1)

    @api.get("/api/v1/status.json",
             responses=errors(401, 429), summary="Nightscout: server status and settings")
    @api.get("/api/v1/status", include_in_schema=False)
    async def ns_status(self, request: Request) -> dict:
        self._principal(request)
        defaults = AlertSettings()
        now = time.time()
        return {
            "status": "ok", "name": self.config.site_name, "version": __version__,
            "serverTime": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(now)),
            "serverTimeEpoch": int(now * 1000), "apiEnabled": True, "careportalEnabled": False,
            "settings": {"units": "mg/dl", "authDefaultRoles": "denied", "thresholds": {
                "bgHigh": defaults.urgent_high_mgdl, "bgTargetTop": defaults.high_mgdl,
                "bgTargetBottom": defaults.low_mgdl, "bgLow": defaults.urgent_low_mgdl}},
        }

    @api.get("/health", summary="Liveness: the ingress answers")
    async def health(self) -> dict:
        return {"status": "ok", "partitions": len(self.partitions)}

    @api.get("/api/v2/stats",
             responses=errors(401, 403, 429), summary="Per-partition counts (admin)")
    async def stats(self, request: Request) -> list[dict]:
        self._require_admin(request)
        stats = await asyncio.gather(*(p.stats.remote() for p in self.partitions))
        return [s.as_json() for s in stats]

    @api.post("/api/v2/admin/flush",
              responses=errors(401, 403, 429),
              summary="Land every open log segment now, for an ETL run right after (admin)")
    async def flush(self, request: Request) -> dict:
        self._require_admin(request)
        await asyncio.gather(*(p.flush.remote() for p in self.partitions))
        return {"flushed": len(self.partitions)}

    def _require_admin(self, request: Request) -> None:
        if self._principal(request).role != "admin":
            raise HTTPProblem(403, "Forbidden", "admin only")



