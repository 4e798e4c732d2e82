"""Nightscout's v1 API: entries, treatments, device status, profiles, status and properties.

A mixin of the ingress deployment: every route resolves the patient a request is about
(``IngressBase._ns_patient``: the credential's patient, or ``?patient=`` for an admin),
so one cgm-ray site serves many patients where Nightscout serves one. Sgv entries are
readings (the ring buffers and the readings log); every other record is a document
(``serve_apps.nightscout.store``), made durable before the answer. Defaults follow
cgm-remote-monitor: entries ``count`` 10; treatments 100 (1000 with a ``find``) from the last
4 days unless the query names a time; device status 10.
"""


import json

from fastapi import Query, Request
from fastapi.responses import PlainTextResponse, Response

from serve_apps.auth import Principal
from serve_apps.http_api import HTTPProblem, api, example, int_param
from serve_apps.ingress_base import IngressBase, now_ms
from serve_apps.nightscout.documents import TIME_FIELDS
from serve_apps.nightscout.properties import properties
from serve_apps.nightscout.query import Filter, time_bounds, v1_filters
from serve_apps.nightscout.status import status, verifyauth
from serve_apps.openapi_docs import (
    DEVICESTATUS_BODY,
    ENTRIES_BODY,
    PROFILE_BODY,
    TREATMENTS_BODY,
    errors,
)
from serve_apps.validation import InvalidBody

DEFAULT_WINDOW_MS = 4 * 86_400_000  # Nightscout's deltaAgo: queries without a time see 4 days
MAX_COUNT = 100_000



class NightscoutV1(IngressBase):
    """The v1 routes (``/api/v1/...``) and ``/api/v2/properties``."""

    # -- shared steps ----------------------------------------------------------------------
    def _ns_writer(self, request: Request) -> tuple[Principal, str]:
        principal = self._principal(request)
        patient_id = self._ns_patient(request, principal)
        self._check_write(principal, patient_id)
        return principal, patient_id

    async def _ns_reader(self, request: Request) -> str:
        principal = self._principal(request)
        patient_id = self._ns_patient(request, principal)
        await self._check_read(principal, patient_id)
        return patient_id

    async def _find(self, request: Request, patient_id: str, collection: str, count: int,
                    extra: tuple[Filter, ...] = ()) -> list[dict]:
        """Documents matching the request's ``find`` (4 days back unless it names a time)."""
        try:
            filters = v1_filters(request.query_params) + list(extra)
        except InvalidBody as exc:
            raise HTTPProblem(400, "Bad Request", str(exc)) from None
        if collection != "profile" and not any(f.field in TIME_FIELDS for f in filters):
            filters.append(Filter("date", "gte", str(now_ms() - DEFAULT_WINDOW_MS)))
        return await self._partition(patient_id).find_documents(
            patient_id, collection, filters, count)

    def _count(self, request: Request, default: int) -> int:
        count = int_param(request.query_params, "count")
        return default if count is None else max(1, min(MAX_COUNT, count))

    async def _delete(self, request: Request, collection: str, key: str | None) -> dict:
        _, patient_id = self._ns_writer(request)
        if key is not None and key != "*":
            keys = [key]
        else:
            found = await self._find(request, patient_id, collection, self._count(request, 10))
            keys = [d["identifier"] for d in found]
        deleted = await self._remove(patient_id, collection, keys)
        return {"n": deleted, "ok": 1, "deletedCount": deleted}

    # -- entries ---------------------------------------------------------------------------
    @api.post("/api/v1/entries", summary="Nightscout: upload entries (object or array)",
              responses=errors(400, 401, 403, 409, 413, 422, 429, 503),
              openapi_extra={"requestBody": ENTRIES_BODY})
    @api.post("/api/v1/entries.json", include_in_schema=False)
    async def ns_post_entries(self, request: Request) -> list[dict]:
        principal, patient_id = self._ns_writer(request)
        items = await self._json_items(request, "entries")
        sgv, other = [], []
        for x in items:
            (sgv if not isinstance(x, dict) or x.get("type", "sgv") == "sgv" else other).append(x)
        others = self._normalise("entries", other)
        entries, table = self._sgv_readings(sgv, patient_id)
        if table.num_rows:
            await self._store(table, principal)
        stored = await self._put(patient_id, others)
        readings = [{**e.model_dump(exclude_none=True), "sgv": round(e.sgv), "date": ts_ms,
                     "_id": f"{sensor}:{ts_ms}"} for e, sensor, ts_ms in zip(
            entries, table.column("sensor_id").to_pylist(), table.column("ts_ms").to_pylist())]
        return readings + stored

    async def _ns_entries(self, request: Request, count: int, kind: str | None) -> list[dict]:
        patient_id = await self._ns_reader(request)
        try:
            since, until = time_bounds(v1_filters(request.query_params), ("date", "dateString"))
        except InvalidBody as exc:
            raise HTTPProblem(400, "Bad Request", str(exc)) from None
        rows: list[dict] = []
        if kind in (None, "sgv"):
            rows = await self._partition(patient_id).entries(patient_id, count, since,
                                                             until)
        if kind != "sgv":
            extra = (Filter("type", "eq", kind),) if kind else ()
            rows += await self._find(request, patient_id, "entries", count, extra)
            rows.sort(key=lambda r: r["date"], reverse=True)
        return rows[:count]

    @api.get("/api/v1/entries",
             responses=errors(400, 401, 403, 422, 429), summary="Nightscout: entries, newest first")
    @api.get("/api/v1/entries.json", include_in_schema=False)
    async def ns_entries(self, request: Request,
                         count: int = Query(10, ge=1, le=MAX_COUNT, openapi_examples=example(10))
                         ) -> list[dict]:
        return await self._ns_entries(request, count, request.query_params.get("find[type]"))

    @api.get("/api/v1/entries/current.json",
             responses=errors(400, 401, 403, 429), summary="Nightscout: the latest entry")
    @api.get("/api/v1/entries/current", include_in_schema=False)
    async def ns_current(self, request: Request) -> list[dict]:
        return await self._ns_entries(request, 1, "sgv")

    @api.get("/api/v1/entries.{fmt}", include_in_schema=False)
    async def ns_entries_text(self, fmt: str, request: Request,
                              count: int = Query(10, ge=1, le=MAX_COUNT)) -> Response:
        """Entries as Nightscout's ``.csv`` / ``.txt`` / ``.tsv`` (dateString, date, sgv,
        direction, device; JSON-quoted values, CRLF lines)."""
        if fmt not in ("csv", "txt", "tsv"):
            raise HTTPProblem(404, "Not Found", f"no format {fmt!r}: json, csv, txt or tsv")
        rows = await self._ns_entries(request, count, None)
        sep = "," if fmt == "csv" else "\t"
        lines = [sep.join("" if r.get(k) is None else json.dumps(r.get(k)) for k in
                          ("dateString", "date", "sgv", "direction", "device")) for r in rows]
        return PlainTextResponse("\r\n".join(lines),
                                 media_type="text/csv" if fmt == "csv" else "text/plain")

    @api.get("/api/v1/entries/{spec}",
             responses=errors(400, 401, 403, 422, 429),
             summary="Nightscout: entries of one type (sgv, mbg, cal) or one entry by _id")
    async def ns_entries_spec(self, spec: str, request: Request,
                              count: int = Query(10, ge=1, le=MAX_COUNT,
                                                 openapi_examples=example(10))) -> list[dict]:
        spec = spec.removesuffix(".json")
        if spec in ("sgv", "mbg", "cal", "etc"):
            return await self._ns_entries(request, count, spec)
        patient_id = await self._ns_reader(request)
        doc = await self._partition(patient_id).get_document(patient_id, "entries", spec)
        return [doc] if doc and doc.get("isValid", True) else []

    # -- treatments ------------------------------------------------------------------------
    @api.get("/api/v1/treatments", responses=errors(400, 401, 403, 422, 429),
             summary="Nightscout: treatments, newest first (find[field][$op]=, count)")
    @api.get("/api/v1/treatments.json", include_in_schema=False)
    async def ns_treatments(self, request: Request) -> list[dict]:
        patient_id = await self._ns_reader(request)
        has_find = any(k.startswith("find[") for k in request.query_params)
        return await self._find(request, patient_id, "treatments",
                                self._count(request, 1000 if has_find else 100))

    @api.post("/api/v1/treatments", responses=errors(400, 401, 403, 413, 422, 429, 503),
              summary="Nightscout: store treatments (object or array; upserts on identifier, "
              "_id, or created_at + eventType)", openapi_extra={"requestBody": TREATMENTS_BODY})
    @api.post("/api/v1/treatments.json", include_in_schema=False)
    @api.put("/api/v1/treatments", include_in_schema=False)
    @api.put("/api/v1/treatments.json", include_in_schema=False)
    async def ns_post_treatments(self, request: Request) -> list[dict]:
        _, patient_id = self._ns_writer(request)
        docs = self._normalise("treatments", await self._json_items(request, "treatments"))
        return await self._put(patient_id, docs)

    @api.delete("/api/v1/treatments/{key}", responses=errors(400, 401, 403, 429, 503),
                summary="Nightscout: delete a treatment by _id or identifier ('*': by find)")
    async def ns_delete_treatment(self, key: str, request: Request) -> dict:
        return await self._delete(request, "treatments", key)

    @api.delete("/api/v1/treatments", responses=errors(400, 401, 403, 429, 503),
                summary="Nightscout: delete the treatments a find matches")
    async def ns_delete_treatments(self, request: Request) -> dict:
        return await self._delete(request, "treatments", None)

    # -- device status ---------------------------------------------------------------------
    @api.get("/api/v1/devicestatus", responses=errors(400, 401, 403, 422, 429),
             summary="Nightscout: device statuses, newest first (find, count)")
    @api.get("/api/v1/devicestatus.json", include_in_schema=False)
    async def ns_devicestatus(self, request: Request) -> list[dict]:
        patient_id = await self._ns_reader(request)
        return await self._find(request, patient_id, "devicestatus", self._count(request, 10))

    @api.post("/api/v1/devicestatus", responses=errors(400, 401, 403, 413, 422, 429, 503),
              summary="Nightscout: store device statuses (object or array)",
              openapi_extra={"requestBody": DEVICESTATUS_BODY})
    @api.post("/api/v1/devicestatus.json", include_in_schema=False)
    async def ns_post_devicestatus(self, request: Request) -> list[dict]:
        _, patient_id = self._ns_writer(request)
        docs = self._normalise("devicestatus", await self._json_items(request, "devicestatus"))
        return await self._put(patient_id, docs)

    @api.delete("/api/v1/devicestatus/{key}", responses=errors(400, 401, 403, 429, 503),
                summary="Nightscout: delete a device status by _id ('*': by find)")
    async def ns_delete_devicestatus(self, key: str, request: Request) -> dict:
        return await self._delete(request, "devicestatus", key)

    @api.delete("/api/v1/devicestatus", responses=errors(400, 401, 403, 429, 503),
                summary="Nightscout: delete the device statuses a find matches")
    async def ns_delete_devicestatuses(self, request: Request) -> dict:
        return await self._delete(request, "devicestatus", None)

    # -- profiles --------------------------------------------------------------------------
    @api.get("/api/v1/profile", responses=errors(400, 401, 403, 422, 429),
             summary="Nightscout: profiles, newest first")
    @api.get("/api/v1/profile.json", include_in_schema=False)
    @api.get("/api/v1/profiles", include_in_schema=False)
    @api.get("/api/v1/profiles.json", include_in_schema=False)
    async def ns_profiles(self, request: Request) -> list[dict]:
        patient_id = await self._ns_reader(request)
        return await self._find(request, patient_id, "profile", self._count(request, 10))

    @api.get("/api/v1/profile/current", responses=errors(401, 403, 404, 429),
             summary="Nightscout: the profile in force (newest startDate)")
    @api.get("/api/v1/profile/current.json", include_in_schema=False)
    async def ns_profile_current(self, request: Request) -> dict:
        patient_id = await self._ns_reader(request)
        found = await self._partition(patient_id).find_documents(
            patient_id, "profile", [], 1)
        if not found:
            raise HTTPProblem(404, "Not Found", f"no profile for patient {patient_id!r}")
        return found[0]

    @api.post("/api/v1/profile", responses=errors(400, 401, 403, 413, 422, 429, 503),
              summary="Nightscout: store a profile (store, defaultProfile, startDate)",
              openapi_extra={"requestBody": PROFILE_BODY})
    @api.post("/api/v1/profile.json", include_in_schema=False)
    @api.put("/api/v1/profile", include_in_schema=False)
    @api.put("/api/v1/profile.json", include_in_schema=False)
    async def ns_post_profile(self, request: Request) -> list[dict]:
        _, patient_id = self._ns_writer(request)
        docs = self._normalise("profile", await self._json_items(request, "profile"))
        return await self._put(patient_id, docs)

    @api.delete("/api/v1/profile/{key}", responses=errors(400, 401, 403, 429, 503),
                summary="Nightscout: delete a profile by _id")
    async def ns_delete_profile(self, key: str, request: Request) -> dict:
        return await self._delete(request, "profile", key)

    # -- the site --------------------------------------------------------------------------
    @api.get("/api/v1/status.json",
             responses=errors(401, 429), summary="Nightscout: server status and settings")
    @api.get("/api/v1/status", include_in_schema=False)
    async def ns_status(self, request: Request) -> dict:
        return status(self.config.site_name, self.config.units, self._principal(request))

    @api.get("/api/v1/verifyauth", summary="Nightscout: are these credentials accepted?")
    async def ns_verifyauth(self, request: Request) -> dict:
        try:
            principal = self._principal(request)
        except HTTPProblem as exc:
            if exc.status != 401:
                raise
            return {"status": 200, "message": {
                "canRead": False, "canWrite": False, "isAdmin": False,
                "message": "UNAUTHORIZED", "rolefound": "NOTFOUND", "permissions": "DEFAULT"}}
        return {"status": 200, "message": verifyauth(principal)}

    @api.get("/api/v1/experiments/test", responses=errors(401, 429),
             summary="Nightscout: does this credential work? (Loop checks a site with it)")
    async def ns_experiments_test(self, request: Request) -> dict:
        self._principal(request)
        return {"status": "ok"}

    @api.get("/api/v2/properties", responses=errors(401, 403, 429),
             summary="Nightscout: bgnow, delta, direction, iob, cob and basal")
    @api.get("/api/v2/properties/{names}", include_in_schema=False)
    async def ns_properties(self, request: Request, names: str | None = None) -> dict:
        patient_id = await self._ns_reader(request)
        partition = self._partition(patient_id)
        now = now_ms()
        entries = await partition.entries(patient_id, 3, now - 3 * 86_400_000, None)
        status_docs = await partition.find_documents(patient_id, "devicestatus", [], 1)
        profiles = await partition.find_documents(patient_id, "profile", [], 1)
        temps = await partition.find_documents(
            patient_id, "treatments", [Filter("eventType", "eq", "Temp Basal")], 1)
        found = properties(entries, status_docs[0] if status_docs else None,
                           profiles[0] if profiles else None, temps[0] if temps else None,
                           self.config.units, now)
        if names:
            wanted = set(names.split(","))
            found = {k: v for k, v in found.items() if k in wanted}
        return found

