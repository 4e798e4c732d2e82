"""The ASGI front that hands the hot routes to their handlers, past FastAPI's layers."""

from __future__ import annotations

import asyncio
import json

import pytest
from fastapi import FastAPI, Request

from serve_apps.direct_routes import DirectRequest, DirectRoutes
from serve_apps.http_api import HTTPProblem


def _app(calls: list[str]) -> FastAPI:
    app = FastAPI()

    @app.post("/things", summary="Store things")
    async def things(request: Request) -> dict:
        calls.append("fastapi")
        return {"via": "fastapi"}

    @app.get("/other")
    async def other() -> dict:
        return {"via": "other"}

    return app


async def _direct(request: Request) -> dict:
    body = await request.body()
    if body == b"refuse":
        raise HTTPProblem(429, "Too Many Requests", "this credential: retry after 1.0 s",
                          {"retry-after": "1"})
    if body == b"crash":
        raise RuntimeError("a bug")
    return {"via": "direct", "body": body.decode(), "q": request.query_params.get("q")}


def _call(app, method: str, path: str, body: bytes = b"", root_path: str = "",
          query: bytes = b"") -> tuple[int, dict[bytes, bytes], object]:
    """One request through the ASGI app: (status, headers, JSON body)."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
             "root_path": root_path, "query_string": query, "server": ("127.0.0.1", 8000),
             "client": ("127.0.0.1", 50000),
             "headers": [(b"content-type", b"application/json"),
                         (b"content-length", str(len(body)).encode())]}
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[dict] = []

    async def receive() -> dict:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    start, payload = sent[0], b"".join(m.get("body", b"") for m in sent[1:])
    return start["status"], dict(start["headers"]), json.loads(payload)


def test_a_direct_route_is_answered_by_its_handler_not_fastapis():
    calls: list[str] = []
    front = DirectRoutes(_app(calls), {("POST", "/things"): _direct})
    status, headers, body = _call(front, "POST", "/things", b"abc", query=b"q=1")
    assert (status, body) == (200, {"via": "direct", "body": "abc", "q": "1"})
    assert headers[b"content-type"] == b"application/json"
    assert int(headers[b"content-length"]) == len(json.dumps(body, separators=(",", ":")))
    assert calls == []


def test_a_problem_is_the_apis_error_answer_with_its_headers():
    front = DirectRoutes(_app([]), {("POST", "/things"): _direct})
    status, headers, body = _call(front, "POST", "/things", b"refuse")
    assert status == 429 and headers[b"retry-after"] == b"1"
    assert body == {"status": 429, "message": "Too Many Requests",
                    "description": "this credential: retry after 1.0 s"}


def test_any_other_exception_is_left_to_the_server():
    front = DirectRoutes(_app([]), {("POST", "/things"): _direct})
    with pytest.raises(RuntimeError, match="a bug"):  # Serve answers 500, as for FastAPI
        _call(front, "POST", "/things", b"crash")


def test_other_routes_and_methods_go_through_fastapi():
    calls: list[str] = []
    front = DirectRoutes(_app(calls), {("POST", "/things"): _direct})
    assert _call(front, "GET", "/other")[::2] == (200, {"via": "other"})
    assert _call(front, "GET", "/things")[0] == 405  # FastAPI's answer, not the handler's
    assert _call(front, "POST", "/nowhere")[0] == 404
    assert calls == []
    assert front.routes is front.app.routes  # what Serve names request metrics by


def test_the_route_matches_below_a_mount_point():
    front = DirectRoutes(_app([]), {("POST", "/things"): _direct})
    status, _, body = _call(front, "POST", "/cgm/things", b"x", root_path="/cgm")
    assert status == 200 and body["via"] == "direct"


def test_a_route_the_app_does_not_declare_is_refused():
    with pytest.raises(ValueError, match=r"\('POST', '/missing'\)"):
        DirectRoutes(_app([]), {("POST", "/missing"): _direct})
    with pytest.raises(ValueError, match=r"\('PUT', '/things'\)"):
        DirectRoutes(_app([]), {("PUT", "/things"): _direct})


def test_a_direct_request_reads_headers_and_query_as_starlettes_request_does():
    raw = [(b"api-secret", b"first"), (b"Content-Type", b"application/json"),
           (b"api-secret", b"second")]
    for query in (b"", b"token=abc&q=1&q=2"):
        scope = {"type": "http", "method": "POST", "path": "/things", "query_string": query,
                 "headers": [(k.lower(), v) for k, v in raw]}
        ours, theirs = DirectRequest(scope), Request(scope)
        for name in ("api-secret", "API-Secret", "content-type", "authorization"):
            assert ours.headers.get(name) == theirs.headers.get(name)
            assert (name in ours.headers) == (name in theirs.headers)
        assert ours.headers["Content-Type"] == "application/json"
        assert ours.headers.getlist("api-secret") == ["first", "second"]
        assert dict(ours.query_params) == dict(theirs.query_params)
        assert ours.query_params.get("token") == theirs.query_params.get("token")
    with pytest.raises(KeyError):
        DirectRequest({"type": "http", "query_string": b"", "headers": []}).headers["x"]
