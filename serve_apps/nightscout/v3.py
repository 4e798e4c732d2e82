"""Nightscout API v3's rules, as cgm-remote-monitor's ``lib/api3`` applies them (no HTTP here).

- Search: ``limit`` (1-1000; 100 unless given), ``skip``, ``sort`` or ``sort$desc`` (one
  field, ties broken by identifier, created_at and date in the same direction, values ordered
  by type as MongoDB orders them), ``fields`` (a projection: ``_all`` or a list), and filters
  ``field$op=value`` whose time values may be epoch ms, epoch s or ISO 8601
  (``generic/search/input.js``). Without a sort, newest first: Nightscout's default order is
  by identifier, which is no order a client can use.
- Dates of posted documents (``generic/collection.js`` ``parseDate``, ``operationTools.js``
  ``validateCommon``): ``date``, or failing that ``created_at``, is the event's time; every
  document needs one after 2000, a ``utcOffset`` within a day and a non-empty ``app``.
- Updates may not change the immutable fields (``generic/update/validate.js``), and read-only
  documents may not be changed at all.
- Answers are ``{status, result}``; documents are shown without MongoDB's ``_id``.
"""

from __future__ import annotations

import email.utils
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, timedelta
from typing import Any

from cgm_ray.schema import EARLIEST_TS_MS
from serve_apps.nightscout.documents import LATEST_MS, identifier_for, iso_ms, parse_time
from serve_apps.nightscout.query import Filter, lookup, v3_filters
from serve_apps.validation import InvalidBody

__all__ = ["API_VERSION", "COLLECTIONS", "DEFAULT_LIMIT", "MAX_LIMIT", "BadRequest",
           "Search", "changed_immutable", "dated", "http_date", "instant",
           "page", "parse_fields", "parse_http_date", "parse_limit", "parse_search", "present",
           "read_only", "reading_document", "result", "since_param", "version_info",
           "whole_seconds"]

API_VERSION = "3.0.3-alpha"  # the lib/api3/const.json this follows
COLLECTIONS = ("devicestatus", "entries", "profile", "treatments")  # food and settings: not kept
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000  # Nightscout's API3_MAX_LIMIT
MAX_UTC_OFFSET_MIN = 1440
RESERVED = {"token", "sort", "sort$desc", "limit", "skip", "fields", "now", "patient"}
TIE_BREAK = ("identifier", "created_at", "date")
IMMUTABLE = ("identifier", "date", "utcOffset", "eventType", "device", "app", "srvCreated",
             "subject", "srvModified", "modifiedBy", "isValid")
_DATE_FIELDS = ("date", "srvModified", "srvCreated", "created_at")

# Nightscout's messages (lib/api3/const.json), so clients that match on them keep working.
BAD_LAST_MODIFIED = "Bad or missing Last-Modified header/parameter"
BAD_LIMIT = "Parameter limit out of tolerance"
BAD_SKIP = "Parameter skip out of tolerance"
BAD_BODY = "Bad or missing request body"
BAD_IDENTIFIER = "Bad or missing identifier field"
BAD_DATE = "Bad or missing date field"
BAD_UTC = "Bad or missing utcOffset field"
BAD_APP = "Bad or missing app field"
SORT_AND_SORT_DESC = "Parameters sort and sort_desc cannot be combined"
IMMUTABLE_FIELD = "Field {} cannot be modified by the client"
BAD_OPERATION = "Bad operation or collection"
READ_ONLY = "Trying to modify read-only document"


class BadRequest(ValueError):
    """A request API v3 refuses with 400: Nightscout's ``message`` and what was wrong."""

    def __init__(self, message: str, description: str) -> None:
        super().__init__(f"{message}: {description}")
        self.message, self.description = message, description


def result(value: Any) -> dict:
    """API v3's answer envelope."""
    return {"status": 200, "result": value}


# -- times -------------------------------------------------------------------------------
def instant(value: Any) -> tuple[int, int] | None:
    """A time as Nightscout's ``parseToMoment`` reads it: (epoch ms, UTC offset in minutes).

    Numbers (or numeric text) are epoch ms, or epoch seconds if that puts them after 2000;
    text is ISO 8601 or RFC 2822. None for anything else, or a time before 2000.
    """
    if isinstance(value, bool) or not value:
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return _text_instant(value)
    if not isinstance(value, int | float) or not math.isfinite(value):
        return None
    ms = value if value >= EARLIEST_TS_MS else value * 1000
    return (int(ms), 0) if EARLIEST_TS_MS <= ms <= LATEST_MS else None


def _text_instant(text: str) -> tuple[int, int] | None:
    try:
        found: tuple[int, int] | None = parse_time(text, "date")
    except InvalidBody:
        found = _rfc2822(text)
    return found if found is not None and EARLIEST_TS_MS <= found[0] <= LATEST_MS else None


def _rfc2822(text: str) -> tuple[int, int] | None:
    """An RFC 2822 date (as HTTP headers write them): (epoch ms, UTC offset in minutes)."""
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    offset = when.utcoffset()
    if offset is None:  # "-0000": a UTC time of unknown zone
        when, offset = when.replace(tzinfo=UTC), timedelta(0)
    return int(when.timestamp() * 1000), int(offset.total_seconds() // 60)


def whole_seconds(ms: int) -> int:
    """Epoch ms cut to whole seconds, as HTTP dates compare (Nightscout's ``floorSeconds``)."""
    return ms - ms % 1000


def http_date(ms: int) -> str:
    """Epoch ms as an HTTP date (``Last-Modified``), which keeps whole seconds only."""
    return email.utils.formatdate(ms / 1000, usegmt=True)


def parse_http_date(text: str | None) -> int | None:
    """An HTTP date header as epoch ms (whole seconds), or None if absent or unreadable."""
    found = _rfc2822(text) if text else None
    return None if found is None else whole_seconds(found[0])


def since_param(text: str) -> int:
    """The ``lastModified`` of ``/{collection}/history/{lastModified}`` as epoch ms."""
    found = instant(text)
    if found is None:
        raise BadRequest(BAD_LAST_MODIFIED, f"lastModified: epoch ms (or s, or ISO 8601) after "
                         f"2000-01-01, got {text[:40]!r}")
    return found[0]


# -- search ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Search:
    """One search: filters, the sort field and direction, a page, the fields to show."""

    filters: tuple[Filter, ...] = ()
    sort: str = "date"
    descending: bool = True
    limit: int = DEFAULT_LIMIT
    skip: int = 0
    fields: tuple[str, ...] | None = None

    @property
    def wanted(self) -> int:
        """How many documents in sort order the page needs (the skipped ones too)."""
        return self.skip + self.limit

    def by_date_only(self) -> bool:
        """Whether the order is by date and every filter bounds the date: then the newest
        (or oldest) ``wanted`` documents of each source are enough to answer."""
        return self.sort == "date" and all(
            f.field == "date" and f.op in ("eq", "gt", "gte", "lt", "lte") for f in self.filters)


def _count(params: Mapping[str, str], name: str, default: int, low: int, high: float,
           message: str) -> int:
    text = params.get(name)
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and low <= value <= high):
        raise BadRequest(message, f"{name}: a number from {low} to {high:g}, got {text[:20]!r}")
    return int(value)


def parse_limit(params: Mapping[str, str], default: int) -> int:
    """``limit``: 1 to ``MAX_LIMIT``."""
    return _count(params, "limit", default, 1, MAX_LIMIT, BAD_LIMIT)


def parse_search(params: Mapping[str, str]) -> Search:
    """A search from its query parameters; BadRequest naming what is wrong."""
    ascending, descending = params.get("sort"), params.get("sort$desc")
    if ascending and descending:
        raise BadRequest(SORT_AND_SORT_DESC, "sort and sort$desc cannot be combined: give one")
    try:
        filters = tuple(_v3_value(f) for f in v3_filters(params, RESERVED))
    except InvalidBody as exc:
        raise BadRequest("Bad filter", str(exc)) from None
    return Search(filters, ascending or descending or "date", not ascending,
                  parse_limit(params, DEFAULT_LIMIT),
                  _count(params, "skip", 0, 0, math.inf, BAD_SKIP), parse_fields(params))


def parse_fields(params: Mapping[str, str]) -> tuple[str, ...] | None:
    """``fields``: the fields to show (None: all, as for ``_all``)."""
    fields = params.get("fields")
    if not fields or fields == "_all":
        return None
    return tuple(f.strip() for f in fields.split(",") if f.strip())


def _v3_value(f: Filter) -> Filter:
    """A filter's value as Nightscout reads it: 'quoted' text unquoted, times of the date
    fields in any of their forms as the stored form (epoch ms; ISO text for created_at)."""
    value = f.value
    if len(value) >= 2 and value[0] == value[-1] == "'":
        value = value[1:-1]
    if f.field in _DATE_FIELDS and f.op not in ("in", "nin", "re", "regex", "exists"):
        found = instant(value)
        if found is not None:
            value = iso_ms(found[0]) if f.field == "created_at" else str(found[0])
    return Filter(f.field, f.op, value)


def _sort_value(value: Any) -> tuple[int, Any]:
    """A value's place in MongoDB's order of types: null, numbers, text, objects, arrays,
    booleans (a missing field sorts as null)."""
    if value is None:
        return 0, 0
    if isinstance(value, bool):
        return 5, value
    if isinstance(value, int | float):
        return 1, value
    if isinstance(value, str):
        return 2, value
    return (3 if isinstance(value, dict) else 4), json.dumps(value, sort_keys=True, default=str)


def page(docs: list[dict], search: Search) -> list[dict]:
    """The search's page of ``docs``: sorted, skipped, limited and projected."""
    keys = (search.sort, *(k for k in TIE_BREAK if k != search.sort))
    ordered = sorted(docs, key=lambda d: tuple(_sort_value(lookup(d, k)) for k in keys),
                     reverse=search.descending)
    return [present(d, search.fields) for d in ordered[search.skip:search.wanted]]


def present(doc: Mapping[str, Any], fields: tuple[str, ...] | None = None) -> dict:
    """A document as API v3 shows it: without ``_id``, only ``fields`` if given."""
    return {k: v for k, v in doc.items() if k != "_id" and (fields is None or k in fields)}


# -- writes ------------------------------------------------------------------------------
def dated(raw: Mapping[str, Any]) -> dict:
    """A posted document with API v3's date rules applied (``date``, else ``created_at``,
    as epoch ms in ``date`` and ISO text in ``created_at``; ``utcOffset`` defaulting to the
    time's own offset), checked for a date, a utcOffset, an app and a usable identifier."""
    for value in (raw.get("date"), raw.get("created_at")):
        found = instant(value)
        if found is not None:
            break
    else:
        raise BadRequest(BAD_DATE, "date (epoch ms or s, or ISO 8601; else created_at) is "
                         "required and must be after 2000-01-01: missing, unreadable or too old")
    ms, offset = found
    doc = {**raw, "date": ms, "created_at": iso_ms(ms)}
    doc.setdefault("utcOffset", offset)
    utc_offset = doc["utcOffset"]
    if isinstance(utc_offset, bool) or not isinstance(utc_offset, int | float) \
            or not -MAX_UTC_OFFSET_MIN <= utc_offset <= MAX_UTC_OFFSET_MIN:
        raise BadRequest(BAD_UTC, f"utcOffset: minutes from -{MAX_UTC_OFFSET_MIN} to "
                         f"{MAX_UTC_OFFSET_MIN}")
    app = doc.get("app")
    if not isinstance(app, str) or not app.strip():
        raise BadRequest(BAD_APP, "app: the uploading application's name is required")
    identifier = doc.get("identifier")
    if identifier is not None and (not isinstance(identifier, str) or not identifier.strip()):
        raise BadRequest(BAD_IDENTIFIER, "identifier: a non-empty string (or none, and the "
                         "server derives it)")
    return doc


def changed_immutable(new: Mapping[str, Any], stored: Mapping[str, Any]) -> str | None:
    """The first immutable field ``new`` gives a value other than ``stored``'s (a deleted
    document may change freely), or None."""
    if stored.get("isValid", True) is False:
        return None
    return next((f for f in IMMUTABLE if f in new and new[f] != stored.get(f)), None)


def read_only(doc: Mapping[str, Any]) -> bool:
    """Whether a document is marked read-only (any of Nightscout's three spellings)."""
    return any(doc.get(k) is True for k in ("isReadOnly", "readOnly", "readonly"))


def reading_document(entry: Mapping[str, Any]) -> dict:
    """An sgv reading (a Nightscout entry from the ring buffers) as an API v3 document.

    Its identifier is API v3's for a document without one (``device_date``). The ring
    buffers keep no server time, so ``srvCreated`` and ``srvModified`` are the reading's own
    date: history lists a reading by when it was measured, so a reading uploaded late, older
    than a client's last synchronisation, is not listed to that client again.
    """
    date = entry["date"]
    return {**entry, "identifier": identifier_for(entry.get("device"), date),
            "srvCreated": date, "srvModified": date}


def version_info(version: str, now_ms: int) -> dict:
    """``/api/v3/version``: this server's and its API's versions and its clock."""
    return {"version": version, "apiVersion": API_VERSION, "srvDate": now_ms,
            "storage": {"storage": "cgm-ray partitions", "version": version}}

