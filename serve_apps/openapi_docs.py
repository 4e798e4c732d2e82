"""The ingest API's OpenAPI documentation of what its handlers read and answer themselves.

The handlers read ``Request`` bodies directly (the readings path must not pay for a model
binding per request, and Arrow bodies are not JSON), so FastAPI cannot see the bodies:
they are documented here from the same pydantic models the validators use, and so are
the error answers (``{"status", "message", "description"}``) every route can give.
"""

from __future__ import annotations

from pydantic import BaseModel

from cgm_ray.schema import ARROW_STREAM
from serve_apps.validation import ALERT_TYPES, NightscoutEntry, ReadingBatch

__all__ = ["DOCUMENTS_BODY", "ENTRIES_BODY", "ERRORS", "READINGS_BODY", "SETTINGS_DISABLED",
           "Problem", "errors", "json_body"]


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

# Nightscout documents (treatments, device statuses, profiles): free-form objects whose known
# fields are checked (serve_apps.nightscout.documents), one or a list.
_DOCUMENT = {"type": "object", "additionalProperties": True}
DOCUMENTS_BODY = {"required": True, "content": {"application/json": {"schema": {
    "anyOf": [_DOCUMENT, {"type": "array", "items": _DOCUMENT, "minItems": 1}]}}}}
