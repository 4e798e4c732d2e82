"""Nightscout's API v3 (``/api/v3/...``) and its JWT exchange (``/api/v2/authorization/request``).

A mixin of the ingress deployment, as cgm-remote-monitor's ``lib/api3`` answers: search,
create, read, replace, patch, soft-delete and history of devicestatus, entries, profile and
treatments, and ``version``, ``status`` and ``lastModified``. The rules (paging, sorting,
dates, immutable fields) are ``serve_apps.nightscout.v3``'s; these routes add credentials,
patients and storage. As in v1, each request is about one patient: the credential's, or
``?patient=`` for an admin. Any credential the ingress takes is accepted, a JWT included
(Nightscout's API v3 takes only JWTs).

Each collection has its own routes (``/api/v3/treatments``, ...), because what a valid
body is differs by collection and the OpenAPI document says so; food and settings are not
kept, and they (like any other path under ``/api/v3``) answer 404. Sgv entries are readings
(the ring buffers, ``serve_apps.nightscout.v3.reading_document``): they are searched, read,
created and listed in history like documents, but cannot be replaced, patched or deleted
(422, as for Nightscout's read-only documents). Other entries are documents.
"""


from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import quote

from fastapi import Path, Request
from fastapi.responses import JSONResponse, Response

from cgm_ray import __version__
from serve_apps.auth import AuthError, Principal
from serve_apps.http_api import HTTPProblem, api, example
from serve_apps.ingress_base import IngressBase, now_ms
from serve_apps.nightscout import v3
from serve_apps.nightscout.documents import Document, identifier_for
from serve_apps.nightscout.query import matches, time_bounds
from serve_apps.nightscout.shiro import api_permissions, permission
from serve_apps.nightscout.status import permissions
from serve_apps.openapi_docs import (
    V3_ANSWERS,
    V3_BODIES,
    V3_HISTORY_HEADER,
    V3_HISTORY_PARAMETERS,
    V3_LAST_MODIFIED,
    V3_PATCH_BODY,
    V3_SEARCH_PARAMETERS,
    errors,
)

# Readings read when the ring buffers must be scanned whole (they hold hot_readings per
# sensor, 288 by default): a search sorted or filtered by more than the date, history, and
# finding a reading by identifier.
SCAN = 100_000
IDENTIFIER = Path(min_length=1, max_length=128, description="the document's identifier",
                  openapi_examples=example("5b0f7124-475f-5db0-824c-a73c5eea0975"))
T = TypeVar("T")
Handler = TypeVar("Handler", bound=Callable[..., Any])



def _checked(call: Callable[..., T], *args: Any) -> T:
    """``call(*args)``, answering API v3's refusals as 400 with Nightscout's message."""
    try:
        return call(*args)
    except v3.BadRequest as exc:
        raise HTTPProblem(400, exc.message, exc.description) from None


def _collection(request: Request) -> str:
    """The collection a request's route serves (``/api/v3/<collection>...``)."""
    return request.scope["route"].path.split("/")[3]


def _each_collection(method: str, suffix: str, summary: str, answers: dict,
                     statuses: tuple[int, ...], bodies: dict[str, dict] | None = None,
                     parameters: list | None = None) -> Callable[[Handler], Handler]:
    """Route a handler at ``/api/v3/<collection><suffix>`` for every collection, each
    documented with its own body."""
    def register(handler: Handler) -> Handler:
        for col in v3.COLLECTIONS:
            extra: dict[str, Any] = {"parameters": parameters} if parameters else {}
            if bodies:
                extra["requestBody"] = bodies[col]
            api.api_route(f"/api/v3/{col}{suffix}", methods=[method],
                          summary=f"Nightscout v3: {summary.format(col)}",
                          responses={**answers, **errors(*statuses)},
                          openapi_extra=extra or None)(handler)
        return handler
    return register


def _stamped(status: int, collection: str, stored: dict, body: dict) -> JSONResponse:
    """A write's answer, with the stored version's ``Last-Modified`` and ``Location``."""
    return JSONResponse(body, status, headers={
        "Last-Modified": v3.http_date(stored["srvModified"]),
        "Location": f"/api/v3/{collection}/{quote(stored['identifier'], safe='')}"})


class NightscoutV3(IngressBase):
    """The v3 routes (``/api/v3/...``) and the JWT exchange."""

    # -- credentials -----------------------------------------------------------------------
    @api.get("/api/v2/authorization/request/{access_token}", responses=errors(401),
             summary="Nightscout: a JWT (8 h) for an access token: a role token, the API "
             "secret's SHA-1, or a JWT to renew")
    async def ns_authorization_request(self, access_token: str) -> dict:
        try:
            grant = self.auth.issue_jwt(access_token.removeprefix("token="))
        except AuthError as exc:
            self.telemetry.rejected.inc(1, {"status": "401"})
            raise HTTPProblem(401, "Unauthorized", str(exc)) from None
        return {"token": grant.token, "sub": grant.principal.name,
                "permissionGroups": [permissions(grant.principal)], "iat": grant.claims.iat,
                "exp": grant.claims.exp}

    # -- shared steps ----------------------------------------------------------------------
    async def _access(self, request: Request, collection: str, action: str
                      ) -> tuple[Principal, str]:
        """The caller and the patient the request is about. Reading needs a reader of the
        patient, creating, updating and deleting its uploader or an admin; a 403 names the
        Nightscout permission missing (``api:<collection>:<action>``)."""
        principal = self._principal(request)
        try:
            patient_id = self._ns_patient(request, principal)
            if action == "read":
                await self._check_read(principal, patient_id)
            else:
                self._check_write(principal, patient_id)
        except HTTPProblem as exc:
            if exc.status != 403:
                raise
            raise HTTPProblem(403, f"Missing permission {permission(collection, action)}",
                              exc.description) from None
        return principal, patient_id

    async def _v3_object(self, request: Request) -> dict:
        """The body: one JSON object with at least one field (Nightscout's ``_.isEmpty``)."""
        body = await self._json(request)
        if not isinstance(body, dict) or not body:
            raise HTTPProblem(400, v3.BAD_BODY, "one non-empty JSON object is required")
        return body

    async def _reading(self, patient_id: str, identifier: str) -> dict | None:
        """The hot sgv reading with this identifier, if any (a scan of the ring buffers)."""
        rows = await self._partition(patient_id).entries(patient_id, SCAN, None, None)
        return next((d for d in map(v3.reading_document, rows) if d["identifier"] == identifier),
                    None)

    async def _writable(self, patient_id: str, collection: str, identifier: str) -> dict | None:
        """The stored document a change addresses (None: there is none); 422 if it may not
        change: an sgv reading, or a document marked read-only."""
        doc = await self._partition(patient_id).get_document(patient_id, collection,
                                                             identifier)
        if doc is None and collection == "entries" and await self._reading(patient_id, identifier):
            raise HTTPProblem(422, v3.READ_ONLY, "sgv readings cannot be replaced, patched or "
                              "deleted: they are kept as measured")
        if doc is not None and v3.read_only(doc):
            raise HTTPProblem(422, v3.READ_ONLY, f"{collection} {identifier!r} is read-only")
        return doc

    @staticmethod
    def _changeable(request: Request, collection: str, stored: dict, new: dict) -> None:
        """410 if ``stored`` was deleted, 412 if it changed after If-Unmodified-Since, 400 if
        ``new`` changes one of its immutable fields."""
        if stored.get("isValid", True) is False:
            raise HTTPProblem(410, "Gone", f"{collection} {stored['identifier']!r} was deleted")
        since = v3.parse_http_date(request.headers.get("if-unmodified-since"))
        if since is not None and v3.whole_seconds(stored["srvModified"]) > since:
            raise HTTPProblem(412, "Precondition Failed",
                              "the document changed after If-Unmodified-Since")
        field = v3.changed_immutable(new, stored)
        if field is not None:
            raise HTTPProblem(400, v3.IMMUTABLE_FIELD.format(field), f"{field} cannot be "
                              f"modified: the stored value is {stored.get(field)!r}")

    def _document(self, collection: str, raw: dict, **server: Any) -> Document:
        """One posted document, normalised, with the server's fields (subject, modifiedBy)."""
        doc = self._normalise(collection, [raw])[0]
        doc.fields.update(server)
        return doc

    # -- the site --------------------------------------------------------------------------
    @api.get("/api/v3/version", summary="Nightscout v3: versions and the server's clock (public)",
             responses=V3_ANSWERS["result"])
    async def v3_version(self) -> dict:
        return v3.result(v3.version_info(__version__, now_ms()))

    @api.get("/api/v3/status", responses={**V3_ANSWERS["result"], **errors(401, 429)},
             summary="Nightscout v3: versions, and what the credential may do by collection")
    async def v3_status(self, request: Request) -> dict:
        granted = permissions(self._principal(request))
        return v3.result({**v3.version_info(__version__, now_ms()),
                          "apiPermissions": api_permissions(granted, v3.COLLECTIONS)})

    @api.get("/api/v3/lastModified", responses={**V3_ANSWERS["result"], **errors(401, 403, 429)},
             summary="Nightscout v3: the newest change of each collection of the patient")
    async def v3_last_modified(self, request: Request) -> dict:
        _, patient_id = await self._access(request, "*", "read")
        partition = self._partition(patient_id)
        changed = await partition.last_modified(patient_id)
        newest = await partition.entries(patient_id, 1, None, None)
        if newest:  # a reading's srvModified is its date
            changed["entries"] = max(changed.get("entries", 0), newest[0]["date"])
        return v3.result({"srvDate": now_ms(),
                          "collections": {c: changed[c] for c in v3.COLLECTIONS if c in changed}})

    # -- collections -----------------------------------------------------------------------
    @_each_collection("GET", "", "search {} (field$op=value filters: eq, ne, gt, gte, lt, "
                      "lte, in, nin, re)", V3_ANSWERS["search"], (400, 401, 403, 429),
                      parameters=V3_SEARCH_PARAMETERS)
    async def v3_search(self, request: Request) -> dict:
        collection = _collection(request)
        _, patient_id = await self._access(request, collection, "read")
        search = _checked(v3.parse_search, request.query_params)
        docs = await self._partition(patient_id).find_documents(
            patient_id, collection, list(search.filters),
            search.wanted if search.sort == "date" else SCAN, 0, search.descending)
        if collection == "entries":
            docs += await self._readings(patient_id, search)
        return v3.result(v3.page(docs, search))

    async def _readings(self, patient_id: str, search: v3.Search) -> list[dict]:
        """The sgv readings a search may show. The ring answers newest first, so only a
        newest-first search bounded by date alone can stop at the page's end."""
        filters = list(search.filters)
        since, until = time_bounds(filters, ("date",))
        count = search.wanted if search.descending and search.by_date_only() else SCAN
        rows = await self._partition(patient_id).entries(patient_id, count, since, until)
        return [d for d in map(v3.reading_document, rows) if matches(d, filters)]

    @_each_collection("POST", "", "create a {} document (a duplicate is replaced)",
                      V3_ANSWERS["create"], (400, 401, 403, 409, 413, 422, 429, 503),
                      bodies=V3_BODIES["POST"])
    async def v3_create(self, request: Request) -> JSONResponse:
        collection = _collection(request)
        principal, patient_id = await self._access(request, collection, "create")
        raw = _checked(v3.dated, await self._v3_object(request))
        if collection == "entries" and raw.get("type", "sgv") == "sgv":
            return await self._create_reading(raw, principal, patient_id)
        doc = self._document(collection, raw, subject=principal.name)
        stored = (await self._put(patient_id, [doc]))[0]
        if stored["srvCreated"] == stored["srvModified"]:
            return _stamped(201, collection, stored, {
                "status": 201, "identifier": stored["identifier"],
                "lastModified": stored["srvModified"]})
        answer = {"status": 200, "identifier": stored["identifier"],
                  "lastModified": stored["srvModified"], "isDeduplication": True}
        if doc.identifier != stored["identifier"]:  # a duplicate by another key: it keeps its own
            answer["deduplicatedIdentifier"] = stored["identifier"]
        return _stamped(200, collection, stored, answer)

    async def _create_reading(self, raw: dict, principal: Principal, patient_id: str
                              ) -> JSONResponse:
        """An sgv entry stored as a reading; a reading already stored is a duplicate."""
        _, table = self._sgv_readings([raw], patient_id)
        counts = await self._store(table, principal)
        date = table.column("ts_ms")[0].as_py()
        # the device label the ring answers with (its sensor is the label within the patient)
        device = table.column("sensor_id")[0].as_py().removeprefix(f"{patient_id}/")
        stored = {"identifier": identifier_for(device, date), "srvModified": date}
        answer = {"status": 201, "identifier": stored["identifier"], "lastModified": date}
        if counts.duplicates:
            answer.update(status=200, isDeduplication=True)
        return _stamped(answer["status"], "entries", stored, answer)

    @_each_collection("GET", "/history", "changes of {} at or after the Last-Modified header",
                      V3_ANSWERS["history"], (400, 401, 403, 429),
                      parameters=[V3_HISTORY_HEADER, *V3_HISTORY_PARAMETERS])
    async def v3_history(self, request: Request) -> JSONResponse:
        since = v3.parse_http_date(request.headers.get("last-modified"))
        if since is None:
            raise HTTPProblem(400, v3.BAD_LAST_MODIFIED, "Last-Modified: an HTTP date is required")
        return await self._history(request, since - 1)

    @_each_collection("GET", "/history/{last_modified}",
                      "changes of {} after lastModified (epoch ms of the server's clock)",
                      V3_ANSWERS["history"], (400, 401, 403, 429),
                      parameters=V3_HISTORY_PARAMETERS)
    async def v3_history_since(self, request: Request,
                               last_modified: str = Path(json_schema_extra=V3_LAST_MODIFIED,
                                                         openapi_examples=example(1613057404186))
                               ) -> JSONResponse:
        return await self._history(request, _checked(v3.since_param, last_modified))

    async def _history(self, request: Request, after_ms: int) -> JSONResponse:
        """Documents changed after ``after_ms``, deleted ones too, oldest change first; the
        newest change in ``Last-Modified`` and ``ETag``."""
        collection = _collection(request)
        _, patient_id = await self._access(request, collection, "read")
        limit = _checked(v3.parse_limit, request.query_params, v3.MAX_LIMIT)
        fields = v3.parse_fields(request.query_params)
        partition = self._partition(patient_id)
        docs = await partition.document_history(patient_id, collection, after_ms, limit)
        if collection == "entries":
            rows = await partition.entries(patient_id, SCAN, after_ms + 1, None)
            docs = sorted(docs + [v3.reading_document(r) for r in rows],
                          key=lambda d: d["srvModified"])[:limit]
        headers = {}
        if docs:
            newest = max(d["srvModified"] for d in docs)
            headers = {"Last-Modified": v3.http_date(newest), "ETag": f'W/"{newest}"'}
        return JSONResponse(v3.result([v3.present(d, fields) for d in docs]), headers=headers)

    @_each_collection("GET", "/{identifier}", "a {} document (410 once deleted)",
                      V3_ANSWERS["read"], (401, 403, 404, 410, 422, 429))
    async def v3_read(self, request: Request, identifier: str = IDENTIFIER) -> Response:
        collection = _collection(request)
        _, patient_id = await self._access(request, collection, "read")
        doc = await self._partition(patient_id).get_document(patient_id, collection,
                                                             identifier)
        if doc is None and collection == "entries":
            doc = await self._reading(patient_id, identifier)
        if doc is None:
            raise HTTPProblem(404, "Not Found", f"no {collection} document {identifier!r}")
        if doc.get("isValid", True) is False:
            raise HTTPProblem(410, "Gone", f"{collection} {identifier!r} was deleted")
        headers = {"Last-Modified": v3.http_date(doc["srvModified"])}
        since = v3.parse_http_date(request.headers.get("if-modified-since"))
        if since is not None and v3.whole_seconds(doc["srvModified"]) <= since:
            return Response(status_code=304, headers=headers)
        return JSONResponse(v3.result(v3.present(doc, v3.parse_fields(request.query_params))),
                            headers=headers)

    @_each_collection("PUT", "/{identifier}", "replace a {} document (or create it)",
                      V3_ANSWERS["update"], (400, 401, 403, 410, 412, 413, 422, 429, 503),
                      bodies=V3_BODIES["PUT"])
    async def v3_update(self, request: Request, identifier: str = IDENTIFIER) -> JSONResponse:
        collection = _collection(request)
        principal, patient_id = await self._access(request, collection, "update")
        raw = _checked(v3.dated, await self._v3_object(request))
        stored = await self._writable(patient_id, collection, identifier)
        raw["identifier"] = stored["identifier"] if stored else identifier  # (found by _id?)
        if stored is not None:
            self._changeable(request, collection, stored, raw)
        if collection == "entries" and raw.get("type", "sgv") == "sgv":
            raise HTTPProblem(422, v3.READ_ONLY, "sgv entries are readings: POST them (a "
                              "reading cannot be replaced)")
        doc = self._document(collection, raw, subject=principal.name)
        saved = (await self._put(patient_id, [doc]))[0]
        if stored is None:
            return _stamped(201, collection, saved, {
                "status": 201, "identifier": saved["identifier"],
                "lastModified": saved["srvModified"]})
        return _stamped(200, collection, saved, {"status": 200,
                                                 "lastModified": saved["srvModified"]})

    @_each_collection("PATCH", "/{identifier}", "change fields of a {} document",
                      V3_ANSWERS["done"], (400, 401, 403, 404, 410, 412, 413, 422, 429, 503),
                      bodies={col: V3_PATCH_BODY for col in v3.COLLECTIONS})
    async def v3_patch(self, request: Request, identifier: str = IDENTIFIER) -> JSONResponse:
        collection = _collection(request)
        principal, patient_id = await self._access(request, collection, "update")
        patch = await self._v3_object(request)
        stored = await self._writable(patient_id, collection, identifier)
        if stored is None:
            raise HTTPProblem(404, "Not Found", f"no {collection} document {identifier!r}")
        self._changeable(request, collection, stored, patch)
        kept = {k: stored[k] for k in ("subject",) if k in stored}  # normalise drops it
        doc = self._document(collection, {**stored, **patch}, modifiedBy=principal.name, **kept)
        saved = (await self._put(patient_id, [doc]))[0]
        return _stamped(200, collection, saved, {"status": 200})

    @_each_collection("DELETE", "/{identifier}", "delete a {} document (it stays, isValid "
                      "false, for history)", V3_ANSWERS["done"], (401, 403, 404, 422, 429, 503))
    async def v3_delete(self, request: Request, identifier: str = IDENTIFIER) -> dict:
        collection = _collection(request)
        _, patient_id = await self._access(request, collection, "delete")
        stored = await self._writable(patient_id, collection, identifier)
        if stored is None:
            raise HTTPProblem(404, "Not Found", f"no {collection} document {identifier!r}")
        if request.query_params.get("permanent") == "true":
            raise HTTPProblem(422, "Unprocessable Entity", "permanent deletion is not supported: "
                              "a deleted document stays (isValid false) so history reports it")
        await self._remove(patient_id, collection, [stored["identifier"]])
        return {"status": 200}

    # Anything else under /api/v3 (food, settings, unknown paths), after every route above.
    @api.api_route("/api/v3/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                   include_in_schema=False)
    async def v3_unknown(self, path: str) -> None:
        raise HTTPProblem(404, v3.BAD_OPERATION, f"no API v3 operation at {path[:100]!r}; the "
                          f"collections kept are {', '.join(v3.COLLECTIONS)}")
