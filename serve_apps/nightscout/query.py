"""Queries over Nightscout documents: v1's ``find[field][$op]=`` and v3's ``field$op=``.

Both parse into the same ``Filter`` list, matched against documents in memory. Values come
from a query string, so they are compared the way the field needs: times as instants (ISO
text or epoch ms on either side), numbers numerically, ``/pattern/`` as a regular
expression (Nightscout's ``parseRegEx``), anything else as text.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from serve_apps.nightscout.documents import TIME_FIELDS, parse_time
from serve_apps.validation import InvalidBody

OPERATORS = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "nin", "re", "regex", "exists")
V1_FIND = re.compile(r"^find\[([^\]\[]+)\](?:\[\$?([a-z]+)\])?$")
MAX_FILTERS = 20


@dataclass(frozen=True)
class Filter:
    """``field op value``; ``field`` may be a dotted path into nested objects."""

    field: str
    op: str
    value: str


def v1_filters(params: Mapping[str, str]) -> list[Filter]:
    """The ``find[field]=v`` / ``find[field][$op]=v`` parameters of a v1 request."""
    found = []
    for name, value in params.items():
        match = V1_FIND.match(name)
        if match:
            found.append(_checked(Filter(match[1], match[2] or "eq", value)))
    return _few(found)


def v3_filters(params: Mapping[str, str], reserved: set[str]) -> list[Filter]:
    """The ``field$op=v`` (or ``field=v``) parameters of a v3 search, minus ``reserved``."""
    found = []
    for name, value in params.items():
        if name in reserved:
            continue
        field, _, op = name.partition("$")
        found.append(_checked(Filter(field, op or "eq", value)))
    return _few(found)


def _checked(f: Filter) -> Filter:
    if f.op not in OPERATORS:
        raise InvalidBody(f.field, f"unknown operator {f.op!r}; known: {', '.join(OPERATORS)}")
    if not f.field or len(f.field) > 100:
        raise InvalidBody("find", "a field name of 1-100 characters is required")
    if f.field in TIME_FIELDS and f.op in ("gt", "gte", "lt", "lte"):
        parse_time(f.value.replace(" ", "+"), f.field)  # refuse what can't be a time
    if f.op in ("re", "regex") or _is_regex(f.value):
        _regex(f)
    return f


def time_bounds(filters: list[Filter], fields: tuple[str, ...]) -> tuple[int | None, int | None]:
    """The inclusive [since, until] epoch-ms range the filters on ``fields`` allow."""
    since: int | None = None
    until: int | None = None
    for f in filters:
        if f.field not in fields or f.op not in ("gt", "gte", "lt", "lte", "eq"):
            continue
        ms = parse_time(f.value.replace(" ", "+"), f.field)[0]
        if f.op in ("gt", "gte", "eq"):
            low = ms + (f.op == "gt")
            since = low if since is None else max(since, low)
        if f.op in ("lt", "lte", "eq"):
            high = ms - (f.op == "lt")
            until = high if until is None else min(until, high)
    return since, until


def _few(filters: list[Filter]) -> list[Filter]:
    if len(filters) > MAX_FILTERS:
        raise InvalidBody("find", f"at most {MAX_FILTERS} filters")
    return filters


def _is_regex(value: str) -> bool:
    return len(value) >= 2 and value.startswith("/") and value.rfind("/") > 0


def _regex(f: Filter) -> re.Pattern:
    text, flags = f.value, 0
    if _is_regex(text):
        end = text.rfind("/")
        text, flags = text[1:end], re.IGNORECASE if "i" in text[end + 1:] else 0
    try:
        return re.compile(text, flags)
    except re.error as exc:
        raise InvalidBody(f.field, f"not a regular expression: {exc}") from None


def lookup(doc: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted ``path`` of a document, or None."""
    node: Any = doc
    for part in path.split("."):
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node


def matches(doc: Mapping[str, Any], filters: list[Filter]) -> bool:
    """Whether ``doc`` satisfies every filter."""
    return all(_match(lookup(doc, f.field), f) for f in filters)


def _match(have: Any, f: Filter) -> bool:
    if f.op == "exists":
        return (have is not None) == (f.value.lower() not in ("false", "0"))
    if f.op in ("in", "nin"):
        hit = any(_compare(have, v, "eq", f.field) for v in f.value.split("|" if "|" in f.value
                                                                               else ","))
        return hit == (f.op == "in")
    if f.op in ("re", "regex") or (f.op == "eq" and _is_regex(f.value)):
        return have is not None and _regex(f).search(str(have)) is not None
    return _compare(have, f.value, f.op, f.field)


def _compare(have: Any, want: str, op: str, field: str) -> bool:
    if have is None:
        return op == "ne"
    left: Any
    right: Any
    if field in TIME_FIELDS:
        try:
            left = parse_time(have, field)[0]
            right = parse_time(want.replace(" ", "+"), field)[0]
        except InvalidBody:
            left, right = str(have), want
    elif isinstance(have, bool):
        left, right = have, want.lower() == "true"
    elif isinstance(have, int | float):
        try:
            left, right = float(have), float(want)
        except ValueError:
            left, right = str(have), want
        if isinstance(right, float) and not math.isfinite(right):
            left, right = str(have), want
    else:
        left, right = str(have), want
    if op == "eq":
        return left == right
    if op == "ne":
        return left != right
    try:
        return {"gt": left > right, "gte": left >= right, "lt": left < right,
                "lte": left <= right}[op]
    except TypeError:
        return False
