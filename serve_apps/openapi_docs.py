"""The ingest API's OpenAPI documentation of what its handlers read and answer themselves.

The handlers read ``Request`` bodies directly (the readings path must not pay for a model
binding per request, and Arrow bodies are not JSON), so FastAPI cannot see the bodies:
they are documented here from the same pydantic models the validators use, and so are
the error answers (``{"status", "message", "description"}``) every route can give.
"""

from __future__ import annotations

from pydantic import BaseModel

from cgm_ray.schema import ARROW_STREAM, EARLIEST_TS_MS
from serve_apps.nightscout import v3
from serve_apps.nightscout.documents import (
    EVENT_TYPES,
    LATEST_MS,
    PROFILE_SCHEDULES,
    TREATMENT_NUMBERS,
)
from serve_apps.validation import ALERT_TYPES, MAX_ID_LEN, NightscoutEntry, ReadingBatch

__all__ = ["DEVICESTATUS_BODY", "ENTRIES_BODY", "ERRORS", "PROFILE_BODY", "READINGS_BODY",
           "SETTINGS_DISABLED", "TREATMENTS_BODY", "V3_ANSWERS", "V3_BODIES",
           "V3_HISTORY_HEADER", "V3_HISTORY_PARAMETERS", "V3_LAST_MODIFIED", "V3_PATCH_BODY",
           "V3_SEARCH_PARAMETERS", "Problem", "errors", "json_body"]


class Problem(BaseModel):
    """An error answer: the HTTP status, its reason phrase, and what was wrong."""

    status: int
    message: str
    description: str


_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
# FastAPI's own answer to a query or path parameter out of its documented range.
_PARAMETER_ERRORS = {"type": "object", "required": ["detail"],
                     "properties": {"detail": {"type": "array", "items": {"type": "object"}}}}

ERRORS: dict[int | str, dict] = {
    400: {"model": Problem, "description": "Malformed JSON or query parameter"},
    401: {"model": Problem, "description": "Missing or invalid credentials"},
    403: {"model": Problem, "description": "The credential may not touch this patient"},
    404: {"model": Problem, "description": "No such patient or readings"},
    409: {"model": Problem, "description": "A sensor belongs to another patient"},
    413: {"model": Problem, "description": "Body over the server's max_body_bytes"},
    422: {"description": "A field out of its documented range (the description names it)",
          "content": {"application/json": {"schema": {"anyOf": [_PROBLEM_REF,
                                                                 _PARAMETER_ERRORS]}}}},
    410: {"model": Problem, "description": "The document was deleted (API v3)"},
    412: {"model": Problem, "description": "Modified since If-Unmodified-Since (API v3)"},
    429: {"model": Problem, "description": "More requests per second than the credential's limit"},
    503: {"model": Problem, "description": "Storage did not confirm the write; retry"},
}


def errors(*statuses: int) -> dict[int | str, dict]:
    """The documented error answers of a route that can give ``statuses``."""
    return {status: ERRORS[status] for status in statuses}


def _schema(model: type[BaseModel]) -> dict:
    schema = model.model_json_schema()
    if "$defs" in schema:  # keep documents self-contained: refs would point nowhere
        raise ValueError(f"{model.__name__}: nested models need components")
    return schema


def json_body(model: type[BaseModel], **properties: dict) -> dict:
    """A required JSON request body of ``model``, with ``properties`` overriding its own."""
    schema = _schema(model)
    for name, override in properties.items():
        schema["properties"][name] = {**schema["properties"][name], **override}
    return {"required": True, "content": {"application/json": {"schema": schema}}}


SETTINGS_DISABLED = {"items": {"type": "string", "enum": ALERT_TYPES}}

READINGS_BODY = {"required": True, "content": {
    "application/json": {"schema": _schema(ReadingBatch)},
    ARROW_STREAM: {"schema": {
        "type": "string", "format": "binary",
        "description": "An Arrow IPC stream of one or more record batches with the columns "
        "of the JSON form (patient_id and sensor_id strings, ts_ms integers, glucose_mgdl "
        "numbers, optional range_flag) and the same limits"}},
}}

_ENTRY = _schema(NightscoutEntry)
ENTRIES_BODY = {"required": True, "content": {"application/json": {"schema": {
    "anyOf": [_ENTRY, {"type": "array", "items": _ENTRY}]}}}}

# Nightscout documents: objects whose known fields are checked (serve_apps.nightscout.
# documents) and whose other fields are kept as given; one record or a list.
_TIME = {"type": "string", "format": "date-time",
         "description": "ISO 8601; not before 1970 (too old)"}
_NUMBER = {"type": "number"}
# Text with a character str.strip() keeps (it strips \x1c-\x1f and \x85 too, which JSON
# Schema's \S, ECMAScript's, lets through).
_TEXT = {"type": "string", "minLength": 1, "pattern": r"[^\s\x1c-\x1f\x85]"}
_IDS = {"_id": {"type": "string", "minLength": 1, "maxLength": 128},
        "identifier": {"type": "string", "minLength": 1, "maxLength": 128}}
_TREATMENT = {"type": "object", "required": ["eventType"], "properties": {
    **_IDS, "eventType": {**_TEXT, "examples": list(EVENT_TYPES[:5])},
    "created_at": _TIME, "eventTime": _TIME, "timestamp": _TIME,
    **{name: _NUMBER for name in TREATMENT_NUMBERS},
    "insulin": {"type": "number", "minimum": 0}, "carbs": {"type": "number", "minimum": 0},
    "duration": {"type": "number", "minimum": 0, "maximum": 7 * 1440},
    "enteredBy": {"type": "string"}, "notes": {"type": "string"}}}
_BATTERY = {"type": "object", "properties": {"percent": _NUMBER}}
_DEVICESTATUS = {"type": "object", "properties": {
    **_IDS, "device": {"type": "string"}, "created_at": _TIME,
    "pump": {"type": "object", "properties": {"reservoir": _NUMBER, "battery": _BATTERY}},
    "uploader": {"type": "object", "properties": {"battery": _NUMBER}},
    "uploaderBattery": {"anyOf": [_NUMBER, {"type": "boolean"}]}}}
_SCHEDULE = {"anyOf": [_NUMBER, {"type": "array", "minItems": 1, "items": {
    "type": "object", "required": ["value"], "properties": {
        "time": {"type": "string", "pattern": r"^([01]?[0-9]|2[0-3]):[0-5][0-9]$"},
        "value": _NUMBER}}}]}
_PROFILE = {"type": "object", "required": ["store"], "properties": {
    **_IDS, "startDate": _TIME, "created_at": _TIME,
    "defaultProfile": {"type": "string", "description": "names a profile of store"},
    "store": {"type": "object", "minProperties": 1, "additionalProperties": {
        "type": "object", "properties": {"dia": _NUMBER,
                                         **{name: _SCHEDULE for name in PROFILE_SCHEDULES}}}}}}


def _one_or_list(schema: dict) -> dict:
    return {"required": True, "content": {"application/json": {"schema": {
        "anyOf": [schema, {"type": "array", "items": schema}]}}}}


TREATMENTS_BODY = _one_or_list(_TREATMENT)
DEVICESTATUS_BODY = _one_or_list(_DEVICESTATUS)
PROFILE_BODY = _one_or_list(_PROFILE)


# -- Nightscout API v3 (serve_apps.nightscout.v3) ------------------------------------------
# One document as above, which also needs an app, a date after 2000 and a utcOffset within a
# day; sgv entries are readings and cannot be replaced.
_V3_COMMON = {
    "app": {**_TEXT, "description": "the uploading application"},
    "date": {"type": "integer", "minimum": EARLIEST_TS_MS + 1, "maximum": LATEST_MS,
             "description": "the event's time, epoch ms (epoch s and ISO 8601 are read too; "
             "without a date, created_at is)"},
    "utcOffset": {"type": "number", "minimum": -v3.MAX_UTC_OFFSET_MIN,
                  "maximum": v3.MAX_UTC_OFFSET_MIN, "description": "minutes (default: date's)"},
    "identifier": {**_TEXT, "maxLength": 128,
                   "description": "default: a UUIDv5 of device, date and eventType"},
    "device": {"type": "string", "maxLength": MAX_ID_LEN},
}


def _v3(doc: dict, *required: str, **properties: dict) -> dict:
    return _json_body({**doc, "required": ["app", "date", *doc.get("required", ()), *required],
                       "properties": {**doc["properties"], **_V3_COMMON, **properties}})


def _json_body(schema: dict) -> dict:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


V3_BODIES: dict[str, dict[str, dict]] = {  # POST (create) and PUT (replace), by collection
    method: {"treatments": _v3(_TREATMENT), "devicestatus": _v3(_DEVICESTATUS),
             "profile": _v3(_PROFILE)} for method in ("POST", "PUT")}
V3_BODIES["POST"]["entries"] = _v3(_ENTRY)
V3_BODIES["PUT"]["entries"] = _v3(_ENTRY, "type", type={
    "type": "string", "minLength": 1, "maxLength": 32, "not": {"const": "sgv"}})
V3_PATCH_BODY = _json_body({
    "type": "object", "minProperties": 1, "additionalProperties": True,
    "description": "fields to set; the immutable ones (identifier, date, utcOffset, eventType, "
    "device, app, ...) only to their current values"})


def _query(name: str, schema: dict, description: str) -> dict:
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": description}


_LIMIT = _query("limit", {"type": "integer", "minimum": 1, "maximum": v3.MAX_LIMIT},
                f"most documents to answer ({v3.DEFAULT_LIMIT} for a search, {v3.MAX_LIMIT} for "
                "history)")
_FIELDS = _query("fields", {"type": "string"}, "the fields to show, comma-separated "
                 "(default: _all)")
V3_SEARCH_PARAMETERS = [
    _LIMIT, _query("skip", {"type": "integer", "minimum": 0}, "documents to skip (paging)"),
    _query("sort", {"type": "string"}, "the field to sort by, ascending (not with sort$desc)"),
    _query("sort$desc", {"type": "string"}, "the field to sort by, descending (not with sort; "
           "default: newest date first)"),
    _FIELDS]
V3_HISTORY_PARAMETERS = [_LIMIT, _FIELDS]
V3_HISTORY_HEADER = {
    "name": "Last-Modified", "in": "header", "required": True,
    "description": "changes at or after this time (whole seconds); any HTTP date is read",
    "schema": {"type": "string", "pattern": (
        r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), (0[1-9]|1[0-9]|2[0-8]) "
        r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) (19[7-9][0-9]|2[0-9]{3}) "
        r"([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9] GMT$")}}
V3_LAST_MODIFIED = {"type": "integer", "minimum": EARLIEST_TS_MS, "maximum": LATEST_MS,
                    "description": "changes after this server time, epoch ms (exclusive; "
                    "epoch s and ISO 8601 are read too)"}


def _answer(description: str, **properties: dict) -> dict:
    return {"description": description, "content": {"application/json": {"schema": {
        "type": "object", "required": ["status", *properties],
        "properties": {"status": {"type": "integer"}, **properties}}}}}


_DOCUMENTS = {"type": "array", "items": {"type": "object"}}
_STAMP = {"type": "integer", "description": "srvModified of the stored version, epoch ms"}
_IDENTIFIER = {"type": "string"}
V3_ANSWERS: dict[str, dict[int | str, dict]] = {  # API v3's answers ({status, ...})
    "search": {200: _answer("The documents", result=_DOCUMENTS)},
    "history": {200: _answer("The changes, oldest first (deleted ones with isValid false)",
                             result=_DOCUMENTS)},
    "read": {200: _answer("The document", result={"type": "object"}),
             304: {"description": "Not modified since If-Modified-Since"}},
    "create": {201: _answer("Created", identifier=_IDENTIFIER, lastModified=_STAMP),
               200: _answer("Stored over a duplicate (isDeduplication)", identifier=_IDENTIFIER,
                            lastModified=_STAMP, isDeduplication={"type": "boolean"})},
    "update": {200: _answer("Replaced", lastModified=_STAMP),
               201: _answer("Created", identifier=_IDENTIFIER, lastModified=_STAMP)},
    "done": {200: _answer("Done")},
    "result": {200: _answer("The answer", result={"type": "object"})},
}
