"""Recorded Nightscout upload sequences and their replay against a server over HTTP.

A sequence (``tests/data/nightscout/*.json``, described in the README there) is what one client
app sends in one sync cycle, written from the app's own source (cited in the file's ``source``).
Each step names its method, path with query, credential kind, body and expected status. Times
are placeholders relative to the replay's start, so the same file replays at any date:

- ``${ms:M}``: epoch milliseconds (an int when it is the whole value), ``${ms_text:M}`` the same
  as a string;
- ``${iso:M}``: UTC ISO 8601 without fractional seconds (Loop's ``ISO8601DateFormatter``);
- ``${iso_ms:M}``: UTC ISO 8601 with milliseconds (xDrip+'s ``DateUtil.toISOString``);
- ``${xdrip_local:M}``: xDrip+'s ``yyyy-MM-dd'T'HH:mm:ss.SSSZ`` on a phone at UTC+01:00;

with M minutes from the start (negative: before). ``${name}`` is a value an earlier step
captured from its response (``"capture": {"name": "0._id"}``: item 0's ``_id``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import requests

SEQUENCES = Path(__file__).resolve().parent / "data" / "nightscout"
_PLACEHOLDER = re.compile(r"\$\{(\w+)(?::([+-]?\d+(?:\.\d+)?))?\}")
_XDRIP_PHONE_TZ = timezone(timedelta(hours=1))


def load(name: str) -> dict:
    """The sequence stored as ``tests/data/nightscout/<name>.json``."""
    return json.loads((SEQUENCES / f"{name}.json").read_text())


def minute_floor_ms(now_ms: int) -> int:
    return now_ms - now_ms % 60_000


def _time(kind: str, at_ms: int) -> str | int:
    moment = datetime.fromtimestamp(at_ms / 1000, UTC)
    if kind == "ms":
        return at_ms
    if kind == "ms_text":
        return str(at_ms)
    if kind == "iso":
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    if kind == "iso_ms":
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    if kind == "xdrip_local":
        local = moment.astimezone(_XDRIP_PHONE_TZ)
        millis = f"{local.microsecond // 1000:03d}"
        return local.strftime("%Y-%m-%dT%H:%M:%S.") + millis + local.strftime("%z")
    raise KeyError(f"unknown time placeholder ${{{kind}:...}}")


@dataclass
class Replay:
    """The state of one replay: its start time and the values captured so far."""

    start_ms: int
    captured: dict[str, Any] = field(default_factory=dict)

    def value(self, kind: str, minutes: str | None) -> Any:
        if minutes is None:
            if kind not in self.captured:
                raise KeyError(f"${{{kind}}} used before a step captured it")
            return self.captured[kind]
        return _time(kind, self.start_ms + round(float(minutes) * 60_000))

    def render(self, value: Any) -> Any:
        """``value`` with every placeholder replaced (recursively through lists and objects)."""
        if isinstance(value, dict):
            return {k: self.render(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.render(v) for v in value]
        if not isinstance(value, str):
            return value
        whole = _PLACEHOLDER.fullmatch(value)
        if whole:
            return self.value(whole.group(1), whole.group(2))
        return _PLACEHOLDER.sub(lambda m: str(self.value(m.group(1), m.group(2))), value)


def _dig(document: Any, path: str) -> Any:
    for key in path.split("."):
        document = document[int(key)] if isinstance(document, list) else document[key]
    return document


@dataclass(frozen=True)
class StepResult:
    step: dict
    status: int
    body: Any


def replay(base_url: str, sequence: dict, *, admin: dict[str, str], token: str,
           start_ms: int) -> tuple[list[StepResult], Replay]:
    """Send every step of ``sequence`` in order; AssertionError at the first unexpected answer.

    ``auth: api-secret`` sends the ``admin`` headers and adds ``patient=<the sequence's patient>``
    to the query; ``auth: token`` adds ``token=<token>`` (a role token for that patient).
    """
    state = Replay(start_ms)
    results = []
    for number, step in enumerate(sequence["steps"], 1):
        path = state.render(step["path"])
        headers = {"Content-Type": "application/json", "Accept": "application/json",
                   **step.get("headers", {})}
        params: dict[str, str] = {}
        if step["auth"] == "api-secret":
            headers |= admin
            params["patient"] = sequence["patient"]
        elif step["auth"] == "token":
            params["token"] = token
        else:
            raise ValueError(f"step {number}: auth must be 'api-secret' or 'token'")
        body = state.render(step["body"]) if "body" in step else None
        reply = requests.request(step["method"], base_url + path, params=params, headers=headers,
                                 data=None if body is None else json.dumps(body), timeout=30)
        where = f"{sequence['client']} step {number} ({step['note']}): {step['method']} {path}"
        assert reply.status_code == step["status"], \
            f"{where} answered {reply.status_code}, expected {step['status']}: {reply.text[:500]}"
        document = reply.json() if reply.content else None
        if "expect_len" in step:
            assert isinstance(document, list) and len(document) == step["expect_len"], \
                f"{where} answered {document!r:.500}, expected a list of {step['expect_len']}"
        for name, pointer in step.get("capture", {}).items():
            state.captured[name] = _dig(document, pointer)
        results.append(StepResult(step, reply.status_code, document))
    return results, state
